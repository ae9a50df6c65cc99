"""Push the objects shipyard.lock references to a remote, and pull them back."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.tree import load_manifest
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import Lock, PathEntry
from shipyard.errors import NotFoundError
from shipyard.ports import Progress, Remote, no_progress


@dataclass
class SyncReport:
    objects: int  # referenced by the lock
    transferred: int

    def to_dict(self) -> dict[str, int]:
        return {"objects": self.objects, "transferred": self.transferred}


def _entries(lock: Lock) -> list[PathEntry]:
    return [*lock.data.values(), *(e for s in lock.stages.values() for e in s.outs.values())]


def push(ws: Workspace, lock: Lock, remote: Remote, progress: Progress = no_progress) -> SyncReport:
    """Send every object the lock needs (folders' manifests and files) that the remote lacks."""
    wanted: dict[Digest, None] = {}
    for entry in _entries(lock):
        top = Digest.parse(entry.digest)
        if not ws.store.has(top):
            raise NotFoundError(f"{entry.digest} is in shipyard.lock but not in the local store; "
                                "run `shipyard data pull` from where it was added")
        wanted[top] = None
        if entry.is_dir:
            wanted.update((e.digest, None) for e in load_manifest(ws.store, top))
    absent = [d for d in remote.missing(list(wanted)) if ws.store.has(d)]
    remote.upload(ws.store, absent, progress)
    for name, stage in lock.stages.items():  # so a clone elsewhere restores these stages instead of running them
        remote.put_ref(stage.cache_key(), stage.cache_bytes(name))
    return SyncReport(len(wanted), len(absent))


def pull(ws: Workspace, lock: Lock, remote: Remote, progress: Progress = no_progress) -> SyncReport:
    """Fetch every object the lock needs that the local store lacks (manifests first, then files)."""
    tops = list(dict.fromkeys(Digest.parse(e.digest) for e in _entries(lock)))
    fetched = [d for d in tops if not ws.store.has(d)]
    _fetch(remote, ws, fetched, progress)
    files: dict[Digest, None] = {}
    for entry in _entries(lock):
        if entry.is_dir:
            files.update((e.digest, None) for e in load_manifest(ws.store, Digest.parse(entry.digest)))
    need = [d for d in files if not ws.store.has(d)]
    _fetch(remote, ws, need, progress)
    return SyncReport(len(tops) + len(files), len(fetched) + len(need))


def _fetch(remote: Remote, ws: Workspace, digests: list[Digest], progress: Progress) -> None:
    if not digests:
        return
    gone = remote.missing(digests)
    if gone:
        raise NotFoundError(f"{len(gone)} object(s) are on neither the local store nor remote {remote.url} "
                            f"(e.g. {gone[0]}); push them from where they were added")
    remote.download(digests, ws.store, progress)
