"""A remote that is a folder (a mounted share, another disk): the store's own layout."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from shipyard.adapters.stores.local import copy_range, syncfs
from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.atomic import read_ref, write_atomic
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

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress) -> None:
        staged = []
        try:
            for d in digests:
                tmp = self.root / "tmp" / f"u-{os.getpid()}-{os.urandom(6).hex()}"
                with store.open(d) as src, open(tmp, "xb") as out:
                    copy_range(src, out)
                    progress(out.tell())
                staged.append((tmp, d))
            syncfs(self.root)  # one durability barrier for the whole batch
            for tmp, d in staged:
                target = self._path(d)
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)  # same bytes under the same name: replacing is harmless
        finally:
            for tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

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
