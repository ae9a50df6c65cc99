"""An object store that reads through a local cache: objects in S3 or a shared folder, a team's one store.

Two shapes, one class:

- **Primary upstream** (``store: s3://bucket/prefix``): the objects live upstream, in the same layout as
  a remote (``sha256/ab/cdef...``, ``refs/``), and every machine reads and writes there. A write is
  hashed into the local cache first, then uploaded (re-hashed as it streams: a conditional PUT, or a
  multipart upload S3 publishes only once complete; a folder's is a temp file renamed into place), so
  another machine never sees half an object. A read is served from the cache; a miss is streamed
  straight into it and hashed as it is written (one pass; a GET, no HEAD first). The cache is bounded
  (``cache.py``: least recently used objects go first); listing, deleting and refs are upstream's, and
  ``verifying()`` reads upstream's bytes for ``store verify``. An unreachable store is one line.
- **Fallback upstream** (a local store with a default remote): the local store stays the store; an
  object it lacks when a version is loaded, served or reproduced is downloaded from the remote.

A cached copy that fails verification on read is dropped and downloaded again (``refetch``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from shipyard.adapters.stores.cache import DEFAULT_CACHE_BYTES, LIMITS_FILE, cache_limit, claim_cache, evict
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.stores.streams import prefetched, upstream_reader
from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.atomic import temp_name
from shipyard.errors import BackendUnavailableError, IntegrityError, NotFoundError, ShipyardError
from shipyard.ports import Progress, Remote, no_progress

__all__ = ["DEFAULT_CACHE_BYTES", "LIMITS_FILE", "ReadThroughStore", "cache_limit"]

REFRESH_AFTER = 12 * 3600.0  # an upstream object re-used by a write is uploaded again once older than this:
# gc removes unreferenced objects older than its grace period (24 h by default), so a writer about to
# reference an old object makes it young again, as the local store does with utime
DOWNLOADS = 8  # objects downloaded at once
STAGE_CHUNK = 4 * 1024 * 1024


def _write_all(out: BinaryIO, view: memoryview) -> None:
    while view:
        view = view[out.write(view) or 0:]


class ReadThroughStore:
    """``cache`` in front of ``upstream`` (opened on first use). ``primary``: upstream is the store (writes go
    there, ``max_bytes`` bounds the cache); otherwise the local store is, and upstream only fills its gaps."""

    def __init__(self, cache: LocalObjectStore, upstream: Callable[[], Remote | None], *, primary: bool,
                 max_bytes: int | None = None) -> None:
        self.cache = cache
        self.primary = primary
        if primary:  # its objects are only copies: evicted, cleared (a folder of objects not marked so is refused)
            claim_cache(cache.root)
        self.max_bytes = max_bytes if primary else None
        self._open_upstream = upstream
        self._upstream: Remote | None = None
        self._opened = False
        self._guard = threading.Lock()
        self._used: int | None = None  # bytes in the cache: counted when it may be over, else added to (an upper bound)
        # upstream was seen holding these, young enough, in this process: digest -> when (time.time()) it was
        # seen or sent; a long-lived process (a notebook, a server) looks again once that is REFRESH_AFTER old
        self._known: dict[Digest, float] = {}
        self._reading: frozenset[Digest] = frozenset()  # the objects of the read in progress: never evicted
        self._absent: set[Digest] = set()  # what the last download found missing upstream
        self._bounds: dict[Digest, int] = {}  # the most bytes an object may have, as the readers said (``sizes``)
        self._refused: set[Digest] = set()  # downloaded damaged (too long, or wrong bytes): ``refetch`` won't retry
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
        if not self.primary or hardlink:
            digests = self.cache.put_many(paths, known, hardlink, progress, expect)
        else:
            digests = [self._stage(path, known[i] if known else None, expect[i] if expect else None, progress)
                       for i, path in enumerate(paths)]
        self._publish(digests)
        return digests

    def _stage(self, path: str, hint: Digest | None, want: Digest | None, progress: Progress) -> Digest:
        """Copy one file into the cache in one pass, hashing the very bytes written (so the copy matches its
        name even if the source changes meanwhile), renamed in read-only. Not fsync'd: the upload that
        follows re-hashes it, and a cached copy is only a copy (every read re-hashes what it reads)."""
        if hint is not None and self._touch(hint):
            progress(0)
            return hint
        tmp = temp_name(self.cache.tmp)
        try:
            h, buffer = hashlib.sha256(), bytearray(STAGE_CHUNK)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as src, open(tmp, "xb", buffering=0) as out:
                while n := src.readinto(buffer):
                    h.update(view[:n])
                    _write_all(out, view[:n])
                size = out.tell()
            digest = Digest.trusted(h.hexdigest())
            if want is not None and digest != want:
                raise IntegrityError(f"{path} has digest {digest}, expected {want}; nothing was stored")
            if not self._touch(digest):
                self._place(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        progress(size)
        return digest

    def _place(self, tmp: str, digest: Digest) -> None:
        """A finished temp file of the cache under its name, read-only (a rename: readers see all or nothing)."""
        os.chmod(tmp, 0o444)
        target = self.cache.local_path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)

    def put_bytes(self, data: bytes) -> Digest:
        if not self.primary:
            return self.cache.put_bytes(data)
        digest = Digest.of_bytes(data)
        if not self._touch(digest):  # into the cache as ``_stage`` does: a temp file renamed, no sync
            tmp = temp_name(self.cache.tmp)
            try:
                with open(tmp, "xb") as out:
                    out.write(data)
                self._place(tmp, digest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self._publish([digest])
        return digest

    def _publish(self, digests: Sequence[Digest]) -> None:
        """Upload what upstream lacks, and again what it holds but old enough for gc to take (see
        REFRESH_AFTER), with one look at upstream (``stats``) for the batch."""
        if not self.primary:
            return
        now = time.time()
        wanted = list(dict.fromkeys(d for d in digests if now - self._known.get(d, -REFRESH_AFTER) >= REFRESH_AFTER))
        if wanted:
            with self._reaching():
                present = self.upstream.stats(wanted)
                cutoff = time.time() - REFRESH_AFTER
                absent = [d for d in wanted if d not in present]
                old = [d for d in wanted if d in present and present[d][1] < cutoff]
                if absent:
                    self.upstream.upload(self.cache, absent, replace=False)
                if old:
                    self.upstream.upload(self.cache, old)
            # a young copy upstream is trusted until it is REFRESH_AFTER old; one just sent, from now
            self._known.update((d, present[d][1] if d in present and d not in old else now) for d in wanted)
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
        if time.time() - self._known.get(digest, -REFRESH_AFTER) < REFRESH_AFTER:
            return True
        with self._reaching():
            return bool(self.upstream.stats([digest]))

    def fetch(self, digests: Sequence[Digest], progress: Progress = no_progress,
              sizes: Mapping[Digest, int] | None = None) -> None:
        """Download the ones the cache lacks, straight from upstream into the cache, each re-hashed as it is
        written: one that does not hash to its name never enters the cache (IntegrityError naming it). The
        others count as just used. An object absent upstream is left for ``open`` to report. A batch is one
        read: none of its objects is evicted until the next fetch downloads (so a batch larger than the
        bound is still read whole; the cache shrinks back to its bound on the next download)."""
        wanted = list(dict.fromkeys(digests))
        if sizes:
            with self._guard:
                self._bounds.update((d, sizes[d]) for d in wanted if d in sizes)
        need = [d for d in wanted if not (self._touch(d) if self.primary else self.cache.has(d))]
        self._reading = frozenset(wanted)
        if not need or (not self.primary and self._fallback() is None):
            return
        with self._reaching():
            remote = self.upstream
            def one(d: Digest) -> bool:
                return self._download(remote, d, progress, self._bounds.get(d))

            if len(need) == 1:
                got = [one(need[0])]
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=min(DOWNLOADS, len(need))) as pool:
                    got = list(pool.map(one, need))
        self._count([d for d, ok in zip(need, got, strict=True) if ok])
        self._absent = {d for d, ok in zip(need, got, strict=True) if not ok}
        self._evict(keep=set(wanted))

    def _download(self, remote: Remote, digest: Digest, progress: Progress, most: int | None = None) -> bool:
        """One object into the cache (False if upstream lacks it): streamed into a temp file of the cache,
        hashed as it is written, renamed into place read-only only if it hashes to its name.

        Not fsync'd: the cache is a copy, and every read re-hashes what it reads, so an object torn by a
        crash is found and fetched again (``refetch``), as a corrupt one is."""
        tmp = temp_name(self.cache.tmp)
        try:
            with open(tmp, "xb") as out:
                h = hashlib.sha256()
                size = 0
                for chunk in prefetched(remote.read(digest)):
                    size += len(chunk)
                    if most is not None and size > most:
                        raise IntegrityError(f"object {digest} in {self._where(remote)} has more than the {most} "
                                             "bytes it may have: it is damaged or hostile; nothing entered the "
                                             f"cache; {self._fix()}")
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != digest.hex:
                raise IntegrityError(f"object {digest} in {self._where(remote)} is corrupt (its bytes do not hash "
                                     "to its name): it was not loaded and nothing entered the cache; "
                                     f"{self._fix()}")
            self._place(tmp, digest)
        except NotFoundError:
            return False
        except IntegrityError:
            self._refused.add(digest)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        progress(size)
        return True

    def _fix(self) -> str:
        if self.primary:
            return "replace it from a good copy (`shipyard store verify` names every corrupt object)"
        return ("push it again from a machine with a good copy (`shipyard models push NAME@V`, "
                "`shipyard data push`)")

    def _where(self, remote: Remote) -> str:
        return f"the store {remote.url}" if self.primary else f"remote {remote.url}"

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
                return upstream_reader(self.upstream, digest)
        if not self.primary:
            with contextlib.suppress(NotFoundError):
                return self.cache.open(digest)  # the common case: no remote is opened
        for _ in range(3):  # another process may evict it between our download and our open
            self._absent = set()
            self.fetch([digest])
            with contextlib.suppress(NotFoundError):
                return self.cache.open(digest)
            if not self.primary or digest in self._absent:
                break
        if not self.primary:
            remote = self._fallback()
            if remote is None:
                return self.cache.open(digest)  # its own message
            raise NotFoundError(f"object {digest} is in neither the local store nor remote {remote.url}: push it "
                                "from the machine that wrote it (`shipyard models push NAME@V`, `shipyard data push`)")
        raise NotFoundError(f"object {digest} is missing from the store {self.url}: run `shipyard store verify`")

    def open_fd(self, digest: Digest) -> int | None:
        """The local store's checked descriptor of the object (``LocalObjectStore.open_fd``) when this store
        is the local one and holds it; None: read it with ``open``."""
        if self.primary or self._direct:
            return None
        try:
            return self.cache.open_fd(digest)
        except NotFoundError:
            return None

    def refetch(self, digest: Digest) -> bool:
        """Drop the cached copy that failed verification and download it again (a primary store's cache is
        only a copy; a local store's object is dropped only once the remote is known to hold it). Not one whose
        download this process found damaged: it would only be downloaded again (bounded as before)."""
        if digest in self._refused:
            return False
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
            self._known.pop(digest, None)
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

