"""Stages as tasks on a real Ray head started on 127.0.0.1 by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, free_port, shipyard

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray = Path(sys.executable).parent / "ray"
    proc = subprocess.Popen(
        [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    probe = "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); ray.shutdown()"
    deadline = time.time() + 90
    while time.time() < deadline:
        if subprocess.run([sys.executable, "-c", probe, address], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("the Ray head did not come up in 90 s")
    try:
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)  # `ray start --block` often outlives SIGTERM by 30 s: its group is killed then
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_stages_run_as_ray_tasks_and_their_outputs_reach_the_store(ray_address: str, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "where.py").write_text(
        "import json, os, sys\n"
        "json.dump({'raylet': os.environ.get('RAY_RAYLET_PID'), 'stage': os.environ.get('SHIPYARD_STAGE')},"
        " open(sys.argv[1], 'w'))\n")
    (proj / "shipyard.yaml").write_text(
        f"version: 1\nexecutor:\n  kind: ray\n  address: {ray_address}\nstages:\n"
        "  a:\n    cmd: python where.py a.json\n    deps: [where.py]\n    outs: [a.json]\n"
        "  b:\n    cmd: python where.py b.json\n    deps: [a.json]\n    outs: [b.json]\n")
    env = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"))
    done = shipyard("run", "--json", env=env, cwd=proj)
    assert [(o["stage"], o["result"]) for o in json.loads(done.stdout)] == [("a", "ran"), ("b", "ran")]
    for name in ("a", "b"):
        where = json.loads((proj / f"{name}.json").read_text())
        assert where["raylet"] and where["stage"] == name  # ran inside a Ray worker
    for out in ("a.json", "b.json"):
        (proj / out).unlink()
    again = json.loads(shipyard("run", "--json", env=env, cwd=proj).stdout)
    assert {o["result"] for o in again} == {"cached"}  # the outputs went through the store


def test_an_unreachable_ray_cluster_is_one_clear_error(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "shipyard.yaml").write_text(
        f"version: 1\nexecutor:\n  kind: ray\n  address: 127.0.0.1:{free_port()}\n"
        "stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n")
    done = shipyard("run", env=cli_env(SHIPYARD_HOME=str(proj / ".shipyard")), cwd=proj, check=False)
    assert done.returncode == 6 and "cannot reach the Ray cluster" in done.stderr
