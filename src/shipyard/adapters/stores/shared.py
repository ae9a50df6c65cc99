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
import copy
import io
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from shipyard.adapters.stores.cache import DEFAULT_CACHE_BYTES, LIMITS_FILE, cache_limit, evict
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.errors import BackendUnavailableError, IntegrityError, NotFoundError, ShipyardError
from shipyard.ports import Progress, Remote, no_progress

__all__ = ["DEFAULT_CACHE_BYTES", "LIMITS_FILE", "ReadThroughStore", "cache_limit"]

REFRESH_AFTER = 12 * 3600.0  # an upstream object re-used by a write is uploaded again once older than this:
# gc removes unreferenced objects older than its grace period (24 h by default), so a writer about to
# reference an old object makes it young again, as the local store does with utime
DOWNLOADS = 8  # objects downloaded at once
AHEAD = 2  # chunks a download receives ahead of the one being hashed and written


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
        self._used: int | None = None  # bytes in the cache: counted when it may be over, else added to (an upper bound)
        self._known: set[Digest] = set()  # upstream was seen holding these (young enough) in this process
        self._reading: frozenset[Digest] = frozenset()  # the objects of the read in progress: never evicted
        self._direct = False  # ``verifying()``: read upstream's bytes, not the cache's
        self._listed: set[Digest] | None = None  # ... and what its last full listing held

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

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """The primary store could not be reached: one line that says so, what still works and what to check."""
        try:
            yield
        except BackendUnavailableError as exc:
            if not self.primary:
                raise
            why = " ".join(str(exc).split()).rpartition(" - ")[2][-160:]  # obstore's last word: the cause
            raise BackendUnavailableError(
                f"the store {self.url} is unreachable ({why}): objects cached on this machine still load, others "
                "cannot be read or written until it answers; check the network, that the service is up, and the "
                "store's endpoint (AWS_ENDPOINT_URL, or endpoint_url under store: in shipyard.yaml)") from exc

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
        """Upload what upstream lacks, and again what it holds but old enough for gc to take (see
        REFRESH_AFTER), with one look at upstream (``stats``) for the batch."""
        if not self.primary:
            return
        wanted = list(dict.fromkeys(d for d in digests if d not in self._known))
        if wanted:
            with self._reaching():
                present = self.upstream.stats(wanted)
                cutoff = time.time() - REFRESH_AFTER
                absent = [d for d in wanted if d not in present]
                old = [d for d in wanted if d in present and present[d][1] < cutoff]
                if absent:
                    self.upstream.upload(self.cache, absent)
                if old:
                    self.upstream.upload(self.cache, old, replace=True)
            self._known.update(wanted)
        self._count(digests)
        self._evict(keep=set(digests))

    # -- reading -----------------------------------------------------------------------------------------
    def has(self, digest: Digest) -> bool:
        if self._direct and self._listed is not None:
            return digest in self._listed
        if self.cache.has(digest) and not self._direct:
            return True
        if not self.primary:
            return False
        if digest in self._known:
            return True
        with self._reaching():
            return bool(self.upstream.stats([digest]))

    def fetch(self, digests: Sequence[Digest], progress: Progress = no_progress) -> None:
        """Download the ones the cache lacks, straight from upstream into the cache, each re-hashed as it is
        written: one that does not hash to its name never enters the cache (IntegrityError naming it). The
        others count as just used. An object absent upstream is left for ``open`` to report. A batch is one
        read: none of its objects is evicted until the next batch."""
        wanted = list(dict.fromkeys(digests))
        need = [d for d in wanted if not (self._touch(d) if self.primary else self.cache.has(d))]
        if len(wanted) > 1:
            self._reading = frozenset(wanted)
        if not need or (not self.primary and self._fallback() is None):
            return
        with self._reaching():
            remote = self.upstream
            if len(need) == 1:
                got = [self._download(remote, need[0], progress)]
            else:
                with ThreadPoolExecutor(max_workers=min(DOWNLOADS, len(need))) as pool:
                    got = list(pool.map(lambda d: self._download(remote, d, progress), need))
        self._count([d for d, ok in zip(need, got, strict=True) if ok])
        self._evict(keep=set(wanted))

    def _download(self, remote: Remote, digest: Digest, progress: Progress) -> bool:
        """One object into the cache (False if upstream lacks it): streamed into a temp file of the cache,
        hashed as it is written, renamed into place only if it hashes to its name."""
        try:
            self.cache.put_streams([(digest, _prefetched(remote.read(digest)))], progress, source="downloaded")
        except NotFoundError:
            return False
        except IntegrityError as exc:
            where = f"the store {remote.url}" if self.primary else f"remote {remote.url}"
            raise IntegrityError(f"object {digest} in {where} is corrupt (its bytes do not hash to its name): it "
                                 "was not loaded and nothing entered the cache; replace it from a good copy (`shipyard "
                                 "store verify` names every corrupt object)") from exc
        return True

    def _count(self, digests: Sequence[Digest]) -> None:
        """Add what may have entered the cache (objects there already are counted again: an upper bound that
        only makes ``_evict`` count sooner)."""
        if self._used is not None:
            self._used += sum(size for size, _ in self._cached_stats(digests))

    def _cached_stats(self, digests: Sequence[Digest]) -> Iterator[tuple[int, float]]:
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(self.cache.local_path(d))
                yield st.st_size, st.st_mtime

    def open(self, digest: Digest) -> BinaryIO:
        if self._direct:
            with self._reaching():
                return _upstream_reader(self.upstream, digest)
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
            raise NotFoundError(f"object {digest} is missing from the store and not on remote {remote.url}; run "
                                "`shipyard store verify`")
        raise NotFoundError(f"object {digest} is missing from the store {self.url}: run `shipyard store verify`")

    def refetch(self, digest: Digest) -> bool:
        """Drop the cached copy that failed verification and download it again (a primary store's cache is
        only a copy; a local store's object is dropped only once the remote is known to hold it)."""
        if not self.primary and (self._fallback() is None or not self.upstream.stats([digest])):
            return False
        self.cache.delete(digest)
        self.fetch([digest])
        return self.cache.has(digest)

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
        """Remove least recently used cached objects until the cache fits ``max_bytes``; never one of ``keep``
        or of the read in progress."""
        if self.max_bytes is None:
            return
        if self._used is None or self._used > self.max_bytes:
            _, self._used = evict(self.cache, self.max_bytes, keep | self._reading)

    # -- the store as a whole: upstream's when it is the primary -----------------------------------------
    def verifying(self) -> ReadThroughStore:
        """This store as ``store verify`` must read it: a primary store's objects straight from upstream, not
        from the cache (an object altered upstream after it was cached is found), and without filling the
        cache; ``has`` answers from upstream's listing once ``iter_objects`` has run. A store whose objects are
        local is itself."""
        if not self.primary:
            return self
        view = copy.copy(self)
        view._direct, view._listed = True, None
        return view

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        if not self.primary:
            return self.cache.iter_objects()
        return self._upstream_objects()

    def _upstream_objects(self) -> Iterator[tuple[Digest, int, float]]:
        listed: set[Digest] = set()
        with self._reaching():
            for digest, size, mtime in self.upstream.iter_objects():
                listed.add(digest)
                yield digest, size, mtime
        self._listed = listed

    def delete(self, digest: Digest) -> None:
        if self.primary:
            with self._reaching():
                self.upstream.delete(digest)
            self._known.discard(digest)
        self.cache.delete(digest)

    def clean_temp(self, older_than: float) -> int:
        removed = self.cache.clean_temp(older_than)
        return removed + self.upstream.clean_temp(older_than) if self.primary else removed

    def get_ref(self, name: str) -> bytes | None:
        if not self.primary:
            return self.cache.get_ref(name)
        with self._reaching():
            return self.upstream.get_ref(name)

    def put_ref(self, name: str, data: bytes) -> None:
        if not self.primary:
            self.cache.put_ref(name, data)
            return
        with self._reaching():
            self.upstream.put_ref(name, data)


class _Chunks(io.RawIOBase):
    """A read-only file over a stream of chunks (an upstream object read without a local copy)."""

    def __init__(self, chunks: Iterator[bytes], first: bytes) -> None:
        self._chunks = chunks
        self._left = memoryview(first)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def _upstream_reader(remote: Remote, digest: Digest) -> BinaryIO:
    """``digest``'s bytes as upstream holds them (NotFoundError now, before any read, if it is absent)."""
    chunks = iter(remote.read(digest))
    first = next(chunks, b"")
    return io.BufferedReader(_Chunks(chunks, first), buffer_size=1024 * 1024)


def _prefetched(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, received by another thread while this one hashes and writes the previous ones: the network
    and the hashing overlap (each releases the GIL), so a download costs about the slower of the two."""
    ready: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(AHEAD)
    stop = threading.Event()

    def pump() -> None:
        item: tuple[bytes | None, BaseException | None] = (None, None)
        try:
            for chunk in chunks:
                if not _offer(ready, (chunk, None), stop):
                    return
        except BaseException as exc:  # handed to the reader, raised there
            item = (None, exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None and stop.is_set():
                close()
        _offer(ready, item, stop)

    threading.Thread(target=pump, name="shipyard-download", daemon=True).start()
    try:
        while True:
            chunk, error = ready.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()


def _offer(ready: queue.Queue[tuple[bytes | None, BaseException | None]],
           item: tuple[bytes | None, BaseException | None], stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False if the reader stopped meanwhile."""
    while not stop.is_set():
        with contextlib.suppress(queue.Full):
            ready.put(item, timeout=0.1)
            return True
    return False
