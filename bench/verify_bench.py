"""verify: Shipyard's `verify` of an iris model, fresh and cached, against `mlflow models predict --env-manager uv`.

Both tools get the same model (a LogisticRegression on iris), logged by each in its own way, and the same
10 rows. MLflow (3.17, installed by this script into its own venv under the cache folder) builds its uv
environment in a temp folder on every call and only checks that the model runs; Shipyard builds from the
version's lock once, keeps the environment by its key, and compares the answers with the golden ones.
uv's own download cache is warm for both (this machine's packages), as on a developer's laptop.

    python bench/verify_bench.py [--runs 2]   (each run: a fresh verify, an MLflow call, two cached verifies)

Targets (issue 9): first verify >= 3x faster than MLflow's call; a cached verify < 2 s end to end and >= 10x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLFLOW = "mlflow==3.17.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shipyard-bench"

TRAIN = """
import json, sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(X, y)
json.dump({"inputs": X[::15].tolist()}, open("input.json", "w"))
"""

SHIPYARD_LOG = TRAIN + """
import shipyard
with shipyard.start_run():
    shipyard.log_model(model, "iris", flavor="sklearn", examples=X[::15])
"""

MLFLOW_LOG = TRAIN + """
import mlflow, mlflow.sklearn
with mlflow.start_run() as run:
    mlflow.sklearn.log_model(model, name="model")
print(f"runs:/{run.info.run_id}/model")
"""


def uv() -> str:
    import uv as uv_package

    return str(uv_package.find_uv_bin())


def mlflow_python() -> Path:
    """MLflow's own venv, made once under the cache folder with uv."""
    venv = CACHE / "mlflow-3.17"
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import mlflow, sklearn"], capture_output=True).returncode:
        print(f"installing {MLFLOW} into {venv} (first run only)...", flush=True)
        subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv(), "pip", "install", "-q", "--python", str(py), MLFLOW, "scikit-learn"], check=True)
    return py


def timed(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="fresh-cache verifies and MLflow calls (each)")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    base["PATH"] = f"{Path(uv()).parent}{os.pathsep}{base.get('PATH', '')}"  # MLflow runs `uv` from PATH
    mlpy = mlflow_python()
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as tmp:
        t = Path(tmp)
        # Shipyard: a project with the iris model; each first verify gets an empty environment cache
        proj = t / "shipyard"
        proj.mkdir()
        env = {**base, "PYTHONPATH": str(ROOT / "src")}
        timed([sys.executable, "-c", SHIPYARD_LOG], proj, env)
        ml = t / "mlflow"
        ml.mkdir()
        ml_env = {**base, "MLFLOW_TRACKING_URI": f"sqlite:///{ml / 'mlflow.db'}"}
        _, out = timed([str(mlpy), "-c", MLFLOW_LOG], ml, ml_env)
        uri = out.strip().splitlines()[-1]
        predict = [str(mlpy), "-m", "mlflow", "models", "predict", "-m", uri, "-i", "input.json", "-t", "json",
                   "--env-manager", "uv"]
        verify = [sys.executable, "-m", "shipyard", "verify", "iris@1"]
        load_before = os.getloadavg()[0]
        # interleaved, so that a machine shared with other work weighs on both sides alike
        firsts, cached, mlflow_times = [], [], []
        for i in range(args.runs):
            run_env = {**env, "SHIPYARD_CACHE_DIR": str(t / f"cache-{i}")}
            firsts.append(timed(verify, proj, run_env)[0])  # an empty environment cache
            seconds, answer = timed(predict, ml, ml_env)
            mlflow_times.append(seconds)
            for _ in range(2):
                cached.append(timed(verify, proj, run_env)[0])
        predictions = answer.strip().splitlines()[-1] if answer.strip() else "(nothing)"
        load_after = os.getloadavg()[0]

    first, warm, theirs = statistics.median(firsts), statistics.median(cached), statistics.median(mlflow_times)
    report = {
        "shipyard_first_s": [round(s, 2) for s in firsts], "shipyard_cached_s": [round(s, 2) for s in cached],
        "mlflow_predict_uv_s": [round(s, 2) for s in mlflow_times],
        "first_speedup": round(theirs / first, 1), "cached_speedup": round(theirs / warm, 1),
        "mlflow_answer": predictions[:120], "load_average_before_after": [load_before, load_after],
    }
    print(json.dumps(report, indent=2))
    print(f"\nverify, iris (LogisticRegression), medians of {args.runs} fresh / {len(cached)} cached verifies and "
          f"{args.runs} MLflow calls, interleaved (1-min load average {load_before:.1f} -> {load_after:.1f})")
    print(f"  shipyard verify, fresh environment cache : {first:6.2f} s   ({theirs / first:.1f}x faster; target >= 3x)")
    print(f"  shipyard verify, cached environment      : {warm:6.2f} s   ({theirs / warm:.1f}x faster; "
          f"target < 2 s and >= 10x)")
    print(f"  mlflow models predict --env-manager uv   : {theirs:6.2f} s   (checks only that the model runs)")


if __name__ == "__main__":
    main()
