"""The local object store: ``objects/sha256/ab/cdef...`` with two-character fan-out."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from shipyard.adapters.stores.atomic import publish, temp_file
from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest
from shipyard.errors import BackendUnavailableError, NotFoundError
from shipyard.ports import Progress, no_progress


class LocalObjectStore:
    """Objects are written to ``tmp/``, fsync'd, then linked into place read-only."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "sha256"
        self.tmp = self.root / "tmp"
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
            if not os.access(self.tmp, os.W_OK):
                raise PermissionError(errno.EACCES, "permission denied", str(self.tmp))
        except OSError as exc:
            raise BackendUnavailableError(
                f"object store {self.root} is not writable ({exc.strerror or exc}); "
                "set SHIPYARD_STORE to a writable folder"
            ) from exc

    def _path(self, digest: Digest) -> Path:
        return self.objects / digest.hex[:2] / digest.hex[2:]

    def put_file(self, path: Path, progress: Progress = no_progress) -> Digest:
        with open(path, "rb") as src, temp_file(self.tmp) as (tmp, fd):
            h = hashlib.sha256()
            buf = bytearray(CHUNK_SIZE)
            view = memoryview(buf)
            while n := src.readinto(buf):
                h.update(view[:n])
                _write_all(fd, view[:n])
                progress(n)
            digest = Digest(h.hexdigest())
            self._publish(tmp, fd, digest)
        return digest

    def put_bytes(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        if self.has(digest):
            self._touch(digest)
            return digest
        with temp_file(self.tmp) as (tmp, fd):
            _write_all(fd, memoryview(data))
            self._publish(tmp, fd, digest)
        return digest

    def _publish(self, tmp: Path, fd: int, digest: Digest) -> None:
        target = self._path(digest)
        if publish(tmp, fd, target):
            os.chmod(target, 0o444)
        else:
            self._touch(digest)

    def _touch(self, digest: Digest) -> None:
        # a re-used object is "new" again, so gc's grace period covers the writer about to reference it
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._path(digest))

    def has(self, digest: Digest) -> bool:
        return self._path(digest).is_file()

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self._path(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest} is missing from the store; run `shipyard store verify`") from exc

    def local_path(self, digest: Digest) -> Path:
        return self._path(digest)

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

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files left by killed writers, older than ``older_than`` seconds."""
        removed, cutoff = 0, time.time() - older_than
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]
