"""A status filter matches the status runs are shown with: a run whose process died is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import shipyard
from shipyard.errors import InvalidInputError, NotFoundError
from tests.conftest import cli_env
from tests.conftest import shipyard as run_cli

# starts a run, then dies without ending it, as under SIGKILL or the OOM killer
DOOMED = ("import os, signal, shipyard\nrun = shipyard.start_run(run_name='doomed')\n"
          "print(run.id, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")


def _killed_run(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", DOOMED], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.strip()


def test_status_filters_match_the_status_shown(project: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    killed = _killed_run(env, project)
    with shipyard.start_run(run_name="done") as done:
        shipyard.log_metric("acc", 0.9)
    with shipyard.start_run(run_name="stopped") as stopped:
        shipyard.end_run("KILLED")  # ended as killed on purpose: recorded so
    live = shipyard.start_run(run_name="live")
    try:
        def ids(where: str) -> set[str]:
            return {r.id for r in shipyard.search_runs(filter_string=where)}

        assert ids("status = 'killed'") == {killed, stopped.id}
        assert ids("attributes.status = 'KILLED'") == {killed, stopped.id}  # MLflow's spelling
        assert ids("status = 'running'") == {live.id}
        assert ids("status = 'RUNNING'") == {live.id}
        assert ids("status != 'killed'") == {done.id, live.id}
        assert ids("status != 'running'") == {killed, stopped.id, done.id}
        assert ids("status = 'finished'") == {done.id}
        assert [r.status for r in shipyard.search_runs(filter_string="status = 'killed'")] == ["killed", "killed"]
        rec = shipyard.get_run(killed)
        assert (rec.status, rec.info.status, rec.info.run_id) == ("killed", "KILLED", killed)
        assert shipyard.get_run(live.id).info.status == "RUNNING"

        with pytest.raises(InvalidInputError, match=r"unknown run status 'bogus'.*running, finished, failed, killed"):
            shipyard.search_runs(filter_string="status = 'bogus'")
    finally:
        shipyard.end_run()

    listed = run_cli("runs", "list", "--where", "status = 'killed'", "--json", env=env)
    assert {(r["id"], r["status"]) for r in json.loads(listed.stdout)} == {(killed, "killed"), (stopped.id, "killed")}
    assert json.loads(run_cli("runs", "list", "--where", "status = 'running'", "--json", env=env).stdout) == []
    bogus = run_cli("runs", "list", "--where", "status = 'bogus'", env=env, check=False)
    assert bogus.returncode != 0 and "Traceback" not in bogus.stderr
    lines = bogus.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown run status 'bogus'" in lines[0] and "killed" in lines[0], bogus.stderr


def test_a_model_not_found_names_the_registry_in_the_api_as_in_the_cli(project: Path) -> None:
    home = project / ".shipyard"
    with pytest.raises(NotFoundError) as missing:
        shipyard.load_model("nope")
    said = str(missing.value)
    assert f"(registry in {home})" in said and "`shipyard models list`" in said
    with pytest.raises(NotFoundError, match=f"registry in {home}"):
        shipyard.get_model_version("nope", 1)
    with shipyard.MlflowClient() as client, pytest.raises(NotFoundError, match=f"registry in {home}"):
        client.load_model("nope@2")
    shown = run_cli("models", "show", "nope", env=cli_env(SHIPYARD_HOME=str(home)), check=False)
    assert shown.returncode != 0 and said in shown.stderr, shown.stderr
