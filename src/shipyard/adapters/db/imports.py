"""Runs recorded elsewhere (``shipyard import mlflow``), written whole: many runs in one transaction.

Rows go to the driver's ``executemany`` as plain tuples (SQLite's and psycopg 3's are fast; SQLAlchemy's
per-row parameter processing cost more than the inserts): 10,000 runs of 20 metrics are half a million rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.adapters.db import schema as t
from shipyard.adapters.db.base import SqlBase, fits
from shipyard.core.lineage.records import Metric, RunRecord
from shipyard.errors import InvalidInputError

_CHUNK = 500  # ids per IN (...) list
_KEY = 255  # the key columns of params, tags and metrics


class SqlImports(SqlBase):
    def existing_runs(self, run_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.read() as conn:
            for start in range(0, len(run_ids), _CHUNK):
                ids = list(run_ids[start:start + _CHUNK])
                found.update(conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id.in_(ids))).scalars())
        return found

    def import_runs(self, runs: Sequence[tuple[RunRecord, Sequence[Metric]]]) -> None:
        """Record finished (or still running) runs with their params, tags, metric histories and artifacts,
        all in one transaction: a failure leaves none of them."""
        run_rows: list[tuple[Any, ...]] = []
        params: list[tuple[str, str, str]] = []
        tags: list[tuple[str, str, str]] = []
        metrics: list[tuple[str, str, float, int, float]] = []
        latest: list[tuple[str, str, float, int, float]] = []
        artifacts: list[tuple[str, str, str, int, bool]] = []
        for run, history in runs:
            code = run.code
            row = fits(t.runs, dict(
                id=run.id, name=run.name, experiment=run.experiment, status=str(run.status),
                start_time=run.start_time, end_time=run.end_time, user=run.user, host=run.host, pid=run.pid,
                git_commit=code.commit, git_branch=code.branch, git_dirty=code.dirty, git_diff_digest=None,
                git_repo=code.repo, env_digest=None, parent_id=run.parent_id))
            run_rows.append(tuple(row[c] for c in _RUN_COLUMNS))
            rid = run.id
            params += [(rid, k, v) for k, v in run.params.items()]
            tags += [(rid, k, v) for k, v in run.tags.items()]
            newest: dict[str, Metric] = {}
            for m in history:
                metrics.append((rid, m.key, m.value, m.step, m.timestamp))
                cur = newest.get(m.key)
                if cur is None or (m.step, m.timestamp) >= (cur.step, cur.timestamp):
                    newest[m.key] = m
            latest += [(rid, m.key, m.value, m.step, m.timestamp) for m in newest.values()]
            for a in run.artifacts:
                fits(t.run_artifacts, {"path": a.path})
                artifacts.append((rid, a.path, str(a.digest), a.size, a.is_dir))
        for keyed in (params, tags, metrics):
            long = next((r[1] for r in keyed if len(r[1]) > _KEY), None)
            if long is not None:
                raise InvalidInputError(f"the key {long[:40]!r}... is longer than {_KEY} characters")
        batches: list[tuple[sa.Table, tuple[str, ...], Sequence[tuple[Any, ...]]]] = [
            (t.runs, _RUN_COLUMNS, run_rows), (t.params, _KV, params), (t.tags, _KV, tags),
            (t.metrics, _METRIC, metrics), (t.latest_metrics, _METRIC, latest), (t.run_artifacts, _ARTIFACT, artifacts)]
        with self.write() as conn:
            for table, columns, rows in batches:
                if rows:
                    self._insert_many(conn, table, columns, rows)

    def _insert_many(self, conn: sa.Connection, table: sa.Table, columns: tuple[str, ...],
                     rows: Sequence[tuple[Any, ...]]) -> None:
        if self.dialect != "sqlite":  # other drivers: SQLAlchemy's own batching (insertmanyvalues)
            conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])
            return
        quote = self.engine.dialect.identifier_preparer.quote
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        conn.exec_driver_sql(sql, list(rows))


_RUN_COLUMNS = ("id", "name", "experiment", "status", "start_time", "end_time", "user", "host", "pid", "git_commit",
                "git_branch", "git_dirty", "git_diff_digest", "git_repo", "env_digest", "parent_id")
_KV = ("run_id", "key", "value")
_METRIC = ("run_id", "key", "value", "step", "timestamp")
_ARTIFACT = ("run_id", "path", "digest", "size", "is_dir")
