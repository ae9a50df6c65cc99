"""``shipyard data add``: store paths by content, then record their digests in ``shipyard.lock``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shipyard.core.workspace.data import Workspace, store_path
from shipyard.core.workspace.lockfile import PathEntry, editing_lock
from shipyard.ports import Progress, no_progress


def add(ws: Workspace, paths: Sequence[str | Path], hardlink: bool = False,
        progress: Progress = no_progress) -> list[tuple[str, PathEntry]]:
    """Store every path of ``paths``, then record them all in ``shipyard.lock``; return what was recorded.

    Storing (hashing, copying) is the slow part and runs unlocked; recording re-reads the lock
    under the project lock, so entries other commands recorded meanwhile are kept. Nothing is
    recorded unless every path was stored.
    """
    added = [store_path(ws, p, hardlink=hardlink, progress=progress) for p in paths]
    with editing_lock(ws.root) as lock:
        lock.data.update(added)
    return added
