"""Push the objects shipyard.lock references to a remote, and pull them back."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.core.artifacts.digest import Digest, hash_chunks
from shipyard.core.artifacts.manifest import MAX_MANIFEST_BYTES, Manifest
from shipyard.core.artifacts.tree import load_manifest, read_verified
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import Lock, PathEntry
from shipyard.errors import NotFoundError
from shipyard.ports import Progress, Remote, no_progress


@dataclass
class SyncReport:
    objects: int  # referenced by the lock
    transferred: int
    replaced: int = 0  # of those transferred: the remote held a damaged copy (wrong size, or hash with verify)
    verified: bool = False  # push re-hashed every object already on the remote

    def to_dict(self) -> dict[str, int | bool]:
        return {"objects": self.objects, "transferred": self.transferred, "replaced": self.replaced,
                "verified": self.verified}


def _entries(lock: Lock) -> list[PathEntry]:
    return [*lock.data.values(), *(e for s in lock.stages.values() for e in s.outs.values())]


def _named_entries(lock: Lock) -> list[tuple[str, PathEntry]]:
    return [*lock.data.items(), *((p, e) for s in lock.stages.values() for p, e in s.outs.items())]


def push(ws: Workspace, lock: Lock, remote: Remote, progress: Progress = no_progress,
         verify: bool = False) -> SyncReport:
    """Send every object the lock needs (folders' manifests and files) that the remote lacks or holds damaged.

    Checked before anything is sent: every object is in the local store (else NotFoundError naming
    them). An object on the remote counts as present only if its size is right, and with
    ``verify`` only if its bytes hash to its name; otherwise it is sent again. Every object sent is
    re-hashed as it streams up, so a corrupt local object is refused, never uploaded.
    """
    wanted: dict[Digest, int] = {}  # digest -> the size it must have
    names: dict[Digest, str] = {}
    absent_here: list[Digest] = []
    for rel, entry in _named_entries(lock):
        top = entry.digest
        names.setdefault(top, rel)
        if not ws.store.has(top):
            absent_here.append(top)
            continue
        if not entry.is_dir:
            wanted[top] = entry.size
            continue
        raw = read_verified(ws.store, top)
        wanted[top] = len(raw)
        for path, digest, size in Manifest.objects(raw):  # checked as push needs: digests and sizes
            wanted.setdefault(digest, size)
            names.setdefault(digest, f"{rel}/{path}")
    absent_here += [d for d in wanted if not ws.store.has(d)]
    if absent_here:
        listed = ", ".join(f"{names[d]} ({d})" for d in absent_here[:3]) + (" ..." if len(absent_here) > 3 else "")
        raise NotFoundError(f"{len(absent_here)} object(s) shipyard.lock needs are not in the local store: {listed}; "
                            "nothing was pushed: `shipyard data pull` them from where they were added, or add "
                            "the data again")
    there = remote.sizes(list(wanted))
    damaged = [d for d, size in there.items() if size != wanted[d]]
    if verify:
        damaged += [d for d, size in there.items() if size == wanted[d] and hash_chunks(remote.read(d)) != d]
    send = [d for d in wanted if d not in there or d in damaged]
    remote.upload(ws.store, send, progress)
    for name, stage in lock.stages.items():  # so a clone elsewhere restores these stages instead of running them
        remote.put_ref(stage.cache_key(), stage.cache_bytes(name))
    return SyncReport(len(wanted), len(send), len(damaged), verify)


def pull(ws: Workspace, lock: Lock, remote: Remote, progress: Progress = no_progress) -> SyncReport:
    """Fetch every object the lock needs that the local store lacks (manifests first, then files)."""
    tops: dict[Digest, int] = {}  # the most bytes each may have: a file's recorded size, or a manifest's cap
    for entry in _entries(lock):
        tops[entry.digest] = max(tops.get(entry.digest, 0), MAX_MANIFEST_BYTES if entry.is_dir else entry.size)
    fetched = [d for d in tops if not ws.store.has(d)]
    _fetch(remote, ws, fetched, progress, tops)
    files: dict[Digest, int] = {}
    for entry in _entries(lock):
        if entry.is_dir:
            files.update((e.digest, e.size) for e in load_manifest(ws.store, entry.digest))
    need = [d for d in files if not ws.store.has(d)]
    _fetch(remote, ws, need, progress, files)
    return SyncReport(len(tops) + len(files), len(fetched) + len(need))


def _fetch(remote: Remote, ws: Workspace, digests: list[Digest], progress: Progress,
           sizes: dict[Digest, int]) -> None:
    if not digests:
        return
    gone = remote.missing(digests)
    if gone:
        raise NotFoundError(f"{len(gone)} object(s) are on neither the local store nor remote {remote.url} "
                            f"(e.g. {gone[0]}); push them from where they were added")
    remote.download(digests, ws.store, progress, sizes)
