"""A run's logged files come back in MLflow's call shapes (``mlflow.artifacts``, ``MlflowClient``,
``shipyard runs get``), every byte re-hashed and nothing written outside the destination; and MLflow's names
Shipyard lacks say so."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
import shipyard as mlflow
from shipyard.core.artifacts.manifest import KIND
from shipyard.core.lineage.records import ArtifactRecord
from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError, ShipyardError
from shipyard.interfaces.cli.app import app
from tests.conftest import cli_env
from tests.conftest import shipyard as shipyard_cli

BLOB = bytes(range(256)) * 40


def _logged_run(tmp_path: Path) -> str:
    src = tmp_path / "src"
    (src / "data" / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(BLOB)
    (src / "data" / "x.csv").write_text("a,b\n1,2\n")
    (src / "data" / "sub" / "y.txt").write_text("deep\n")
    mlflow.set_experiment("art14")
    with mlflow.start_run() as run:
        mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        mlflow.log_dict({"lr": 0.2}, "cfg/config.yaml")
        mlflow.log_text("hello\n", "notes.txt")
        mlflow.log_artifact(str(src / "a.bin"), artifact_path="plots")
        mlflow.log_artifacts(str(src / "data"), artifact_path="data")
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    return run.info.run_id


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_logged_files_come_back_by_each_form(project: Path, tmp_path: Path) -> None:
    run_id = _logged_run(tmp_path)
    top = mlflow.artifacts.list_artifacts(run_id=run_id)
    assert [(f.path, f.is_dir) for f in top] == [("cfg", True), ("config.json", False), ("data", True),
                                                 ("notes.txt", False), ("plots", True)]
    assert next(f for f in top if f.path == "notes.txt").file_size == 6
    inside = mlflow.artifacts.list_artifacts(f"runs:/{run_id}/data")
    assert [(f.path, f.is_dir, f.file_size) for f in inside] == [("data/sub", True, None), ("data/x.csv", False, 8)]
    assert mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="data/x.csv") == []

    one = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots/a.bin", dst_path=tmp_path / "d1")
    assert Path(one) == tmp_path / "d1" / "plots" / "a.bin" and Path(one).read_bytes() == BLOB
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/data", dst_path=str(tmp_path / "d2"))
    assert _tree(Path(folder)) == _tree(tmp_path / "src" / "data")
    everything = Path(mlflow.artifacts.download_artifacts(run_id=run_id))  # a new temporary folder
    assert set(_tree(everything)) == {"cfg/config.yaml", "config.json", "data/sub/y.txt", "data/x.csv",
                                      "notes.txt", "plots/a.bin"}

    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes.txt") == "hello\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"lr": 0.1, "layers": [1, 2]}
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/cfg/config.yaml") == {"lr": 0.2}

    client = mlflow.MlflowClient()
    assert [f.path for f in client.list_artifacts(run_id[:8], "data/sub")] == ["data/sub/y.txt"]
    got = client.download_artifacts(run_id, "data/sub", str(tmp_path / "d3"))
    assert (Path(got) / "y.txt").read_text() == "deep\n"
    history = client.get_metric_history(run_id, "loss")
    assert [(m.key, m.step, round(m.value, 3)) for m in history] == [("loss", 0, 1.0), ("loss", 1, 0.5),
                                                                      ("loss", 2, 0.333)]
    assert all(isinstance(m.timestamp, int) and m.timestamp > 1e12 for m in history)
    assert client.get_metric_history(run_id, "nothing") == []
    client.close()

    with pytest.raises(NotFoundError, match=r"has no artifact 'nope.txt': it has cfg/config.yaml, .*plots/a.bin"):
        mlflow.artifacts.load_text(f"runs:/{run_id}/nope.txt")
    with pytest.raises(InvalidInputError, match="is a folder"):
        mlflow.artifacts.load_text(f"runs:/{run_id}/data")


def test_paths_out_of_the_run_or_hostile_manifests_never_write_outside_dst(project: Path, tmp_path: Path) -> None:
    run_id = _logged_run(tmp_path)
    dst = tmp_path / "out" / "dst"
    for uri in (f"runs:/{run_id}/../../x", f"runs:/{run_id}/data/../../x", f"runs:/{run_id}//etc/passwd"):
        with pytest.raises(InvalidInputError) as refused:
            mlflow.artifacts.download_artifacts(uri, dst_path=dst)
        assert "\n" not in str(refused.value)
    with pytest.raises(InvalidInputError):
        mlflow.MlflowClient().download_artifacts(run_id, "../x", str(dst))

    # a manifest naming a file above its folder, recorded on a run as if it had been logged
    svc = mlflow.MlflowClient().services
    blob = svc.store.put_bytes(b"evil")
    body = {"entries": [{"path": "../../evil", "digest": str(blob), "size": 4, "mode": 0o644}], "kind": KIND}
    hostile = svc.store.put_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    with mlflow.start_run() as run:
        svc.meta.add_artifact(run.info.run_id, ArtifactRecord("model", hostile, 4, True))
    with pytest.raises((IntegrityError, InvalidInputError)) as caught:
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=dst)
    assert "\n" not in str(caught.value)

    # a run's file named into a folder that runs code (a git hook): refused, nothing of the run written
    with mlflow.start_run() as run:
        mlflow.log_text("#!/bin/sh\necho owned\n", ".git/hooks/post-checkout")
        mlflow.log_text("fine", "a.txt")
    with pytest.raises(InvalidInputError, match=r"\.git/"):
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=dst)
    assert not dst.exists() or not any(dst.rglob("*"))

    # a link where a logged folder goes is refused, never written through
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "linked").mkdir()
    os.symlink(outside, tmp_path / "linked" / "data")
    with pytest.raises(ShipyardError):
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/data", dst_path=tmp_path / "linked")
    assert not any(outside.iterdir())
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name in ("x", "evil")]


def test_runs_get_writes_a_logged_file_or_folder(project: Path, tmp_path: Path) -> None:
    run_id = _logged_run(tmp_path)
    runner = CliRunner()
    done = runner.invoke(app, ["runs", "get", run_id[:8], "plots/a.bin", "-o", str(tmp_path / "c1")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "c1" / "plots" / "a.bin").read_bytes() == BLOB
    assert "wrote 1 file of run" in done.output
    done = runner.invoke(app, ["runs", "get", run_id, "data", "-o", str(tmp_path / "c2"), "--json"])
    shown = json.loads(done.output)
    assert shown["files"] == ["data/sub/y.txt", "data/x.csv"] and shown["run"] == run_id
    assert _tree(tmp_path / "c2" / "data") == _tree(tmp_path / "src" / "data")

    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    missing = shipyard_cli("runs", "get", run_id[:8], "nope.txt", "-o", str(tmp_path / "c3"), env=env, cwd=project,
                           check=False)
    assert missing.returncode == 3
    assert "has no artifact 'nope.txt': it has cfg/config.yaml, config.json, data/, notes.txt, plots/a.bin" in (
        missing.stderr)
    assert len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c3" / "nope.txt").exists()


def test_mlflow_names_last_active_run_experiments_and_exceptions(project: Path, tmp_path: Path) -> None:
    assert mlflow.get_experiment_by_name("art14") is None
    run_id = _logged_run(tmp_path)
    last = mlflow.last_active_run()
    assert last is not None and last.info.run_id == run_id and last.info.status == "FINISHED"
    with mlflow.start_run() as run:
        assert mlflow.last_active_run().info.run_id == run.info.run_id  # type: ignore[union-attr]
    experiment = mlflow.get_experiment_by_name("art14")
    assert experiment is not None
    assert (experiment.experiment_id, experiment.name, experiment.lifecycle_stage) == ("art14", "art14", "active")
    assert mlflow.get_experiment_by_name("never") is None
    client = mlflow.MlflowClient()
    assert client.get_experiment_by_name("art14") == "art14" and client.get_experiment_by_name("never") is None
    with pytest.raises(AttributeError, match=r"^shipyard.Client has no delete_run \(MlflowClient.delete_run\); see"):
        client.delete_run(run_id)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"^'Client' object has no attribute 'nope'$"):
        client.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(client, "search_experiments") and hasattr(client, "get_metric_history")
    client.close()

    stub = importlib.import_module("shipyard.exceptions")  # `import mlflow.exceptions`
    assert mlflow.exceptions.MlflowException is ShipyardError is stub.MlflowException
    try:
        mlflow.get_run("ffffffffffff")
    except mlflow.exceptions.MlflowException as exc:
        assert isinstance(exc, NotFoundError)

    for name in ("evaluate", "delete_run", "search_experiments", "create_experiment", "set_experiment_tag",
                 "get_artifact_uri", "xgboost", "lightgbm", "keras", "tensorflow", "transformers",
                 "enable_system_metrics_logging", "set_registry_uri"):
        with pytest.raises(AttributeError, match=rf"^shipyard has no {name} \(MLflow's mlflow\.{name}\); see README "
                                                 "'Coming from MLflow' for what Shipyard offers$"):
            getattr(shipyard, name)
        assert not hasattr(shipyard, name)
    with pytest.raises(AttributeError, match=r"^module 'shipyard' has no attribute 'not_a_name'$"):
        getattr(shipyard, "not_a_name")  # noqa: B009


def test_last_active_run_after_an_autologged_fit(project: Path) -> None:
    """MLflow's autolog examples read the fit's run with ``mlflow.last_active_run()``."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    mlflow.autolog(log_models=False)
    try:
        LogisticRegression(C=0.5, max_iter=300).fit(X, y)
    finally:
        mlflow.autolog(disable=True)
    run = mlflow.last_active_run()
    assert run is not None and run.data.params["C"] == "0.5" and run.info.status == "FINISHED"
    assert "training_score" in run.data.metrics
