"""Regression tests for the storage side of issue 7's second attack report (findings 2, 4, 4b, 5, 9, 9b,
10c, 11, 12 and the FIFO message). Real files, real stores, no mocks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace import data
from shipyard.core.workspace.add import add
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import LOCK_FILE, Lock, PathEntry, load_lock, save_lock
from shipyard.errors import ConfigError, ConflictError, InvalidInputError
from shipyard.ports import NoStateCache
from tests.conftest import cli_env, register_constant, shipyard


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    proj = tmp_path / "proj"
    proj.mkdir()
    return Workspace(proj, LocalObjectStore(proj / ".shipyard" / "objects"), NoStateCache())


def one_file_lock(ws: Workspace, key: str, content: bytes = b"import os\n") -> Lock:
    d = ws.store.put_bytes(content)
    return Lock(data={key: PathEntry(d, len(content))})


# -- finding 2: .git, .shipyard, virtualenvs and package folders are never written -----------------

@pytest.mark.parametrize("key", [".git/config", ".shipyard/shipyard.db", ".hg/hgrc", ".svn/x",
                                 "lib/python3.11/site-packages/zz.pth", "x/dist-packages/zz.pth"])
def test_a_lock_key_in_a_reserved_folder_is_refused(ws: Workspace, key: str) -> None:
    (ws.root / ".git").mkdir()
    (ws.root / ".git" / "config").write_text("[core]\n")
    for force in (False, True):
        with pytest.raises(InvalidInputError, match="refused"):
            data.checkout(ws, one_file_lock(ws, key), force=force)
    assert (ws.root / ".git" / "config").read_text() == "[core]\n"
    assert not (ws.root / "lib").exists() and not (ws.root / "x").exists()


def test_a_lock_key_inside_a_virtualenv_is_refused(ws: Workspace) -> None:
    venv = ws.root / ".venv"
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for key in (".venv/lib/python3.11/site-packages/zz.pth", ".venv/lib/zz.pth"):
        with pytest.raises(InvalidInputError, match="refused"):
            data.checkout(ws, one_file_lock(ws, key), force=True)
    assert list(venv.rglob("zz.pth")) == []


def test_the_conflict_message_never_points_at_a_reserved_path(ws: Workspace) -> None:
    """Without --force, an unsaved .git/config is not a 'pass --force' conflict: the path itself is refused."""
    (ws.root / ".git").mkdir()
    (ws.root / ".git" / "config").write_text("local edits\n")
    with pytest.raises(InvalidInputError, match=r"\.git/") as info:
        data.checkout(ws, one_file_lock(ws, ".git/config"))
    assert "--force" not in str(info.value)


@pytest.mark.parametrize("name", [".git", ".shipyard", ".shipyard/shipyard.db", ".venv", ".venv/lib/x.pth"])
def test_data_add_refuses_reserved_paths(ws: Workspace, name: str) -> None:
    (ws.root / ".git").mkdir()
    (ws.root / ".venv" / "lib").mkdir(parents=True)
    (ws.root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (ws.root / ".venv" / "lib" / "x.pth").write_text("import os\n")
    (ws.root / ".shipyard" / "shipyard.db").write_text("db")
    with pytest.raises(InvalidInputError, match="refused"):
        add(ws, [ws.root / name])
    assert not (ws.root / LOCK_FILE).exists()


# -- finding 9: a file in one version, a folder in the next -----------------------------------------

def test_a_file_replaced_by_a_folder_version_checks_out(ws: Workspace) -> None:
    (ws.root / "data").mkdir()
    (ws.root / "data" / "a.txt").write_text("a")
    folder = dict(add(ws, [ws.root / "data"]))
    (ws.root / "data" / "a.txt").unlink()
    (ws.root / "data").rmdir()
    (ws.root / "data").write_text("f")
    add(ws, [ws.root / "data"])  # now a file, whose content is in the store
    result = data.checkout(ws, Lock(data=folder))
    assert result["written"] == 1
    assert (ws.root / "data" / "a.txt").read_text() == "a"


def test_an_unsaved_file_where_a_folder_goes_needs_force(ws: Workspace) -> None:
    (ws.root / "data").mkdir()
    (ws.root / "data" / "a.txt").write_text("a")
    folder = Lock(data=dict(add(ws, [ws.root / "data"])))
    (ws.root / "data" / "a.txt").unlink()
    (ws.root / "data").rmdir()
    (ws.root / "data").write_text("never stored")
    with pytest.raises(ConflictError, match="data"):
        data.checkout(ws, folder)
    assert (ws.root / "data").read_text() == "never stored"
    data.checkout(ws, folder, force=True)
    assert (ws.root / "data" / "a.txt").read_text() == "a"


# -- finding 9b: overlapping tracked paths ----------------------------------------------------------

def test_data_add_refuses_a_path_overlapping_a_tracked_one(ws: Workspace) -> None:
    (ws.root / "data" / "sub").mkdir(parents=True)
    (ws.root / "data" / "sub" / "f").write_text("1")
    (ws.root / "data" / "g").write_text("2")
    add(ws, [ws.root / "data" / "sub"])
    with pytest.raises(InvalidInputError, match="overlaps"):
        add(ws, [ws.root / "data"])
    with pytest.raises(InvalidInputError, match="overlaps"):
        add(ws, [ws.root / "data" / "g", ws.root / "data" / "sub" / "f"])
    assert set(load_lock(ws.root).data) == {"data/sub"}


def test_a_lock_with_overlapping_keys_is_refused_on_load(ws: Workspace) -> None:
    entry = PathEntry(Digest("0" * 64), 1)
    save_lock(ws.root, Lock(data={"data": PathEntry(entry.digest, 1, 1), "data-x": entry, "data/a.txt/x": entry}))
    with pytest.raises(ConfigError, match="inside the tracked 'data'"):
        load_lock(ws.root)


# -- finding 12: status through a symlinked parent; a FIFO -----------------------------------------

def test_status_does_not_read_through_a_symlinked_parent(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "inner"
    outside.mkdir(parents=True)
    (outside / "secret.txt").write_text("guess me")
    (ws.root / "sub" / "inner").mkdir(parents=True)
    (ws.root / "sub" / "inner" / "secret.txt").write_text("guess me")
    lock = Lock(data=dict(add(ws, [ws.root / "sub" / "inner"])))
    (ws.root / "sub" / "inner" / "secret.txt").unlink()
    (ws.root / "sub" / "inner").rmdir()
    (ws.root / "sub").rmdir()
    (ws.root / "sub").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidInputError, match="symbolic link"):
        data.status(ws, lock)


def test_a_fifo_is_not_a_regular_file_not_a_missing_one(ws: Workspace) -> None:
    (ws.root / "data").mkdir()
    (ws.root / "data" / "a.txt").write_text("a")
    os.mkfifo(ws.root / "fifo1")
    os.mkfifo(ws.root / "data" / "pipe")
    for path in (ws.root / "fifo1", ws.root / "data"):
        with pytest.raises(InvalidInputError, match=r"is not a regular file \(a FIFO\): remove it or move it out"):
            add(ws, [path])


# -- finding 4: a root known to be a manifest is read as one, whatever its first byte ----------------

def test_gc_stops_when_a_known_manifest_has_a_damaged_head(ws: Workspace) -> None:
    from shipyard.core.artifacts.maintenance import gc
    from shipyard.errors import IntegrityError

    (ws.root / "model").mkdir()
    (ws.root / "model" / "model.bin").write_bytes(b"weights")
    (_, entry), = add(ws, [ws.root / "model"])
    path = ws.store.local_path(entry.digest)  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b" " + path.read_bytes()[1:])
    before = sorted(str(d) for d, _, _ in ws.store.iter_objects())
    with pytest.raises(IntegrityError, match=f"manifest {entry.digest} is corrupt"):
        gc(ws.store, [entry.digest], 0, manifests=[entry.digest], now=time.time() + 10)
    assert sorted(str(d) for d, _, _ in ws.store.iter_objects()) == before


# -- finding 5: an empty metadata database does not make everything garbage ---------------------------

def test_gc_refuses_an_empty_database_while_the_store_holds_old_objects(ws: Workspace) -> None:
    from shipyard.adapters.environments.probe import capture
    from shipyard.core.artifacts.maintenance import gc
    from shipyard.core.environments.capture import to_bytes

    kept = ws.store.put_bytes(b"a model file only the database knew")
    assert gc(ws.store, [], 0, dry_run=True, records=0, now=time.time() + 10).removed == [str(kept)]  # data only
    ws.store.put_bytes(to_bytes(capture()))  # what every run and model version writes
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match=r"the database at sqlite:///x records no runs .*--allow-empty-db"):
            gc(ws.store, [], 0, dry_run=dry_run, records=0, metadata="the database at sqlite:///x",
               now=time.time() + 10)
    assert ws.store.has(kept)
    assert gc(ws.store, [], 3600, records=0).removed == []  # nothing old enough to go: no reason to stop
    kept = ws.store.put_bytes(b"another model file")
    old = time.time() - 3600  # the capture re-used a minute ago, the model file an hour old: still refused
    os.utime(ws.store.local_path(kept), (old, old))  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="records no runs"):
        gc(ws.store, [], 600, dry_run=True, records=0)
    assert str(kept) in gc(ws.store, [], 0, records=1, now=time.time() + 10).removed


def test_store_gc_with_a_missing_database_removes_nothing(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    env = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"))
    register_constant(env, "victim")
    store = LocalObjectStore(proj / ".shipyard" / "objects")
    count = len(list(store.iter_objects()))
    for db in (proj / ".shipyard").glob("shipyard.db*"):
        db.unlink()
    typo = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"), SHIPYARD_DB_URL=f"sqlite:///{tmp_path}/typo.db")
    for e in (env, typo):
        done = shipyard("store", "gc", "--grace", "0s", "--dry-run", env=e, cwd=proj, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "check SHIPYARD_DB_URL" in done.stderr
    assert len(list(store.iter_objects())) == count


# -- finding 4b: clean-up never deletes through a linked tmp folder --------------------------------

def test_clean_temp_never_follows_a_linked_tmp(tmp_path: Path) -> None:
    from shipyard.adapters.remotes.folder import FolderRemote
    from shipyard.core.workspace.atomic import temp_name
    from shipyard.errors import IntegrityError

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("important")
    Path(temp_name(victim)).write_text("looks like ours")
    old = time.time() - 3 * 86400
    for p in victim.iterdir():
        os.utime(p, (old, old))
    for root in (tmp_path / "store", tmp_path / "remote"):
        store = LocalObjectStore(root)  # made by the store: the remote opens the same, existing folder
        remote = FolderRemote(root)
        (root / "tmp").rmdir()
        (root / "tmp").symlink_to(victim)  # swapped in after the store was opened
        for clean in (store.clean_temp, remote.clean_temp):
            with pytest.raises(IntegrityError, match="symbolic link"):
                clean(0)
        with pytest.raises(IntegrityError, match="symbolic link"):
            LocalObjectStore(root)
    assert len(list(victim.iterdir())) == 2


def test_clean_temp_removes_only_its_own_temp_files(tmp_path: Path) -> None:
    from shipyard.core.workspace.atomic import temp_name

    store = LocalObjectStore(tmp_path / "store")
    ours = Path(temp_name(store.tmp))
    ours.write_text("killed upload")
    (store.tmp / "notes.txt").write_text("someone's file")
    os.mkfifo(store.tmp / ".sy-00001-0000000000.tmp")
    old = time.time() - 3 * 86400
    for p in store.tmp.iterdir():
        os.utime(p, (old, old))
    assert store.clean_temp(3600) == 1
    assert sorted(p.name for p in store.tmp.iterdir()) == [".sy-00001-0000000000.tmp", "notes.txt"]


# -- finding 11: a .shipyard that is a symbolic link is not followed -----------------------------------

def test_a_symlinked_shipyard_folder_is_refused_unless_home_is_set(tmp_path: Path) -> None:
    from shipyard.config import load_settings

    proj, elsewhere = tmp_path / "proj", tmp_path / "other-project-home"
    proj.mkdir()
    elsewhere.mkdir()
    (proj / ".shipyard").symlink_to(elsewhere)
    (proj / "data.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"symbolic link .*SHIPYARD_HOME"):
        load_settings({}, proj)
    done = shipyard("data", "add", "data.txt", env=cli_env(), cwd=proj, check=False)
    assert done.returncode == 2 and "symbolic link" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []
    assert load_settings({"SHIPYARD_HOME": str(proj / ".shipyard")}, proj).home == proj / ".shipyard"


# -- finding 8: a link swapped in after the check is never written through ------------------------------

def test_a_link_swapped_in_after_the_check_is_refused_at_the_write(ws: Workspace, tmp_path: Path) -> None:
    from shipyard.core.artifacts.tree import copy_verified_at
    from shipyard.core.workspace.paths import Confined

    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / "data" / "sub").mkdir(parents=True)
    d = ws.store.put_bytes(b"payload")
    with Confined(ws.root, project=True) as confined:
        confined.check("data/sub/f")  # the planning step: data/sub is a real folder now
        (ws.root / "data" / "sub").rename(ws.root / "data" / "subx")
        (ws.root / "data" / "sub").symlink_to(outside)
        with pytest.raises(InvalidInputError, match="symbolic link"):
            copy_verified_at(ws.store, d, confined, "data/sub/f")
    assert list(outside.iterdir()) == []


def test_a_folder_swapped_for_a_link_after_it_was_opened_keeps_the_write_inside(ws: Workspace,
                                                                                tmp_path: Path) -> None:
    from shipyard.core.artifacts.tree import copy_verified_at
    from shipyard.core.workspace.paths import Confined

    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / "data" / "sub").mkdir(parents=True)
    d = ws.store.put_bytes(b"payload")
    with Confined(ws.root, project=True) as confined:
        copy_verified_at(ws.store, d, confined, "data/sub/a")  # data/sub is now held open
        (ws.root / "data" / "sub").rename(ws.root / "data" / "subx")
        (ws.root / "data" / "sub").symlink_to(outside)
        copy_verified_at(ws.store, d, confined, "data/sub/b")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (ws.root / "data" / "subx").iterdir()) == ["a", "b"]


def test_checkout_of_more_folders_than_it_keeps_open(ws: Workspace) -> None:
    from shipyard.core.workspace.paths import MAX_OPEN_FOLDERS

    root = ws.root / "data"
    for i in range(MAX_OPEN_FOLDERS + 20):
        (root / f"d{i}" / "x").mkdir(parents=True)
        (root / f"d{i}" / "x" / "f").write_text(str(i))
    lock = Lock(data=dict(add(ws, [root])))
    for i in range(0, MAX_OPEN_FOLDERS + 20, 2):
        (root / f"d{i}" / "x" / "f").unlink()
    (root / "d1" / "x" / "extra").write_text("not recorded")
    (root / "empty" / "deep").mkdir(parents=True)
    assert data.checkout(ws, lock, force=True)["written"] == (MAX_OPEN_FOLDERS + 20) // 2
    assert all((root / f"d{i}" / "x" / "f").read_text() == str(i) for i in range(MAX_OPEN_FOLDERS + 20))
    assert not (root / "d1" / "x" / "extra").exists() and not (root / "empty").exists()
