"""`data add` never tracks Shipyard's own folders or version control's, however the path is spelled or reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.workspace.add import add
from shipyard.core.workspace.data import Workspace
from shipyard.errors import InvalidInputError
from shipyard.ports import NoStateCache
from tests.conftest import cli_env, shipyard


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "proj"
    store = LocalObjectStore(root / ".shipyard" / "objects")
    (root / "data").mkdir(parents=True)
    (root / "data" / "f.txt").write_text("x\n")
    store.put_bytes(b"an object")
    (root / "sub" / ".shipyard" / "objects").mkdir(parents=True)  # another project's store, nested
    (root / "sub" / ".shipyard" / "objects" / "o").write_text("y\n")
    (root / "sub" / ".git").mkdir()
    (root / "sub" / ".git" / "config").write_text("[core]\n")
    monkeypatch.chdir(root)
    return Workspace(root, store, NoStateCache())


@pytest.mark.parametrize("path", [".shipyard", "./.shipyard", ".shipyard/", ".shipyard/objects", "data/../.shipyard",
                                  "sub/.shipyard", "sub/.shipyard/objects/o", "sub/.git", "sub/.git/config", ".git"])
def test_reserved_folders_are_refused_however_spelled(ws: Workspace, path: str) -> None:
    with pytest.raises(InvalidInputError, match=r"is refused: it is inside .*(\.shipyard|\.git)/, which belongs to"):
        add(ws, [path])
    assert not (ws.root / "shipyard.lock").exists()


def test_reserved_folders_are_refused_from_a_subfolder(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ws.root / "data")
    for path in ("../.shipyard", str(ws.root / ".shipyard" / "objects")):
        with pytest.raises(InvalidInputError, match="belongs to Shipyard"):
            add(ws, [path])
    assert not (ws.root / "shipyard.lock").exists()


def test_a_linked_folder_on_the_way_is_refused(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "st").symlink_to(".shipyard")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s\n")
    (ws.root / "out").symlink_to(tmp_path / "outside")
    (ws.root / "direct").symlink_to(".shipyard/objects")
    for path in ("st/objects", "out/secret", "direct"):
        with pytest.raises(InvalidInputError, match="symbolic link"):
            add(ws, [path])
    assert not (ws.root / "shipyard.lock").exists()


def test_the_store_is_refused_wherever_settings_put_it(ws: Workspace) -> None:
    (ws.root / "state" / "objects").mkdir(parents=True)
    for path in ("state", "state/objects"):
        with pytest.raises(InvalidInputError, match="Shipyard's own folder"):
            add(ws, [path], private=[ws.root / "state"])
    assert add(ws, ["data/f.txt"], private=[ws.root / "state"])[0][0] == "data/f.txt"


def test_cli_refuses_data_add_shipyard_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("version: 1\n")
    (root / ".shipyard").mkdir()
    done = shipyard("data", "add", ".shipyard", env=cli_env(), cwd=root, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "belongs to Shipyard" in done.stderr
    assert not (root / "shipyard.lock").exists()


@pytest.mark.parametrize("name", ["shipyard.yaml", "shipyard.lock", "./data/../shipyard.lock"])
def test_the_projects_own_files_are_refused(ws: Workspace, name: str) -> None:
    """`data add shipyard.lock` was accepted: the lock tracked itself and went into .gitignore, so git
    stopped versioning it (shipyard.yaml likewise)."""
    for own in ("shipyard.yaml", "shipyard.lock"):
        (ws.root / own).write_text("version: 1\n")
    with pytest.raises(InvalidInputError, match="the project's own file"):
        add(ws, [name])
    assert not (ws.root / ".gitignore").exists() and (ws.root / "shipyard.lock").read_text() == "version: 1\n"
