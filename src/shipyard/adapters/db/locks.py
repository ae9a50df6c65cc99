"""Locks every machine using one metadata database sees: PostgreSQL advisory locks, or, for a SQLite file
(one machine), ``flock`` on files beside it. gc takes them so that it never deletes what a writer on
another machine is about to reference, and so that two machines never collect at once."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from shipyard.adapters.db import engine as engines
from shipyard.adapters.db.base import SqlBase
from shipyard.errors import ConflictError

# advisory lock keys (any two 64-bit numbers that other applications sharing the database are unlikely to use)
WRITERS_KEY = 0x5368697079617264  # "Shipyard"
GC_KEY = 0x5368697079474321  # "ShipyGC!"
IMPORT_KEY = 0x53686970794D4C46  # "ShipyMLF"


class SqlLocks(SqlBase):
    @contextlib.contextmanager
    def writers_lock(self, exclusive: bool = False) -> Iterator[None]:
        """Re-entrant within a thread: a registration inside a tracked write (``log_model`` in a run) takes it
        once. Taking it twice from one thread would deadlock on PostgreSQL as soon as gc queues for it
        exclusively between the two (a new shared request waits behind a waiting exclusive one)."""
        held = _held(self)
        if held.depth:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        with self._writers_lock(exclusive):
            held.depth = 1
            try:
                yield
            finally:
                held.depth = 0

    @contextlib.contextmanager
    def _writers_lock(self, exclusive: bool) -> Iterator[None]:
        if self.dialect == "postgresql":
            kind = "" if exclusive else "_shared"
            with self._session() as conn:
                conn.execute(sa.text(f"SELECT pg_advisory_lock{kind}(:k)"), {"k": WRITERS_KEY})
                try:
                    yield
                finally:
                    conn.execute(sa.text(f"SELECT pg_advisory_unlock{kind}(:k)"), {"k": WRITERS_KEY})
            return
        with _flock(self._lock_file("writers"), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def gc_lock(self) -> Iterator[None]:
        busy = ConflictError("another `shipyard store gc` is collecting this store (on this or another machine): "
                             "wait for it to finish, then run gc again")
        if self.dialect == "postgresql":
            with self._session() as conn:
                if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_KEY}).scalar():
                    raise busy
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": GC_KEY})
            return
        try:
            with _flock(self._lock_file("gc"), fcntl.LOCK_EX | fcntl.LOCK_NB):
                yield
        except BlockingIOError:
            raise busy from None

    @contextlib.contextmanager
    def import_lock(self) -> Iterator[None]:
        """Held by one ``shipyard import`` at a time across every machine using this database (the next waits):
        an import reads what is already there, then adds the rest, so two at once would add it twice."""
        if self.dialect == "postgresql":
            with self._session() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": IMPORT_KEY})
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": IMPORT_KEY})
            return
        with _flock(self._lock_file("import"), fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _session(self) -> Iterator[sa.Connection]:
        """One connection of its own, outside any transaction: a session-level lock lives as long as it."""
        with engines.translate(self.url), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _lock_file(self, name: str) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        return Path(f"{database}.{name}-lock")


class _Held(threading.local):
    depth = 0


_HELD_LOCK = threading.Lock()


def _held(locks: SqlLocks) -> _Held:
    """This thread's count of ``locks``' writers lock, made on first use (the mixin has no ``__init__``)."""
    held: _Held | None = locks.__dict__.get("_writers_held")
    if held is None:
        with _HELD_LOCK:
            held = locks.__dict__.setdefault("_writers_held", _Held())
    return held


@contextlib.contextmanager
def _flock(path: Path | None, how: int) -> Iterator[None]:
    if path is None:  # an in-memory database: one process, nothing to share
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS):  # a read-only database folder: no writer can race us
            yield
            return
        raise
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)
