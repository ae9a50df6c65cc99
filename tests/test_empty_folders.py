"""An empty folder (or one holding only a nested repository) is a folder, and checkout never deletes what no
scan stores: `data add` recorded such a folder as a file, and `data checkout` then replaced the folder,
nested .git included, with a 44-byte file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.workspace import data
from shipyard.core.workspace.add import add
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import PathEntry, editing_lock, load_lock
from shipyard.errors import ConflictError
from shipyard.ports import NoStateCache


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "proj"
    (root / ".shipyard").mkdir(parents=True)
    return Workspace(root, LocalObjectStore(root / ".shipyard" / "objects"), NoStateCache())


def test_an_empty_folder_and_one_holding_only_a_repository_are_tracked_as_folders(ws: Workspace) -> None:
    (ws.root / "empty").mkdir()
    (ws.root / "vendor" / ".git").mkdir(parents=True)
    (ws.root / "vendor" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    added = dict(add(ws, [ws.root / "empty", ws.root / "vendor"]))
    assert added["empty"].is_dir and added["empty"].files == 0 and added["vendor"].is_dir
    assert [s.state for s in data.status(ws, load_lock(ws.root))] == ["unchanged", "unchanged"]
    data.checkout(ws, load_lock(ws.root))
    assert (ws.root / "empty").is_dir() and (ws.root / "vendor" / ".git" / "HEAD").is_file()
    (ws.root / "empty").rmdir()
    assert [s.state for s in data.status(ws, load_lock(ws.root))] == ["missing", "unchanged"]
    data.checkout(ws, load_lock(ws.root))  # what status suggests brings it back
    assert (ws.root / "empty").is_dir()


def test_checkout_does_not_replace_a_folder_holding_a_repository_by_a_recorded_file(ws: Workspace) -> None:
    (ws.root / "vendor").write_text("a file once\n")
    add(ws, [ws.root / "vendor"])
    (ws.root / "vendor").unlink()
    (ws.root / "vendor" / ".git").mkdir(parents=True)  # now a repository of its own
    (ws.root / "vendor" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    with pytest.raises(ConflictError, match=r"vendor/\.git, which Shipyard never stores; nothing was changed"):
        data.checkout(ws, load_lock(ws.root), force=True)
    assert (ws.root / "vendor" / ".git" / "HEAD").is_file()


def test_a_lock_from_before_the_fix_still_cannot_delete_a_nested_repository(ws: Workspace) -> None:
    """Locks written by the old `data add` record an empty folder as a file: their checkout is refused too."""
    (ws.root / "vendor" / ".git").mkdir(parents=True)
    (ws.root / "vendor" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    ((_, entry),) = add(ws, [ws.root / "vendor"])
    with editing_lock(ws.root) as lock:
        lock.data["vendor"] = PathEntry(entry.digest, entry.size, None)  # as the old code recorded it
    with pytest.raises(ConflictError):
        data.checkout(ws, load_lock(ws.root))
    assert (ws.root / "vendor" / ".git" / "HEAD").is_file()
