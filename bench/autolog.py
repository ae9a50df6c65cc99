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
from typing import Any

from venvs import tool_python

HERE = Path(__file__).resolve().parent
MLFLOW_SPEC = "mlflow==3.17.2"
TARGET_OVERHEAD = 0.05  # Shipyard's autolog adds under 5% to the fit...
TARGET_RATIO = 5.0  # ...and at least 5x less than MLflow's
MODES = (("bare", "ship"), ("shipyard", "ship"), ("bare", "mlflow"), ("mlflow", "mlflow"),
         ("shipyard-no-model", "ship"))  # the last: autolog(log_models=False), to show what saving the model costs


def one_process(python: str, mode: str, workload: str, fits: int, base: dict[str, str]) -> dict[str, Any]:
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
    ap.add_argument("--pairs", type=int, default=6,
                    help="fits with autolog on and off, alternating in one process per tool (0: none)")
    args = ap.parse_args()
    pythons = {"ship": sys.executable, "mlflow": args.mlflow_python or tool_python("mlflow", [MLFLOW_SPEC,
                                                                                              "scikit-learn"])}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    workloads = args.workloads.split(",")
    found: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
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
    if args.rounds:
        between_processes(found, workloads)
    if args.pairs:
        for workload in workloads:
            for tool, venv in (("shipyard", "ship"), ("mlflow", "mlflow")):
                found[(workload, f"paired-{tool}", venv)] = [
                    one_process(pythons[venv], f"paired-{tool}", workload, args.pairs, base)]
        in_one_process(found, workloads, args.pairs)
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "autolog.json").write_text(json.dumps({"meta": meta, "results": [
        {"workload": w, "mode": m, "venv": v, "runs": runs} for (w, m, v), runs in found.items()]}, indent=2))


def between_processes(found: dict[tuple[str, str, str], list[dict[str, Any]]], workloads: list[str]) -> None:
    print("| fit | clock | bare | shipyard.autolog() | overhead | bare (MLflow's venv) | mlflow.autolog() "
          "| overhead | MLflow's extra / Shipyard's |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for workload in workloads:
        for clock, index in (("wall", 0), ("CPU", 1)):
            med = {mode: statistics.median(fit[index] for run in found[(workload, mode, venv)]
                                           for fit in run["fits"])
                   for mode, venv in MODES[1:2] + MODES[3:]}
            bare = {venv: statistics.median(fit[index] for run in found[(workload, "bare", venv)]
                                            for fit in run["fits"])
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
                                       for fit in run["fits"])
            lean = statistics.median(fit[index] for run in found[(workload, "shipyard-no-model", "ship")]
                                     for fit in run["fits"])
            print(f"{workload} ({clock}): shipyard.autolog(log_models=False) {lean:.3f} s, "
                  f"{(lean - bare_s) / bare_s:+.1%} over bare (params, metrics and tags only)")
    print()
    for workload in workloads:
        for mode, venv in (MODES[1], MODES[3]):
            runs = found[(workload, mode, venv)]
            enable = statistics.median(r["enable"][0] for r in runs)
            first = statistics.median(r["first_fit"][0] for r in runs)
            print(f"{workload}, {mode}: turning autolog on {enable:.2f} s; the first (small) fit, store made "
                  f"and lazy imports done: {first:.2f} s")
    for workload, clock, under, ratio_met in verdicts:
        print(f"{workload} ({clock}): overhead < {TARGET_OVERHEAD:.0%}: {'met' if under else 'MISSED'}; "
              f"at least {TARGET_RATIO:.0f}x less than MLflow's: {'met' if ratio_met else 'MISSED'}")


def in_one_process(found: dict[tuple[str, str, str], list[dict[str, Any]]], workloads: list[str], pairs: int) -> None:
    print(f"\npaired, in one process per tool: {pairs} fits with autolog on and {pairs} off, alternating "
          "(each pair under the same load); the median of the pairs' overheads")
    print("| fit | clock | shipyard.autolog() | mlflow.autolog() | MLflow's extra / Shipyard's |")
    print("|---|---|---|---|---|")
    for workload in workloads:
        for clock, index in (("wall", 0), ("CPU", 1)):
            extra, share = {}, {}
            for tool, venv in (("shipyard", "ship"), ("mlflow", "mlflow")):
                run = found[(workload, f"paired-{tool}", venv)][0]
                extra[tool] = statistics.median(p["on"][index] - p["off"][index] for p in run["pairs"])
                share[tool] = statistics.median((p["on"][index] - p["off"][index]) / p["off"][index]
                                                for p in run["pairs"])
            ratio = extra["mlflow"] / extra["shipyard"] if extra["shipyard"] > 0 else float("inf")
            print(f"| {workload} | {clock} | {share['shipyard']:+.1%} ({extra['shipyard'] * 1000:+.0f} ms) | "
                  f"{share['mlflow']:+.1%} ({extra['mlflow'] * 1000:+.0f} ms) | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
