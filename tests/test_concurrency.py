"""Invariant 3: concurrent registrations from many processes never lose or duplicate a version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROCESSES = 8
PER_PROCESS = 50

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from shipyard.wiring import from_environment
from shipyard.core.registry.service import MODEL_FILE, SavedModel

proc, count, start_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
svc = from_environment()
base = Path(os.environ["WORK"]) / f"p{proc}"
got = []
while time.time() < start_at:
    time.sleep(0.005)
for i in range(count):
    folder = base / str(i)
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(SavedModel("onnx", {"file": "weights.txt"}, {}).to_bytes())
    (folder / "weights.txt").write_text(f"{proc}-{i}")
    mv = svc.registry.register("shared", folder, description=f"{proc}-{i}")
    got.append(mv.version)
print(json.dumps(got))
"""


def test_parallel_registrations_number_versions_1_to_n(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_DB_URL": db_url, "SHIPYARD_HOME": str(tmp_path / ".shipyard"),
           "WORK": str(tmp_path / "work")}
    env.pop("SHIPYARD_STORE", None)
    # create the schema once, so the race is on registration, not on migration
    subprocess.run([sys.executable, "-c", "from shipyard.wiring import from_environment; from_environment()"],
                   env=env, check=True, timeout=60)
    start_at = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(p), str(PER_PROCESS), str(start_at)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(PROCESSES)]
    claimed: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        claimed.extend(json.loads(out))

    total = PROCESSES * PER_PROCESS
    assert sorted(claimed) == list(range(1, total + 1))

    from shipyard.adapters.db.store import SqlMetadataStore

    meta = SqlMetadataStore(db_url)
    try:
        versions = meta.list_versions("shared")
        assert [v.version for v in versions] == list(range(1, total + 1))
        assert len({v.description for v in versions}) == total  # each registration is its own row
        assert len({v.manifest_digest for v in versions}) == total
        assert meta.list_models()[0].latest_version == total
    finally:
        meta.close()



FIRST_USE = r"""
import sys, time
from pathlib import Path
from shipyard.wiring import from_environment
from shipyard.core.registry.service import MODEL_FILE, SavedModel

proc, start_at = sys.argv[1], float(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.002)
svc = from_environment()  # creates (migrates) the schema if nobody has yet
folder = Path(sys.argv[3]) / proc
folder.mkdir(parents=True)
(folder / MODEL_FILE).write_bytes(SavedModel("onnx", {"file": "w"}, {}).to_bytes())
(folder / "w").write_text(proc)
print(svc.registry.register("first", folder).version)
"""


def test_processes_racing_to_create_the_schema_all_succeed(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_DB_URL": db_url, "SHIPYARD_HOME": str(tmp_path / ".shipyard")}
    start_at = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_USE, str(p), str(start_at), str(tmp_path / "w")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(6)]
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        versions.append(int(out))
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


WRITERS = 8


def test_concurrent_data_adds_and_stage_runs_keep_every_entry(db_url: str, tmp_path: Path) -> None:
    """Invariant 8: 8 processes each `data add` their own path and `run` their own stage at once; none is lost."""
    root = tmp_path / "proj"
    stages = []
    for i in range(WRITERS):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "x.txt").write_text(f"data {i}\n")
        (root / f"in{i}.txt").write_text(f"input {i}\n")
        stages.append(f"  s{i}:\n    cmd: cp in{i}.txt out{i}.txt\n    deps: [in{i}.txt]\n    outs: [out{i}.txt]\n")
    (root / "shipyard.yaml").write_text("version: 1\nstages:\n" + "".join(stages))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_DB_URL=db_url, SHIPYARD_HOME=str(root / ".shipyard"))
    subprocess.run([sys.executable, "-c", "from shipyard.wiring import from_environment; from_environment()"],
                   env=env, cwd=root, check=True, timeout=60)  # the schema exists: the race is on the lock
    cli = f"{sys.executable} -m shipyard"
    procs = [subprocess.Popen(["sh", "-c", f"{cli} data add d{i} && {cli} run s{i}"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(WRITERS)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, out + err
        assert "recorded in shipyard.lock" in out

    from shipyard.core.workspace.lockfile import load_lock

    lock = load_lock(root)
    assert sorted(lock.data) == sorted(f"d{i}" for i in range(WRITERS))
    assert sorted(lock.stages) == sorted(f"s{i}" for i in range(WRITERS))
    assert {f"/d{i}" for i in range(WRITERS)} <= set((root / ".gitignore").read_text().splitlines())
    refs = root / ".shipyard" / "objects" / "refs"
    for entry in lock.stages.values():
        assert (refs / entry.cache_key()).is_file()
    status = subprocess.run([sys.executable, "-m", "shipyard", "status", "--json"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert all(s["state"] == "up-to-date" for s in json.loads(status.stdout))
