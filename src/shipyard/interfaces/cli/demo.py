"""``shipyard demo``: the whole foundation in one go, on scikit-learn's bundled iris data."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import shipyard
from shipyard.errors import MissingExtraError
from shipyard.interfaces.cli import output as out


def run_demo(name: str) -> None:
    try:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
        from sklearn.model_selection import cross_val_score, train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ModuleNotFoundError as exc:
        raise MissingExtraError("the demo", "sklearn") from exc

    c = out.console()
    started = time.perf_counter()
    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42, stratify=data.target)
    params = {"C": 1.0, "max_iter": 200, "test_size": 0.3, "random_state": 42}

    with shipyard.start_run(name="demo-iris", experiment="demo") as run, tempfile.TemporaryDirectory() as tmp:
        shipyard.log_params(params)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=params["max_iter"]))
        for fold, score in enumerate(cross_val_score(model, x_train, y_train, cv=5)):
            shipyard.log_metric("cv_accuracy", float(score), step=fold)
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        metrics = {"accuracy": accuracy_score(y_test, predicted),
                   "f1_macro": f1_score(y_test, predicted, average="macro")}
        shipyard.log_metrics(metrics)
        report = Path(tmp) / "confusion_matrix.json"
        report.write_text(json.dumps({"labels": list(data.target_names),
                                      "matrix": confusion_matrix(y_test, predicted).tolist()}))
        shipyard.log_artifact(report)
        version = shipyard.log_model(model, name, flavor="sklearn", examples=x_test[:5],
                                     description="LogisticRegression on iris (shipyard demo)")
        shipyard.set_alias(name, "staging", version.version, reason="demo: newest model goes to staging")

    loaded = shipyard.load_model(f"{name}@staging")
    sample = x_test[:3]
    answers = loaded.predict(sample)
    elapsed = time.perf_counter() - started

    out.table(f"run {run.id[:8]} ({run.name})", ["what", "value"], [
        ("params", ", ".join(f"{k}={v}" for k, v in params.items())),
        ("accuracy", f"{metrics['accuracy']:.3f}"),
        ("f1 (macro)", f"{metrics['f1_macro']:.3f}"),
        ("registered", f"{version.ref}  (artifacts {out.short(version.manifest_digest)}, "
                       f"environment {out.short(version.env_digest)})"),
        ("alias", f"{name}@staging → version {version.version}"),
    ])
    out.table(f"{name}@staging predicts", ["input (sepal/petal length, width)", "predicted", "true"],
              ((", ".join(f"{v:.1f}" for v in row), data.target_names[p], data.target_names[t])
               for row, p, t in zip(sample, answers, y_test[:3], strict=True)))
    c.print(f"done in {elapsed:.2f} s. Next: `shipyard runs list`, `shipyard models versions {name}`, "
            f"`shipyard models show {name}@staging`, `shipyard store verify`.")
