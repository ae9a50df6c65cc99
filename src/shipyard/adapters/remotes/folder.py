"""A remote that is a folder (a mounted share, another disk): the store's own layout."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from shipyard.adapters.stores.local import syncfs
from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest
from shipyard.core.artifacts.tree import verified_chunks
from shipyard.core.workspace.atomic import as_atomic, read_ref, write_atomic
from shipyard.core.workspace.paths import Confined, safe_relpath
from shipyard.errors import BackendUnavailableError, NotFoundError
from shipyard.ports import ObjectStore, Progress, no_progress


class FolderRemote:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        try:
            (root / "sha256").mkdir(parents=True, exist_ok=True)
            (root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(f"remote folder {root} is not usable: {exc.strerror or exc}") from exc

    def _path(self, d: Digest) -> Path:
        return self.root / "sha256" / d.hex[:2] / d.hex[2:]

    def missing(self, digests: Sequence[Digest]) -> list[Digest]:
        return [d for d in digests if not self._path(d).is_file()]

    def sizes(self, digests: Sequence[Digest]) -> dict[Digest, int]:
        out = {}
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                out[d] = self._path(d).stat().st_size
        return out

    def read(self, digest: Digest) -> Iterator[bytes]:
        try:
            with open(self._path(digest), "rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    yield chunk
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest} is not on remote {self.url}") from exc

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress) -> None:
        """Copy each object to a temp name, re-hashing it as it goes; publish the batch after one sync.

        A corrupt local object stops the batch: nothing of it is published, its temp files are removed.
        """
        with contextlib.ExitStack() as batch:
            for d in digests:
                target = self._path(d)
                target.parent.mkdir(exist_ok=True)
                tmp = batch.enter_context(as_atomic(target, durable=False, temp_dir=self.root / "tmp"))
                with open(tmp, "xb") as out:
                    for chunk in verified_chunks(store, d):
                        out.write(chunk)
                    progress(out.tell())
            if digests:
                syncfs(self.root)  # one durability barrier, then every rename as the batch closes

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files of interrupted uploads older than ``older_than`` seconds."""
        removed, cutoff = 0, time.time() - older_than
        for entry in os.scandir(self.root / "tmp"):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress) -> None:
        if not digests:
            return
        try:
            store.put_many([str(self._path(d)) for d in digests], progress=progress, expect=list(digests))
        except FileNotFoundError as exc:
            raise NotFoundError(f"an object is not on remote {self.url}: {exc.filename}") from exc

    def get_ref(self, name: str) -> bytes | None:
        return read_ref(self.root / "refs", safe_relpath(name, "ref name"))

    def put_ref(self, name: str, data: bytes) -> None:
        (self.root / "refs").mkdir(exist_ok=True)
        write_atomic(Confined(self.root / "refs").target(safe_relpath(name, "ref name")), data)
