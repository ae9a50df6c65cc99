"""The team-store workload through MLflow (run in bench/.venvs/mlflow by bench/team_store.py).

    team_mlflow.py log    log and register BENCH_REPEATS versions of the big model: PostgreSQL as the tracking
                          backend (MLFLOW_TRACKING_URI), artifacts in S3 (moto, MLFLOW_S3_ENDPOINT_URL)
    team_mlflow.py load   another machine: load one version (twice; MLflow keeps no cache, both download)
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import mlflow
import mlflow.sklearn
from team_common import big_model, emit, env_float, profiled, timed

MIB = env_float("BENCH_MIB", 100)
REPEATS = int(env_float("BENCH_REPEATS", 5))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
warnings.filterwarnings("ignore")


def log() -> None:
    if mlflow.get_experiment_by_name("team") is None:
        mlflow.create_experiment("team", artifact_location=f"s3://{os.environ['BENCH_BUCKET']}/mlflow")
    mlflow.set_experiment("team")
    tiny, _ = big_model(10_000, 0.01)
    with mlflow.start_run(run_name="warm-up"):  # imports, database and S3 connections
        mlflow.sklearn.log_model(tiny, name="model", registered_model_name="warm-up")
    r: dict[str, Any] = {"log_s": []}
    version = "0"
    for i in range(REPEATS + (1 if PROFILE else 0)):
        model, _ = big_model(i, MIB)

        def ship(i: int = i, model: Any = model) -> None:
            nonlocal version
            with mlflow.start_run(run_name=f"register-{i}"):
                info = mlflow.sklearn.log_model(model, name="model", registered_model_name="big")
            version = str(info.registered_model_version)

        if i == REPEATS:
            profiled("MLflow log_model to S3 + PostgreSQL", ship)
            continue
        r["log_s"].append(timed(ship))
        print(f"  MLflow log_model #{i}: {r['log_s'][-1]:.3f} s", flush=True)
    r["version"] = version
    emit(r)


def load() -> None:
    uri = f"models:/big/{os.environ['BENCH_VERSION']}"
    mlflow.MlflowClient().get_model_version("big", os.environ["BENCH_VERSION"])  # database connected
    import boto3  # noqa: F401  (MLflow imports it on the first S3 read)
    import sklearn.linear_model  # noqa: F401

    r = {"load_s": profiled("MLflow load_model", lambda: mlflow.sklearn.load_model(uri)) if PROFILE
         else timed(lambda: mlflow.sklearn.load_model(uri))}
    r["load_again_s"] = timed(lambda: mlflow.sklearn.load_model(uri))
    emit(r)


if __name__ == "__main__":
    {"log": log, "load": load}[sys.argv[1]]()
