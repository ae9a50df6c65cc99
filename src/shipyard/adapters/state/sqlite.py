"""The stat cache in a small SQLite file beside the store (stdlib sqlite3: fast to open).

Rows keep a file's digest as bare hex and a folder's manifest digest as ``sha256:<hex>`` (the
formats of earlier versions); they become ``Digest`` here. A file's digest was a checked
``Digest`` when it was written, so it is read back with ``Digest.trusted`` (checking each of
20,000 rows again would cost more than the rest of ``data status``); a row of the wrong length
is ignored (the file is hashed again). Checking every digit in SQL (GLOB) costs 3x the query.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from shipyard.core.artifacts.digest import Digest
from shipyard.errors import BackendUnavailableError, ShipyardError

_CHUNK = 900  # below SQLite's default limit of bound variables
_VALID = "length(digest) = 64"


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
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tree_parts (path TEXT PRIMARY KEY, digest TEXT, parts TEXT) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(f"cannot open the stat cache {path}: {exc}") from exc

    def lookup(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, Digest]]:
        wanted = list(paths)
        out: dict[str, tuple[int, int, int, Digest]] = {}
        trusted = Digest.trusted
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for path, inode, size, mtime, digest in self._db.execute(
                f"SELECT path, inode, size, mtime_ns, digest FROM state WHERE path IN ({marks}) AND {_VALID}", chunk
            ):
                out[path] = (inode, size, mtime, trusted(digest))
        return out

    def under(self, folder: str) -> dict[str, tuple[int, int, int, Digest]]:
        low, high = folder.rstrip("/") + "/", folder.rstrip("/") + "0"  # '0' sorts right after '/'
        rows = self._db.execute(
            f"SELECT path, inode, size, mtime_ns, digest FROM state WHERE path >= ? AND path < ? AND {_VALID}",
            (low, high)).fetchall()
        digests = Digest.trusted_many([row[4] for row in rows])
        return {path: (inode, size, mtime, d) for (path, inode, size, mtime, _), d in zip(rows, digests, strict=True)}

    def remember(self, entries: Iterable[tuple[str, int, int, int, Digest]]) -> None:
        rows = [(path, inode, size, mtime, digest.hex) for path, inode, size, mtime, digest in entries]
        if not rows:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.OperationalError:  # a busy cache is skipped, never fatal: it only saves re-hashing
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def tree(self, folder: str) -> tuple[str, Digest] | None:
        row = self._db.execute("SELECT signature, digest FROM trees WHERE path = ?", (folder,)).fetchone()
        if row is None:
            return None
        try:
            return row[0], Digest.parse(row[1])
        except (ShipyardError, AttributeError):  # a damaged row: as if unknown, the folder is scanned again
            return None

    def remember_tree(self, folder: str, signature: str, digest: Digest) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?)", (folder, signature, str(digest)))

    def parts(self, folder: str) -> tuple[Digest, dict[str, str]] | None:
        row = self._db.execute("SELECT digest, parts FROM tree_parts WHERE path = ?", (folder,)).fetchone()
        if row is None:
            return None
        try:  # a damaged row reads as unknown: the whole folder is compared again
            parts = json.loads(row[1])
            if not isinstance(parts, dict) or not all(type(v) is str for v in parts.values()):
                return None
            return Digest.parse(row[0]), parts
        except (ShipyardError, AttributeError, TypeError, ValueError, RecursionError):
            return None

    def remember_parts(self, folder: str, digest: Digest, parts: dict[str, str]) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("INSERT OR REPLACE INTO tree_parts VALUES (?, ?, ?)",
                             (folder, str(digest), json.dumps(parts, separators=(",", ":"))))

    def close(self) -> None:
        self._db.close()
