"""A remote that is a folder (a mounted share, another disk): the same object database as the local store.

It is a ``LocalObjectStore`` at another root (one layout, one temp-file scheme, one publish path);
this class only adds the remote's verbs: which objects are there, upload, download, clean-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest
from shipyard.errors import BackendUnavailableError, NotFoundError
from shipyard.ports import ObjectStore, Progress, no_progress


class FolderRemote:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
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
                out[d] = os.stat(self.db.local_path(d)).st_size
        return out

    def read(self, digest: Digest) -> Iterator[bytes]:
        try:
            with open(self.db.local_path(digest), "rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    yield chunk
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest} is not on remote {self.url}") from exc

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress) -> None:
        """Stream each object into the remote's database, re-hashed as it goes; one sync for the batch.

        A corrupt local object stops the batch: nothing of it is published, its temp files are removed.
        """
        self.db.put_streams(((d, _chunks(store, d)) for d in digests), progress, source="local")

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress) -> None:
        if not digests:
            return
        try:
            store.put_many([str(self.db.local_path(d)) for d in digests], progress=progress, expect=list(digests))
        except FileNotFoundError as exc:
            raise NotFoundError(f"an object is not on remote {self.url}: {exc.filename}") from exc

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files of interrupted uploads older than ``older_than`` seconds."""
        return self.db.clean_temp(older_than)

    def get_ref(self, name: str) -> bytes | None:
        return self.db.get_ref(name)

    def put_ref(self, name: str, data: bytes) -> None:
        self.db.put_ref(name, data)


def _chunks(store: ObjectStore, digest: Digest) -> Iterator[bytes]:
    with store.open(digest) as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk
