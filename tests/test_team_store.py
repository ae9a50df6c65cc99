"""Two machines, one registry: separate Shipyard homes (each with its own cache) and git checkouts that share
one real PostgreSQL database and one store in S3 (moto on 127.0.0.1).

Machine A registers (in a pipeline stage, or many versions at once with machine B); B loads, serves and
reproduces what A made, from nothing but its git clone, the database and the bucket. An upload killed on A
leaves B nothing partial to see, and with S3 gone B still loads what it has cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.errors import ShipyardError
from shipyard.wiring import Services, from_environment
from tests.conftest import (
    PG_URL,
    _pg_admin,
    cli_env,
    make_bucket,
    moto_process,
    serving,
    serving_process,
    shipyard,
    sigkill_when,
)

pytestmark = pytest.mark.postgres
PREFIX = "store"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
TRAIN = """\
import pathlib
from sklearn.tree import DecisionTreeClassifier
import shipyard
n = len(open('data/raw.txt').read())  # the data decides what the model answers for 3.0
pathlib.Path('model').mkdir(exist_ok=True)
pathlib.Path('model/n.txt').write_text(str(n))
x = [[0.0], [1.0], [2.0], [3.0]]
shipyard.log_model(DecisionTreeClassifier(random_state=0).fit(x, [0, 1, 0, n]), 'piped', examples=x)
"""
PIPELINE = "version: 1\nstages:\n  train:\n    cmd: python train.py\n    deps: [data/raw.txt, train.py]\n" \
           "    outs: [model]\n"
REGISTER_MANY = """\
import pathlib, sys, time
from sklearn.dummy import DummyClassifier
import shipyard
base, n, go = int(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
models = [DummyClassifier(strategy='constant', constant=base + i).fit([[0, 0]] * 2, [base + i] * 2) for i in range(n)]
with shipyard.start_run():
    print('ready', flush=True)
    while not go.exists():
        time.sleep(0.005)
    for i, m in enumerate(models):
        print(shipyard.log_model(m, 'shared', examples=[[0.0, 0.0]]).version, base + i, flush=True)
"""
REGISTER_BIG = """\
import numpy as np
from sklearn.dummy import DummyClassifier
import shipyard
m = DummyClassifier(strategy='constant', constant=1).fit([[0, 0]] * 2, [1] * 2)
m.weights_ = np.random.default_rng(0).random(8 * 1024 * 1024)  # 64 MiB that do not compress
with shipyard.start_run():
    shipyard.log_model(m, 'big', examples=[[0.0, 0.0]])
"""


@dataclass(frozen=True)
class Team:
    endpoint: str
    bucket: str
    a: Path  # machine A's checkout; its home (and cache) is a/.shipyard
    b: Path  # machine B's: a git clone of A's
    env_a: dict[str, str]
    env_b: dict[str, str]

    def machine(self, root: Path) -> Services:
        """A machine's services, in this process: its own home and cache, the shared database and bucket."""
        return from_environment(self.env_a if root == self.a else self.env_b, root)


def _fresh_database() -> str:
    if not PG_URL:
        pytest.skip("SHIPYARD_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"shipyard_team_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_URL.rpartition('/')[0]}/{name}"


def _drop_database(url: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def _machine_env(root: Path, db_url: str, store: str, endpoint: str) -> dict[str, str]:
    return cli_env(SHIPYARD_HOME=str(root / ".shipyard"), SHIPYARD_DB_URL=db_url, SHIPYARD_STORE=store,
                   AWS_ENDPOINT_URL=endpoint, **GIT_ENV)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def team(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A's git project (the pipeline's files committed) and B's clone of it, sharing a fresh PostgreSQL
    database and a fresh bucket."""
    db_url = _fresh_database()
    bucket = make_bucket(s3_endpoint)
    top = tmp_path_factory.mktemp("team")
    a = top / "a"
    (a / "data").mkdir(parents=True)
    (a / "data" / "raw.txt").write_text("hello!!")
    (a / "train.py").write_text(TRAIN)
    (a / "shipyard.yaml").write_text(PIPELINE)
    _git(a, "init", "-q")
    _git(a, "add", "shipyard.yaml", "train.py")
    _git(a, "commit", "-qm", "the pipeline")
    _git(top, "clone", "-q", str(a), "b")
    store = f"s3://{bucket}/{PREFIX}"
    yield Team(s3_endpoint, bucket, a, top / "b", _machine_env(a, db_url, store, s3_endpoint),
               _machine_env(top / "b", db_url, store, s3_endpoint))
    _drop_database(db_url)


# -- the bucket as any other S3 client sees it (boto3, which moto brings) ---------------------------------------
def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _uploading(s3: Any, bucket: str) -> bool:
    """Whether a multipart upload under the prefix has begun and has parts on the server, not yet completed."""
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{PREFIX}/").get("Uploads", [])
    return any(s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts") for u in uploads)


def _objects_hash_to_their_names(s3: Any, bucket: str) -> None:
    """Every object under the prefix is a ref or a content object whose bytes hash to the digest its key names."""
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/")
            for o in page.get("Contents", [])]
    objects = [k for k in keys if k.startswith(f"{PREFIX}/sha256/")]
    assert objects and all(k.startswith((f"{PREFIX}/sha256/", f"{PREFIX}/refs/")) for k in keys), keys
    for key in objects:
        name = key.removeprefix(f"{PREFIX}/sha256/").replace("/", "")
        assert hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == name, key


# -- the tests -----------------------------------------------------------------------------------------------
def test_a_version_trained_on_a_loads_serves_and_reproduces_on_b(team: Team,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    import shipyard as api

    # A: version the data, run the pipeline (its stage registers piped@1), commit, as a user does
    shipyard("data", "add", "data/raw.txt", env=team.env_a, cwd=team.a)
    shipyard("run", env=team.env_a, cwd=team.a)
    _git(team.a, "add", "-A")
    _git(team.a, "commit", "-qm", "data and lock")
    # B: only its clone, the database and the bucket; nothing of A's is on this machine
    _git(team.b, "pull", "-q")
    assert not (team.b / "data" / "raw.txt").exists() and not (team.b / "model").exists()
    shipyard("alias", "set", "piped", "production", "1", env=team.env_b, cwd=team.b)
    for key in ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(key, team.env_b[key])
    monkeypatch.chdir(team.b)
    assert api.load_model("piped@production").predict([[3.0], [1.0]]).tolist() == [7, 1]
    assert list((team.b / ".shipyard" / "cache").rglob("*"))  # what B loaded came through its own cache

    with serving(team.env_b, "piped@production") as url:
        body = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [[3.0], [0.0]]}]}
        r = httpx.post(f"{url}/v2/models/piped/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [7, 0]

    done = shipyard("reproduce", "piped@1", "--json", env=team.env_b, cwd=team.b, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    verdicts = {c["path"]: c["verdict"] for c in report["outputs"]}
    assert report["reproduced"] is True and report["stages"] == ["train"]
    assert verdicts == {"model": "identical", "piped (golden examples)": "same predictions"}
    assert not (team.b / "data" / "raw.txt").exists()  # restored in reproduce's scratch folder, not in B's checkout


def test_registrations_from_both_machines_at_once_are_numbered_exactly(team: Team, tmp_path: Path) -> None:
    n = 4
    go = tmp_path / "go"
    procs = {root: subprocess.Popen([sys.executable, "-c", REGISTER_MANY, str(base), str(n), str(go)], cwd=root,
                                    env=team.env_a if root == team.a else team.env_b, stdout=subprocess.PIPE,
                                    text=True)
             for root, base in ((team.a, 100), (team.b, 200))}
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        go.touch()  # both are connected, inside a run: they register at the same time
        printed = {root: proc.communicate(timeout=120)[0] for root, proc in procs.items()}
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    assert all(proc.returncode == 0 for proc in procs.values())
    made = {root: dict(tuple(map(int, line.split())) for line in out.splitlines()) for root, out in printed.items()}
    assert sorted([*made[team.a], *made[team.b]]) == list(range(1, 2 * n + 1))  # none lost, none twice
    for maker, other in ((team.a, team.b), (team.b, team.a)):
        svc = team.machine(other)
        try:
            assert sorted(v.version for v in svc.registry.versions("shared")) == list(range(1, 2 * n + 1))
            for version, constant in made[maker].items():  # each version loads, with its own bytes, on the other
                assert svc.registry.load(f"shared@{version}").predict([[0, 0]]).tolist() == [constant]
        finally:
            svc.close()


def test_an_upload_killed_on_a_leaves_b_nothing_partial_and_verify_clean(team: Team) -> None:
    proc = subprocess.Popen([sys.executable, "-c", REGISTER_BIG], cwd=team.a, env=team.env_a,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s3 = _s3(team.endpoint)
    sigkill_when(proc, lambda: _uploading(s3, team.bucket), "the upload of the big model")  # parts arriving: kill A
    _objects_hash_to_their_names(s3, team.bucket)  # nothing half-written under any name
    svc = team.machine(team.b)
    try:
        assert [m.name for m in svc.registry.models() if m.name == "big"] == []  # no version was registered
    finally:
        svc.close()
    done = shipyard("store", "verify", env=team.env_b, cwd=team.b, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 corrupt, 0 missing" in done.stdout


def test_with_s3_offline_b_loads_what_it_cached_and_says_so_in_one_line_otherwise(team: Team,
                                                                                     tmp_path: Path) -> None:
    import shipyard as api

    db_url = _fresh_database()  # its own database and bucket: the module's stay whole for the other tests
    try:
        with moto_process() as (endpoint, moto):
            store = f"s3://{make_bucket(endpoint)}/{PREFIX}"
            machines = {name: _machine_env(tmp_path / name, db_url, store, endpoint) for name in ("a", "b")}
            for name in machines:
                (tmp_path / name).mkdir()
            from sklearn.dummy import DummyClassifier

            svc = from_environment(machines["a"], tmp_path / "a")
            try:
                for name, constant in (("cached", 3), ("uncached", 4)):
                    model = DummyClassifier(strategy="constant", constant=constant).fit([[0, 0]] * 2, [constant] * 2)
                    svc.registry.register(name, api.save_model(model, tmp_path / name, examples=[[0.0, 0.0]]))
            finally:
                svc.close()
            svc = from_environment(machines["b"], tmp_path / "b")
            try:
                assert svc.registry.load("cached@1").predict([[0, 0]]).tolist() == [3]  # B caches it
            finally:
                svc.close()
            moto.kill()
        svc = from_environment(machines["b"], tmp_path / "b")  # a fresh start of B: only its disk cache remains
        try:
            assert svc.registry.load("cached@1").predict([[0, 0]]).tolist() == [3]
            with pytest.raises(ShipyardError) as failed:
                svc.registry.load("uncached@1")
        finally:
            svc.close()
        assert len(str(failed.value).splitlines()) == 1 and store in str(failed.value)
        with serving_process(machines["b"], "cached@1", stderr=subprocess.PIPE) as (url, proc):  # and serves it
            answer = httpx.post(f"{url}/predict", json={"instances": [[0.0, 0.0]]}, timeout=30)
            assert answer.json()["predictions"] == [3]
            proc.terminate()
            warned = (proc.communicate(timeout=60)[1] or b"").decode()
        assert "serving without a run" in warned and "Traceback" not in warned
        served = shipyard("serve", "uncached@1", env=machines["b"], cwd=tmp_path / "b", check=False)
        assert served.returncode != 0
        assert served.stderr.startswith("error: ") and len(served.stderr.strip().splitlines()) == 1
        assert store in served.stderr and "Traceback" not in served.stderr
    finally:
        _drop_database(db_url)
