from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.errors import IntegrityError, InvalidInputError


def test_digest_is_sha256_of_the_bytes() -> None:
    d = Digest.of_bytes(b"hello")
    assert d.hex == hashlib.sha256(b"hello").hexdigest()
    assert str(d) == f"sha256:{d.hex}"
    assert Digest.parse(str(d)) == d
    assert Digest.parse(d.hex) == d


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:xyz", "sha256:" + "0" * 63, ""])
def test_digest_rejects_malformed_text(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        Digest.parse(bad)


def _entry(path: str, data: bytes, mode: int = 0o644) -> ManifestEntry:
    return ManifestEntry(path, Digest.of_bytes(data), len(data), mode)


def test_manifest_digest_does_not_depend_on_listing_order() -> None:
    a = Manifest.of([_entry("b.txt", b"b"), _entry("a/x.bin", b"x")])
    b = Manifest.of([_entry("a/x.bin", b"x"), _entry("b.txt", b"b")])
    assert a.to_bytes() == b.to_bytes()
    assert a.digest == b.digest
    assert Manifest.from_bytes(a.to_bytes()) == a


def test_manifest_digest_changes_with_content_path_or_mode() -> None:
    base = Manifest.of([_entry("a", b"1")]).digest
    assert Manifest.of([_entry("a", b"2")]).digest != base
    assert Manifest.of([_entry("b", b"1")]).digest != base
    assert Manifest.of([_entry("a", b"1", 0o755)]).digest != base


def test_manifest_refuses_duplicate_paths_and_foreign_json() -> None:
    with pytest.raises(IntegrityError):
        Manifest.of([_entry("a", b"1"), _entry("a", b"2")])
    with pytest.raises(IntegrityError):
        Manifest.from_bytes(b'{"entries": [], "kind": "something-else"}')
    assert Manifest.looks_like(Manifest.of([]).to_bytes())
    assert not Manifest.looks_like(b"plain bytes")


def test_manifest_of_real_folder_round_trips(tmp_path: Path) -> None:
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.core.artifacts.tree import materialize, put_path

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (src / "sub" / "run.sh").chmod(0o755)
    store = LocalObjectStore(tmp_path / "objects")
    stored = put_path(store, src)
    assert stored.is_dir and stored.manifest is not None
    assert [e.path for e in stored.manifest] == ["a.txt", "sub/run.sh"]
    again = put_path(store, src)
    assert again.digest == stored.digest  # a folder is one digest, stable
    out = tmp_path / "out"
    materialize(store, stored.digest, out)
    assert (out / "a.txt").read_text() == "alpha"
    assert (out / "sub" / "run.sh").stat().st_mode & 0o100
