"""Reads of a SQLite metadata file through the stdlib's ``sqlite3``: no SQLAlchemy, no alembic.

Importing SQLAlchemy and checking the schema through it costs a command more than its reads (``exp show``
over 1,000 pipeline runs: ~250 ms of a second, measured in bench/exp_show.py). A command that only reads a
project's own SQLite file needs neither: the file is opened here when it already exists and is at the head
revision; anything else (no file, an empty one, another program's database, an older or unknown revision, a
URL with options) is left to ``engine.create``, which migrates, creates or refuses it with its own messages.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from shipyard.adapters.db.revisions import HEAD_REVISION, SQLITE_BUSY_TIMEOUT_MS
from shipyard.adapters.db.runquery import Fetch

_PREFIX = "sqlite:///"


def plain_file(url: str) -> Path | None:
    """The file of ``sqlite:///PATH`` when PATH is a plain path (no query, no escapes, not memory)."""
    if not url.startswith(_PREFIX):
        return None
    path = url[len(_PREFIX):]
    if not path or path == ":memory:" or any(c in path for c in "?#%"):
        return None
    return Path(path)


class SqliteReader:
    """Read transactions on a SQLite metadata file at the head revision, one connection per thread."""

    def __init__(self, url: str, path: Path, conn: sqlite3.Connection) -> None:
        self.url = url
        self.path = path
        self._lock = threading.Lock()
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {_key(): conn}

    @classmethod
    def open(cls, url: str) -> SqliteReader | None:
        """A reader of ``url``'s file, or None when the file is not one to read as it is (see the module)."""
        path = plain_file(url)
        if path is None:
            return None
        try:
            if path.stat().st_size == 0:
                return None
            conn = _connect(path)
        except (OSError, sqlite3.Error):
            return None
        try:
            ours = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone()
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone() if ours else None
        except sqlite3.Error:
            revision = None
        if revision is None or revision[0] != HEAD_REVISION:
            conn.close()
            return None
        return cls(url, path, conn)

    @contextlib.contextmanager
    def fetching(self) -> Iterator[Fetch]:
        """One read transaction (a consistent view across the statements of one read)."""
        try:
            conn = self._connection()  # a thread's first read opens its connection: its errors are worded too
            conn.execute("BEGIN")
            try:
                yield lambda sql, params: conn.execute(sql, params).fetchall()
            finally:
                conn.execute("COMMIT")  # a read: ends the snapshot, so the next read sees later writes
        except sqlite3.Error as exc:
            from shipyard.adapters.db.engine import classify  # SQLAlchemy only to word an error

            raise classify(self.url, exc) from exc

    def _connection(self) -> sqlite3.Connection:
        key = _key()
        conn = self._conns.get(key)
        if conn is None:
            with self._lock:
                conn = self._conns[key] = _connect(self.path)
        return conn

    def close(self) -> None:
        """Close this process's connections (a forked child leaves its parent's alone)."""
        pid = os.getpid()
        with self._lock:
            for key in [k for k in self._conns if k[0] == pid]:
                self._conns.pop(key).close()


def _key() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _connect(path: Path) -> sqlite3.Connection:
    # mode=rw: a file that is gone (moved away while a command runs) is an error, never a new empty file, which
    # every later command would refuse as "empty (0 bytes)"
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")  # this connection never writes
    except sqlite3.Error:
        conn.close()
        raise
    return conn
