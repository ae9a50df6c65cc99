"""The same tracking workload through MLflow (run inside its own venv)."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import mlflow
import mlflow.sklearn
from common import N_CALLS, N_RUNS, N_VERSIONS, SEARCH_REPEATS, emit, median_of, model_and_data, timed
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main() -> None:
    r: dict[str, float] = {}
    client = MlflowClient()
    with mlflow.start_run(run_name="calls"):
        mlflow.log_metric("warm", 0.0)
        r["log_metric_2000_calls_s"] = timed(lambda: [mlflow.log_metric("m", i * 0.1, step=i)
                                                       for i in range(N_CALLS)])
    with mlflow.start_run(run_name="batch") as run:
        now = int(time.time() * 1000)
        batch = [Metric(f"m{i % 20}", i * 0.1, now, i // 20) for i in range(N_CALLS)]
        r["log_batch_2000_s"] = timed(lambda: client.log_batch(run.info.run_id, metrics=batch))

    def runs() -> None:
        for i in range(N_RUNS):
            with mlflow.start_run(run_name=f"run-{i}"):
                mlflow.log_params({f"p{j}": f"v{i}-{j}" for j in range(10)})
                mlflow.log_metrics({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(10)})
    r["runs_200_s"] = timed(runs)
    exp = [mlflow.get_experiment_by_name("Default").experiment_id]
    search = lambda: client.search_runs(exp, "metrics.m0 > 0.5", max_results=1000)  # noqa: E731
    r["search_200_s"] = median_of(search, SEARCH_REPEATS)
    r["search_200_matches"] = len(search())

    model, x = model_and_data()
    def register_one() -> None:
        with mlflow.start_run(run_name="register"):
            mlflow.sklearn.log_model(model, name="model", registered_model_name="bench-model",
                                     input_example=x[:5])
    n = int(os.environ.get("BENCH_MLFLOW_VERSIONS", str(N_VERSIONS)))
    r["register_first_s"] = timed(register_one)
    r["register_50_s"] = timed(lambda: [register_one() for _ in range(n)]) * N_VERSIONS / n
    r["register_versions_measured"] = n
    emit(r)


if __name__ == "__main__":
    main()
