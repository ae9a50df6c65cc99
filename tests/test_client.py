"""shipyard.Client and the module functions in real programs: threads, asyncio tasks, a pipeline's
handed-over run, a client's lifetime, and where the API records outside a project."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import shipyard
from shipyard.errors import ImmutableError
from shipyard.interfaces.api import default_client
from shipyard.wiring import from_environment
from tests.conftest import cli_env


def history(run_id: str, key: str) -> list[float]:
    return [m.value for m in default_client().services.meta.metric_history(run_id, key)]


def test_two_threads_log_to_their_own_runs(project: Path) -> None:
    both_started, both_logged = threading.Barrier(2), threading.Barrier(2)
    ids: dict[str, str] = {}

    def train(name: str, value: float) -> None:
        with shipyard.start_run(run_name=name) as run:
            ids[name] = run.id
            both_started.wait(timeout=60)  # each thread logs while the other's run is the newest
            for step in range(5):
                shipyard.log_metric("loss", value, step=step)
                shipyard.log_metric(f"only_{name}", step, step=step)
            both_logged.wait(timeout=60)

    threads = [threading.Thread(target=train, args=(name, value)) for name, value in (("a", 1.0), ("b", 2.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for name, value in (("a", 1.0), ("b", 2.0)):
        rec = shipyard.get_run(ids[name])
        assert rec.metrics == {"loss": value, f"only_{name}": 4.0}
        assert history(ids[name], "loss") == [value] * 5
        assert rec.status == "finished"


def test_a_new_thread_has_no_current_run_and_writes_to_one_it_is_given(project: Path) -> None:
    seen: list[object] = []
    with shipyard.start_run() as run:
        t = threading.Thread(target=lambda: seen.append(shipyard.active_run()))
        t.start()
        t.join()
        # the documented ways for a data-loader thread to write to the main thread's run
        workers = [
            threading.Thread(target=lambda: shipyard.log_metric("by_id", 1.0, run_id=run.id)),
            threading.Thread(target=lambda: run.log_metric("by_object", 2.0)),
            threading.Thread(target=contextvars.copy_context().run, args=(shipyard.log_metric, "by_context", 3.0)),
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    assert seen == [None]
    assert shipyard.get_run(run.id).metrics == {"by_id": 1.0, "by_object": 2.0, "by_context": 3.0}
    assert shipyard.active_run() is None


def test_asyncio_tasks_log_to_their_own_runs(project: Path) -> None:
    async def train(name: str, value: float) -> str:
        with shipyard.start_run(run_name=name) as run:
            for step in range(3):
                shipyard.log_metric("loss", value, step=step)
                await asyncio.sleep(0)  # let the other task start its run and log
        return run.id

    async def both() -> list[str]:
        return list(await asyncio.gather(train("a", 1.0), train("b", 2.0)))

    a, b = asyncio.run(both())
    assert history(a, "loss") == [1.0] * 3 and history(b, "loss") == [2.0] * 3


def test_a_handed_over_run_is_checked_once_then_each_metric_is_only_its_insert(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = from_environment()  # the pipeline runner starts the stage's run and hands its id to the stage
    stage = runner.tracker.start_run(name="train", experiment="pipeline")
    monkeypatch.setenv("SHIPYARD_RUN_ID", stage.id)
    statements: list[str] = []
    meta = default_client().services.meta
    engine = meta.engine  # type: ignore[attr-defined]

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", count)
    reader = getattr(meta, "_reader", None)  # a SQLite file at the head revision is read without SQLAlchemy
    if reader is not None:
        reader._connection().set_trace_callback(lambda sql: statements.append(sql.split(None, 1)[0].upper()))
    try:
        shipyard.log_metric("loss", 1.0, step=0)
        assert "SELECT" in statements  # the first call looks the run up, once
        statements.clear()
        for step in range(1, 6):
            shipyard.log_metric("loss", 1.0 / step, step=step)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
        if reader is not None:
            reader._connection().set_trace_callback(None)
    # each call: its transaction, the metric's row and its latest value; the run is not looked up again
    assert statements == ["BEGIN", "INSERT", "INSERT"] * 5
    for step in range(1, 6):
        shipyard.log_param(f"p{step}", step)
    assert shipyard.active_run() is not None and shipyard.active_run().id == stage.id  # type: ignore[union-attr]
    shipyard.end_run()  # the stage's process does not end the runner's run
    runner.tracker.end_run(stage.id)
    rec = shipyard.get_run(stage.id)
    assert rec.status == "finished" and len(history(stage.id, "loss")) == 6 and len(rec.params) == 5
    runner.close()


def test_a_handed_over_run_that_ended_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = from_environment()
    stage = runner.tracker.start_run(name="train")
    runner.tracker.end_run(stage.id)
    monkeypatch.setenv("SHIPYARD_RUN_ID", stage.id)
    with pytest.raises(ImmutableError, match="closed"):
        shipyard.log_metric("late", 1.0)
    # a stale id left in a shell: the message says where it came from and how to be rid of it
    with pytest.raises(ImmutableError, match=rf"^SHIPYARD_RUN_ID={stage.id} .*unset SHIPYARD_RUN_ID$"):
        shipyard.log_metric("late", 1.0)
    runner.close()


def test_a_client_owns_its_project_and_closes(tmp_path: Path, project: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with shipyard.Client(other) as client:  # explicit beats SHIPYARD_HOME (set by the project fixture)
        assert client.services.settings.home == other / ".shipyard"
        with client.start_run("fit", tags={"k": "v"}) as run:
            client.log_metric(run.id, "acc", 0.5, 1_700_000_000_000, 3)  # MlflowClient: timestamp (ms), step
            client.log_param(run.id, "C", 1.0)
            client.set_tag(run.id, "team", "ml")
        rec = client.get_run(run.id)
        assert (rec.status, rec.metrics, rec.params, rec.tags) == ("finished", {"acc": 0.5}, {"C": "1.0"},
                                                                    {"k": "v", "team": "ml"})
        point = client.services.meta.metric_history(run.id, "acc")[0]
        assert (point.step, point.timestamp) == (3, 1_700_000_000.0)
        made = client.create_run("exp", run_name="manual")
        client.set_terminated(made.id, "FAILED")
        assert client.get_run(made.id).status == "failed"
    assert client.closed and "closed" in repr(client)
    with pytest.raises(RuntimeError, match="closed"):
        client.get_run(run.id)
    assert shipyard.search_runs() == []  # nothing went to the default client's project

    db = tmp_path / "team.db"
    with shipyard.Client(other, tracking_uri=f"sqlite:///{db}") as team:
        team.create_run("default")
    assert db.exists()


SCRIPT = ("import shipyard\n"
          "shipyard.log_metric('a', 1.0)\n"
          "shipyard.log_metric('b', 2.0)\n")


def test_outside_a_project_the_api_records_in_the_working_folder_and_says_so_once(tmp_path: Path) -> None:
    import subprocess

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = cli_env()
    first = subprocess.run([sys.executable, "-c", SCRIPT], cwd=scratch, env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    home = scratch / ".shipyard"
    assert first.stderr == f"shipyard: recording in {home} (no shipyard.yaml found above {scratch})\n"
    assert first.stdout == ""
    again = subprocess.run([sys.executable, "-c", SCRIPT], cwd=scratch, env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    assert again.stderr == ""  # it records where it said
    with shipyard.Client(scratch) as client:
        runs = client.search_runs()
    assert len(runs) == 2
    assert all(r.status == "finished" and r.metrics == {"a": 1.0, "b": 2.0} for r in runs)  # ended at exit

    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "shipyard.yaml").write_text("stages: {}\n")
    inside = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project / "src", env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    assert inside.stderr == f"shipyard: recording in {project / '.shipyard'} (project {project})\n"
    assert not (project / "src" / ".shipyard").exists()


def test_a_client_on_either_database_takes_runs_from_several_threads(tmp_path: Path, db_url: str) -> None:
    with shipyard.Client(tmp_path, tracking_uri=db_url) as client:
        runs = [client.start_run(f"worker-{i}") for i in range(3)]

        def work(run: shipyard.ActiveRun, value: float) -> None:
            for step in range(4):
                run.log_metric("loss", value, step=step)

        threads = [threading.Thread(target=work, args=(run, float(i))) for i, run in enumerate(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for i, run in enumerate(runs):
            run.end()
            assert [m.value for m in client.services.meta.metric_history(run.id, "loss")] == [float(i)] * 4
        assert {r.status for r in client.search_runs()} == {"finished"}


FORK_SCRIPT = """
import os, sys, shipyard
with shipyard.start_run(run_name="parent") as run:
    shipyard.log_metric("before", 1.0)
    pid = os.fork()
    if pid == 0:  # a worker: logs to the inherited run, then exits normally (atexit and the `with` run)
        shipyard.log_metric("child", 2.0)
        sys.exit(0)
    os.waitpid(pid, 0)
    shipyard.log_metric("after", 3.0)
print(run.id)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is POSIX")
def test_a_forked_child_neither_breaks_the_parents_connection_nor_ends_its_run(tmp_path: Path,
                                                                               db_url: str) -> None:
    """The child used, then closed at exit, the parent's pooled PostgreSQL connection: the parent's next
    write failed ("server closed the connection"); and the child's `with` block ended the parent's run."""
    import subprocess

    (tmp_path / ".shipyard").mkdir()
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], cwd=tmp_path, env=cli_env(SHIPYARD_DB_URL=db_url),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with shipyard.Client(tmp_path, tracking_uri=db_url) as client:
        run = client.get_run(done.stdout.strip())
    assert run.metrics == {"before": 1.0, "child": 2.0, "after": 3.0} and run.status == "finished"


def test_a_run_started_without_with_or_end_run_ends_finished_at_exit(tmp_path: Path) -> None:
    """MLflow ends the active run when the program exits; Shipyard's looked killed (status "killed")."""
    import subprocess

    (tmp_path / ".shipyard").mkdir()
    script = ("import shipyard\nrun = shipyard.start_run(run_name='open')\nshipyard.log_metric('m', 1.0)\n"
              "with shipyard.start_run(run_name='closed'):\n    pass\nprint(run.id)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=120, check=True)
    with shipyard.Client(tmp_path) as client:
        assert client.get_run(done.stdout.strip()).status == "finished"
        assert {r.name: r.status for r in client.search_runs()} == {"open": "finished", "closed": "finished"}


def test_resuming_the_handed_over_run_mlflow_style_leaves_its_end_to_the_pipeline(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`with start_run(run_id=os.environ[...])`, MLflow's habit with MLFLOW_RUN_ID, ended the stage's run
    inside the stage: the runner then recorded the outputs on a finished run, with the stage's end time."""
    runner = from_environment()
    stage = runner.tracker.start_run(name="train", experiment="pipeline")
    monkeypatch.setenv("SHIPYARD_RUN_ID", stage.id)
    with shipyard.start_run(run_id=stage.id):
        shipyard.log_metric("acc", 0.5)
    assert shipyard.get_run(stage.id).status == "running"
    runner.tracker.end_run(stage.id)
    assert shipyard.get_run(stage.id).status == "finished"
    runner.close()
