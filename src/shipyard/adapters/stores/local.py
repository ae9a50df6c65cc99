"""The local object store: ``objects/sha256/ab/cdef...`` with two-character fan-out.

A write goes to ``tmp/`` first, is copied with the fastest call the filesystem offers
(``copy_file_range``, which reflinks where the filesystem can, or a hard link when asked),
hashed from the copy (so an object always matches its name, even if the source changes
meanwhile), made durable, and only then linked into place read-only. Many objects written
together share one ``syncfs`` instead of an ``fsync`` each, before their renames, and one more after
them instead of an ``fsync`` of each of up to 256 fan-out folders (each of which flushed the disk's cache).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from shipyard.core.artifacts.digest import CHUNK_SIZE, OBJECTS, Digest, hash_stream, object_key, verified
from shipyard.core.workspace.atomic import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    as_atomic,
    fsync_dir,
    fsync_path,
    read_ref,
    temp_name,
    write_atomic,
)
from shipyard.core.workspace.paths import Confined, safe_relpath
from shipyard.errors import BackendUnavailableError, IntegrityError, InvalidInputError, NotFoundError
from shipyard.ports import Progress, no_progress

SMALL = 1024 * 1024  # read whole, hash in memory
FSYNC_FOLDERS_MOST = 8  # renames into more fan-out folders than this are made durable by one syncfs
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
CAP_DAC_OVERRIDE = 1  # linux/capability.h


@functools.cache
def _libc() -> object:
    import ctypes  # loaded when an object is first made durable, not by every command that opens the store

    return ctypes.CDLL(None, use_errno=True)


def syncfs(folder: Path) -> None:
    """Flush every dirty page of the filesystem holding ``folder`` (one call for many files)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        call = getattr(_libc(), "syncfs", None)
        if call is None or call(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class LocalObjectStore:
    def __init__(self, root: Path, must_write: bool = True) -> None:
        self.root = Path(root)
        self.objects = self.root / OBJECTS
        self.tmp = self.root / "tmp"
        self._made: set[str] = set()
        self._objects = str(self.objects)
        self._root = str(self.root)
        if self.tmp.is_symlink():  # temp files would be written (and cleaned) wherever it points
            raise linked_tmp(self.tmp)
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
            if must_write and not os.access(self.tmp, os.W_OK):
                raise PermissionError(errno.EACCES, "permission denied", str(self.tmp))
        except OSError as exc:
            raise BackendUnavailableError(
                f"object store {self.root} is not writable ({exc.strerror or exc}); "
                "set SHIPYARD_STORE to a writable folder"
            ) from exc

    def _path(self, digest: Digest) -> Path:
        return Path(self._name(digest))

    def _name(self, digest: Digest) -> str:
        # plain strings on the per-object paths: pathlib costs more than the syscalls here
        return f"{self._root}/{object_key(digest)}"

    # -- writing -------------------------------------------------------------------------------
    def put_file(self, path: Path, progress: Progress = no_progress, expect: Digest | None = None) -> Digest:
        return self.put_many([str(path)], progress=progress, expect=[expect])[0]

    def put_many(self, paths: Sequence[str], known: Sequence[Digest | None] | None = None, hardlink: bool = False,
                 progress: Progress = no_progress, expect: Sequence[Digest | None] | None = None) -> list[Digest]:
        """Store many files at once; ``known`` digests that are already stored cost nothing.

        ``expect``: the digest each file must have (downloads); a mismatch stores nothing.
        ``hardlink``: link the files into the store instead of copying (they become read-only). Refused
        when this process can write through a read-only file (root, or CAP_DAC_OVERRIDE): an edit in
        place would then corrupt the only stored copy.
        """
        if hardlink and paths and can_override_modes():
            raise InvalidInputError(
                "--hardlink is refused when running as root (with CAP_DAC_OVERRIDE): an edit of the linked file "
                "would corrupt the stored copy despite its read-only mode; add without --hardlink (copy mode)"
            )
        digests: list[Digest] = []
        staged: list[tuple[str, Digest]] = []
        try:
            for i, path in enumerate(paths):
                hint = known[i] if known else None
                if hint is not None and self._reuse(hint):
                    digests.append(hint)
                    progress(0)
                    continue
                tmp, digest, size = self._stage(path, hardlink)
                want = expect[i] if expect else None
                if want is not None and digest != want:
                    if tmp is not None:
                        staged.append((tmp, digest))
                    raise IntegrityError(f"{path} has digest {digest}, expected {want}; nothing was stored")
                if tmp is not None:
                    staged.append((tmp, digest))
                digests.append(digest)
                progress(size)
            self._commit(staged, one_fsync=not hardlink, chmod=hardlink or not _umask_keeps_read())
        finally:
            for tmp, _ in staged:  # only what was not published
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return digests

    def put_streams(self, items: Iterable[tuple[Digest, Iterable[bytes]]], progress: Progress = no_progress,
                    source: str = "incoming") -> None:
        """Store objects received as streams of bytes under the names given, each re-hashed as it is
        written; one that does not hash to its name stops the batch and nothing of it is stored.
        An object already present is replaced (the caller sends one only when it is absent or damaged)."""
        staged: list[tuple[str, Digest]] = []
        try:
            for digest, chunks in items:
                tmp = temp_name(self.tmp)
                def corrupt(d: Digest = digest) -> IntegrityError:
                    return IntegrityError(f"{source} object {d} is corrupt (its bytes no longer hash to its "
                                          "name); nothing was sent: restore it with `shipyard data pull` or add "
                                          "the data again")

                out = os.open(tmp, _CREATE, 0o444)
                size = 0
                try:
                    staged.append((tmp, digest))
                    for chunk in verified(chunks, digest, corrupt):
                        _write_all(out, memoryview(chunk))
                        size += len(chunk)
                finally:
                    os.close(out)
                progress(size)
            self._commit(staged, one_fsync=True, chmod=not _umask_keeps_read())
        finally:
            for tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _commit(self, staged: list[tuple[str, Digest]], one_fsync: bool, chmod: bool = True) -> None:
        """Publish staged temp files: one durability barrier for the batch, then each rename (popped
        from ``staged`` as it is done, so the caller removes only what was not published).
        ``chmod``: make each read-only first (else each was created read-only)."""
        if not staged:
            return
        if len(staged) == 1 and one_fsync:
            fsync_path(staged[0][0])
        else:
            syncfs(self.tmp)
        parents = {d.hex[:2] for _, d in staged}
        while staged:
            tmp, digest = staged[-1]
            self._publish(tmp, digest, chmod)
            staged.pop()
        if len(parents) <= FSYNC_FOLDERS_MOST:
            for parent in parents:
                fsync_dir(Path(self._objects, parent))
        else:  # one journal commit and one cache flush, where an fsync per folder flushes the disk's cache each time
            syncfs(self.objects)

    def _stage(self, path: str, hardlink: bool) -> tuple[str | None, Digest, int]:
        """Copy (or link) ``path`` to a temp file and hash the copy; (None, digest) if already stored."""
        tmp = temp_name(self.tmp)
        try:
            if hardlink:
                os.link(path, tmp)
                return tmp, _hash_path(tmp), os.stat(tmp).st_size
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if size <= SMALL:
                    # a short read of a regular file is its end: one read unless it grew since the fstat
                    data = os.read(fd, size + 1)
                    while len(data) > size and (more := os.read(fd, SMALL)):
                        data += more
                        size = len(data)
                    digest = Digest.of_bytes(data)
                    if self._reuse(digest):
                        return None, digest, len(data)
                    out = os.open(tmp, _CREATE, 0o444)
                    try:
                        _write_all(out, memoryview(data))
                    finally:
                        os.close(out)
                    return tmp, digest, len(data)
                with open(tmp, "xb") as dst, os.fdopen(os.dup(fd), "rb") as src:
                    copy_range(src, dst)
                    os.fchmod(dst.fileno(), 0o444)  # as the small ones are created
            finally:
                os.close(fd)
            return tmp, _hash_path(tmp), size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _parent(self, target: str, digest: Digest) -> None:
        parent = target[: -len(digest.hex) + 1]
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)

    def _publish(self, tmp: str, digest: Digest, chmod: bool = True) -> None:
        """Rename a staged temp file into place: the batch half of ``as_atomic``, whose target is only
        known once the bytes are hashed (``put_many`` syncs the whole batch once, before the renames)."""
        target = self._name(digest)
        self._parent(target, digest)
        if chmod:
            os.chmod(tmp, 0o444)
        # Same bytes under the same name: replacing an existing copy is harmless, and rename is atomic.
        os.replace(tmp, target)

    def _reuse(self, digest: Digest) -> bool:
        # a re-used object is "new" again, so gc's grace period covers the writer about to reference it
        try:
            os.utime(self._name(digest))
        except FileNotFoundError:
            return False
        return True

    def put_bytes(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        if self._reuse(digest):
            return digest
        target = self._name(digest)
        self._parent(target, digest)
        with as_atomic(target, temp_dir=self.tmp, mode=0o444) as tmp, open(tmp, "xb") as out:
            out.write(data)
        return digest

    # -- reading and maintenance -----------------------------------------------------------------
    def has(self, digest: Digest) -> bool:
        try:  # a str path: a Path per object costs more than the stat, for 20,000 objects
            return stat.S_ISREG(os.stat(self._name(digest)).st_mode)
        except OSError as exc:  # what Path.is_file reads as "no"
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
                return False
            raise

    def object_path(self, digest: Digest) -> str:
        """``local_path`` as a str (no Path built: for loops over many objects)."""
        return self._name(digest)

    def open(self, digest: Digest) -> BinaryIO:
        """The stored object, opened without following a link and without blocking (a FIFO or a device put
        in its place is refused, never read: it could hang the reader or stream without end)."""
        return os.fdopen(self.open_fd(digest), "rb")

    def open_fd(self, digest: Digest) -> int:
        """``open``'s checked descriptor of a regular file, unwrapped (no buffer: reading a small object
        whole then takes one system call; the caller closes it)."""
        path = self._name(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest} is missing from the store; run `shipyard store verify`") from exc
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise not_a_file(digest, path) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise not_a_file(digest, path)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def local_path(self, digest: Digest) -> Path:
        return self._path(digest)

    def fetch(self, digests: Sequence[Digest], progress: Progress = no_progress,
              sizes: Mapping[Digest, int] | None = None) -> None:
        """Nothing to fetch: every object this store has is here."""

    def refetch(self, digest: Digest) -> bool:
        """No other copy to take: a corrupt object is the reader's error (restore it from a remote)."""
        return False

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        for fan in sorted(os.scandir(self.objects), key=lambda e: e.name):
            if not fan.is_dir():
                continue
            for entry in os.scandir(fan.path):
                name = fan.name + entry.name
                with contextlib.suppress(ValueError, FileNotFoundError):
                    st = entry.stat()
                    yield Digest(name), st.st_size, st.st_mtime

    def delete(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()

    def get_ref(self, name: str) -> bytes | None:
        return read_ref(self.root / "refs", safe_relpath(name, "ref name"))

    def put_ref(self, name: str, data: bytes) -> None:
        (self.root / "refs").mkdir(exist_ok=True)
        write_atomic(Confined(self.root / "refs").target(safe_relpath(name, "ref name")), data)

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files left by killed writers, older than ``older_than`` seconds.

        Only the store's own temp names (``.sy-*.tmp``), only regular files, and never through a link:
        a ``tmp`` that is a symbolic link (a cloned repo, or anyone who can write a shared remote, could
        point it at another folder) stops the clean-up with an error naming it. The folder is opened
        with ``O_NOFOLLOW`` and every entry is removed relative to that descriptor, so swapping ``tmp``
        for a link meanwhile changes nothing.
        """
        removed, cutoff = 0, time.time() - older_than
        try:
            fd = os.open(self.tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise linked_tmp(self.tmp) from exc
            raise
        try:
            for entry in os.scandir(fd):
                name = entry.name
                if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        os.unlink(name, dir_fd=fd)
                        removed += 1
        finally:
            os.close(fd)
        return removed


def not_a_file(digest: Digest, path: str) -> IntegrityError:
    return IntegrityError(f"object {digest} at {path} is not a regular file (a link, a FIFO or a device): Shipyard "
                          f"never reads through it; remove it (`rm {path}`) and run `shipyard store verify`")


def linked_tmp(tmp: Path) -> IntegrityError:
    return IntegrityError(f"{tmp} is a symbolic link or not a folder; Shipyard never writes or deletes through a "
                          "link there: remove it (`rm` the link, then `mkdir` it) and run again")


def can_override_modes() -> bool:
    """Whether this process can write to a file whose mode forbids it: CAP_DAC_OVERRIDE, which root has
    unless it was dropped (``setpriv --bounding-set -dac_override``); root where capabilities can't be read."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << CAP_DAC_OVERRIDE))
    except OSError:
        pass
    return os.geteuid() == 0


@functools.cache
def _umask_keeps_read() -> bool:
    """Whether a file created with mode 0o444 gets that mode (the umask masks no read bit): then no chmod is
    needed before an object is published. Read from /proc (asking ``os.umask`` means setting it)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return not int(line.split()[1], 8) & 0o444
    except (OSError, ValueError, IndexError):
        pass
    return False


def copy_range(src: BinaryIO, out: BinaryIO) -> None:
    """Copy with copy_file_range (in-kernel; a reflink where the filesystem supports it)."""
    fin, fout = src.fileno(), out.fileno()
    try:
        while os.copy_file_range(fin, fout, 1 << 30):
            pass
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        while chunk := src.read(CHUNK_SIZE):
            out.write(chunk)


def _hash_path(path: str | Path) -> Digest:
    with open(path, "rb") as f:
        return hash_stream(f)



def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]
