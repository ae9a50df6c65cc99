"""MLflow's database (SQLite or PostgreSQL), read with plain SQL over its documented tables; never written.

MLflow itself is not imported. Every value read is bounded (keys, names and values by length) before it
becomes a record; a database that is not MLflow's (no ``runs``/``experiments`` tables) is one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.adapters.mlflow_store import int_of as _int
from shipyard.adapters.mlflow_store import text_of as _text
from shipyard.core.importing.mlflow import MlAlias, MlExperiment, MlLoggedModel, MlRun, MlVersion, fits_time
from shipyard.core.lineage.records import Metric
from shipyard.errors import BackendUnavailableError, InvalidInputError

REQUIRED = ("experiments", "runs", "params", "metrics", "tags")
MAX_VALUE = 65_536  # a param or tag value (MLflow's own limit is 8,000 for params, 8,000 for tags in SQL)
_CHUNK = 500


class MlflowDatabase:
    """An MLflow tracking database at ``url`` (``sqlite:///mlflow.db``, ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.where = _masked(url)
        self.sqlite_path: Path | None = None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise InvalidInputError(f"{path} does not exist: give the MLflow database's path "
                                        "(e.g. sqlite:///mlflow.db)")
            self.sqlite_path = path.resolve()
        elif url.startswith("postgresql://"):  # the driver Shipyard's postgres extra installs (psycopg 3)
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        options: dict[str, Any] = {}
        if self.sqlite_path is not None:  # read-only: an import never changes MLflow's store
            import sqlite3
            from urllib.parse import quote

            # the path percent-quoted, given to sqlite3 itself: in a URL, '%41' in a file name read another file
            # (SQLAlchemy and SQLite each decode it) and '#' or '?' cut the name
            target = f"file:{quote(str(self.sqlite_path))}?mode=ro"
            url, options["creator"] = "sqlite://", lambda: sqlite3.connect(target, uri=True)
        try:
            self.engine = sa.create_engine(url, **options)
            with self.engine.connect() as conn:
                names = set(sa.inspect(conn).get_table_names())
        except sa.exc.ArgumentError as exc:
            raise InvalidInputError(f"{self.where} is not a database URL Shipyard reads: {str(exc)[:120]}") from None
        except sa.exc.OperationalError as exc:  # no server there, refused, a wrong password: not the store's fault
            raise BackendUnavailableError(f"cannot read {self.where}: "
                                          f"{str(exc.orig).splitlines()[0][:160]}") from None
        except sa.exc.DatabaseError as exc:
            raise InvalidInputError(f"{self.where} is not an MLflow database: "
                                    f"{str(exc.orig).splitlines()[0][:160]}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailableError(f"cannot read {self.where}: {str(exc).splitlines()[0][:160]}") from None
        except ModuleNotFoundError as exc:
            raise InvalidInputError(f"{self.where}: its driver is not installed ({exc.name})") from None
        missing = [t for t in REQUIRED if t not in names]
        if missing:
            raise InvalidInputError(f"{self.where} is not an MLflow database: it has no {', '.join(missing)} "
                                    "table(s); give the database MLflow's --backend-store-uri names")
        self.tables = names

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0][:160]
            raise InvalidInputError(f"{self.where} does not read as an MLflow database: {detail}") from None

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        import sqlalchemy as sa

        stmt = sa.text(sql)
        for key, value in params.items():
            if isinstance(value, list | tuple):
                stmt = stmt.bindparams(sa.bindparam(key, expanding=True))
        with self._conn() as conn:
            return list(conn.execute(stmt, params).all())

    def default_artifacts(self) -> tuple[Path, Path]:
        """The artifact root and base folder when --artifacts is not given: ``mlruns`` beside a SQLite file."""
        base = self.sqlite_path.parent if self.sqlite_path is not None else Path.cwd()
        return base / "mlruns", base

    def experiments(self) -> list[MlExperiment]:
        tags: dict[str, dict[str, str]] = {}
        if "experiment_tags" in self.tables:
            for key, value, exp in self._rows("SELECT key, value, experiment_id FROM experiment_tags"):
                tags.setdefault(str(exp), {})[_text(key, 250)] = _text(value, MAX_VALUE)
        return [MlExperiment(str(i), _text(name, 256), _text(loc), stage == "deleted", tags.get(str(i), {}))
                for i, name, loc, stage in self._rows(
                    "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
                    "ORDER BY experiment_id")]

    def runs(self) -> list[MlRun]:
        return [MlRun(id=_text(rid, 64), experiment_id=str(exp), name=_text(name, 250), status=_text(status, 20),
                      start_ms=_int(start), end_ms=_int(end), user=_text(user, 256), artifact_uri=_text(uri),
                      deleted=stage == "deleted")
                for rid, exp, name, status, start, end, user, uri, stage in self._rows(
                    "SELECT run_uuid, experiment_id, name, status, start_time, end_time, user_id, artifact_uri, "
                    "lifecycle_stage FROM runs ORDER BY start_time, run_uuid")]

    def details(self, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]],
                                                      dict[str, list[Metric]], list[tuple[str, str]]]:
        """Params, tags and every metric value of ``run_ids``, and (what, why) for values too large to carry."""
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        metrics: dict[str, list[Metric]] = {}
        refused: list[tuple[str, str]] = []
        bad: dict[tuple[str, str], int] = {}
        for start in range(0, len(run_ids), _CHUNK):
            ids = list(run_ids[start:start + _CHUNK])
            last: str | None = None
            into: list[Metric] = []
            for table, values in (("params", params), ("tags", tags)):
                for key, value, rid in self._rows(
                        f"SELECT key, value, run_uuid FROM {table} WHERE run_uuid IN :ids", ids=ids):
                    text = _text(value, MAX_VALUE + 1)
                    if len(text) > MAX_VALUE:
                        refused.append((f"run {rid} {table[:-1]} {str(key)[:60]!r}", "its value is larger than "
                                        f"{MAX_VALUE // 1024} KiB"))
                        continue
                    values.setdefault(rid, {})[_text(key, 1000)] = text
            for key, value, ts, step, is_nan, rid in self._rows(
                    "SELECT key, value, timestamp, step, is_nan, run_uuid FROM metrics WHERE run_uuid IN :ids",
                    ids=ids):
                try:
                    if type(key) is not str:
                        key = _text(key, 1000)
                    if not fits_time(int(ts)):
                        raise ValueError(ts)
                    metric = Metric(key, math.nan if is_nan else float(value), int(step), int(ts) / 1000)
                except (TypeError, ValueError, OverflowError):
                    bad[(rid, str(key)[:60])] = bad.get((rid, str(key)[:60]), 0) + 1
                    continue
                if rid == last:
                    into.append(metric)
                else:
                    last, into = rid, metrics.setdefault(rid, [])
                    into.append(metric)
        # one line per metric however many of its rows are bad: a crafted database may hold millions
        refused += [(f"run {rid} metric {key!r}: {n} value(s)", "a value, step or time is not a number (or the "
                     "time is not milliseconds since 1970 before the year 10000)") for (rid, key), n in bad.items()]
        return params, tags, metrics, refused

    def versions(self) -> list[MlVersion]:
        if "model_versions" not in self.tables:
            return []
        cols = "name, version, creation_time, run_id, source, current_stage, description, user_id, status"
        has_storage = self._has_column("model_versions", "storage_location")
        sql = f"SELECT {cols}{', storage_location' if has_storage else ''} FROM model_versions ORDER BY name, version"
        out = []
        for row in self._rows(sql):
            version = _int(row[1])
            if version is None or version < 1:
                continue
            out.append(MlVersion(model=_text(row[0], 256), version=version, created_ms=_int(row[2]) or 0,
                                 run_id=_text(row[3], 64) or None, source=_text(row[4]),
                                 storage_location=_text(row[9]) if has_storage else "", stage=_text(row[5], 20),
                                 description=_text(row[6]), user=_text(row[7], 256), status=_text(row[8], 32)))
        return out

    def aliases(self) -> list[MlAlias]:
        if "registered_model_aliases" not in self.tables:
            return []
        out = []
        for alias, version, name in self._rows("SELECT alias, version, name FROM registered_model_aliases"):
            number = _int(version)
            if number is not None:
                out.append(MlAlias(_text(name, 256), _text(alias, 256), number))
        return out

    def logged_models(self) -> list[MlLoggedModel]:
        """MLflow 3's logged models (their files live beside the runs', not among them)."""
        if "logged_models" not in self.tables:
            return []
        return [MlLoggedModel(_text(mid, 64), str(exp), _text(name, 500), _text(loc), _text(run, 64) or None,
                              stage == "deleted")
                for mid, exp, name, loc, run, stage in self._rows(
                    "SELECT model_id, experiment_id, name, artifact_location, source_run_id, lifecycle_stage "
                    "FROM logged_models ORDER BY creation_timestamp_ms")]

    def counts(self) -> dict[str, int]:
        """Rows of what Shipyard has no place for, so the report can say they were left behind."""
        out: dict[str, int] = {}
        for table in ("registered_model_tags", "model_version_tags", "inputs", "trace_info", "logged_model_params",
                      "logged_model_metrics"):
            if table in self.tables:
                out[table] = int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])
        return out

    def _has_column(self, table: str, column: str) -> bool:
        import sqlalchemy as sa

        with self._conn() as conn:
            return any(c["name"] == column for c in sa.inspect(conn).get_columns(table))

    def close(self) -> None:
        self.engine.dispose()


def _masked(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None and "password" not in parts.query.lower():
        return url  # as given (urlunsplit would turn sqlite:////abs into sqlite://abs)
    if parts.query:  # libpq takes the password as a parameter too: ?password=...
        from urllib.parse import parse_qsl, urlencode

        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            parts = parts._replace(query=urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs],
                                                   safe="*/"))
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
