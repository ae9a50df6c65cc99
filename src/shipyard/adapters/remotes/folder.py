"""A remote that is a folder (a mounted share, another disk): the same object database as the local store.

It is a ``LocalObjectStore`` at another root (one layout, one temp-file scheme, one publish path);
this class only adds the remote's verbs: which objects are there, upload, download, clean-up.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.stores.shared import ReadThroughStore
from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest
from shipyard.errors import BackendUnavailableError, ConfigError, IntegrityError, NotFoundError
from shipyard.ports import ObjectStore, Progress, no_progress

BATCH = 256  # objects open at once during a download (each holds a file descriptor)


class FolderRemote:
    def __init__(self, root: Path, name: str | None = None) -> None:
        """The remote at the folder ``root``, which must exist: a mistyped path in shipyard.yaml is an error,
        never a new folder (``mkdir`` it once to start an empty remote)."""
        self.root = root
        self.url = str(root)
        if not root.is_dir():
            what = f"remote {name!r}" if name else "remote"
            fix = f"remotes.{name}.url" if name else "the remote's url"
            state = "is not a folder" if os.path.lexists(root) else "does not exist"
            raise ConfigError(f"{what}: folder {root} {state}; create it (mkdir -p {root}) or fix {fix} in "
                              "shipyard.yaml")
        try:
            self.db = LocalObjectStore(root, must_write=False)
        except BackendUnavailableError as exc:
            cause = exc.__cause__
            why = (cause.strerror if isinstance(cause, OSError) else None) or cause or exc
            raise BackendUnavailableError(f"remote folder {root} is not usable: {why}") from exc

    def missing(self, digests: Sequence[Digest]) -> list[Digest]:
        return [d for d in digests if not self.db.has(d)]

    def sizes(self, digests: Sequence[Digest]) -> dict[Digest, int]:
        out = {}
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(self.db.object_path(d))  # a link is never an object: its size is wrong, so it is replaced
                out[d] = st.st_size if stat.S_ISREG(st.st_mode) else -1
        return out

    def stats(self, digests: Sequence[Digest]) -> dict[Digest, tuple[int, float]]:
        out = {}
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(self.db.object_path(d))
                if stat.S_ISREG(st.st_mode):  # a link or a FIFO is not an object: absent, so it is replaced
                    out[d] = (st.st_size, st.st_mtime)
        return out

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        return self.db.iter_objects()

    def delete(self, digest: Digest) -> None:
        self.db.delete(digest)

    def read(self, digest: Digest) -> Iterator[bytes]:
        with os.fdopen(self._open_object(digest, None), "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                yield chunk

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress,
               replace: bool = True) -> None:
        """Stream each object into the remote's database, re-hashed as it goes; one sync for the batch.

        Each is written to a temp file in the remote's ``tmp/`` and renamed into place, so a reader never
        sees half an object (a writer killed midway leaves only a temp file, which ``clean_temp`` removes).
        A corrupt local object stops the batch: nothing of it is published, its temp files are removed.
        An object already there is replaced (``replace`` or not): mended if damaged, and young again.
        """
        self.db.put_streams(((d, _chunks(store, d)) for d in digests), progress, source="local")

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress,
                 sizes: Mapping[Digest, int] | None = None) -> None:
        """Copy objects into ``store`` (re-hashed there), a batch at a time.

        Each object is opened without following a link and must be a regular file no larger than
        ``sizes`` says: a link (say to ``/dev/zero``), a FIFO, a device or an oversized file is refused
        before a byte is copied. The store then reads the very file that was checked (``/dev/fd/N``).
        """
        for start in range(0, len(digests), BATCH):
            batch = digests[start:start + BATCH]
            fds: list[int] = []
            names: dict[str, str] = {}
            try:
                for d in batch:
                    fds.append(self._open_object(d, None if sizes is None else sizes.get(d)))
                    names[f"/dev/fd/{fds[-1]}"] = self.db.object_path(d)
                try:
                    store.put_many(list(names), progress=progress, expect=list(batch))
                except IntegrityError as exc:
                    message = str(exc)
                    for fd_path, real in names.items():
                        message = message.replace(fd_path + " ", real + " ")
                    raise IntegrityError(f"remote {self.url}: {message}") from exc
            finally:
                for fd in fds:
                    os.close(fd)

    def _open_object(self, digest: Digest, most: int | None) -> int:
        path = self.db.object_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest} is not on remote {self.url}") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IntegrityError(f"object {digest} on remote {self.url} is a symbolic link; Shipyard never "
                                     f"follows one out of a remote: remove {path} and push it again") from exc
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IntegrityError(f"object {digest} on remote {self.url} is not a regular file; remove {path} "
                                     "and push it again")
            if most is not None and st.st_size > most:
                raise IntegrityError(f"object {digest} on remote {self.url} is {st.st_size} bytes where at most "
                                     f"{most} are expected: it is damaged or hostile, nothing was copied; remove "
                                     f"{path} and push it again")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files of interrupted uploads older than ``older_than`` seconds."""
        return self.db.clean_temp(older_than)

    def get_ref(self, name: str) -> bytes | None:
        return self.db.get_ref(name)

    def put_ref(self, name: str, data: bytes) -> None:
        self.db.put_ref(name, data)


def _chunks(store: ObjectStore, digest: Digest) -> Iterator[bytes]:
    fd = store.open_fd(digest) if isinstance(store, LocalObjectStore | ReadThroughStore) else None
    if fd is not None:  # a regular file (checked): a short read is its end
        try:
            while True:
                chunk = os.read(fd, CHUNK_SIZE)
                if chunk:
                    yield chunk
                if len(chunk) < CHUNK_SIZE:
                    return
        finally:
            os.close(fd)
    with store.open(digest) as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk
