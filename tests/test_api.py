"""The MLflow-like Python API, end to end on a real project folder."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import shipyard
from shipyard.core.artifacts.digest import Digest
from shipyard.errors import (
    ConflictError,
    ImmutableError,
    IntegrityError,
    InvalidInputError,
    InvalidReferenceError,
    NotFoundError,
)


@pytest.fixture
def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x, y


def test_runs_record_params_metrics_artifacts_and_environment(project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "report.txt"
    report.write_text("fine")
    with shipyard.start_run(name="train", tags={"team": "ml"}) as run:
        shipyard.log_params({"lr": 0.1, "depth": 3})
        for step in range(3):
            shipyard.log_metric("loss", 1.0 / (step + 1), step=step)
        shipyard.log_artifact(report)
    rec = shipyard.get_run(run.id)
    assert rec.status == "finished" and rec.end_time is not None
    assert rec.params == {"lr": "0.1", "depth": "3"}
    assert rec.metrics == {"loss": pytest.approx(1 / 3)}
    assert rec.tags == {"team": "ml"}
    assert rec.artifacts[0].path == "report.txt"
    assert rec.artifacts[0].digest == Digest.of_bytes(b"fine")
    assert rec.env_digest is not None
    env_object = project / ".shipyard" / "objects" / "sha256" / rec.env_digest.hex[:2] / rec.env_digest.hex[2:]
    assert b'"packages"' in env_object.read_bytes()


def test_a_failing_block_marks_the_run_failed(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), shipyard.start_run(name="boom") as run:
        raise RuntimeError("training diverged")
    assert shipyard.get_run(run.id).status == "failed"
    with pytest.raises(ImmutableError, match="closed"):
        run.log_metric("late", 1.0)


def test_bad_values_are_refused_and_change_nothing(project) -> None:  # type: ignore[no-untyped-def]
    with shipyard.start_run() as run:
        shipyard.log_param("lr", 0.1)
        with pytest.raises(ConflictError):
            shipyard.log_param("lr", 0.2)
        with pytest.raises(InvalidInputError, match="number"):
            shipyard.log_metric("acc", "high")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="step"):
            shipyard.log_metric("acc", 1.0, step=-1)
        with pytest.raises(InvalidInputError, match="no such file"):
            shipyard.log_artifact("/nonexistent/file")
    rec = shipyard.get_run(run.id)
    assert rec.params == {"lr": "0.1"} and rec.metrics == {}


def test_log_model_registers_versions_that_never_change(project, iris, tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = iris
    with shipyard.start_run(name="v1") as run1:
        shipyard.log_metric("acc", 0.9)
        v1 = shipyard.log_model(LogisticRegression(max_iter=300).fit(x, y), "iris", examples=x[:5])
    shipyard.set_alias("iris", "staging", v1.version)
    before = shipyard.load_model("iris@1").predict_proba(x)

    with shipyard.start_run(name="v2"):
        v2 = shipyard.log_model(DecisionTreeClassifier(max_depth=1).fit(x, y), "iris")
        # what MLflow 3.17 let through: new files and metrics on the producing run after registration
        shipyard.save_model(DecisionTreeClassifier().fit(x, y), tmp_path / "other")
        shipyard.log_artifact(tmp_path / "other", name="model")
        shipyard.log_metric("acc", 0.1)
        assert shipyard.get_model_version("iris@2").manifest_digest == v2.manifest_digest
        assert shipyard.get_model_version("iris@2").metrics == {}
        with pytest.raises(ImmutableError, match="iris@1 is already registered"):
            shipyard.log_model(DecisionTreeClassifier().fit(x, y), "iris", version=1)
    assert (v1.version, v2.version) == (1, 2)

    # the producing run can take more artifacts and metrics: the version keeps what it had
    with pytest.raises(ImmutableError):  # run1 is finished: its record is closed
        run1.log_metric("acc", 0.1)
    again = shipyard.get_model_version("iris@1")
    assert again.manifest_digest == v1.manifest_digest and again.metrics == {"acc": 0.9}
    np.testing.assert_array_equal(shipyard.load_model("iris@staging").predict_proba(x), before)
    assert isinstance(shipyard.load_model("iris"), DecisionTreeClassifier)  # latest
    assert shipyard.get_model_version("iris@1").signature["inputs"]["shape"] == [-1, 4]
    assert shipyard.get_model_version("iris@1").run_id == run1.id


def test_pickled_models_load_only_if_their_digest_matches(project, iris) -> None:  # type: ignore[no-untyped-def]
    x, y = iris
    with shipyard.start_run():
        mv = shipyard.log_model(LogisticRegression(max_iter=300).fit(x, y), "pickled", serializer="pickle")
    assert shipyard.load_model("pickled@1").predict(x[:2]).shape == (2,)
    manifest = shipyard.get_model_version("pickled@1").manifest_digest.hex
    import json

    objects = project / ".shipyard" / "objects" / "sha256"
    entries = json.loads((objects / manifest[:2] / manifest[2:]).read_bytes())["entries"]
    pkl = next(e["digest"] for e in entries if e["path"] == "model.pkl")
    target = objects / pkl[7:9] / pkl[9:]
    target.chmod(0o644)
    target.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a malicious pickle
    with pytest.raises(IntegrityError, match="corrupt"):
        shipyard.load_model("pickled@1")
    assert mv.flavor == "sklearn"


def test_unknown_references_raise_not_found(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError):
        shipyard.load_model("ghost@production")
    with pytest.raises(InvalidReferenceError):
        shipyard.load_model("ghost@@")
    with pytest.raises(InvalidInputError, match="run name"):
        shipyard.start_run(name="x" * 300)


def test_search_runs_filters_on_metrics(project) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        with shipyard.start_run(name=f"r{i}"):
            shipyard.log_metric("acc", i / 4)
            shipyard.log_param("even", i % 2 == 0)
    assert sorted(r.name for r in shipyard.search_runs("metrics.acc >= 0.5 and params.even = 'True'")) == ["r2", "r4"]
    assert [r.name for r in shipyard.search_runs(order_by="metrics.acc desc", limit=2)] == ["r4", "r3"]


def test_log_batch_writes_history_and_latest_values(project) -> None:  # type: ignore[no-untyped-def]
    with shipyard.start_run() as run:
        shipyard.log_batch(metrics=[("loss", 1.0 / (s + 1), s) for s in range(100)], params={"epochs": 100})
        with pytest.raises(InvalidInputError):
            shipyard.log_batch(metrics=[("ok", 1.0, 0), ("bad", float("nan"), 0)])
    rec = shipyard.get_run(run.id)
    assert rec.metrics == {"loss": pytest.approx(0.01)} and rec.params == {"epochs": "100"}
    svc = shipyard.interfaces.api.default_client().services  # type: ignore[attr-defined]
    assert len(svc.meta.metric_history(run.id, "loss")) == 100
