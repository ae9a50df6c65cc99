"""gc of a store shared by many machines: one gc at a time, and never an object a writer is about to record.

A "machine" is its own SHIPYARD_HOME (its own cache) sharing one metadata database and one S3 bucket
(moto). Objects are aged with gc's ``now=`` rather than by sleeping: with ``now`` two days ahead, every
unreferenced object is old enough to go, so only the locks protect what a writer has stored and not yet
recorded.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import load_settings
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.maintenance import GcReport, gc
from shipyard.errors import ConflictError
from shipyard.interfaces.cli.store import known_manifests, referenced
from shipyard.wiring import Services, build, object_stats
from tests.conftest import cli_env, make_bucket, shipyard

DAY = 24 * 3600.0
LATER = 2 * DAY  # gc's ``now`` ahead of the clock: every unreferenced object counts as old
ACTOR = "team@ci"


class Constant:
    """A model for the python flavor: predicts its constant."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, rows: list[Any]) -> list[int]:
        return [self.value for _ in rows]


def machine_env(root: Path, name: str, db_url: str, store: str, endpoint: str | None) -> dict[str, str]:
    env = {"SHIPYARD_HOME": str(root / name / ".shipyard"), "SHIPYARD_DB_URL": db_url, "SHIPYARD_STORE": store,
           "SHIPYARD_ACTOR": ACTOR}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def machine(root: Path, name: str, db_url: str, store: str, endpoint: str | None = None) -> Services:
    (root / name).mkdir(exist_ok=True)
    env = machine_env(root, name, db_url, store, endpoint)
    return build(load_settings(env, root / name, anywhere=True), root / name)


@pytest.fixture
def s3_store(s3_endpoint: str) -> tuple[str, str]:
    """``(store URL, endpoint)``: a new bucket on the session's moto server."""
    return f"s3://{make_bucket(s3_endpoint)}/store", s3_endpoint


@pytest.fixture
def two(tmp_path: Path, db_url: str, s3_store: tuple[str, str]) -> Iterator[tuple[Services, Services]]:
    """Machines A and B: one database, one bucket, two homes and caches."""
    store, endpoint = s3_store
    a = machine(tmp_path, "a", db_url, store, endpoint)
    b = machine(tmp_path, "b", db_url, store, endpoint)
    yield a, b
    a.close()
    b.close()


def collect(svc: Services, now: float | None = None, grace: float = DAY,
            writers_lock: Callable[[bool], AbstractContextManager[None]] | None = None) -> GcReport:
    """gc as `shipyard store gc` runs it (without git history): both locks, a second look before deleting."""
    manifests, _, _ = known_manifests(svc)
    return gc(svc.store, referenced(svc), grace, now=now, manifests=manifests, gc_lock=svc.meta.gc_lock,
              writers_lock=writers_lock or svc.meta.writers_lock,
              references=lambda: (referenced(svc), known_manifests(svc)[0]), stats=object_stats(svc.store))


def upstream_has(svc: Services, digest: Digest) -> bool:
    return digest in {d for d, _, _ in svc.store.iter_objects()}


def saved_model(folder: Path, value: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(Constant(value)))
    (folder / "shipyard-model.json").write_text(json.dumps({
        "format": "shipyard.model/v1", "flavor": "python", "signature": {},
        "flavor_meta": {"file": "model.pkl", "class": f"{Constant.__module__}.Constant"}}))
    return folder


@contextmanager
def watched(lock: Callable[[bool], AbstractContextManager[None]], queued: threading.Event,
            acquired: threading.Event, exclusive: bool) -> Iterator[None]:
    """``lock(exclusive)``, saying when it is asked for and when it is held (the lock itself is the real one)."""
    queued.set()
    with lock(exclusive):
        acquired.set()
        yield


def test_a_second_gc_is_refused_while_one_collects(two: tuple[Services, Services]) -> None:
    a, b = two
    orphan = a.store.put_bytes(b"stored, never recorded")
    with a.meta.gc_lock(), pytest.raises(ConflictError, match="another `shipyard store gc` is collecting"):
        collect(b, now=time.time() + LATER)
    assert upstream_has(b, orphan)  # nothing removed
    assert collect(b, now=time.time() + LATER).removed == [str(orphan)]  # once the first is done, it collects


def test_registration_holds_off_gc_deletion_until_its_version_is_recorded(
        two: tuple[Services, Services], tmp_path: Path) -> None:
    a, b = two
    assert a.registry.writing == a.meta.writers_lock  # the store is shared: writers take the lock
    folder = saved_model(tmp_path / "model", 7)
    # the version's files are already in the store, unreferenced (an earlier, abandoned attempt): old for gc
    reused = {a.store.put_bytes((folder / name).read_bytes()) for name in ("model.pkl", "shipyard-model.json")}
    orphan = a.store.put_bytes(b"an object nothing will reference")

    storing, resume = threading.Event(), threading.Event()

    def paused(_: int) -> None:  # A has stored the files and not yet recorded the version
        storing.set()
        resume.wait(30)

    registered: list[Any] = []
    writer = threading.Thread(target=lambda: registered.append(
        a.registry.register("shared", folder, progress=paused, trust_as_registrant=True)))
    writer.start()
    assert storing.wait(30)

    queued, acquired = threading.Event(), threading.Event()
    reports: list[GcReport] = []
    collector = threading.Thread(target=lambda: reports.append(collect(
        b, now=time.time() + LATER,
        writers_lock=lambda exclusive: watched(b.meta.writers_lock, queued, acquired, exclusive))))
    collector.start()
    try:
        assert queued.wait(30)  # phase 1 is done: gc now waits to delete
        time.sleep(0.5)
        assert not acquired.is_set() and collector.is_alive()  # held off by the registration in flight
        assert all(upstream_has(b, d) for d in reused)
    finally:
        resume.set()
        writer.join(30)
        collector.join(60)
    assert registered and reports
    removed = set(reports[0].removed)
    assert str(orphan) in removed
    assert not removed & {str(d) for d in reused}  # recorded by the time gc looked again: kept
    assert b.registry.load("shared@1").predict([[0]]) == [7]  # B's cache never held it: read from S3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the locks are not what this checks
def test_gc_keeps_what_is_referenced_and_removes_what_is_old(two: tuple[Services, Services],
                                                              tmp_path: Path) -> None:
    a, b = two
    mv = a.registry.register("kept", saved_model(tmp_path / "m", 3), trust_as_registrant=True)
    orphan = a.store.put_bytes(b"old and unreferenced")
    report = collect(b)  # with the clock as it is: the orphan is young
    assert report.removed == [] and report.young_unreferenced >= 1
    report = collect(b, now=time.time() + LATER)
    assert report.removed == [str(orphan)]
    assert not upstream_has(b, orphan) and upstream_has(b, mv.manifest_digest)
    assert b.registry.load("kept@1").predict([[0]]) == [3]


def test_an_object_a_writer_reuses_between_gc_phases_is_refreshed_and_kept(tmp_path: Path) -> None:
    """A folder upstream, whose mtimes a test can set (S3 sets LastModified itself): the same ReadThroughStore."""
    from shipyard.adapters.remotes.folder import FolderRemote
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.adapters.stores.shared import ReadThroughStore

    (tmp_path / "up").mkdir()

    def store(name: str) -> ReadThroughStore:
        return ReadThroughStore(LocalObjectStore(tmp_path / name), lambda: FolderRemote(tmp_path / "up"),
                                primary=True)

    a = store("cache-a")
    reused, orphan = a.put_bytes(b"re-used by a writer"), a.put_bytes(b"left alone")
    two_days_ago = time.time() - 2 * DAY
    upstream = FolderRemote(tmp_path / "up")
    for d in (reused, orphan):
        os.utime(upstream.db.local_path(d), (two_days_ago, two_days_ago))

    @contextmanager
    def writer_reuses_first(exclusive: bool) -> Iterator[None]:
        store("cache-w").put_bytes(b"re-used by a writer")  # another process: it sees the old copy, sends it again
        yield

    report = gc(a, [], DAY, writers_lock=writer_reuses_first, stats=a.upstream.stats)
    assert report.removed == [str(orphan)]
    assert time.time() - upstream.stats([reused])[reused][1] < 60  # refreshed: the grace period starts again
    assert report.young_unreferenced == 1


def test_a_store_of_the_projects_own_takes_no_lock(tmp_path: Path) -> None:
    env = {"SHIPYARD_HOME": str(tmp_path / ".shipyard"), "SHIPYARD_DB_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    svc = build(load_settings(env, tmp_path, anywhere=True), tmp_path)
    try:
        assert svc.registry.writing is nullcontext and svc.tracker.writing is nullcontext
    finally:
        svc.close()
    shared = machine(tmp_path, "x", f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "team-objects"))
    try:  # a folder others write to (a shared mount)
        assert shared.tracker.writing == shared.meta.writers_lock
    finally:
        shared.close()


WRITER = """
import sys, time
from sklearn.dummy import DummyClassifier
import shipyard
from shipyard.interfaces.api import _svc

svc = _svc()
record = svc.meta.register_version
def slowly(new):  # a writer that records its version a while after storing its objects: gc's chance to interfere
    time.sleep(0.2)
    return record(new)
svc.meta.register_version = slowly
store = svc.store
for i in range(int(sys.argv[1])):
    with shipyard.start_run(name=f"a{i}"):
        shipyard.log_params({"i": i})
        model = DummyClassifier(strategy="constant", constant=i).fit([[0, 0]] * 2, [i] * 2)
        shipyard.log_model(model, "team", examples=[[0.0, 0.0]])
    print(store.put_bytes(f"stored and never recorded {i}".encode()), flush=True)
"""


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_gc_on_b_while_a_registers_loses_nothing_referenced(tmp_path: Path, db_url: str,
                                                            s3_store: tuple[str, str]) -> None:
    store, endpoint = s3_store
    versions = 6
    env_a = cli_env(**machine_env(tmp_path, "a", db_url, store, endpoint))
    (tmp_path / "a").mkdir()
    b = machine(tmp_path, "b", db_url, store, endpoint)
    try:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(versions)], env=env_a, cwd=tmp_path / "a",
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        removed: set[str] = set()
        passes = 0
        deadline = time.time() + 120
        while writer.poll() is None and time.time() < deadline:
            if b.meta.list_models():  # the database holds A's first version: collect, as hard as gc can
                removed |= set(collect(b, now=time.time() + LATER).removed)
                passes += 1
            time.sleep(0.05)  # leave A the CPU it needs
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err[-2000:]
        removed |= set(collect(b, now=time.time() + LATER).removed)
        assert passes >= 1  # gc ran while A was registering

        orphans = set(out.split())
        assert len(orphans) == versions and orphans <= removed  # gc did collect, all along
        assert [mv.version for mv in b.registry.versions("team")] == list(range(1, versions + 1))
        for v in range(1, versions + 1):
            assert b.registry.load(f"team@{v}").predict([[0.0, 0.0]]).tolist() == [v - 1]
        done = shipyard("store", "verify", env=cli_env(**machine_env(tmp_path, "b", db_url, store, endpoint)),
                        cwd=tmp_path / "b")
        assert "ok:" in done.stdout
    finally:
        b.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_store_gc_command_on_an_s3_store(tmp_path: Path, db_url: str, s3_store: tuple[str, str]) -> None:
    store, endpoint = s3_store
    a = machine(tmp_path, "a", db_url, store, endpoint)
    env = cli_env(**machine_env(tmp_path, "a", db_url, store, endpoint))
    try:
        a.registry.register("m", saved_model(tmp_path / "m", 1), trust_as_registrant=True)
        orphan = a.store.put_bytes(b"unreferenced")

        with a.meta.gc_lock():  # another machine is collecting
            busy = shipyard("store", "gc", "--grace", "0s", "--force-short-grace", env=env, cwd=tmp_path / "a",
                            check=False)
        assert busy.returncode != 0
        assert busy.stderr.strip().count("\n") == 0 and "another `shipyard store gc` is collecting" in busy.stderr
        assert upstream_has(a, orphan)

        short = shipyard("store", "gc", "--grace", "1h", env=env, cwd=tmp_path / "a", check=False)
        assert short.returncode != 0 and "--force-short-grace" in short.stderr and "Traceback" not in short.stderr
        assert upstream_has(a, orphan)

        done = shipyard("store", "gc", "--grace", "0s", "--force-short-grace", env=env, cwd=tmp_path / "a")
        text = " ".join(done.stdout.split())
        assert "removed 1 object(s)" in text
        assert "0 run(s) and 1 model version(s) in the shared database at" in text
        assert "held the database-wide gc lock" in text and "itself in S3" in text
        assert not upstream_has(a, orphan)
    finally:
        a.close()
