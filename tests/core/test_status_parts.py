"""``data status`` after a change compares only the folders whose files' stats moved (in-process, no CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.adapters.state.sqlite import SqliteStateCache
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.workspace.add import add
from shipyard.core.workspace.data import Workspace, status
from shipyard.core.workspace.lockfile import load_lock
from shipyard.core.workspace.scan import signatures, stat_path, walk_tree


def project(tmp_path: Path) -> Workspace:
    root = tmp_path / "proj"
    for d in ("a", "b", "b/deep", "c"):
        (root / "data" / d).mkdir(parents=True)
        for i in range(3):
            (root / "data" / d / f"f{i}.txt").write_text(f"{d}{i}\n")
    (root / "data" / "top.txt").write_text("top\n")
    ws = Workspace(root, LocalObjectStore(root / ".shipyard"), SqliteStateCache(root / ".shipyard" / "state.db"))
    add(ws, [root / "data"])
    return ws


def report(ws: Workspace) -> dict[str, list[str] | str]:
    (st,) = status(ws, load_lock(ws.root))
    return {"state": st.state, "added": st.added, "modified": st.modified, "deleted": st.deleted}


def test_walk_tree_signs_as_the_file_list_does(tmp_path: Path) -> None:
    ws = project(tmp_path)
    tree = walk_tree(ws.root / "data")
    assert (tree.signature, tree.parts) == signatures(stat_path(ws.root / "data"))
    assert set(tree.parts) == {"", "a/", "b/", "b/deep/", "c/"}
    assert sorted(f.rel for f in tree.files(["b/deep/", "gone/"])) == [f"b/deep/f{i}.txt" for i in range(3)]
    assert len(tree.files()) == 13


def test_changes_in_some_folders_are_all_found(tmp_path: Path) -> None:
    ws = project(tmp_path)
    data = ws.root / "data"
    assert report(ws)["state"] == "unchanged"
    (data / "a" / "f1.txt").write_text("changed\n")
    (data / "b" / "new.txt").write_text("new\n")
    (data / "b" / "deep" / "f0.txt").unlink()
    for name in os.listdir(data / "c"):
        (data / "c" / name).unlink()
    (data / "c").rmdir()  # a whole folder gone
    (data / "d").mkdir()
    (data / "d" / "x.txt").write_text("x\n")  # a new folder
    (data / "top.txt").write_text("top\n")  # rewritten with the same bytes: its stat moved, its content did not
    want = {"state": "modified", "added": ["b/new.txt", "d/x.txt"], "modified": ["a/f1.txt"],
            "deleted": ["b/deep/f0.txt", "c/f0.txt", "c/f1.txt", "c/f2.txt"]}
    assert report(ws) == want
    assert report(ws) == want  # again: the stat cache now knows the new files, the answer is the same


def test_restored_content_reads_unchanged_and_a_stale_snapshot_is_not_used(tmp_path: Path) -> None:
    ws = project(tmp_path)
    data = ws.root / "data"
    (data / "a" / "f1.txt").write_text("changed\n")
    assert report(ws)["modified"] == ["a/f1.txt"]
    (data / "a" / "f1.txt").write_text("a1\n")  # back to the recorded bytes
    assert report(ws)["state"] == "unchanged"

    # sub-folder signatures recorded for another version are never trusted for this one
    (data / "a" / "f2.txt").write_text("changed\n")
    ws.state.remember_parts(str(data), Digest.of_bytes(b"another version"), walk_tree(data).parts)
    assert report(ws) == {"state": "modified", "added": [], "modified": ["a/f2.txt"], "deleted": []}


def test_a_damaged_snapshot_row_means_a_full_compare(tmp_path: Path) -> None:
    ws = project(tmp_path)
    data = ws.root / "data"
    state = ws.state
    assert isinstance(state, SqliteStateCache)
    state._db.execute("UPDATE tree_parts SET parts = '[1, 2]'")
    assert state.parts(str(data)) is None
    (data / "c" / "f2.txt").write_text("changed\n")
    assert report(ws)["modified"] == ["c/f2.txt"]


def test_manifest_index_of_some_folders_sorted_or_not() -> None:
    d = str(Digest.of_bytes(b"x"))
    paths = ["a.txt", "a/b.txt", "a/deep/c.txt", "ab/d.txt", "z.txt"]
    entries = [{"path": p, "digest": d, "size": 1, "mode": 420} for p in paths]
    for listed in (entries, entries[::-1]):  # as written by Shipyard, and out of order (read all the same)
        data = json.dumps({"entries": listed, "kind": "shipyard.manifest/v1"}).encode()
        assert set(Manifest.index(data, {"a/"})) == {"a/b.txt"}
        assert set(Manifest.index(data, {"", "a/deep/"})) == {"a.txt", "z.txt", "a/deep/c.txt"}
        assert Manifest.index(data, set()) == {}
        assert len(Manifest.index(data)) == 5


def test_piped_status_lines_are_plain_and_escape_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.core.workspace.data import PathStatus
    from shipyard.interfaces.cli.data import _print_status

    _print_status([PathStatus("data", "unchanged"),
                   PathStatus("odd\x1b[31m", "modified", added=["a [b]"], modified=[f"m{i}" for i in range(21)]),
                   PathStatus("gone", "missing", in_store=False)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "unchanged data"
    assert lines[1] == "modified  odd\\x1b[31m: 1 added, 21 modified, 0 deleted"
    assert lines[2] == "    added: a [b]"  # as written: no markup is read in a name
    assert lines[-2] == "    ... 1 more modified"
    assert lines[-1].startswith("missing   gone (not in the local store either")
