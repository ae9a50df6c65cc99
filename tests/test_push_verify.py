"""`data push` reports only what it did: on a folder remote and on a real S3-API server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from shipyard.adapters.remotes import open_remote
from shipyard.adapters.remotes.folder import FolderRemote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest, hash_chunks
from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.core.workspace import data, sync
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import Lock
from shipyard.errors import IntegrityError, NotFoundError
from shipyard.ports import NoStateCache, Remote
from tests.conftest import cli_env, make_bucket, shipyard

BIG = 9 * 1024 * 1024  # above the S3 remote's single-put size: streamed as a multipart upload


@pytest.fixture(params=["folder", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "folder":
        (tmp_path / "remote").mkdir()
        return open_remote(RemoteSpec(url=str(tmp_path / "remote")), tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_remote(RemoteSpec(url=f"s3://{make_bucket(endpoint)}/p", endpoint_url=endpoint), tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "small.csv").write_text("id,value\n1,2\n")
    (root / "data" / "big.bin").write_bytes(os.urandom(BIG))
    return Workspace(root, LocalObjectStore(root / ".shipyard" / "objects"), NoStateCache())


def tracked(ws: Workspace) -> Lock:
    lock = Lock()
    lock.data.update([data.store_path(ws, ws.root / "data")])
    return lock


def put_on_remote(remote: Remote, d: Digest, body: bytes) -> None:
    """Damage the remote's copy of ``d`` behind Shipyard's back."""
    if isinstance(remote, FolderRemote):
        path = remote.root / "sha256" / d.hex[:2] / d.hex[2:]
        path.parent.mkdir(exist_ok=True)
        if path.exists():
            path.chmod(0o644)  # published objects are read-only
        path.write_bytes(body)
    else:
        import obstore

        obstore.put(remote._store, f"sha256/{d.hex[:2]}/{d.hex[2:]}", body)  # type: ignore[attr-defined]


def corrupt_local(ws: Workspace, d: Digest, body: bytes) -> None:
    assert isinstance(ws.store, LocalObjectStore)
    path = ws.store.local_path(d)
    path.chmod(0o644)
    path.write_bytes(body)


SMALL_DIGEST = Digest.of_bytes(b"id,value\n1,2\n")


def test_a_missing_local_object_is_an_error_naming_it(ws: Workspace, remote: Remote) -> None:
    lock = tracked(ws)
    ws.store.delete(SMALL_DIGEST)
    with pytest.raises(NotFoundError, match=r"data/small.csv \(sha256:"):
        sync.push(ws, lock, remote)
    assert remote.sizes([e.digest for e in lock.data.values()]) == {}  # nothing was sent


def test_a_damaged_remote_object_is_sent_again(ws: Workspace, remote: Remote) -> None:
    lock = tracked(ws)
    assert sync.push(ws, lock, remote).transferred == 3
    put_on_remote(remote, SMALL_DIGEST, b"truncated")  # wrong size: always caught
    report = sync.push(ws, lock, remote)
    assert (report.transferred, report.replaced) == (1, 1)
    assert hash_chunks(remote.read(SMALL_DIGEST)) == SMALL_DIGEST

    put_on_remote(remote, SMALL_DIGEST, b"id,value\n6,6\n")  # same size, other bytes: caught by --verify
    assert sync.push(ws, lock, remote).transferred == 0
    report = sync.push(ws, lock, remote, verify=True)
    assert (report.transferred, report.replaced, report.verified) == (1, 1, True)
    assert hash_chunks(remote.read(SMALL_DIGEST)) == SMALL_DIGEST
    assert sync.push(ws, lock, remote, verify=True).transferred == 0


@pytest.mark.parametrize("which", ["small", "big"])
def test_a_corrupt_local_object_is_never_uploaded(ws: Workspace, remote: Remote, which: str) -> None:
    lock = tracked(ws)
    path = ws.root / "data" / ("small.csv" if which == "small" else "big.bin")
    d = Digest.of_bytes(path.read_bytes())
    rotten = bytearray(path.read_bytes())
    rotten[len(rotten) // 2] ^= 1  # same size, one bit flipped
    corrupt_local(ws, d, bytes(rotten))
    with pytest.raises(IntegrityError, match=f"local object {d} is corrupt"):
        sync.push(ws, lock, remote)
    assert d not in remote.sizes([d])
    if isinstance(remote, FolderRemote):
        assert list((remote.root / "tmp").iterdir()) == []  # and no temp file stays behind


def test_data_gc_remote_removes_what_interrupted_uploads_left(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "shipyard.yaml").write_text(f"version: 1\nremotes:\n  origin:\n    url: {tmp_path / 'remote'}\n"
                                        "default_remote: origin\n")
    (tmp_path / "remote").mkdir()
    FolderRemote(tmp_path / "remote")
    old = tmp_path / "remote" / "tmp" / ".sy-00001-0123456789.tmp"
    young = tmp_path / "remote" / "tmp" / ".sy-00002-0123456789.tmp"
    for f in (old, young):
        f.write_bytes(b"half an upload")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    done = shipyard("data", "gc", "--remote-temp", "--grace", "1h", "--json", env=cli_env(), cwd=proj)
    assert json.loads(done.stdout)["temp_removed"] == 1
    assert not old.exists() and young.exists()


def test_push_cli_reports_a_missing_object_in_one_line(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "a.csv").write_text("a\n")
    (tmp_path / "remote").mkdir()
    (proj / "shipyard.yaml").write_text(f"version: 1\nremotes:\n  origin:\n    url: {tmp_path / 'remote'}\n"
                                        "default_remote: origin\n")
    shipyard("data", "add", "data", env=cli_env(), cwd=proj)
    store = LocalObjectStore(proj / ".shipyard" / "objects")
    store.delete(Digest.of_bytes(b"a\n"))
    done = shipyard("data", "push", env=cli_env(), cwd=proj, check=False)
    assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "data/a.csv" in done.stderr and "nothing was pushed" in done.stderr
    assert "already there" not in done.stdout
