"""Where Shipyard borrows MLflow's names, MLflow's call forms work too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import shipyard
from shipyard.errors import InvalidInputError, InvalidReferenceError, NotFoundError
from tests.conftest import cli_env

# A plain MLflow 3 tracking script (checked against MLflow itself), run with one change: its import line.
MLFLOW_SCRIPT = """\
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
mlflow.set_tracking_uri("sqlite:///mlflow.db")
mlflow.set_experiment("iris-demo")
with mlflow.start_run(run_name="logreg") as run:
    params = {"C": 0.5, "max_iter": 300}
    mlflow.log_params(params)
    mlflow.log_param("solver", "lbfgs")
    model = LogisticRegression(**params).fit(X, y)
    for epoch in range(3):
        mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    mlflow.log_metric("accuracy", model.score(X, y))
    mlflow.set_tag("team", "ml")
    mlflow.set_tags({"stage": "dev"})
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name="iris", input_example=X[:3])

client = mlflow.MlflowClient()
mv = client.get_model_version("iris", 1)
client.set_registered_model_alias("iris", "champion", 1)
champion = client.get_model_version_by_alias("iris", "champion")
loaded = mlflow.sklearn.load_model("models:/iris@champion")
again = mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris")
client.delete_registered_model_alias("iris", "champion")
fetched = mlflow.get_run(run.info.run_id)
versions = sorted(int(v.version) for v in client.search_model_versions("name='iris'"))
by_source = mlflow.pyfunc.load_model(mv.source)
from_info = mlflow.sklearn.load_model(info.model_uri)  # the URI log_model handed back loads
print(run.info.run_id, mv.run_id == run.info.run_id, champion.version == mv.version, again.version,
      f"{mv.name}@{mv.version}", int(mv.version) + 1, fetched.info.run_id == run.info.run_id, fetched.info.status,
      fetched.info.end_time >= fetched.info.start_time > 1e12, round(fetched.data.metrics["loss"], 3),
      fetched.data.params["C"], fetched.data.tags["team"], versions == [1, 2],
      [int(p) for p in loaded.predict(X[:3])] == [int(p) for p in by_source.predict(X[:3])]
      == [int(p) for p in from_info.predict(X[:3])],
      [int(p) for p in loaded.predict(X[:3])])
"""


def test_an_mlflow_script_runs_with_only_its_import_changed(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "shipyard.yaml").write_text("stages: {}\n")
    script = MLFLOW_SCRIPT.replace("import mlflow\n", "import shipyard as mlflow\n", 1)
    assert script.count("\n") == MLFLOW_SCRIPT.count("\n") and script != MLFLOW_SCRIPT
    done = subprocess.run([sys.executable, "-c", script], cwd=scratch, env=cli_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    run_id, *said = done.stdout.split(" ", 14)
    assert [s.strip() for s in said] == ["True", "True", "2", "iris@1", "2", "True", "FINISHED", "True", "0.333",
                                         "0.5", "ml", "True", "True", "[0, 0, 0]"]
    assert not (scratch / ".shipyard" / "shipyard.db").exists()  # set_tracking_uri chose the database

    with shipyard.Client(scratch, tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}") as client:
        rec = client.get_run(run_id)
        assert (rec.name, rec.experiment, rec.status) == ("logreg", "iris-demo", "finished")
        assert rec.params == {"C": "0.5", "max_iter": "300", "solver": "lbfgs"}
        assert rec.tags == {"team": "ml", "stage": "dev"}
        assert [m.step for m in client.services.meta.metric_history(run_id, "loss")] == [0, 1, 2]
        v1, v2 = client.get_model_version("iris", "1"), client.get_model_version("iris", 2)
        assert v1.manifest_digest == v2.manifest_digest and v2.run_id == run_id  # the same saved folder
        assert v1.aliases == ()  # the alias was deleted
        assert [r.id for r in client.search_runs(["iris-demo"], "metrics.accuracy > 0.5")] == [run_id]


def test_module_functions_take_mlflow_positional_and_keyword_forms(project: Path, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    report = tmp_path / "report.txt"
    report.write_text("ok")
    with shipyard.start_run(None, "exp", "fit", tags={"k": "v"}, description="first try") as run:
        shipyard.log_param("lr", 0.1, None)
        shipyard.log_params({"depth": 3}, None, run.id)
        shipyard.log_metric("loss", 0.5, 2, None, 1_700_000_000_000)  # key, value, step, synchronous, timestamp
        shipyard.log_metrics({"acc": 0.9}, 1, None, run.id)
        shipyard.set_tag("team", "ml")
        shipyard.log_artifact(report, "reports")  # MLflow's artifact_path: the folder within the run
        shipyard.log_artifact(report, name="exact.txt")  # Shipyard's name: the whole path
        shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), "tiny")
    rec = shipyard.get_run(run.id)
    assert (rec.name, rec.experiment) == ("fit", "exp")
    assert rec.tags == {"k": "v", "description": "first try", "team": "ml"}
    assert sorted(a.path for a in rec.artifacts) == ["exact.txt", "reports/report.txt"]
    assert rec.metrics == {"loss": 0.5, "acc": 0.9} and rec.params == {"lr": "0.1", "depth": "3"}

    assert shipyard.get_model_version("tiny", 1) == shipyard.get_model_version("tiny@1") \
        == shipyard.get_model_version("tiny", "1") == shipyard.get_model_version(name="tiny", version=1)
    shipyard.set_registered_model_alias("tiny", "champion", "1")
    assert shipyard.get_model_version_by_alias("tiny", "champion").version == 1
    assert shipyard.load_model("models:/tiny/1").predict([[1]]).tolist() == [0]
    assert shipyard.load_model("models:/tiny@champion") is not None and shipyard.load_model("models:/tiny/latest")
    shipyard.delete_registered_model_alias("tiny", "champion")
    with pytest.raises(NotFoundError):
        shipyard.get_model_version_by_alias("tiny", "champion")
    with pytest.raises(InvalidReferenceError, match="versions run from 1"):
        shipyard.get_model_version("tiny", "0")
    with pytest.raises(NotFoundError, match=f"run {run.id[:8]} logged no model at 'model'; it registered tiny@1"):
        shipyard.load_model(f"runs:/{run.id}/model")

    with shipyard.start_run(run_name="bad"):
        shipyard.log_metric("acc", 0.1)
        shipyard.end_run("FAILED")  # MLflow's upper-case status
    assert [r.status for r in shipyard.search_runs(filter_string="metrics.acc < 0.5")] == ["failed"]
    assert [r.name for r in shipyard.search_runs(["exp"], max_results=5, order_by=["metrics.acc DESC"])] == ["fit"]
    assert [r.name for r in shipyard.search_runs("metrics.acc > 0.5", limit=1)] == ["fit"]  # Shipyard's form
    with pytest.raises(InvalidInputError, match="list"):
        shipyard.search_runs(output_format="pandas")
    with pytest.raises(InvalidInputError, match="cannot end a run as 'DONE'"):
        shipyard.end_run("DONE")
    with pytest.raises(InvalidInputError, match="cannot end a run as 'RUNNING'"):
        shipyard.end_run("RUNNING")


def test_set_tracking_uri_search_model_versions_and_their_refusals(project: Path, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    other = tmp_path / "elsewhere"
    other.mkdir()
    shipyard.set_tracking_uri(f"file://{other}")  # a folder: its .shipyard records everything
    try:
        with shipyard.start_run(run_name="there"):
            shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), "tiny")
        assert (other / ".shipyard").is_dir() and not (project / ".shipyard" / "shipyard.db").exists()
        with shipyard.MlflowClient() as client:  # MlflowClient() follows set_tracking_uri, as in MLflow
            assert [(v.name, v.version) for v in client.search_model_versions("name = 'tiny'")] == [("tiny", 1)]
            assert client.search_model_versions("name='absent'") == []
            assert [v.version for v in client.get_latest_versions("tiny")] == [1]
            assert client.get_latest_versions("tiny", stages=["Production"]) == []  # no tiny@production yet
            with pytest.raises(InvalidInputError, match=r"aliases, not stages.*get_model_version_by_alias"):
                client.get_latest_versions("tiny", stages=["Gold"])
            with pytest.raises(InvalidInputError, match="cannot read model version filter"):
                client.search_model_versions("tags.x = 'y'")
            # the second name won: tiny's versions were listed for a filter no version matches
            with pytest.raises(InvalidInputError, match="two values of name"):
                client.search_model_versions("name = 'absent' and name = 'tiny'")
            with pytest.raises(InvalidInputError, match="max_results must be at least 1"):
                client.search_model_versions("name = 'tiny'", max_results=-1)  # listed all but the oldest
        run_id = shipyard.search_model_versions(filter_string="name = 'tiny'")[0].run_id
        # the module function takes max_results first in MLflow; a filter written first is read as the filter
        assert [v.run_id for v in shipyard.search_model_versions("name = 'tiny'")] == [run_id]
        assert run_id is not None and shipyard.get_run(run_id).info.run_name == "there"
        assert shipyard.pyfunc.load_model("models:/tiny/1").predict([[1]]).tolist() == [0]
        assert shipyard.get_tracking_uri() == f"sqlite:///{other / '.shipyard' / 'shipyard.db'}"
        for refused in ("http://localhost:5000", "databricks", str(tmp_path / "missing"), "~no-such-user-xyz/x"):
            with pytest.raises(InvalidInputError):
                shipyard.set_tracking_uri(refused)
    finally:
        shipyard.set_tracking_uri(None)
    assert shipyard.get_tracking_uri() == f"sqlite:///{project / '.shipyard' / 'shipyard.db'}"


def test_a_logged_file_name_with_a_nul_or_too_long_is_one_clear_error(project: Path) -> None:
    """It used to surface as Python's ValueError (embedded null byte) or OSError (file name too long)."""
    with shipyard.start_run() as run:
        for name in ("ok\0.txt", "x" * 300 + ".txt", "a/" + "é" * 200 + ".json"):
            with pytest.raises(InvalidInputError, match="artifact_file must be a relative file name"):
                shipyard.log_text("hi", name)
        shipyard.log_text("hi", "a/" + "x" * 250 + ".txt")  # 254 bytes: fits
    assert len(shipyard.get_run(run.id).artifacts) == 1
