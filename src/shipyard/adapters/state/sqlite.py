"""The stat cache in a small SQLite file beside the store (stdlib sqlite3: fast to open)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from shipyard.errors import BackendUnavailableError

_CHUNK = 900  # below SQLite's default limit of bound variables


class SqliteStateCache:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = OFF")  # a lost entry only costs a re-hash
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS state (path TEXT PRIMARY KEY, inode INTEGER, size INTEGER, "
                "mtime_ns INTEGER, digest TEXT) WITHOUT ROWID"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS trees (path TEXT PRIMARY KEY, signature TEXT, digest TEXT) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(f"cannot open the stat cache {path}: {exc}") from exc

    def lookup(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, str]]:
        wanted = list(paths)
        out: dict[str, tuple[int, int, int, str]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for path, inode, size, mtime, digest in self._db.execute(
                f"SELECT path, inode, size, mtime_ns, digest FROM state WHERE path IN ({marks})", chunk
            ):
                out[path] = (inode, size, mtime, digest)
        return out

    def under(self, folder: str) -> dict[str, tuple[int, int, int, str]]:
        low, high = folder.rstrip("/") + "/", folder.rstrip("/") + "0"  # '0' sorts right after '/'
        return {path: (inode, size, mtime, digest) for path, inode, size, mtime, digest in self._db.execute(
            "SELECT path, inode, size, mtime_ns, digest FROM state WHERE path >= ? AND path < ?", (low, high))}

    def remember(self, entries: Iterable[tuple[str, int, int, int, str]]) -> None:
        rows = list(entries)
        if not rows:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.OperationalError:  # a busy cache is skipped, never fatal: it only saves re-hashing
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def tree(self, folder: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT signature, digest FROM trees WHERE path = ?", (folder,)).fetchone()
        return (row[0], row[1]) if row else None

    def remember_tree(self, folder: str, signature: str, digest: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?)", (folder, signature, digest))

    def close(self) -> None:
        self._db.close()
