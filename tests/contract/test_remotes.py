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
        (tmp_path / "remote").mkdir()
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


def _replace_on_remote(remote: Remote, key: str, body: bytes, sparse: int = 0) -> None:
    """Put ``body`` (or a sparse file of ``sparse`` bytes on a folder) under ``key``, as a hostile writer would."""
    if hasattr(remote, "root"):
        target = remote.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.chmod(0o644)
        with open(target, "wb") as f:
            f.write(body)
            if sparse:
                f.truncate(sparse)
    else:
        import obstore

        obstore.put(remote._store, key, body + b"\0" * sparse)  # type: ignore[attr-defined]


def test_an_oversized_remote_object_is_refused_before_it_is_copied(remote: Remote, tmp_path: Path) -> None:
    """Finding 10c: the download stops at the expected size, so a hostile remote cannot fill the disk."""
    here = LocalObjectStore(tmp_path / "here")
    d = here.put_bytes(b"6bytes")
    remote.upload(here, [d])
    big = 200 * 1024 * 1024 if hasattr(remote, "root") else 3 * 1024 * 1024
    _replace_on_remote(remote, f"sha256/{d.hex[:2]}/{d.hex[2:]}", b"", sparse=big)
    there = LocalObjectStore(tmp_path / "there")
    with pytest.raises(IntegrityError, match="at most 6"):
        remote.download([d], there, sizes={d: 6})
    assert not there.has(d)
    assert list((tmp_path / "there" / "tmp").iterdir()) == []


def test_a_folder_remote_never_follows_a_link_for_an_object_or_a_ref(tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    remote = open_remote(RemoteSpec(url=str(tmp_path / "remote")), tmp_path)
    here = LocalObjectStore(tmp_path / "here")
    d = here.put_bytes(b"6bytes")
    remote.upload(here, [d])
    obj = tmp_path / "remote" / "sha256" / d.hex[:2] / d.hex[2:]
    obj.unlink()
    obj.symlink_to("/dev/zero")
    there = LocalObjectStore(tmp_path / "there")
    with pytest.raises(IntegrityError, match="symbolic link"):
        remote.download([d], there)  # without a size bound too: the link itself is refused
    assert remote.sizes([d]) == {d: -1}  # so push sends it again, replacing the link
    remote.upload(here, [d])
    remote.download([d], there, sizes={d: 6})
    assert there.has(d)
    (tmp_path / "remote" / "refs" / "stage-cache").mkdir(parents=True)
    (tmp_path / "remote" / "refs" / "stage-cache" / "abc").symlink_to("/dev/zero")
    with pytest.raises(IntegrityError, match="ref stage-cache/abc"):
        remote.get_ref("stage-cache/abc")


def test_a_huge_ref_is_refused_with_one_line(remote: Remote) -> None:
    """Finding 10: a ref is small; a remote (or store) ref over 1 MiB is damaged or hostile, never read whole."""
    _replace_on_remote(remote, "refs/stage-cache/big", b"{", sparse=2 * 1024 * 1024)
    with pytest.raises(IntegrityError, match="larger than 1024 KiB") as info:
        remote.get_ref("stage-cache/big")
    assert "\n" not in str(info.value)
    remote.put_ref("stage-cache/ok", b"x" * 1024 * 1024)  # exactly the limit is fine
    assert remote.get_ref("stage-cache/ok") == b"x" * 1024 * 1024


def test_a_relative_folder_remote_is_named_plainly_in_messages(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "shared").mkdir()
    remote = open_remote(RemoteSpec(url="../shared"), tmp_path / "proj", "origin")
    assert remote.url == str((tmp_path / "shared").resolve())
