"""Crash safety: SIGKILL in the middle of storing a large artifact leaves nothing half-done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shipyard.core.registry.service import MODEL_FILE, SavedModel
from tests.conftest import cli_env, shipyard

BIG = 2 * 1024**3  # sparse: instant to create, takes the writer a few seconds to hash and copy

WRITER = r"""
import sys
from pathlib import Path
import shipyard
from shipyard.interfaces.api import _svc
from shipyard.core.registry.service import MODEL_FILE, SavedModel

folder = Path(sys.argv[1])
with shipyard.start_run(name="crashy") as run:
    shipyard.log_param("size", "2GiB")
    print(run.id, flush=True)
    if sys.argv[2] == "artifact":
        shipyard.log_artifact(folder / "weights.bin")
    else:
        _svc().registry.register("big", folder, run_id=run.id)
"""


def _kill_mid_write(project: Path, mode: str) -> str:
    folder = project / "bigmodel"
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(SavedModel("onnx", {"file": "weights.bin"}, {}).to_bytes())
    with open(folder / "weights.bin", "wb") as f:
        f.truncate(BIG)
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), mode], env=env, cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    tmp = project / ".shipyard" / "objects" / "tmp"
    deadline = time.time() + 60
    while time.time() < deadline:
        partial = [p for p in tmp.iterdir() if p.stat().st_size > 64 * 1024**2] if tmp.exists() else []
        if partial:
            break
        time.sleep(0.002)
    else:
        proc.kill()
        raise AssertionError(f"the writer never got going: {proc.communicate()[1]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return run_id


def _assert_store_clean(project: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    objects = project / ".shipyard" / "objects" / "sha256"
    sizes = [p.stat().st_size for p in objects.rglob("*") if p.is_file()]
    assert all(s < 64 * 1024**2 for s in sizes), "a partial object became visible"
    verify = shipyard("store", "verify", "--json", env=env)
    assert json.loads(verify.stdout)["ok"] is True
    gc = json.loads(shipyard("store", "gc", "--grace", "0s", "--json", env=env).stdout)
    assert gc["temp_removed"] >= 1  # the killed writer's temp files
    assert list((project / ".shipyard" / "objects" / "tmp").iterdir()) == []


def _run_status(project: Path, run_id: str) -> str:
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    return str(json.loads(shipyard("runs", "show", run_id, "--json", env=env).stdout)["status"])


def test_killed_artifact_writer_leaves_no_partial_object(project: Path) -> None:
    run_id = _kill_mid_write(project, "artifact")
    _assert_store_clean(project)
    assert _run_status(project, run_id) == "killed"


def test_killed_registration_registers_nothing(project: Path) -> None:
    run_id = _kill_mid_write(project, "register")
    _assert_store_clean(project)
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    assert json.loads(shipyard("models", "list", "--json", env=env).stdout) == []
    missing = shipyard("models", "show", "big", env=env, check=False)
    assert missing.returncode == 3 and "not found" in missing.stderr
    assert _run_status(project, run_id) == "killed"
