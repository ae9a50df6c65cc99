"""The Remote contract, on a folder and on a real S3-API server over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.adapters.remotes import open_remote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.errors import IntegrityError, NotFoundError
from shipyard.ports import Remote
from tests.conftest import make_bucket


@pytest.fixture(params=["folder", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "folder":
        return open_remote(RemoteSpec(url=str(tmp_path / "remote")), tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_remote(RemoteSpec(url=f"s3://{make_bucket(endpoint)}/team/project", endpoint_url=endpoint),
                       tmp_path)


def test_round_trip_through_the_remote(remote: Remote, tmp_path: Path) -> None:
    here = LocalObjectStore(tmp_path / "here")
    blobs = [os.urandom(n) for n in (0, 10, 70_000, 9 * 1024 * 1024)]
    digests = [here.put_bytes(b) for b in blobs]
    assert remote.missing(digests) == digests
    remote.upload(here, digests[:2])
    assert remote.missing(digests) == digests[2:]
    remote.upload(here, digests[2:])
    assert remote.missing(digests) == []

    there = LocalObjectStore(tmp_path / "there")
    remote.download(digests, there)
    for d, b in zip(digests, blobs, strict=True):
        with there.open(d) as f:
            assert f.read() == b


def test_refs_are_named_values(remote: Remote) -> None:
    assert remote.get_ref("stage-cache/abc") is None
    remote.put_ref("stage-cache/abc", b'{"x": 1}')
    assert remote.get_ref("stage-cache/abc") == b'{"x": 1}'


def test_a_tampered_remote_object_never_enters_the_store(remote: Remote, tmp_path: Path) -> None:
    here = LocalObjectStore(tmp_path / "here")
    d = here.put_bytes(b"the real weights")
    remote.upload(here, [d])
    evil = LocalObjectStore(tmp_path / "evil")
    fake = evil.put_bytes(b"poisoned weights")
    # put the poisoned bytes under the real name on the remote
    if hasattr(remote, "root"):
        target = remote.root / "sha256" / d.hex[:2] / d.hex[2:]
        target.chmod(0o644)  # published objects are read-only
        target.write_bytes(b"poisoned weights")
    else:
        import obstore

        obstore.put(remote._store, f"sha256/{d.hex[:2]}/{d.hex[2:]}", b"poisoned weights")  # type: ignore[attr-defined]
    there = LocalObjectStore(tmp_path / "there")
    with pytest.raises(IntegrityError):
        remote.download([d], there)
    assert not there.has(d) and not there.has(fake)
    assert list((tmp_path / "there" / "tmp").iterdir()) == []


def test_missing_objects_are_reported(remote: Remote, tmp_path: Path) -> None:
    there = LocalObjectStore(tmp_path / "there")
    ghost = Digest.of_bytes(b"never uploaded")
    assert remote.missing([ghost]) == [ghost]
    with pytest.raises(NotFoundError):
        remote.download([ghost], there)
