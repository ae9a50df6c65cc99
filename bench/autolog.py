"""autolog's overhead on a scikit-learn fit of about a second: bare, under shipyard.autolog() and under
mlflow.autolog(), side by side in one run, each in processes of its own, with ratios.

    python bench/autolog.py [--rounds 3] [--fits 3] [--workloads gboost,forest,logreg] [--mlflow-python PATH]

Each round starts one process per (workload, mode), interleaved so that the machine's load falls on all
alike; each process times ``--fits`` fits after a first small one (which makes the store and does the lazy
imports: reported apart, as is turning autolog on). Both tools run with their defaults (the model saved on
the run, on SQLite). MLflow is timed against a bare fit in its own venv (bench/.venvs/mlflow, installed on
first use), Shipyard against one in this interpreter: each tool's overhead is measured on its own numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvs import tool_python

HERE = Path(__file__).resolve().parent
MLFLOW_SPEC = "mlflow==3.17.2"
TARGET_OVERHEAD = 0.05  # Shipyard's autolog adds under 5% to the fit...
TARGET_RATIO = 5.0  # ...and at least 5x less than MLflow's
MODES = (("bare", "ship"), ("shipyard", "ship"), ("bare", "mlflow"), ("mlflow", "mlflow"),
         ("shipyard-no-model", "ship"))  # the last: autolog(log_models=False), to show what saving the model costs


def one_process(python: str, mode: str, workload: str, fits: int, base: dict[str, str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-autolog-") as tmp:
        env = {**base, "SHIPYARD_HOME": f"{tmp}/.shipyard", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "GIT_PYTHON_REFRESH": "quiet", "PYTHONWARNINGS": "ignore"}
        done = subprocess.run([python, str(HERE / "workloads" / "autolog_fit.py"), mode, workload, str(fits)],
                              env=env, cwd=tmp, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"{mode} {workload} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def version_of(python: str, module: str) -> str:
    done = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fits", type=int, default=3, help="timed fits in each process")
    ap.add_argument("--workloads", default="gboost,forest,logreg",
                    help="gboost: gradient boosting (predicting is cheap next to fitting); forest: a random forest; "
                         "logreg: a logistic regression (predicting costs more, next to its fit)")
    ap.add_argument("--mlflow-python", help="python of an existing venv with mlflow and scikit-learn")
    args = ap.parse_args()
    pythons = {"ship": sys.executable, "mlflow": args.mlflow_python or tool_python("mlflow", [MLFLOW_SPEC,
                                                                                              "scikit-learn"])}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    workloads = args.workloads.split(",")
    found: dict[tuple[str, str, str], list[dict[str, object]]] = {}
    for number in range(args.rounds):
        print(f"round {number + 1}/{args.rounds}...", flush=True)
        for workload in workloads:
            for mode, venv in MODES:
                found.setdefault((workload, mode, venv), []).append(
                    one_process(pythons[venv], mode, workload, args.fits, base))

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load average": os.getloadavg()[0], "python": platform.python_version(),
            "scikit-learn": version_of(sys.executable, "sklearn"), "shipyard": version_of(sys.executable, "shipyard"),
            "mlflow": version_of(pythons["mlflow"], "mlflow"),
            "processes x fits": f"{args.rounds} x {args.fits} per mode"}
    print(f"\n{meta}\n")
    print("| fit | clock | bare | shipyard.autolog() | overhead | bare (MLflow's venv) | mlflow.autolog() "
          "| overhead | MLflow's extra / Shipyard's |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for workload in workloads:
        for clock, index in (("wall", 0), ("CPU", 1)):
            med = {mode: statistics.median(fit[index] for run in found[(workload, mode, venv)]
                                           for fit in run["fits"])  # type: ignore[attr-defined]
                   for mode, venv in MODES[1:2] + MODES[3:]}
            bare = {venv: statistics.median(fit[index] for run in found[(workload, "bare", venv)]
                                            for fit in run["fits"])  # type: ignore[attr-defined]
                    for venv in ("ship", "mlflow")}
            ship_extra, ml_extra = med["shipyard"] - bare["ship"], med["mlflow"] - bare["mlflow"]
            ratio = ml_extra / ship_extra if ship_extra > 0 else float("inf")
            print(f"| {workload} | {clock} | {bare['ship']:.3f} s | {med['shipyard']:.3f} s | "
                  f"{ship_extra / bare['ship']:+.1%} | {bare['mlflow']:.3f} s | {med['mlflow']:.3f} s | "
                  f"{ml_extra / bare['mlflow']:+.1%} | {ratio:.1f}x |")
            verdicts.append((workload, clock, ship_extra / bare["ship"] < TARGET_OVERHEAD, ratio >= TARGET_RATIO))
    print()
    for workload in workloads:
        for clock, index in (("wall", 0), ("CPU", 1)):
            bare_s = statistics.median(fit[index] for run in found[(workload, "bare", "ship")]
                                       for fit in run["fits"])  # type: ignore[attr-defined]
            lean = statistics.median(fit[index] for run in found[(workload, "shipyard-no-model", "ship")]
                                     for fit in run["fits"])  # type: ignore[attr-defined]
            print(f"{workload} ({clock}): shipyard.autolog(log_models=False) {lean:.3f} s, "
                  f"{(lean - bare_s) / bare_s:+.1%} over bare (params, metrics and tags only)")
    print()
    for workload in workloads:
        for mode, venv in (MODES[1], MODES[3]):
            runs = found[(workload, mode, venv)]
            enable = statistics.median(r["enable"][0] for r in runs)  # type: ignore[index]
            first = statistics.median(r["first_fit"][0] for r in runs)  # type: ignore[index]
            print(f"{workload}, {mode}: turning autolog on {enable:.2f} s; the first (small) fit, store made "
                  f"and lazy imports done: {first:.2f} s")
    for workload, clock, under, ratio_met in verdicts:
        print(f"{workload} ({clock}): overhead < {TARGET_OVERHEAD:.0%}: {'met' if under else 'MISSED'}; "
              f"at least {TARGET_RATIO:.0f}x less than MLflow's: {'met' if ratio_met else 'MISSED'}")
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "autolog.json").write_text(json.dumps({"meta": meta, "results": [
        {"workload": w, "mode": m, "venv": v, "runs": runs} for (w, m, v), runs in found.items()]}, indent=2))


if __name__ == "__main__":
    main()
