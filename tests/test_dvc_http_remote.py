"""A DVC HTTP remote as a read-only Shipyard remote: ``init --from-dvc`` fetches over real HTTP what is in neither
the workspace nor DVC's cache, shipyard.lock keeps DVC's md5 of each entry, a fresh clone pulls from the remote
byte for byte, a push is refused, and hostile bytes or listings are refused with nothing stored.

The DVC project is made once by the real ``dvc`` (3.67, the side venv of tests/conftest.py) and served by
``http.server`` on loopback; each test works on its own copy.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import shipyard
from shipyard.adapters.remotes.dvc_http import DvcHttpRemote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.stores.shared import ReadThroughStore
from shipyard.config import load_settings
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.artifacts.tree import load_manifest
from shipyard.core.pipelines.runner import read_cache_ref
from shipyard.core.project.loader import load_config
from shipyard.core.workspace.add import add
from shipyard.core.workspace.lockfile import BadEntry, Lock, PathEntry, StageEntry, load_lock, parse_lock
from shipyard.errors import BackendUnavailableError, ConfigError, IntegrityError
from shipyard.wiring import open_named_remote, open_workspace
from shipyard.wiring.from_dvc import convert
from tests.conftest import cli_env, dvc_venv, free_port
from tests.conftest import shipyard as run_shipyard

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
SOME_FOLDER = Digest.of_bytes(b"a folder")  # a made-up manifest digest: a hostile listing is refused before it counts
STAGE_CMD = "python -c \"import time; open('count.txt', 'w').write(str(time.time_ns()))\""

pytestmark = pytest.mark.xdist_group("dvc-http-remote")  # the module's DVC project is made once, on one worker


def env_for() -> dict[str, str]:
    return cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   PYTHONPATH=str(Path(shipyard.__file__).parents[1]), DVC_NO_ANALYTICS="1", **GIT)


def sh(root: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=root, env=env_for(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def files_of(top: Path) -> dict[str, bytes]:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # type: ignore[override]
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/elsewhere/"):  # a hostile server sends the client to another scheme
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on loopback serving a folder (``www/<name>`` is ``http://127.0.0.1:PORT/<name>``)."""
    www = tmp_path_factory.mktemp("www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def dvc_project(served: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A DVC project (a folder with an executable file, a file, one stage) pushed to ``www/good``, whose remote
    is then the HTTP URL; DVC's cache and the data are gone (as in a fresh clone of it). Returns the project
    and its data's bytes."""
    www, url = served
    dvc = str(dvc_venv() / "dvc")
    root = tmp_path_factory.mktemp("dvc") / "project"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("alpha\n" * 100)
    (root / "data" / "sub" / "b.csv").write_text("x,y\n1,2\n")
    (root / "data" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "data" / "run.sh").chmod(0o755)
    (root / "model.bin").write_bytes(hashlib.sha256(b"seed").digest() * 50_000)  # 1.6 MB: streamed
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"count": {"cmd": STAGE_CMD, "deps": ["data"],
                                                                         "outs": ["count.txt"]}}}))
    sh(root, "git", "init", "-q")
    sh(root, dvc, "init", "-q")
    sh(root, dvc, "add", "-q", "data", "model.bin")
    with open(root / ".dvc" / "config", "a") as config:  # what `dvc remote add -d storage FOLDER` writes
        config.write(f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {www / 'good'}\n")
    sh(root, dvc, "repro", "-q")
    sh(root, dvc, "push", "-q")
    data = {**files_of(root / "data"), "model.bin": (root / "model.bin").read_bytes(),
            "count.txt": (root / "count.txt").read_bytes()}
    text = (root / ".dvc" / "config").read_text().replace(str(www / "good"), f"{url}/good")
    (root / ".dvc" / "config").write_text(text)  # what `dvc remote modify storage url URL` writes
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "dvc")
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(root / "data")
    (root / "model.bin").unlink()
    (root / "count.txt").unlink()
    return root, data


@pytest.fixture(scope="module")
def converted(dvc_project: tuple[Path, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DVC project converted by ``init --from-dvc`` (in-process), shipyard.yaml and shipyard.lock committed."""
    root = tmp_path_factory.mktemp("converted") / "project"
    shutil.copytree(dvc_project[0], root, symlinks=True)
    report = convert(root, env_for())
    assert report.remotes["storage"].startswith("read-only HTTP remote http://127.0.0.1/... ")
    assert report.data == {"data": "DVC's HTTP remote (restored into the workspace, as `dvc checkout` does)",
                           "model.bin": "DVC's HTTP remote (not in the workspace: `shipyard data checkout` writes "
                                        "it there)",
                           "count.txt": "DVC's HTTP remote"}
    assert report.stages == {"count": "up to date (from dvc.lock)"}
    assert report.not_carried == []
    sh(root, "git", "add", "shipyard.yaml", "shipyard.lock")
    sh(root, "git", "commit", "-qm", "converted")
    return root


def dvc_md5s(root: Path) -> dict[str, str]:
    """The md5 DVC recorded for each output (its .dvc files and dvc.lock)."""
    out = {}
    for rel in ("data.dvc", "model.bin.dvc"):
        body = yaml.safe_load((root / rel).read_text())
        out[body["outs"][0]["path"]] = body["outs"][0]["md5"]
    for o in yaml.safe_load((root / "dvc.lock").read_text())["stages"]["count"]["outs"]:
        out[o["path"]] = o["md5"]
    return out


def clone(converted: Path, tmp_path: Path, url: str | None = None) -> Path:
    """A git clone of the converted project (an empty store); ``url``: its remote's URL changed to this."""
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(converted), str(root)], check=True, capture_output=True, timeout=60)
    if url is not None:
        body = yaml.safe_load((root / "shipyard.yaml").read_text())
        body["remotes"]["storage"]["url"] = url
        (root / "shipyard.yaml").write_text(yaml.safe_dump(body))
    return root


def test_conversion_fetches_over_http_and_the_lock_keeps_dvcs_md5(
        dvc_project: tuple[Path, dict[str, bytes]], converted: Path, served: tuple[Path, str]) -> None:
    body = yaml.safe_load((converted / "shipyard.yaml").read_text())
    assert body["remotes"] == {"storage": {"url": f"{served[1]}/good", "layout": "dvc"}}
    assert body["default_remote"] == "storage"
    lock = load_lock(converted)
    md5s = dvc_md5s(converted)
    assert md5s["data"].endswith(".dir")
    assert {p: e.dvc_md5 for p, e in lock.data.items()} == {"data": md5s["data"], "model.bin": md5s["model.bin"]}
    assert lock.stages["count"].outs["count.txt"].dvc_md5 == md5s["count.txt"]
    assert lock.data["data"].files == 3
    assert files_of(converted / "data") == {k: dvc_project[1][k] for k in ("a.txt", "run.sh", "sub/b.csv")}
    # DVC 3.67 records no isexec in this .dir (its remote keeps no mode): the converter follows the listing
    assert b"isexec" not in next((served[0] / "good").rglob("*.dir")).read_bytes()
    assert not (converted / "model.bin").exists()
    assert not list((converted / ".shipyard").glob("from-dvc-*"))  # the fetched files were moved into the store


def test_fresh_clone_pulls_every_byte_and_runs_from_the_remote(
        dvc_project: tuple[Path, dict[str, bytes]], converted: Path, tmp_path: Path, served: tuple[Path, str]) -> None:
    root = clone(converted, tmp_path)
    env = env_for()
    run_shipyard("data", "pull", env=env, cwd=root)
    want = dvc_project[1]
    assert files_of(root / "data") == {k: v for k, v in want.items() if k in ("a.txt", "run.sh", "sub/b.csv")}
    assert (root / "model.bin").read_bytes() == want["model.bin"]
    # the stage's output comes from the remote (the lock's entry: DVC keeps no stage-cache refs), not a new run
    done = run_shipyard("run", env=env, cwd=root)
    assert (root / "count.txt").read_bytes() == want["count.txt"], done.stdout
    assert load_lock(root).stages["count"].outs["count.txt"].dvc_md5 is not None

    # a push to it is refused in one line, and nothing on the remote changes
    before = files_of(served[0] / "good")
    done = run_shipyard("data", "push", env=env, cwd=root, check=False)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in done.stderr
    assert "'storage' is a DVC HTTP remote, read-only" in line and "folder or S3 remote" in line
    assert files_of(served[0] / "good") == before

    # a re-run that writes other bytes drops DVC's md5: they are not on DVC's remote
    run_shipyard("run", "--force", "count", env=env, cwd=root)
    assert (root / "count.txt").read_bytes() != want["count.txt"]
    assert load_lock(root).stages["count"].outs["count.txt"].dvc_md5 is None
    assert load_lock(root).data["data"].dvc_md5 is not None


def test_a_read_through_store_fills_its_gaps_from_it(converted: Path, served: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    """Loading an object the local store lacks (a model version's files, say) reads through the remote: a
    folder's manifest is built from its listing and files, then its files are found through that listing."""
    lock = load_lock(converted)
    entries = {e.digest: e for e in lock.data.values()}
    local = LocalObjectStore(tmp_path / "objects")
    remote = DvcHttpRemote(f"{served[1]}/good", "storage", lambda: entries, lambda: local)
    store = ReadThroughStore(local, lambda: remote, primary=False)
    folder = lock.data["data"].digest
    with store.open(folder) as f:
        manifest = Manifest.from_bytes(f.read())
    assert Digest.of_bytes(manifest.to_bytes()) == folder
    for e in manifest:
        local.delete(e.digest)  # a partial store: the manifest is here, its files are not
    for e in manifest:
        with store.open(e.digest) as f:
            assert Digest.of_bytes(f.read()) == e.digest
    with store.open(lock.data["model.bin"].digest) as f:
        assert len(f.read()) == lock.data["model.bin"].size


def test_an_unreachable_remote_is_reported_once(dvc_project: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(dvc_project[0], root, symlinks=True)
    config = root / ".dvc" / "config"
    closed = f"http://127.0.0.1:{free_port()}"
    config.write_text(re.sub(r"http://127\.0\.0\.1:\d+", closed, config.read_text()))
    (root / "dvc.yaml").unlink()  # its stage reads data: without data, no shipyard.yaml (tested in test_from_dvc)
    (root / "dvc.lock").unlink()
    report = convert(root, env_for())
    skipped = dict(report.not_carried)
    assert "cannot be reached" in skipped["remote storage"] and "nothing more is fetched" in skipped["remote storage"]
    assert [w for w, _ in report.not_carried].count("remote storage") == 1
    assert "`dvc fetch` it" in skipped["data"] and "`dvc pull` it" in skipped["model.bin"]
    assert load_lock(root).data == {}


def test_data_add_keeps_dvcs_md5_only_for_the_same_bytes(converted: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(converted, root, symlinks=True)
    ws = open_workspace(load_settings(env_for(), root))
    md5 = load_lock(root).data["data"].dvc_md5
    add(ws, [root / "data"])  # the same bytes: still on DVC's remote
    assert load_lock(root).data["data"].dvc_md5 == md5
    (root / "data" / "a.txt").write_text("changed\n")
    add(ws, [root / "data"])
    assert load_lock(root).data["data"].dvc_md5 is None
    assert "dvc_md5" not in yaml.safe_load((root / "shipyard.lock").read_text())["data"]["data"]


def test_a_swapped_file_is_refused_and_nothing_is_stored(converted: Path, tmp_path: Path,
                                                        served: tuple[Path, str]) -> None:
    www, url = served
    evil = www / "swapped"
    shutil.copytree(www / "good", evil)
    listing = json.loads(next(evil.rglob("*.dir")).read_bytes())
    a = next(e for e in listing if e["relpath"] == "a.txt")
    target = evil / "files" / "md5" / a["md5"][:2] / a["md5"][2:]
    target.chmod(0o644)
    target.write_text("not alpha\n")
    root = clone(converted, tmp_path, f"{url}/swapped")
    done = run_shipyard("data", "pull", env=env_for(), cwd=root, check=False)
    assert done.returncode == 5, done.stdout + done.stderr  # IntegrityError
    assert "\n" not in done.stderr.strip() and "Traceback" not in done.stderr
    assert "a.txt" in done.stderr and "nothing was stored" in done.stderr
    assert not (root / "data").exists() and not (root / "model.bin").exists()
    objects = root / ".shipyard" / "objects"
    digest = hashlib.sha256(b"not alpha\n").hexdigest()
    assert not any(p.name.endswith(digest[2:]) for p in objects.rglob("*")) if objects.exists() else True
    folder = load_lock(root).data["data"].digest
    assert not LocalObjectStore(objects).has(folder) if objects.exists() else True


def _remote_with(www: Path, url: str, name: str, listing: list[dict[str, object]], files: dict[str, bytes],
                 manifest: Digest = SOME_FOLDER) -> tuple[DvcHttpRemote, PathEntry]:
    """A remote at ``www/name`` serving ``listing`` as a folder's .dir and ``files`` by md5, and the entry a lock
    would hold for it (``manifest``: its digest)."""
    raw = json.dumps(listing).encode()
    md5 = hashlib.md5(raw).hexdigest()
    for key, data in {f"{md5}.dir": raw, **{hashlib.md5(b).hexdigest(): b for b in files.values()}}.items():
        path = www / name / "files" / "md5" / key[:2] / key[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    entry = PathEntry(manifest, sum(map(len, files.values())), len(listing), f"{md5}.dir")
    return DvcHttpRemote(f"{url}/{name}", "storage", lambda: {entry.digest: entry}), entry


@pytest.mark.parametrize("relpath", ["../x", "/etc/passwd", "a/../../x"])
def test_a_listing_that_leads_outside_is_refused(served: tuple[Path, str], tmp_path: Path, relpath: str) -> None:
    www, url = served
    body = b"escape\n"
    name = f"escape-{hashlib.md5(relpath.encode()).hexdigest()[:8]}"
    remote, entry = _remote_with(www, url, name, [{"md5": hashlib.md5(body).hexdigest(), "relpath": relpath}],
                                 {relpath: body})
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(IntegrityError, match="refused, nothing was stored") as caught:
        remote.download([entry.digest], store)
    assert "\n" not in str(caught.value)
    assert list(store.iter_objects()) == []
    assert not (tmp_path / "x").exists()


def test_isexec_becomes_the_executable_mode(served: tuple[Path, str], tmp_path: Path) -> None:
    """DVC writes ``isexec`` into a .dir listing where it recorded one: the manifest is built with mode 0o755, as
    the converter builds it from DVC's cache."""
    www, url = served
    files = {"run.sh": b"#!/bin/sh\n", "a.txt": b"a\n"}
    listing = [{"md5": hashlib.md5(b).hexdigest(), "relpath": p, **({"isexec": True} if p == "run.sh" else {})}
               for p, b in files.items()]
    built = Manifest.of([ManifestEntry(p, Digest.of_bytes(b), len(b), 0o755 if p == "run.sh" else 0o644)
                         for p, b in files.items()])
    remote, entry = _remote_with(www, url, "isexec", listing, files, Digest.of_bytes(built.to_bytes()))
    store = LocalObjectStore(tmp_path / "objects")
    remote.download([entry.digest], store)
    assert {e.path: e.mode for e in load_manifest(store, entry.digest)} == {"run.sh": 0o755, "a.txt": 0o644}
    # the same files with another mode are another version: refused, nothing stored
    other, wrong = _remote_with(www, url, "isexec-wrong", [{**i, "isexec": False} for i in listing], files,
                                Digest.of_bytes(built.to_bytes()))
    store = LocalObjectStore(tmp_path / "objects2")
    with pytest.raises(IntegrityError, match=r"not the version shipyard\.lock records"):
        other.download([wrong.digest], store)
    assert list(store.iter_objects()) == []


def test_the_adapter_checks_every_byte_and_is_read_only(converted: Path, served: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    www, url = served
    lock = load_lock(converted)
    entries = {e.digest: e for e in [*lock.data.values(), *lock.stages["count"].outs.values()]}
    model = lock.data["model.bin"]
    store = LocalObjectStore(tmp_path / "objects")
    # a file served longer than the lock's size is cut off as soon as the excess shows
    (www / "long" / "files" / "md5").mkdir(parents=True)
    md5 = model.dvc_md5 or ""
    (www / "long" / "files" / "md5" / md5[:2]).mkdir()
    (www / "long" / "files" / "md5" / md5[:2] / md5[2:]).write_bytes(b"\0" * (model.size + 1))
    remote = DvcHttpRemote(f"{url}/long", "storage", lambda: entries, lambda: store)
    with pytest.raises(IntegrityError, match="at most"):
        remote.download([model.digest], store)
    assert list(store.iter_objects()) == []

    # other bytes of the same size: their digest is not the lock's
    (www / "long" / "files" / "md5" / md5[:2] / md5[2:]).write_bytes(b"\0" * model.size)
    with pytest.raises(IntegrityError, match=r"not the sha256:\w+ shipyard\.lock records"):
        remote.download([model.digest], store)
    assert list(store.iter_objects()) == []

    # a partial pull: the folder's manifest is here, its files are not: they are found through its listing
    remote = DvcHttpRemote(f"{url}/good", "storage", lambda: entries, lambda: store)
    folder = lock.data["data"]
    remote.download([folder.digest], store)
    files = [o for o in store.iter_objects() if o[0] != folder.digest]
    assert len(files) == 3
    for digest, _, _ in files:
        store.delete(digest)
    fresh = DvcHttpRemote(f"{url}/good", "storage", lambda: entries, lambda: store)
    assert fresh.missing([d for d, _, _ in files]) == []
    fresh.download([d for d, _, _ in files], store)
    assert all(store.has(d) for d, _, _ in files)
    assert fresh.missing([Digest.of_bytes(b"unknown")]) == [Digest.of_bytes(b"unknown")]
    assert fresh.get_ref("stage-cache/x") is None

    # a redirect leads only to http(s)
    elsewhere = DvcHttpRemote(f"{url}/elsewhere", "storage", lambda: entries, lambda: store)
    with pytest.raises(BackendUnavailableError, match="not http"):
        elsewhere.download([model.digest], store)

    for refused in (lambda: fresh.upload(store, []), lambda: fresh.put_ref("x", b""),
                    lambda: fresh.delete(model.digest), lambda: fresh.clean_temp(0), fresh.iter_objects):
        with pytest.raises(ConfigError, match="DVC HTTP remote, read-only"):
            refused()


def test_an_http_url_needs_layout_dvc(converted: Path, tmp_path: Path) -> None:
    root = clone(converted, tmp_path)
    body = yaml.safe_load((root / "shipyard.yaml").read_text())
    del body["remotes"]["storage"]["layout"]
    (root / "shipyard.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match=r"add `layout: dvc` to remotes\.storage in shipyard\.yaml") as caught:
        open_named_remote(load_config(root), root, None)
    assert "\n" not in str(caught.value)
    body["remotes"]["storage"] = {"url": "/a/folder", "layout": "dvc"}  # layout: dvc is for http(s) URLs only
    (root / "shipyard.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match="layout: dvc is for a DVC HTTP remote"):
        load_config(root)


# -- shipyard.lock's dvc_md5, in-process -----------------------------------------------------------------------
FILE = PathEntry(Digest.of_bytes(b"f"), 1, None, "0123456789abcdef0123456789abcdef")
FOLDER = PathEntry(Digest.of_bytes(b"d"), 5, 2, "0123456789abcdef0123456789abcdef.dir")


def test_dvc_md5_round_trips_through_the_lock_and_stage_cache_refs() -> None:
    stage = StageEntry(Digest.of_bytes(b"fp"), None, "make", {"in": Digest.of_bytes(b"i")}, {}, {"out": FOLDER})
    lock = Lock(data={"f": FILE, "plain": PathEntry(Digest.of_bytes(b"p"), 1)}, stages={"s": stage})
    again = parse_lock(lock.to_yaml().encode())
    assert again.data == lock.data and again.stages == lock.stages
    assert "dvc_md5" not in lock.data["plain"].to_dict()  # written only when set: other locks are unchanged
    found = read_cache_ref(stage.cache_bytes("s"), stage.cache_key(), "here")
    assert found is not None and found[1] == {"out": FOLDER}
    # the same bytes again keep it; other bytes drop it
    same = PathEntry(FILE.digest, 1)
    assert same.carried(FILE) == FILE
    assert PathEntry(Digest.of_bytes(b"g"), 1).carried(FILE).dvc_md5 is None
    assert same.carried(None) == same


@pytest.mark.parametrize(("entry", "why"), [
    ({"files": None, "dvc_md5": "0123456789ABCDEF0123456789ABCDEF"}, "is not DVC's md5"),
    ({"files": None, "dvc_md5": "../../etc/passwd"}, "is not DVC's md5"),
    ({"files": None, "dvc_md5": 12}, "is not DVC's md5"),
    ({"files": None, "dvc_md5": "0123456789abcdef0123456789abcdef.dir"}, "a folder's ends in .dir"),
    ({"files": 2, "dvc_md5": "0123456789abcdef0123456789abcdef"}, "a folder's ends in .dir"),
])
def test_a_bad_dvc_md5_is_refused_naming_the_field(entry: dict[str, object], why: str) -> None:
    body = {"digest": str(Digest.of_bytes(b"x")), "size": 1, **{k: v for k, v in entry.items() if v is not None}}
    with pytest.raises(BadEntry, match=why) as caught:
        PathEntry.from_dict(body)
    assert "dvc_md5" in str(caught.value)
    text = yaml.safe_dump({"version": 1, "data": {"x": body}})
    with pytest.raises(ConfigError, match="dvc_md5"):
        parse_lock(text.encode())
