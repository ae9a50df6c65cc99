"""A digest is a ``Digest`` inside the code; its text spellings live only at the edges, unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shipyard.adapters.state.sqlite import SqliteStateCache
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.artifacts.tree import put_path
from shipyard.core.pipelines.dag import Stage, StageSpec
from shipyard.core.pipelines.status import Inputs
from shipyard.core.workspace.lockfile import LOCK_FILE, load_lock
from shipyard.errors import IntegrityError

A, B, C, D = ("sha256:" + x * 64 for x in "abcd")
# a shipyard.lock as the version before this change wrote it
OLD_LOCK = (
    "# shipyard.lock: written by shipyard, commit it with your code.\n"
    "# It pins each tracked path and each stage's inputs and outputs by digest.\n"
    "version: 1\ndata:\n"
    f"  data/raw:\n    digest: {A}\n    size: 10\n    files: 2\n"
    f"  notes.txt:\n    digest: {B}\n    size: 3\n"
    f"stages:\n  train:\n    fingerprint: {C}\n    run: r1\n    cmd: python train.py\n"
    f"    deps:\n      data/raw: {A}\n      prep/out: ''\n    params:\n      lr: 0.1\n"
    f"    outs:\n      model:\n        digest: {D}\n        size: 5\n"
)


def test_a_lock_reads_as_digests_and_is_written_back_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(OLD_LOCK)
    lock = load_lock(tmp_path)
    stage = lock.stages["train"]
    assert lock.data["data/raw"].digest == Digest("a" * 64)
    assert stage.fingerprint == Digest("c" * 64)
    assert stage.deps == {"data/raw": Digest("a" * 64), "prep/out": None}  # '' = not produced yet
    assert stage.outs["model"].digest == Digest("d" * 64)
    assert lock.digests() == {Digest(x * 64) for x in "abd"}
    assert lock.to_yaml() == OLD_LOCK
    assert stage.cache_key() == "stage-cache/" + "c" * 64
    assert json.loads(stage.cache_bytes("train")) == {"outs": {"model": {"digest": D, "size": 5}}, "run": "r1",
                                                      "stage": "train"}


def test_a_stage_fingerprint_is_the_one_earlier_versions_computed() -> None:
    """The stage cache is keyed by it: a changed spelling would miss every cached result."""
    stage = Stage("train", StageSpec("python train.py", deps=("data", "prep/out"), outs=("model",),
                                     metrics=("m.json",)),
                  ("data", "prep/out"), ("model",), ("m.json",), frozenset({"prep"}))
    now = Inputs({"data": Digest("1" * 64), "prep/out": None}, {"lr": 0.1}, {"SEED": "1"})
    assert now.fingerprint(stage) == Digest("a7bc8581d5a24b8f7afe31a6775496b37136bc22da97340fc6b754b482562686")


def test_the_stat_cache_gives_digests_and_a_damaged_row_costs_a_rehash(tmp_path: Path) -> None:
    state_file = tmp_path / "state.db"
    state = SqliteStateCache(state_file)
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n")
    st = data.stat()
    state.remember([(str(data), st.st_ino, st.st_size, st.st_mtime_ns, Digest.of_bytes(b"a,b\n"))])
    assert state.lookup([str(data)]) == {str(data): (st.st_ino, st.st_size, st.st_mtime_ns, Digest.of_bytes(b"a,b\n"))}
    assert state.under(str(tmp_path)) == state.lookup([str(data)])
    with sqlite3.connect(state_file) as db:  # a row cut short: not a digest, so not believed
        db.execute("UPDATE state SET digest = 'deadbeef'")
    assert state.lookup([str(data)]) == {}
    assert state.under(str(tmp_path)) == {}
    stored = put_path(LocalObjectStore(tmp_path / "store"), data, state=state)
    assert stored.digest == Digest.of_bytes(b"a,b\n")
    assert state.lookup([str(data)])[str(data)][3] == stored.digest  # re-hashed and remembered again


def test_the_tree_cache_keeps_its_sha256_text_and_gives_a_digest(tmp_path: Path) -> None:
    state_file = tmp_path / "state.db"
    state = SqliteStateCache(state_file)
    state.remember_tree("/p/data", "sig", Digest("e" * 64))
    with sqlite3.connect(state_file) as db:
        assert db.execute("SELECT digest FROM trees").fetchone() == ("sha256:" + "e" * 64,)
    assert state.tree("/p/data") == ("sig", Digest("e" * 64))
    with sqlite3.connect(state_file) as db:
        db.execute("UPDATE trees SET digest = 'garbage'")
    assert state.tree("/p/data") is None  # as if unknown: the folder is scanned again


def test_the_status_index_of_a_manifest_is_digests_and_refuses_a_bad_one() -> None:
    m = Manifest.of([ManifestEntry("a.txt", Digest.of_bytes(b"a"), 1, 0o644),
                     ManifestEntry("b/c.txt", Digest.of_bytes(b"c"), 1, 0o755)])
    assert Manifest.index(m.to_bytes()) == {e.path: e.digest for e in m}
    bad = m.to_bytes().replace(str(Digest.of_bytes(b"a")).encode(), b"sha256:" + b"z" * 50)
    with pytest.raises(IntegrityError):
        Manifest.index(bad)
