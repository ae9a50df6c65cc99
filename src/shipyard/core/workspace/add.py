"""``shipyard data add``: store paths by content, then record their digests in ``shipyard.lock``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from shipyard.core.project.loader import CONFIG_FILE
from shipyard.core.workspace.data import Workspace, store_path, tracked_path
from shipyard.core.workspace.lockfile import LOCK_FILE, Lock, PathEntry, editing_lock, load_lock
from shipyard.core.workspace.paths import overlaps
from shipyard.errors import InvalidInputError
from shipyard.ports import Progress, no_progress


def add(ws: Workspace, paths: Sequence[str | Path], hardlink: bool = False,
        progress: Progress = no_progress, private: Sequence[Path] = ()) -> list[tuple[str, PathEntry]]:
    """Store every path of ``paths``, then record them all in ``shipyard.lock``; return what was recorded.

    Storing (hashing, copying) is the slow part and runs unlocked; recording re-reads the lock
    under the project lock, so entries other commands recorded meanwhile are kept. Nothing is
    recorded unless every path was stored. ``private``: Shipyard's own folders (its home, the store),
    wherever settings put them: a path that is one, holds one or is inside one is refused.
    """
    rels = [tracked_path(ws.root, p) for p in paths]
    refuse_project_files(rels)
    _refuse_private(ws.root, rels, private)
    _refuse_overlaps(rels, load_lock(ws.root))
    added = [store_path(ws, p, hardlink=hardlink, progress=progress) for p in paths]
    with editing_lock(ws.root) as lock:
        _refuse_overlaps([rel for rel, _ in added], lock)  # again: another command may have recorded one meanwhile
        # the same bytes as before keep DVC's md5 (a converted project's DVC HTTP remote still serves them)
        added = [(rel, entry.carried(lock.data.get(rel))) for rel, entry in added]
        lock.data.update(added)
    return added


def refuse_project_files(rels: Sequence[str], what: str = "data path") -> None:
    """shipyard.yaml and shipyard.lock are the project's own files, committed to git: tracked as data (or
    declared a stage's output) they would be added to .gitignore (so git stops versioning them) and
    overwritten by `data checkout` or a cache restore."""
    for rel in rels:
        if rel in (CONFIG_FILE, LOCK_FILE):
            raise InvalidInputError(f"{what} {rel!r} is refused: it is the project's own file, committed with "
                                    "your code; Shipyard tracks data, never its own configuration or lock")


def _refuse_private(root: Path, rels: list[str], private: Sequence[Path]) -> None:
    top = os.path.realpath(root)
    for folder in private:
        mine = os.path.relpath(os.path.realpath(folder), top)
        if mine == ".." or mine.startswith("../"):
            continue  # outside the project: no project path can reach it
        for rel in rels:
            if overlaps(rel, Path(mine).as_posix()):
                raise InvalidInputError(f"data path {rel!r} is refused: {mine}/ is Shipyard's own folder (its "
                                        "home or object store), never data; track your data elsewhere")


def _refuse_overlaps(rels: list[str], lock: Lock) -> None:
    """A path inside a tracked one (or holding one) would be two copies of the same files: refused."""
    for i, rel in enumerate(rels):
        for other in [*rels[:i], *lock.data]:
            if other != rel and overlaps(rel, other):
                outer, inner = (rel, other) if other.startswith(rel + "/") else (other, rel)
                raise InvalidInputError(
                    f"{rel} overlaps the tracked path {other} ({inner} is inside {outer}): track one of them, "
                    f"not both; to track {outer} as a whole, first remove {inner}'s entry from {LOCK_FILE}")
