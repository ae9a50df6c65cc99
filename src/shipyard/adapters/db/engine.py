"""Engines for SQLite (WAL, busy timeout, BEGIN IMMEDIATE for writes) and PostgreSQL; migrations."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from shipyard.adapters.db.revisions import HEAD_REVISION as HEAD_REVISION
from shipyard.adapters.db.revisions import REVISIONS as REVISIONS
from shipyard.adapters.db.revisions import SQLITE_BUSY_TIMEOUT_MS as SQLITE_BUSY_TIMEOUT_MS
from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    ImmutableError,
    InvalidInputError,
    MissingExtraError,
    ShipyardError,
)

SQLSTATE_IMMUTABLE = "SY001"  # raised by the triggers of migration 0003 (PostgreSQL)
SQLSTATE_UNAUDITED = "SY002"
_MIGRATIONS = Path(__file__).parent / "migrations"
READ = {"shipyard_read": True}


# A process forked while an engine is open (multiprocessing's default on Linux, a data loader's workers)
# inherits its pooled connections: the same PostgreSQL socket or SQLite handle as the parent. Used or
# closed in the child, they break the parent's (a child exiting closes the socket under it). So the
# child starts each engine with an empty pool, leaving the parent's connections alone (SQLAlchemy's
# recipe: dispose(close=False) after fork).
_ENGINES: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _fresh_pools_after_fork() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_fresh_pools_after_fork)


def redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return url


def _masked(url: str) -> str:
    """An unparseable URL as a message shows it: without what may be a password (``user:pw@``)."""
    from shipyard.core.redact import mask_userinfo

    return mask_userinfo(url)[:200]


def create(url: str) -> sa.Engine:
    """An engine for ``url``; the schema is migrated to head on first use.

    A SQLite file that does not exist yet is created (built beside its place, then linked in, so a
    half-made file never carries the database's name); its folder must exist (the wiring makes the
    project's own ``.shipyard``; any other folder is the user's to make). A file that exists must be a Shipyard
    database: an empty file, garbage or a SQLite file without Shipyard's tables is refused, never
    silently replaced by a new, empty database.
    """
    try:
        parsed = sa.engine.make_url(url)
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"cannot read database URL {_masked(url)!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    existing = True
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(parsed, pool_pre_ping=False, pool_size=2, max_overflow=4,
                                      connect_args={"connect_timeout": 5})
        except ModuleNotFoundError as e:
            raise MissingExtraError("PostgreSQL metadata", "postgres") from e
        existing = False  # an empty database on a server is how a team starts: migrate it
    elif parsed.get_backend_name() == "sqlite":
        if _is_file(parsed):
            path = Path(str(parsed.database))
            if not path.parent.is_dir():  # a mistyped URL must not become a new tree of folders
                raise ConfigError(
                    f"database {redact(url)}: folder {path.parent} does not exist; create it "
                    f"(mkdir -p {path.parent}) or fix SHIPYARD_DB_URL"
                )
            if not os.path.lexists(path):
                _create_sqlite_file(parsed, path, url)
            _check_sqlite_file(path)
        else:
            existing = False
        engine = _sqlite_engine(parsed)
    else:
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    try:
        with translate(url):
            _migrate(engine, redact(url), existing)
    except BaseException:
        engine.dispose()
        raise
    _ENGINES.add(engine)
    return engine


def _is_file(parsed: sa.URL) -> bool:
    """A plain SQLite file path (not memory, not a ``file:`` URI with its own open mode)."""
    return bool(parsed.database) and parsed.database != ":memory:" and "uri" not in parsed.query


def _sqlite_engine(parsed: sa.URL) -> sa.Engine:
    engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _sqlite_setup(engine)
    return engine


def _create_sqlite_file(parsed: sa.URL, path: Path, url: str) -> None:
    """Create a new database at ``path``: migrate it under a temporary name, then link it into place."""
    tmp = path.with_name(f".{path.name[:32]}.{secrets.token_hex(6)}.new")
    engine = _sqlite_engine(parsed.set(database=str(tmp)))
    try:
        with translate(url):
            _migrate(engine, str(path), existing=False)
            raw = engine.raw_connection()  # outside a transaction: fold the WAL into the file, which is linked
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                raw.close()
        engine.dispose()
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile: then theirs is used
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.replace(tmp, path)
    except OSError as e:
        raise BackendUnavailableError(
            f"cannot create the metadata database at {path} ({e.strerror or e}); "
            "set SHIPYARD_HOME or SHIPYARD_DB_URL to a writable place"
        ) from e
    finally:
        engine.dispose()
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that cannot be a SQLite database before SQLite quietly treats it as a new one.

    Only SQLite itself opens the file: closing any other descriptor of it would drop every POSIX lock
    this process's SQLite connections hold on it (a rule of fcntl locks), and another process would
    then take itself for the last user and remove the WAL under them ("disk I/O error").
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BackendUnavailableError(f"cannot read the metadata database {path}: {e.strerror or e}") from e
    if size == 0:
        raise BackendUnavailableError(
            f"the metadata database {path} is empty (0 bytes), not a Shipyard database: restore it from a "
            "backup, or move it away to start a new, empty one"
        )
    # read-only, before our connections switch it to WAL: another program's database is left as it was
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            ours = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise _classify(str(path), e) from e
    if ours is None:
        raise BackendUnavailableError(
            f"{path} is a SQLite database without Shipyard's tables: point SHIPYARD_DB_URL at the "
            "project's database, or move this file away to start a new, empty one"
        )


def _sqlite_setup(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and \
                cur.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
            cur.execute("PRAGMA journal_mode = WAL")  # a new file; another program's keeps its mode (and bytes)
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across a process crash
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A write transaction takes the write lock up front, so two writers never deadlock on upgrade.
        read = conn.get_execution_options().get("shipyard_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _current_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


MLFLOW_TABLES = frozenset({"experiments", "runs", "metrics", "params", "registered_models"})  # MLflow's schema


def _is_mlflows(engine: sa.Engine) -> bool:
    with engine.connect().execution_options(**READ) as conn:
        return set(sa.inspect(conn).get_table_names()) >= MLFLOW_TABLES


def migrate_new(engine: sa.Engine) -> None:
    """Bring a new, empty database to head (``store verify`` builds one in memory to compare with)."""
    _migrate(engine, "memory", existing=False)


def _migrate(engine: sa.Engine, where: str, existing: bool) -> None:
    with engine.connect().execution_options(**READ) as conn:
        current = _current_revision(conn)
        if current == HEAD_REVISION:
            return
        if current is None and existing:
            raise BackendUnavailableError(
                f"{where} is a SQLite database without Shipyard's tables: point SHIPYARD_DB_URL at the "
                "project's database, or move this file away to start a new, empty one"
            )
    if current is not None and current not in REVISIONS:
        if _is_mlflows(engine):
            raise BackendUnavailableError(
                f"{where} is an MLflow tracking database; Shipyard keeps its own: bring its runs and models over "
                f"with `shipyard import mlflow {where}`, and record in another file "
                "(set_tracking_uri('sqlite:///shipyard.db')) or in the project's .shipyard/ (no set_tracking_uri)"
            )
        raise BackendUnavailableError(
            f"the metadata database at {where} has schema revision {current!r}, which this Shipyard does not "
            "know: upgrade Shipyard"
        )
    from alembic import command  # imported only when the schema needs work
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7265746)")  # one migrator at a time
        if _current_revision(conn) == HEAD_REVISION:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def translate(url: str) -> Iterator[None]:
    """Turn every database library error into a one-line Shipyard error a user can act on.

    Errors are told apart by their codes (SQLSTATE on PostgreSQL, the extended result code on
    SQLite), never by their text.
    """
    try:
        yield
    except exc.DBAPIError as e:
        raise _classify(url, e.orig if e.orig is not None else e) from e
    except exc.SQLAlchemyError as e:
        raise _unavailable(url, _first_line(e)) from e
    except sqlite3.Error as e:  # raised by the driver outside a SQLAlchemy call
        raise _classify(url, e) from e


def classify(url: str, orig: BaseException) -> ShipyardError:
    """A driver's error (``sqlite3.Error`` from the stdlib reader) as the one-line error ``translate`` gives."""
    return _classify(url, orig)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _unavailable(url: str, detail: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"cannot use the metadata database at {redact(url)}: {detail}; "
        "check SHIPYARD_DB_URL and that the server is running"
    )


def _classify(url: str, orig: BaseException) -> ShipyardError:
    diag = getattr(orig, "diag", None)
    sqlstate: str = getattr(diag, "sqlstate", None) or ""
    name: str = getattr(orig, "sqlite_errorname", None) or ""
    first = _first_line(orig)
    if sqlstate in (SQLSTATE_IMMUTABLE, SQLSTATE_UNAUDITED) or name == "SQLITE_CONSTRAINT_TRIGGER":
        return ImmutableError(
            f"the metadata database refused to rewrite history ({first.removeprefix('shipyard: ')}): model "
            "versions and audit records never change; register a new version, move aliases with `shipyard alias`"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or sqlstate == "XX001":
        return BackendUnavailableError(
            f"the metadata database at {redact(url)} is damaged ({first}): restore it from a backup"
        )
    if name.startswith("SQLITE_READONLY") or sqlstate == "25006":
        return BackendUnavailableError(
            f"the metadata database at {redact(url)} is read-only ({first}): make it writable, or set "
            "SHIPYARD_DB_URL to a writable database"
        )
    if name.startswith("SQLITE_CONSTRAINT") or sqlstate.startswith("23"):
        return ConflictError(f"the metadata database refused the write: {first}")
    if name in ("SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE") or sqlstate.startswith("22"):
        return InvalidInputError(f"the metadata database refused a value: {first}")
    return _unavailable(url, first)
