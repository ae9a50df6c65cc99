"""An object store that reads through a local cache: objects in S3 or a shared folder, a team's one store.

Two shapes, one class:

- **Primary upstream** (``store: s3://bucket/prefix``): the objects live upstream, in the same layout as
  a remote (``sha256/ab/cdef...``, ``refs/``), and every machine reads and writes there. A write is
  hashed into the local cache first, then uploaded (re-hashed as it streams; an S3 put is atomic, a
  folder's is a temp file renamed into place), so another machine never sees half an object. A read
  is served from the cache; a miss is downloaded and re-hashed as it enters the cache. The cache is
  bounded (least recently used objects go first); listing, deleting and refs are upstream's.
- **Fallback upstream** (a local store with a default remote): the local store stays the store; an
  object it lacks when a version is loaded, served or reproduced is downloaded from the remote.

A cached copy that fails verification on read is dropped and downloaded again (``refetch``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.ports import Progress, Remote, no_progress

DEFAULT_CACHE_BYTES = 20 * 1024**3
LIMITS_FILE = "cache.json"  # {"max_bytes": N} beside the cached objects, set by `shipyard store cache --max`
REFRESH_AFTER = 12 * 3600.0  # an upstream object re-used by a write is uploaded again once older than this:
# gc removes unreferenced objects older than its grace period (24 h by default), so a writer about to
# reference an old object makes it young again, as the local store does with utime


def cache_limit(cache_root: Path) -> int:
    """The cache's bound in bytes: ``cache.json`` in the cache folder, else ``DEFAULT_CACHE_BYTES``."""
    try:
        with open(cache_root / LIMITS_FILE, "rb") as f:
            value = json.loads(f.read(4096)).get("max_bytes")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_CACHE_BYTES
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else DEFAULT_CACHE_BYTES


class ReadThroughStore:
    """``cache`` in front of ``upstream`` (opened on first use). ``primary``: upstream is the store (writes go
    there, ``max_bytes`` bounds the cache); otherwise the local store is, and upstream only fills its gaps."""

    def __init__(self, cache: LocalObjectStore, upstream: Callable[[], Remote | None], *, primary: bool,
                 max_bytes: int | None = None) -> None:
        self.cache = cache
        self.primary = primary
        self.max_bytes = max_bytes if primary else None
        self._open_upstream = upstream
        self._upstream: Remote | None = None
        self._opened = False
        self._guard = threading.Lock()
        self._used: int | None = None  # bytes in the cache, counted once per process, then kept up to date
        self._known: set[Digest] = set()  # upstream was seen holding these (young enough) in this process

    @property
    def upstream(self) -> Remote:
        found = self._fallback()
        if found is None:
            raise NotFoundError("no remote to fetch objects from: declare one under `remotes:` in shipyard.yaml")
        return found

    def _fallback(self) -> Remote | None:
        """Upstream, opened once; a fallback's unusable configuration counts as none (reads stay local)."""
        with self._guard:
            if not self._opened:
                try:
                    self._upstream = self._open_upstream()
                except ShipyardError:
                    if self.primary:
                        raise
                    self._upstream = None
                self._opened = True
            return self._upstream

    @property
    def url(self) -> str:
        return self.upstream.url if self.primary else str(self.cache.root)

    # -- writing ---------------------------------------------------------------------------------------
    def put_file(self, path: Path, progress: Progress = no_progress, expect: Digest | None = None) -> Digest:
        return self.put_many([str(path)], progress=progress, expect=[expect])[0]

    def put_many(self, paths: Sequence[str], known: Sequence[Digest | None] | None = None, hardlink: bool = False,
                 progress: Progress = no_progress, expect: Sequence[Digest | None] | None = None) -> list[Digest]:
        digests = self.cache.put_many(paths, known, hardlink, progress, expect)
        self._publish(digests)
        return digests

    def put_bytes(self, data: bytes) -> Digest:
        digest = self.cache.put_bytes(data)
        self._publish([digest])
        return digest

    def _publish(self, digests: Sequence[Digest]) -> None:
        """Upload what upstream lacks, or holds but old enough for gc to take (see REFRESH_AFTER)."""
        if not self.primary:
            return
        wanted = list(dict.fromkeys(d for d in digests if d not in self._known))
        if wanted:
            present = self.upstream.stats(wanted)
            cutoff = time.time() - REFRESH_AFTER
            send = [d for d in wanted if d not in present or present[d][1] < cutoff]
            if send:
                self.upstream.upload(self.cache, send)
            self._known.update(wanted)
        self._evict(keep=set(digests))

    # -- reading -----------------------------------------------------------------------------------------
    def has(self, digest: Digest) -> bool:
        if self.cache.has(digest):
            return True
        if not self.primary:
            return False
        return digest in self._known or bool(self.upstream.stats([digest]))

    def fetch(self, digests: Sequence[Digest], progress: Progress = no_progress) -> None:
        """Download the ones the cache lacks (re-hashed as they enter it); the others count as just used."""
        need = []
        for d in dict.fromkeys(digests):
            if not (self._touch(d) if self.primary else self.cache.has(d)):  # a store's own mtimes are gc's
                need.append(d)
        if not need or (not self.primary and self._fallback() is None):
            return
        try:
            self._download(need, progress)
        except NotFoundError:  # one of them is absent upstream: take the others, leave it to ``open`` to report
            for d in need:
                with contextlib.suppress(NotFoundError):
                    self._download([d], progress)
        self._evict(keep=set(digests))

    def _download(self, digests: Sequence[Digest], progress: Progress) -> None:
        self.upstream.download(digests, self.cache, progress)
        if self._used is not None:
            self._used += sum(size for size, _ in self._cached_stats(digests))

    def _cached_stats(self, digests: Sequence[Digest]) -> Iterator[tuple[int, float]]:
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(self.cache.local_path(d))
                yield st.st_size, st.st_mtime

    def open(self, digest: Digest) -> BinaryIO:
        if not self.primary:
            with contextlib.suppress(NotFoundError):
                return self.cache.open(digest)  # the common case: no remote is opened
        for _ in range(3):  # another process may evict it between our download and our open
            self.fetch([digest])
            with contextlib.suppress(NotFoundError):
                return self.cache.open(digest)
            if not self.primary:
                break
        if not self.primary:
            remote = self._fallback()
            if remote is None:
                return self.cache.open(digest)  # its own message
            raise NotFoundError(f"object {digest} is in neither the local store nor remote {remote.url}: push it "
                                "from the machine that wrote it (`shipyard models push NAME@V`, `shipyard data push`)")
        raise NotFoundError(f"object {digest} is missing from the store {self.url}: run `shipyard store verify`")

    def refetch(self, digest: Digest) -> bool:
        """Drop the cached copy that failed verification and download it again."""
        if (not self.primary and self._fallback() is None) or not self.upstream.stats([digest]):
            return False
        self.cache.delete(digest)
        self.fetch([digest])
        return True

    def local_path(self, digest: Digest) -> Path:
        """Where the local copy is (or would be)."""
        return self.cache.local_path(digest)

    def _touch(self, digest: Digest) -> bool:
        """Mark a cached object as just used (least recently used ones are evicted first); False if absent."""
        try:
            os.utime(self.cache.local_path(digest))
        except FileNotFoundError:
            return False
        return True

    def _evict(self, keep: set[Digest]) -> None:
        """Remove least recently used cached objects until the cache fits ``max_bytes``; never one of ``keep``."""
        if self.max_bytes is None:
            return
        if self._used is None or self._used > self.max_bytes:
            entries = sorted(self.cache.iter_objects(), key=lambda e: e[2])
            self._used = sum(size for _, size, _ in entries)
            for digest, size, _ in entries:
                if self._used <= self.max_bytes:
                    break
                if digest not in keep:
                    self.cache.delete(digest)
                    self._used -= size

    # -- the store as a whole: upstream's when it is the primary -----------------------------------------
    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        return self.upstream.iter_objects() if self.primary else self.cache.iter_objects()

    def delete(self, digest: Digest) -> None:
        if self.primary:
            self.upstream.delete(digest)
            self._known.discard(digest)
        self.cache.delete(digest)

    def clean_temp(self, older_than: float) -> int:
        removed = self.cache.clean_temp(older_than)
        return removed + self.upstream.clean_temp(older_than) if self.primary else removed

    def get_ref(self, name: str) -> bytes | None:
        return self.upstream.get_ref(name) if self.primary else self.cache.get_ref(name)

    def put_ref(self, name: str, data: bytes) -> None:
        if self.primary:
            self.upstream.put_ref(name, data)
        else:
            self.cache.put_ref(name, data)
