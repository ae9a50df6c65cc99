"""Engines for SQLite (WAL, busy timeout, BEGIN IMMEDIATE for writes) and PostgreSQL; migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    ImmutableError,
    InvalidInputError,
    MissingExtraError,
)

HEAD_REVISION = "0002"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATIONS = Path(__file__).parent / "migrations"
READ = {"shipyard_read": True}


def redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return url


def create(url: str) -> sa.Engine:
    """An engine for ``url``; the schema is migrated to head on first use."""
    try:
        parsed = sa.engine.make_url(url)
    except exc.ArgumentError as e:
        raise ConfigError(
            f"cannot read database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from e
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(parsed, pool_pre_ping=False, pool_size=2, max_overflow=4,
                                      connect_args={"connect_timeout": 5})
        except ModuleNotFoundError as e:
            raise MissingExtraError("PostgreSQL metadata", "postgres") from e
    elif parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise BackendUnavailableError(
                    f"cannot create the metadata database at {parsed.database} ({e.strerror or e}); "
                    "set SHIPYARD_HOME or SHIPYARD_DB_URL to a writable place"
                ) from e
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_setup(engine)
    else:
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    with translate(url):
        _migrate(engine)
    return engine


def _sqlite_setup(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
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


def _migrate(engine: sa.Engine) -> None:
    with engine.connect().execution_options(**READ) as conn:
        if _current_revision(conn) == HEAD_REVISION:
            return
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
    """Turn database library errors into Shipyard errors a user can act on."""
    try:
        yield
    except exc.DBAPIError as e:
        text = str(e.orig) if e.orig is not None else str(e)
        if "immutable" in text:
            raise ImmutableError(
                "registered model versions and audit records are immutable: register a new version instead"
            ) from e
        first = text.strip().splitlines()[0] if text.strip() else type(e.orig).__name__
        if isinstance(e, exc.OperationalError | exc.InterfaceError):
            raise BackendUnavailableError(
                f"cannot use the metadata database at {redact(url)}: {first}; "
                "check SHIPYARD_DB_URL and that the server is running"
            ) from e
        if isinstance(e, exc.IntegrityError):
            raise ConflictError(f"the metadata database refused the write: {first}") from e
        if isinstance(e, exc.DataError):
            raise InvalidInputError(f"the metadata database refused a value: {first}") from e
        raise
