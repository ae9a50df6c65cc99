"""Awkward files in the working tree each get one clear line and change nothing, or just work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.workspace import data
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import Lock
from shipyard.errors import ConflictError, InvalidInputError
from shipyard.ports import NoStateCache
from tests.conftest import cli_env, shipyard


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    return Workspace(root, LocalObjectStore(root / ".shipyard" / "objects"), NoStateCache())


def test_a_tracked_file_replaced_by_a_folder_is_restored(ws: Workspace) -> None:
    f = ws.root / "data" / "labels.txt"
    f.write_text("a\nb\n")
    lock = Lock()
    lock.data.update([data.store_path(ws, f)])
    f.unlink()
    f.mkdir()
    (f / "unsaved.txt").write_text("mine")
    with pytest.raises(ConflictError, match=r"data/labels\.txt/unsaved\.txt"):
        data.checkout(ws, lock)
    assert (f / "unsaved.txt").read_text() == "mine"  # nothing changed
    assert data.checkout(ws, lock, force=True) == {"written": 1, "deleted": 1, "paths": 1}
    assert f.read_text() == "a\nb\n"


def test_a_255_byte_file_name_round_trips(ws: Workspace) -> None:
    name = "n" * 251 + ".csv"
    assert len(name.encode()) == 255
    (ws.root / "data" / "sub").mkdir()
    (ws.root / "data" / "sub" / name).write_text("long\n")
    (ws.root / "data" / name).write_text("single\n")
    lock = Lock()
    lock.data.update([data.store_path(ws, ws.root / "data" / "sub")])
    lock.data.update([data.store_path(ws, ws.root / "data" / name)])
    (ws.root / "data" / "sub" / name).unlink()
    (ws.root / "data" / name).unlink()
    assert data.checkout(ws, lock)["written"] == 2
    assert (ws.root / "data" / "sub" / name).read_text() == "long\n"
    assert (ws.root / "data" / name).read_text() == "single\n"


def test_a_non_utf8_file_name_is_one_clear_line_and_changes_nothing(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "shipyard.yaml").write_text("version: 1\n")
    (proj / "data" / "ok.csv").write_text("ok\n")
    with open(os.path.join(os.fsencode(proj / "data"), b"caf\xe9.csv"), "wb") as f:
        f.write(b"latin-1 name\n")
    done = shipyard("data", "add", "data", env=cli_env(), cwd=proj, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "caf\\xe9.csv" in done.stderr and "not valid UTF-8" in done.stderr
    assert not (proj / "shipyard.lock").exists()


def test_walking_a_folder_with_a_non_utf8_name_is_refused(ws: Workspace) -> None:
    with open(os.path.join(os.fsencode(ws.root / "data"), b"\xff"), "wb") as f:
        f.write(b"x")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        data.store_path(ws, ws.root / "data")
