"""Confinement: no path from a lock, a manifest, a remote or a ref writes outside its folder.

Every test builds a sandbox (a project beside an ``outside`` folder it must never touch) and
compares a hash of everything around the project before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.adapters.remotes.folder import FolderRemote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import KIND, Manifest
from shipyard.core.artifacts.tree import materialize
from shipyard.core.workspace import data, sync
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import Lock, PathEntry
from shipyard.errors import ConflictError, IntegrityError, InvalidInputError, ShipyardError
from shipyard.ports import NoStateCache
from tests.conftest import cli_env, shipyard


def surroundings(base: Path, project: Path) -> dict[str, str]:
    """Every entry under ``base`` except the project, with its content hash or link target."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == base:
            dirnames[:] = [d for d in dirnames if base / d != project]
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            rel = str(p.relative_to(base))
            if p.is_symlink():
                seen[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                seen[rel] = f"dir:{p.stat().st_mode:o}"
            else:
                seen[rel] = f"{p.stat().st_mode:o}:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return seen


@contextlib.contextmanager
def sandbox() -> Iterator[tuple[Path, Workspace]]:
    with tempfile.TemporaryDirectory(prefix="sy-sandbox-") as tmp:
        base = Path(tmp)
        (base / "outside" / "victim").mkdir(parents=True)
        (base / "outside" / "victim" / "keep.txt").write_text("must survive")
        (base / "outside" / "x.pth").write_text("original")
        proj = base / "proj"
        (proj / "data").mkdir(parents=True)
        (proj / "link").symlink_to(base / "outside")
        (proj / "data" / "ln").symlink_to("../../outside")
        ws = Workspace(proj, LocalObjectStore(proj / ".shipyard" / "objects"), NoStateCache())
        before = surroundings(base, proj)
        yield base, ws
        assert surroundings(base, proj) == before


def hostile_manifest(ws: Workspace, paths: list[str], content: bytes = b"evil") -> Digest:
    """A manifest object listing ``paths``, written straight into the store (no validation on the way)."""
    d = ws.store.put_bytes(content)
    entries = [{"path": p, "digest": str(d), "size": len(content), "mode": 0o644} for p in sorted(set(paths))]
    return ws.store.put_bytes(json.dumps({"entries": entries, "kind": KIND}, sort_keys=True).encode())


def file_lock(ws: Workspace, key: str, content: bytes = b"evil") -> Lock:
    d = ws.store.put_bytes(content)
    return Lock(data={key: PathEntry(d, len(content))})


# -- one regression test per bullet of finding 1 -------------------------------------------------

@pytest.mark.parametrize("key", ["../escaped", "../outside/x.pth", "data/../../outside/x.pth"])
def test_a_lock_key_with_dotdot_is_refused(key: str) -> None:
    with sandbox() as (_base, ws), pytest.raises(InvalidInputError, match="outside its folder"):
        data.checkout(ws, file_lock(ws, key), force=True)


def test_an_absolute_lock_key_is_refused() -> None:
    with sandbox() as (base, ws), pytest.raises(InvalidInputError, match="outside its folder"):
        data.checkout(ws, file_lock(ws, str(base / "outside" / "x.pth")), force=True)


def test_force_never_removes_a_folder_outside_the_project() -> None:
    with sandbox() as (base, ws):
        for key in (str(base / "outside" / "victim"), "../outside/victim"):
            with pytest.raises(InvalidInputError):
                data.checkout(ws, file_lock(ws, key), force=True)
        with pytest.raises(InvalidInputError, match="symbolic link"):  # through a link to the outside
            data.checkout(ws, file_lock(ws, "link/victim"), force=True)


def test_a_remote_manifest_cannot_drop_a_file_outside(tmp_path: Path) -> None:
    with sandbox() as (_base, ws):
        pth = "../../../.venv/lib/python3.11/site-packages/x.pth"
        evil_store = LocalObjectStore(tmp_path / "evil")
        top = hostile_manifest(Workspace(tmp_path, evil_store, NoStateCache()), [pth])
        (tmp_path / "remote").mkdir()
        remote = FolderRemote(tmp_path / "remote")
        remote.upload(evil_store, [d for d, _, _ in evil_store.iter_objects()])
        lock = Lock(data={"data/raw": PathEntry(top, 4, 1)})
        with pytest.raises(IntegrityError, match="outside its folder"):
            sync.pull(ws, lock, remote)
        with pytest.raises(IntegrityError):
            data.checkout(ws, lock, force=True)
    assert not (tmp_path / ".venv").exists()


def test_a_symlinked_folder_inside_a_tracked_path_is_not_written_through(tmp_path: Path) -> None:
    with sandbox() as (base, ws):
        raw = ws.root / "data" / "raw"
        (raw / "sub").mkdir(parents=True)
        (raw / "sub" / "victim.txt").write_text("recorded")
        (raw / "top.txt").write_text("top")
        lock = Lock()
        lock.data.update([data.store_path(ws, raw)])
        for f in (raw / "sub").iterdir():
            f.unlink()
        (raw / "sub").rmdir()
        (raw / "sub").symlink_to(base / "outside" / "victim")
        (raw / "top.txt").write_text("changed, in the store? no")
        for force in (False, True):
            with pytest.raises(InvalidInputError, match="sub is a symbolic link"):
                data.checkout(ws, lock, force=force)
        assert (raw / "top.txt").read_text() == "changed, in the store? no"  # nothing changed at all


def test_materialize_refuses_a_manifest_that_leaves_its_folder() -> None:
    with sandbox() as (base, ws):
        for paths in (["../outside/x.pth"], ["/etc/x"], ["a/../../x"], ["ok", "a\0b"]):
            with pytest.raises(IntegrityError):
                materialize(ws.store, hostile_manifest(ws, paths), ws.root / "model")
        (ws.root / "model").mkdir(exist_ok=True)
        (ws.root / "model" / "sub").symlink_to(base / "outside")
        with pytest.raises(InvalidInputError, match="symbolic link"):
            materialize(ws.store, hostile_manifest(ws, ["sub/x.pth"]), ws.root / "model")


def test_ref_names_are_confined(tmp_path: Path) -> None:
    with sandbox() as (_base, ws):
        (ws.root / "remote").mkdir()
        remote = FolderRemote(ws.root / "remote")
        for target in (ws.store, remote):
            for name in ("../../../outside/x.pth", "/abs", "stage-cache/../../x", ""):
                with pytest.raises(InvalidInputError):
                    target.put_ref(name, b"evil")
                with pytest.raises(InvalidInputError):
                    target.get_ref(name)
            target.put_ref("stage-cache/abc", b"ok")
            assert target.get_ref("stage-cache/abc") == b"ok"


@pytest.mark.parametrize(("entries", "why"), [
    ([{"path": "../x"}], "outside"),
    ([{"path": "/x"}], "outside"),
    ([{"path": "a\0b"}], "outside"),
    ([{"path": ""}], "not a relative path"),
    ([{"path": "a//b"}], "not normalized"),
    ([{"path": "a"}, {"path": "a"}], "sorted and unique"),
    ([{"path": "a"}, {"path": "a/b"}], "a file and as a folder"),
    ([{"path": "a", "mode": 0o4755}], "bad mode"),
    ([{"path": "a", "size": -1}], "bad size"),
    ([{"path": "a", "digest": "sha256:" + "../" * 21 + "x"}], "digest"),
    ([{"path": "x" * 256}], "longer than 255"),
])
def test_manifest_parsing_refuses_hostile_entries(entries: list[dict[str, object]], why: str) -> None:
    good = {"digest": str(Digest.of_bytes(b"")), "size": 0, "mode": 0o644}
    body = {"entries": [{**good, **e} for e in entries], "kind": KIND}
    with pytest.raises(IntegrityError, match=why):
        Manifest.from_bytes(json.dumps(body).encode())


def test_cli_names_the_hostile_lock_key_in_one_line(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "shipyard.yaml").write_text("version: 1\n")
    (proj / "f.txt").write_text("x")
    shipyard("data", "add", "f.txt", env=cli_env(), cwd=proj)
    lock = (proj / "shipyard.lock").read_text().replace("f.txt:", "../escaped:")
    (proj / "shipyard.lock").write_text(lock)
    done = shipyard("data", "checkout", "--force", env=cli_env(), cwd=proj, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "'../escaped'" in done.stderr
    assert not (tmp_path / "escaped").exists()


# -- the property: whatever the paths, nothing around the sandbox changes -----------------------

COMPONENTS = st.sampled_from(["..", ".", "", "a", "b", "data", "link", "ln", "outside", "x.pth", "victim",
                              "x" * 300, "n\0ul", "\udcff\udcfe", "é", "~", "\\..\\"])
PATHS = st.one_of(
    st.lists(COMPONENTS, min_size=1, max_size=6).map("/".join),
    st.lists(COMPONENTS, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.text(min_size=0, max_size=40),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape")),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(PATHS, min_size=1, max_size=3), inner=st.lists(PATHS, min_size=1, max_size=4),
       absolute=st.booleans(), force=st.booleans())
def test_hostile_paths_never_touch_anything_outside(keys: list[str], inner: list[str], absolute: bool,
                                                    force: bool) -> None:
    with sandbox() as (base, ws):
        if absolute:
            keys = [str(base / "outside" / k) for k in keys]
            inner = [str(base / "outside" / p) for p in inner]
        top = hostile_manifest(ws, inner)
        content = Digest.of_bytes(b"evil")
        lock = Lock(data={k: (PathEntry(top, 4, len(inner)) if i % 2 else PathEntry(content, 4))
                          for i, k in enumerate(keys)})
        for action in (lambda: data.checkout(ws, lock, force=force),
                       lambda: data.status(ws, lock),
                       lambda: materialize(ws.store, top, ws.root / "model"),
                       lambda: ws.store.put_ref(keys[0], b"evil"),
                       lambda: ws.store.get_ref(keys[0])):
            with contextlib.suppress(ShipyardError):
                action()


def test_conflicts_still_protect_unsaved_work() -> None:
    with sandbox() as (_base, ws):
        (ws.root / "data" / "f.txt").write_text("v1")
        lock = Lock()
        lock.data.update([data.store_path(ws, ws.root / "data" / "f.txt")])
        (ws.root / "data" / "f.txt").write_text("unsaved")
        with pytest.raises(ConflictError):
            data.checkout(ws, lock)
        assert (ws.root / "data" / "f.txt").read_text() == "unsaved"
