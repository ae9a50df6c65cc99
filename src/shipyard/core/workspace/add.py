"""``shipyard data add``: store paths by content, then record their digests in ``shipyard.lock``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shipyard.core.workspace.data import Workspace, store_path
from shipyard.core.workspace.lockfile import LOCK_FILE, Lock, PathEntry, editing_lock, load_lock
from shipyard.core.workspace.paths import overlaps, project_path
from shipyard.errors import InvalidInputError
from shipyard.ports import Progress, no_progress


def add(ws: Workspace, paths: Sequence[str | Path], hardlink: bool = False,
        progress: Progress = no_progress) -> list[tuple[str, PathEntry]]:
    """Store every path of ``paths``, then record them all in ``shipyard.lock``; return what was recorded.

    Storing (hashing, copying) is the slow part and runs unlocked; recording re-reads the lock
    under the project lock, so entries other commands recorded meanwhile are kept. Nothing is
    recorded unless every path was stored.
    """
    _refuse_overlaps([project_path(ws.root, p, "data path") for p in paths], load_lock(ws.root))
    added = [store_path(ws, p, hardlink=hardlink, progress=progress) for p in paths]
    with editing_lock(ws.root) as lock:
        _refuse_overlaps([rel for rel, _ in added], lock)  # again: another command may have recorded one meanwhile
        lock.data.update(added)
    return added


def _refuse_overlaps(rels: list[str], lock: Lock) -> None:
    """A path inside a tracked one (or holding one) would be two copies of the same files: refused."""
    for i, rel in enumerate(rels):
        for other in [*rels[:i], *lock.data]:
            if other != rel and overlaps(rel, other):
                outer, inner = (rel, other) if other.startswith(rel + "/") else (other, rel)
                raise InvalidInputError(
                    f"{rel} overlaps the tracked path {other} ({inner} is inside {outer}): track one of them, "
                    f"not both; to track {outer} as a whole, first remove {inner}'s entry from {LOCK_FILE}")
