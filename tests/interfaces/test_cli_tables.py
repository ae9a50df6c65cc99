"""Tables fit the terminal without losing identifiers, and a metric logged at several steps reads as a series."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

import shipyard
from shipyard.config import Settings
from shipyard.interfaces.cli.output import id_width
from shipyard.wiring import build
from tests.conftest import cli_env
from tests.conftest import shipyard as run_cli

REASON = "a fairly long reason, so that the history table has to wrap it at eighty columns"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs (one with a five-step metric), two versions of a model, and an alias moved with a reason."""
    root = tmp_path_factory.mktemp("tables")
    home = root / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                         actor="tester@ci"), root)
    try:
        for name in ("prepare", "a-rather-long-training-run-name", "evaluate"):
            run = svc.tracker.start_run(name=name)
            svc.tracker.log_metrics(run.id, {"accuracy": 0.9, "f1_macro": 0.8, "loss": 0.1, "rows": 45})
            if name == "evaluate":
                for fold, score in enumerate((0.97, 0.95, 0.96, 0.98, 1.0)):
                    svc.tracker.log_metrics(run.id, {"cv_accuracy": score}, step=fold)
            svc.tracker.end_run(run.id)
        folder = root / "saved"
        shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
        metrics = svc.tracker.get_run(run.id).metrics  # as log_model records them: the run's latest values
        svc.registry.register("iris-classifier", folder, run_id=run.id, metrics=metrics)
        svc.registry.register("iris-classifier", folder, run_id=run.id, metrics=metrics)
        svc.registry.set_alias("iris-classifier", "production", 1, REASON)
    finally:
        svc.close()
    return home


def sy(home: Path, columns: int, *args: str) -> str:
    return run_cli(*args, env=cli_env(SHIPYARD_HOME=str(home), COLUMNS=str(columns)), cwd=home.parent).stdout


def test_the_shortest_unique_prefix_is_at_least_eight_characters() -> None:
    assert id_width(["a" * 32, "b" * 32]) == 8
    assert id_width(["0123456789ab" + "0" * 20, "0123456789ac" + "0" * 20, "f" * 32]) == 12
    assert id_width([]) == 8


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("args", [("runs", "list"), ("models", "list"), ("models", "versions", "iris-classifier"),
                                  ("models", "history"), ("models", "show", "iris-classifier@1")])
def test_every_table_fits_the_terminal(home: Path, columns: int, args: tuple[str, ...]) -> None:
    text = sy(home, columns, *args)
    assert text and max(len(line) for line in text.splitlines()) <= columns
    assert "…" not in text  # nothing cut off


@pytest.mark.parametrize("columns", [80, 200])
def test_run_ids_in_the_list_are_whole_prefixes_that_runs_show_resolves(home: Path, columns: int) -> None:
    listed = sy(home, columns, "runs", "list")
    ids = re.findall(r"^│ ([0-9a-f]+) ", listed, flags=re.MULTILINE)
    assert len(ids) == 3 and all(len(i) >= 8 for i in ids)
    for run_id in ids:
        assert run_id in sy(home, columns, "runs", "show", run_id).splitlines()[0]


def test_a_metric_logged_at_several_steps_is_marked_as_a_series(home: Path) -> None:
    listed = sy(home, 200, "runs", "list")
    assert "1 (last of 5)" in listed
    assert "0.9 (last" not in listed  # single values stay plain
    evaluate = next(r for r in shipyard_runs(home) if r["name"] == "evaluate")
    shown = sy(home, 200, "runs", "show", evaluate["id"])
    row = next(line for line in shown.splitlines() if "cv_accuracy" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")] == ["cv_accuracy", "1", "0.95", "1", "5"]
    assert "1 (series of 5)" in sy(home, 200, "models", "versions", "iris-classifier")  # its metrics come from that run


def test_the_history_keeps_its_reason_column_at_80_columns(home: Path) -> None:
    narrow = sy(home, 80, "models", "history")
    assert "reason" in narrow.splitlines()[1]
    assert "iris-classifier@production" in narrow
    words = " ".join(line.split("│")[-2].strip() for line in narrow.splitlines() if line.count("│") > 2)
    assert REASON in " ".join(words.split())
    assert "hidden to fit 80 columns" in narrow  # what was dropped is said, not silent
    wide = sy(home, 200, "models", "history")
    assert "hidden" not in wide and "- → 1" in wide


def shipyard_runs(home: Path) -> list[dict[str, str]]:
    import json

    return list(json.loads(run_cli("runs", "list", "--json", env=cli_env(SHIPYARD_HOME=str(home)),
                                   cwd=home.parent).stdout))


def test_a_prefix_of_several_runs_is_one_line_naming_them_and_the_list_widens_its_ids(tmp_path: Path) -> None:
    from shipyard.core.lineage.records import RunRecord, RunStatus

    home = tmp_path / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                         actor="tester@ci"), tmp_path)
    try:
        for run_id in ("0123456789a" + "0" * 21, "0123456789b" + "0" * 21):
            svc.meta.create_run(RunRecord(id=run_id, name="twin", experiment="default", status=RunStatus.FINISHED,
                                          start_time=1.0, end_time=2.0, user="u", host="h", pid=1))
    finally:
        svc.close()
    env = cli_env(SHIPYARD_HOME=str(home), COLUMNS="80")
    done = run_cli("runs", "show", "01234567", env=env, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr == ("error: run id prefix '01234567' matches several runs (0123456789a0, 0123456789b0): "
                           "give more characters\n")
    listed = run_cli("runs", "list", env=env, cwd=tmp_path).stdout
    assert sorted(re.findall(r"^│ ([0-9a-f]+) ", listed, flags=re.MULTILINE)) == ["0123456789a", "0123456789b"]
    assert "twin" in run_cli("runs", "show", "0123456789b", env=env, cwd=tmp_path).stdout
