"""``shipyard.autolog()`` records a scikit-learn fit as ``mlflow.autolog()`` does: the same param, metric and tag
keys (and metric values) as the real MLflow records for the same estimators, checked side by side; once per
outer fit; the user's errors untouched; scikit-learn's methods given back by ``disable=True``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.errors import InvalidReferenceError
from tests.conftest import MLFLOW_VERSION, TEST_CACHE, mlflow_venv

pytestmark = pytest.mark.xdist_group("autolog")  # one MLflow run for the module's comparison

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

# The same fits, one run each; run by the real MLflow in its side venv (same scikit-learn) and by Shipyard here.
CASES = """
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

X, y = load_iris(return_X_y=True)
Xb, yb = load_breast_cancer(return_X_y=True)
Xr, yr = load_diabetes(return_X_y=True)
CASES = {
    "multiclass": (lambda: LogisticRegression(max_iter=500), X, y),
    "binary": (lambda: DecisionTreeClassifier(max_depth=3, random_state=0), Xb, yb),
    "regressor": (lambda: Ridge(alpha=0.5), Xr, yr),
    "pipeline": (lambda: make_pipeline(StandardScaler(), LogisticRegression()), X, y),
}
"""

MLFLOW_SIDE = CASES + """
import json, sys
import mlflow

mlflow.set_tracking_uri("file:" + sys.argv[1])
mlflow.autolog(log_models=False, log_datasets=False, silent=True)
found = {}
for name, (make, X_, y_) in CASES.items():
    with mlflow.start_run() as run:
        make().fit(X_, y_)
    data = mlflow.get_run(run.info.run_id).data
    found[name] = {"params": sorted(data.params), "metrics": data.metrics,
                   "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def mlflow_records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """What MLflow's autolog records for CASES, read from a cache made by the real MLflow (keyed by its
    version, scikit-learn's and the script), else from MLflow run now in a process of its own, started at
    once so that it runs beside this module's other tests."""
    key = hashlib.sha256(f"{MLFLOW_VERSION} {sklearn.__version__} {MLFLOW_SIDE}".encode()).hexdigest()[:16]
    cached = TEST_CACHE / f"autolog-mlflow-{key}.json"
    if cached.exists():
        yield lambda: json.loads(cached.read_text())
        return
    folder = tmp_path_factory.mktemp("mlflow")
    (folder / "side.py").write_text(MLFLOW_SIDE)
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([str(mlflow_venv() / "python"), "side.py", str(folder / "mlruns")], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result() -> Any:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(out.strip().splitlines()[-1])
        return json.loads(cached.read_text())

    try:
        yield result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def autologged(project: Path, mlflow_records: Any) -> Iterator[Path]:
    """A project with ``shipyard.autolog()`` on (models not saved), turned off after the test."""
    shipyard.autolog(log_models=False)
    try:
        yield project
    finally:
        shipyard.autolog(disable=True)


def recorded(cases: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for name, (make, X, y) in cases.items():
        with shipyard.start_run() as run:
            make().fit(X, y)
        data = shipyard.get_run(run.id)
        found[name] = {"params": sorted(data.params), "metrics": data.metrics, "tags": data.tags}
    return found


def test_a_pipeline_and_a_grid_search_are_recorded_once_for_the_outer_fit(autologged: Path) -> None:
    X, y = load_iris(return_X_y=True)
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.5, 1.0]}, cv=2).fit(X, y)
    runs = shipyard.search_runs()
    assert [r.tags["estimator_name"] for r in runs] == ["GridSearchCV", "Pipeline"]
    assert all(r.status.value == "finished" for r in runs)  # started for the fit, ended after it
    assert "estimator__C" in runs[0].params and "logisticregression__C" in runs[1].params
    assert runs[0].metrics["training_accuracy_score"] > 0.9


def test_the_current_run_is_used_and_left_running(autologged: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    with shipyard.start_run(name="mine") as run:
        Ridge().fit(X, y)
        assert shipyard.get_run(run.id).status.value == "running"
    assert [r.id for r in shipyard.search_runs()] == [run.id]
    assert shipyard.get_run(run.id).metrics["training_r2_score"] > 0.4


def test_disable_gives_scikit_learns_own_methods_back(project: Path) -> None:
    own_fit = LogisticRegression.__dict__["fit"]
    pipeline_fit_transform = Pipeline.__dict__["fit_transform"]  # available_if: only when the last step has it
    assert "fit_predict" not in KMeans.__dict__  # inherited from ClusterMixin
    shipyard.autolog(log_models=False)
    try:
        assert LogisticRegression.__dict__["fit"] is not own_fit
        assert LogisticRegression.fit.__wrapped__ is own_fit  # type: ignore[attr-defined]
        assert not hasattr(make_pipeline(StandardScaler(), LogisticRegression()), "fit_transform")
        assert hasattr(make_pipeline(StandardScaler()), "fit_transform")
    finally:
        shipyard.autolog(disable=True)
    assert LogisticRegression.fit is own_fit
    assert Pipeline.__dict__["fit_transform"] is pipeline_fit_transform
    assert "fit_predict" not in KMeans.__dict__
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=500).fit(X, y)
    assert shipyard.search_runs() == []


class Broken(LogisticRegression):
    """An estimator whose own code fails, to see its error reach the caller untouched."""

    error = RuntimeError("the user's own error")

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Broken:
        raise self.error


class Unlistable(LogisticRegression):
    """An estimator recording cannot read (its params fail): the fit must still work."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        if deep:
            raise RuntimeError("no params today")
        return super().get_params(deep)


def test_the_users_error_propagates_and_a_recording_failure_only_warns(
        autologged: Path, caplog: pytest.LogCaptureFixture) -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(RuntimeError) as caught:
        Pipeline([("broken", Broken())]).fit(X, y)
    assert caught.value is Broken.error
    failed = shipyard.search_runs()
    assert [r.status.value for r in failed] == ["failed"]
    with caplog.at_level(logging.WARNING, logger="shipyard"):
        fitted = Unlistable(max_iter=500).fit(X, y)
    assert fitted.score(X, y) > 0.9
    assert "this fit of Unlistable is not recorded (RuntimeError: no params today)" in caplog.text
    assert len(shipyard.search_runs()) == 1  # no run was started for it


def test_registered_model_name_registers_a_version_that_loads_and_predicts(project: Path) -> None:
    own_fit = LogisticRegression.__dict__["fit"]
    with pytest.raises(InvalidReferenceError):  # bad input: one line, and nothing is hooked
        shipyard.autolog(registered_model_name="not a name!")
    assert LogisticRegression.__dict__["fit"] is own_fit
    X, y = load_breast_cancer(return_X_y=True)
    shipyard.autolog(registered_model_name="cancer-tree", log_input_examples=True)
    try:
        tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    finally:
        shipyard.autolog(disable=True)
    run = shipyard.search_runs()[0]
    assert [a.path for a in run.artifacts] == ["model"]
    version = shipyard.get_model_version("cancer-tree", 1)
    assert version.run_id == run.id
    loaded = shipyard.load_model("models:/cancer-tree/1")
    assert list(loaded.predict(X[:20])) == list(tree.predict(X[:20]))


def test_the_same_keys_and_values_as_mlflows_autolog(autologged: Path, mlflow_records: Any) -> None:
    scope: dict[str, Any] = {}
    exec(CASES, scope)
    ours = recorded(scope["CASES"])
    theirs = mlflow_records()
    assert set(ours) == set(theirs)
    for name, mlflow_run in theirs.items():
        assert ours[name]["params"] == mlflow_run["params"], name
        assert sorted(ours[name]["metrics"]) == sorted(mlflow_run["metrics"]), name
        assert ours[name]["metrics"] == pytest.approx(mlflow_run["metrics"], rel=1e-9), name
        assert ours[name]["tags"] == mlflow_run["tags"], name
