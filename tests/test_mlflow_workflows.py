"""MLflow's documented tracking and registry workflows, with ``import shipyard as mlflow`` as the only change.

tests/mlflow_wine.py is an MLflow script (an elastic-net on a wine-like table: a nested sweep, params, step
metrics, dict/text/table/image/figure files, a dataset input, two registered versions, an alias, models:/ and
runs:/ URIs, MlflowClient, search_runs' DataFrame). ``MLFLOW_SAID`` is what it printed with the real MLflow 3.17.2
(run once by hand in the side venv: it takes about 50 s there, against about 5 s here). The script runs once as a
subprocess, with the side venv's pandas, matplotlib and Pillow importable after this venv's own packages, so the
DataFrame and matplotlib paths are exercised; the rest runs in-process without pandas (a list of runs, plotly).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.tree import read_verified
from shipyard.errors import (
    ImmutableError,
    InvalidInputError,
    InvalidReferenceError,
    NotFoundError,
    UntrustedModelError,
)
from shipyard.interfaces.cli.app import app
from tests.conftest import cli_env, mlflow_venv, serving

SCRIPT = Path(__file__).with_name("mlflow_wine.py")
MLFLOW_SAID = {  # tests/mlflow_wine.py's line with `import mlflow`, MLflow 3.17.2, scikit-learn 1.9.1
    "aliases": {"champion": 1}, "best_alpha": "0.05", "champion": 1, "columns": [], "latest_is_second": True,
    "metrics": ["mae", "r2", "rmse", "rmse_by_rows"], "model_uri": True, "params": {"alpha": "0.5", "l1_ratio": "0.5"},
    "parents": True, "registered_again": 3, "run_name": "enet-0.5", "runs": 2, "same_predictions": True,
    "statuses": ["FINISHED"], "tags": {"dataset": "wine", "model_type": "elasticnet"}, "versions": [1, 2],
}
# run SCRIPT with the side venv's packages after this venv's: pandas, matplotlib and PIL where this venv has none
LAUNCH = ("import runpy, sys; sys.path.append(sys.argv.pop(1)); sys.argv = sys.argv[1:]; "
          "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A project the MLflow script recorded in (its tracking URI: the project folder), and what it printed."""
    folder = tmp_path_factory.mktemp("wine")
    (folder / "shipyard.yaml").write_text("stages: {}\n")
    script = SCRIPT.read_text()
    changed = script.replace("\nimport mlflow\n", "\nimport shipyard as mlflow\n", 1)
    assert changed != script and changed.count("\n") == script.count("\n") and "import mlflow" not in changed
    (folder / "wine.py").write_text(changed)
    site = next((mlflow_venv().parent / "lib").glob("python3*/site-packages"))
    done = subprocess.run([sys.executable, "-c", LAUNCH, str(site), "wine.py", str(folder)], cwd=folder,
                          env=cli_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_mlflow_script_gives_what_mlflow_gives(wine: tuple[Path, dict[str, Any]]) -> None:
    folder, said = wine
    assert said == MLFLOW_SAID
    with shipyard.Client(folder) as client:
        runs = client.search_runs(["wine-quality"], "metrics.rmse < 100", order_by=["metrics.rmse ASC"])
        assert [r.name for r in runs] == ["enet-0.05", "enet-0.5"]
        parent = client.get_parent_run(runs[0].id)
        assert parent is not None and parent.name == "sweep" and runs[1].parent_id == parent.id
        files = {a.path: a for a in runs[0].artifacts}
        assert sorted(files) == ["coefficients.json", "config/features.yaml", "config/model.json", "model",
                                 "notes.txt", "plots/predicted.png", "predictions.json", "residuals-pil.png",
                                 "residuals.png"]
        store = client.services.store

        def read(path: str) -> bytes:
            return read_verified(store, files[path].digest)

        table = json.loads(read("predictions.json"))  # MLflow's table form
        assert table["columns"] == ["actual", "predicted"] and len(table["data"]) == 5
        assert all(len(row) == 2 and all(isinstance(v, float) for v in row) for row in table["data"])
        coefficients = json.loads(read("coefficients.json"))  # a DataFrame, the same form
        assert coefficients["columns"] == ["feature", "coef"] and coefficients["data"][0][0] == "fixed_acidity"
        assert json.loads(read("config/model.json"))["alpha"] == 0.05
        assert read("config/model.json").startswith(b'{\n  "features": [')  # indented as MLflow writes it
        assert read("config/features.yaml") == b"features:\n- fixed_acidity\n- volatile_acidity\n"
        assert read("notes.txt") == b"ElasticNet(alpha=0.05, l1_ratio=0.2)\n"
        assert read("residuals.png")[:8] == read("plots/predicted.png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert read("residuals-pil.png")[:24] == read("residuals.png")[:24]  # PIL's PNG, the same 8 x 8 grey header
        # the data by its digest over every byte (an array, a DataFrame), the same for both runs (the same rows)
        assert runs[0].inputs == runs[1].inputs and sorted(runs[0].inputs) == ["wine-test", "wine-train"]
        assert runs[0].tags["input.wine-train.context"] == "training"
        assert runs[0].tags["input.wine-test.context"] == "testing"
        # the versions came from those runs; runs:/ names the version registered from a run's model
        v1, v2, v3 = (client.get_model_version("wine", v) for v in (1, 2, 3))
        assert (v1.run_id, v2.run_id, v3.run_id) == (runs[1].id, runs[0].id, runs[1].id)
        assert v3.manifest_digest == v1.manifest_digest
        assert client.services.registry.resolve(f"runs:/{runs[0].id}/model") == v2
        assert client.services.registry.resolve(f"runs:/{runs[1].id}/model") == v1  # the first of 1 and 3
        assert v1.signature["inputs"] and json.loads(read_verified(store, v1.examples_digest or v1.manifest_digest))


def test_the_cli_takes_mlflow_uris(wine: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    folder, _ = wine
    monkeypatch.chdir(folder)
    for key in ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    runner = CliRunner()
    shown = runner.invoke(app, ["models", "show", "models:/wine/1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["version"] == 1
    by_alias = runner.invoke(app, ["models", "show", "models:/wine@champion", "--json"])
    assert json.loads(by_alias.output)["version"] == 1
    run_id = json.loads(runner.invoke(app, ["models", "show", "models:/wine/2", "--json"]).output)["run_id"]
    assert json.loads(runner.invoke(app, ["models", "show", f"runs:/{run_id}/model", "--json"]).output)["version"] == 2
    bad = runner.invoke(app, ["models", "show", "models:/wine/Archived"])
    assert isinstance(bad.exception, InvalidReferenceError) and "models:/NAME/VERSION" in str(bad.exception)

    with serving(cli_env(), "models:/wine@champion") as url:
        assert httpx.get(f"{url}/v2/models/wine", timeout=10).json()["versions"] == ["1"]
        answer = httpx.post(f"{url}/predict", json={"inputs": [[0.0] * 11]}, timeout=10)
        assert answer.status_code == 200, answer.text


def test_files_inputs_and_runs_in_mlflow_shapes(project: Path, tmp_path: Path) -> None:
    """The same calls in-process, where pandas and matplotlib are absent: runs come as a list, a plotly figure
    is written as HTML, an array becomes a PNG without PIL; bad input gets one line and changes nothing."""
    import plotly.graph_objects as go  # installed here (and matplotlib is not): the plotly path is the one tested

    experiment = shipyard.set_experiment("files")
    assert experiment == experiment.experiment_id == experiment.name == "files"  # MLflow reads .experiment_id
    data = tmp_path / "wine.csv"
    data.write_text("alcohol,quality\n9.4,5\n9.8,6\n")
    with shipyard.start_run(run_name="outer") as outer, shipyard.start_run(run_name="inner", nested=True) as inner:
        shipyard.log_dict({"a": 1}, "conf/a.yml")
        shipyard.log_text("hello", "hello.txt")
        shipyard.log_table({"x": np.arange(3), "y": ["a", "b", "c"]}, "t.json")
        shipyard.log_figure(go.Figure(go.Bar(x=[1, 2], y=[3, 4])), "bars.html")
        shipyard.log_image(np.linspace(0, 1, 12).reshape(2, 2, 3), "grad.png")
        shipyard.log_image(np.zeros((4, 4), dtype=np.uint8), key="mask", step=3)
        digest = shipyard.log_input(data, context="training")
        rows = np.arange(20_002, dtype=np.float64).reshape(-1, 2)
        one = shipyard.data.from_numpy(rows, name="big")
        rows[-1, -1] += 1  # past MLflow's 10,000-row sample: a different dataset all the same
        other = shipyard.data.from_numpy(rows, name="big")
        assert one.digest != other.digest and one.profile == {"num_rows": 10_001, "num_elements": 20_002}
        shipyard.log_input(one, context="eval", tags={"split": "test"})
        shipyard.log_input(one)  # the same again: nothing new
        for bad, match in [
            (lambda: shipyard.log_table({"x": [1, 2], "y": [1]}, "t2.json"), "as many values"),
            (lambda: shipyard.log_table({"x": [1]}, "t2.csv"), r"\.json"),
            (lambda: shipyard.log_image(np.full((2, 2), 2.0), "bad.png"), "from 0 to 1"),
            (lambda: shipyard.log_image(np.zeros((2, 2, 5)), "bad.png"), "H x W"),
            (lambda: shipyard.log_image(np.zeros((2, 2)), "bad.jpg"), "PNG"),
            (lambda: shipyard.log_figure(object(), "f.png"), "matplotlib or plotly"),
            (lambda: shipyard.log_input(other), "another dataset named 'big'"),
            (lambda: shipyard.log_input(tmp_path / "absent.csv"), "no such file"),
            (lambda: shipyard.log_input([1, 2]), "from_pandas"),
            (lambda: shipyard.log_dict([1], "l.json"), "takes a dict"),
        ]:
            with pytest.raises(InvalidInputError, match=match) as caught:
                bad()
            assert "\n" not in str(caught.value)
    assert shipyard.get_run(inner.id).parent_id == outer.id
    with shipyard.Client() as client:
        rec = client.get_run(inner.id)
        files = {a.path: read_verified(client.services.store, a.digest) for a in rec.artifacts}
        assert sorted(files) == ["bars.html", "conf/a.yml", "grad.png", "hello.txt", "images/mask/step-3.png", "t.json"]
        assert files["conf/a.yml"] == b"a: 1\n" and files["hello.txt"] == b"hello"
        assert json.loads(files["t.json"]) == {"columns": ["x", "y"], "data": [[0, "a"], [1, "b"], [2, "c"]]}
        assert b"plotly" in files["bars.html"]
        png = files["grad.png"]
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:26] == b"\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02"  # 2x2 RGB
        assert rec.inputs == {"wine.csv": digest, "big": Digest.parse(one.digest)}  # outside the project: its name
        assert rec.tags["input.big.context"] == "eval" and rec.tags["input.big.split"] == "test"
    found = shipyard.search_runs(experiment_names=["files"])
    if importlib.util.find_spec("pandas") is None:  # without pandas, MLflow's default form is a list
        assert [r.name for r in found] == ["inner", "outer"]
        with pytest.raises(InvalidInputError, match="pip install pandas"):
            shipyard.search_runs(output_format="pandas")
    else:
        assert list(found["tags.mlflow.runName"]) == ["inner", "outer"]


def dummy() -> Any:
    from sklearn.dummy import DummyRegressor

    return DummyRegressor().fit([[0.0], [1.0]], [1.0, 1.0])


class Doubler(shipyard.pyfunc.PythonModel):
    """MLflow's custom python model: predict(context, model_input)."""

    def load_context(self, context: Any) -> None:
        self.factor = 2

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return np.asarray(model_input, dtype=float) * getattr(self, "factor", 2)


def test_a_registry_workflow_with_mlflow_client(project: Path, tmp_path: Path) -> None:
    """MlflowClient's registry calls, stages mapped to aliases (with a warning), the pytorch/onnx/pyfunc flavor
    modules with input_example as golden examples, and runs:/ URIs."""
    import torch

    from tests.torch_models import TinyNet

    client = shipyard.MlflowClient()
    assert client.create_registered_model("nets").latest_versions == []  # a name: made by its first version
    with shipyard.start_run(run_name="nets") as run:
        net = TinyNet()
        example = np.ones((2, 4), dtype=np.float32)
        info = shipyard.pytorch.log_model(net, name="torch-model", registered_model_name="nets", input_example=example)
        onnx_path = tmp_path / "tiny.onnx"
        with warnings.catch_warnings():  # the TorchScript-based exporter needs no onnxscript; torch calls it legacy
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (torch.ones(1, 4),), str(onnx_path), input_names=["x"], dynamo=False)
        shipyard.onnx.log_model(onnx_path.read_bytes(), "onnx-model", registered_model_name="nets-onnx")
        doubled = shipyard.pyfunc.log_model(name="doubler", python_model=Doubler(), input_example=[[1.0, 2.0]],
                                            registered_model_name="doubler")
        unregistered = shipyard.sklearn.log_model(dummy(), name="plain")
        shipyard.sklearn.log_model(dummy(), name="pickled", serialization_format="pickle")
    assert info.model_uri == "models:/nets/1" and info.registered_model_version == 1
    assert unregistered.model_uri == f"runs:/{run.id}/plain" and unregistered.registered_model_version is None
    loaded = shipyard.pytorch.load_model("models:/nets/1")
    assert np.allclose(loaded(torch.from_numpy(example)).detach().numpy(), net(torch.from_numpy(example)).detach())
    assert shipyard.onnx.load_model("models:/nets-onnx/latest").run(None, {"x": np.ones((1, 4), np.float32)})
    assert shipyard.pyfunc.load_model(doubled.model_uri).predict([[1.0, 3.0]]).tolist() == [[2.0, 6.0]]
    assert shipyard.pyfunc.load_model(f"runs:/{run.id}/doubler").predict([[1.0]]).tolist() == [[2.0]]
    assert client.get_model_version("nets", "1").examples_digest is not None  # input_example: golden examples
    # a model logged but not registered loads from its run, as in MLflow, re-hashed; within its flavor's allowlist
    assert shipyard.sklearn.load_model(unregistered.model_uri).predict([[0.0]]).tolist() == [1.0]
    with pytest.raises(UntrustedModelError, match=r"runs:/.*/pickled needs a pickle .* only a registered version"):
        shipyard.load_model(f"runs:/{run.id}/pickled")
    with pytest.raises(NotFoundError, match="logged no model at 'absent'; it registered"):
        shipyard.load_model(f"runs:/{run.id}/absent")
    with pytest.raises(InvalidReferenceError, match="runs:/RUN_ID/PATH"):
        shipyard.load_model("runs:/only-an-id")

    again = shipyard.register_model(unregistered.model_uri, "plain")
    assert shipyard.get_model_version("plain", 1) == again == client.get_latest_versions("plain")[0]
    with pytest.warns(UserWarning, match=r"aliases, not stages: nets@production now points at version 1"):
        moved = client.transition_model_version_stage("nets", "1", "Production")
    assert moved.aliases == ("production",)
    assert [v.version for v in client.get_latest_versions("nets", stages=["Production", "Staging"])] == [1]
    assert shipyard.load_model("models:/nets/Production") is not None
    with pytest.warns(UserWarning, match="removed nets@production"):
        client.transition_model_version_stage("nets", 1, "Archived")
    assert client.get_latest_versions("nets", stages=["Production"]) == []
    with pytest.raises(InvalidInputError, match="unknown stage 'Gold'"), warnings.catch_warnings():
        warnings.simplefilter("error")
        client.transition_model_version_stage("nets", 1, "Gold")

    client.set_registered_model_alias("nets", "champion", "1")
    model = client.get_registered_model("nets")
    assert (model.name, model.aliases, [v.version for v in model.latest_versions]) == ("nets", {"champion": 1}, [1])
    assert [m.name for m in client.search_registered_models("name LIKE 'nets%'")] == ["nets", "nets-onnx"]
    assert [m.name for m in client.search_registered_models("name = 'doubler'")] == ["doubler"]
    assert len(client.search_registered_models(max_results=2)) == 2
    assert client.update_model_version("nets", 1).version == 1  # nothing to change: the version as it is
    with pytest.raises(ImmutableError, match="never changes"):
        client.update_model_version("nets", 1, description="better")
    with pytest.raises(NotFoundError, match="no registered model 'absent'"):
        client.get_registered_model("absent")
    with pytest.raises(InvalidInputError, match="no tags or description"):
        client.create_registered_model("nets", description="x")
    with pytest.raises(InvalidInputError, match="cannot read model filter"):
        client.search_registered_models("tags.team = 'x'")
    with pytest.raises(InvalidInputError, match=r"pass input_example= .* or a signature from shipyard.models"):
        shipyard.sklearn.log_model(dummy(), name="x", signature={"inputs": []})
    client.close()


def test_a_signature_from_infer_signature_gives_the_versions_examples(project: Path) -> None:
    """MLflow's quickstart: ``signature = infer_signature(X, model.predict(X))``, then ``log_model(...,
    signature=signature)`` with no input_example; MLflow's submodule imports work by Shipyard's name too."""
    import shipyard.sklearn
    from shipyard.models import ModelSignature, infer_signature

    assert shipyard.sklearn is shipyard.interfaces.api.sklearn and shipyard.models.infer_signature is infer_signature
    from sklearn.linear_model import LinearRegression

    X = np.arange(40, dtype=float).reshape(20, 2)
    model = LinearRegression().fit(X, X.sum(axis=1))
    signature = infer_signature(X, model.predict(X))
    assert isinstance(signature, ModelSignature)
    assert signature.to_dict() == {"inputs": {"dtype": "float64", "shape": [-1, 2]},
                                   "outputs": {"dtype": "float64", "shape": [-1]}, "params": None}
    with shipyard.start_run():
        info = shipyard.sklearn.log_model(model, name="model", registered_model_name="summer", signature=signature)
    mv = info.model_version
    assert mv is not None and mv.signature == {"inputs": signature.inputs, "outputs": signature.outputs}
    svc = shipyard.interfaces.api.fluent._svc()
    assert mv.examples_digest is not None
    golden = json.loads(read_verified(svc.store, mv.examples_digest))  # the first 5 rows, the model's answers
    assert np.asarray(golden["inputs"]).tolist() == X[:5].tolist()
    assert np.allclose(np.asarray(golden["outputs"]), X[:5].sum(axis=1))
    with pytest.raises(InvalidInputError, match="needs the model's input"):
        infer_signature(None)


def test_search_runs_looks_in_the_experiment_set_unless_told_otherwise(project: Path) -> None:
    """As MLflow: after ``set_experiment``, ``search_runs()`` searches that experiment (a "best run" query never
    picks another experiment's run); ``search_all_experiments=True`` or naming experiments widens it."""
    for experiment, accuracy in (("baseline", 0.99), ("tuned", 0.9)):
        shipyard.set_experiment(experiment)
        with shipyard.start_run():
            shipyard.log_metric("accuracy", accuracy)
    best = shipyard.search_runs(order_by=["metrics.accuracy DESC"], output_format="list")
    assert [(r.experiment, r.metrics["accuracy"]) for r in best] == [("tuned", 0.9)]
    every = shipyard.search_runs(search_all_experiments=True, output_format="list")
    assert sorted(r.experiment for r in every) == ["baseline", "tuned"]
    assert [r.experiment for r in shipyard.search_runs(["baseline"], output_format="list")] == ["baseline"]
    # MLflow's order_by keys and RunInfo fields
    oldest = shipyard.search_runs(order_by=["attributes.start_time ASC"], search_all_experiments=True,
                                  output_format="list")
    assert [r.experiment for r in oldest] == ["baseline", "tuned"]
    named = shipyard.search_runs(order_by=["attributes.run_name DESC"], search_all_experiments=True,
                                 output_format="list")
    assert [r.name for r in named] == sorted((r.name for r in oldest), reverse=True)
    info = oldest[0].info
    assert (info.artifact_uri, info.lifecycle_stage) == (f"runs:/{oldest[0].id}", "active")


def test_a_saved_folder_loads_by_its_path_within_the_allowlist(project: Path, tmp_path: Path) -> None:
    """MLflow's ``save_model(model, path)`` then ``load_model(path)``: the folder is copied, then loaded with
    nothing trusted (a folder grants itself no trust): a pickle is refused, with what to do."""
    shipyard.sklearn.save_model(dummy(), tmp_path / "saved", input_example=[[0.0]])
    for given in (tmp_path / "saved", str(tmp_path / "saved"), f"file://{tmp_path / 'saved'}"):
        assert shipyard.sklearn.load_model(given).predict([[5.0]]).tolist() == [1.0]
    assert Path.cwd() == project and project.parent == tmp_path
    assert shipyard.pyfunc.load_model("../saved").predict([[5.0]]).tolist() == [1.0]  # relative to the cwd
    shipyard.sklearn.save_model(dummy(), tmp_path / "pickled", serialization_format="pickle")
    with pytest.raises(UntrustedModelError, match=r"pickled needs a pickle .* to load, and only a registered version"):
        shipyard.sklearn.load_model(tmp_path / "pickled")
    with pytest.raises(NotFoundError, match="no saved model folder at"):
        shipyard.sklearn.load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"empty is not a saved model: it has no shipyard-model\.json"):
        shipyard.load_model(f"{tmp_path}/empty")
