"""Tracking and registry: Shipyard vs MLflow on the same work, in one run, with ratios.

    python bench/tracking.py [--mlflow-python PATH] [--big-runs 10000] [--mlflow-versions 50]

MLflow is installed into bench/.venvs/mlflow on first use (MLflow on SQLite, as users run it
locally). Each tool runs its workload in a fresh folder in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvs import tool_python

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLFLOW_SPEC = "mlflow==3.17.2"

# (key, label, unit, target ratio: MLflow time / Shipyard time must be at least this; None = report only)
ROWS = [
    ("log_metric_2000_calls_s", "2,000 log_metric calls", "s", 10),
    ("log_batch_2000_s", "one batch of 2,000 metrics", "s", None),
    ("runs_200_s", "200 runs x (10 params + 10 metrics)", "s", 8),
    ("search_200_s", "search 200 runs on a metric", "ms", None),
    ("register_first_s", "first registered version (cold)", "s", None),
    ("register_50_s", "50 registered versions", "s", 20),
    ("help_s", "CLI --help", "s", None),
    ("version_s", "CLI --version", "s", None),
    ("import_s", "import the package", "s", None),
]


def mlflow_python(explicit: str | None) -> str:
    return explicit or tool_python("mlflow", [MLFLOW_SPEC, "scikit-learn"])


def run_workload(python: str, script: str, env: dict[str, str], cwd: Path) -> dict[str, float]:
    done = subprocess.run([python, str(HERE / "workloads" / script)], env=env, cwd=cwd, capture_output=True,
                          text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def wall(cmd: list[str], env: dict[str, str], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_times(python: str, tool: str, package: str, env: dict[str, str]) -> dict[str, float]:
    exe = str(Path(python).parent / tool)
    bare = wall([python, "-c", "pass"], env)
    return {
        "help_s": wall([exe, "--help"], env),
        "version_s": wall([exe, "--version"], env),
        "import_s": wall([python, "-c", f"import {package}"], env) - bare,
    }


def version_of(python: str, package: str) -> str:
    return subprocess.run([python, "-c", f"import {package}; print({package}.__version__)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlflow-python", help="python of an existing venv with mlflow and scikit-learn")
    ap.add_argument("--big-runs", type=int, default=10000, help="runs for the large search (Shipyard only)")
    ap.add_argument("--mlflow-versions", type=int, default=50,
                    help="versions MLflow actually registers (scaled to 50); fewer saves minutes")
    args = ap.parse_args()

    ship_py = sys.executable
    ml_py = mlflow_python(args.mlflow_python)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        t = Path(tmp)
        (t / "shipyard").mkdir()
        (t / "mlflow").mkdir()
        print("running the Shipyard workload...", flush=True)
        results["shipyard"] = run_workload(
            ship_py, "shipyard_tracking.py",
            {**base, "SHIPYARD_HOME": str(t / "shipyard" / ".shipyard"), "BENCH_BIG_RUNS": str(args.big_runs)},
            t / "shipyard")
        print("running the MLflow workload...", flush=True)
        results["mlflow"] = run_workload(
            ml_py, "mlflow_tracking.py",
            {**base, "MLFLOW_TRACKING_URI": f"sqlite:///{t / 'mlflow' / 'mlflow.db'}",
             "BENCH_MLFLOW_VERSIONS": str(args.mlflow_versions), "GIT_PYTHON_REFRESH": "quiet"},
            t / "mlflow")
        results["shipyard"].update(cli_times(ship_py, "shipyard", "shipyard", base))
        results["mlflow"].update(cli_times(ml_py, "mlflow", "mlflow", base))
        shutil.rmtree(t, ignore_errors=True)

    s, m = results["shipyard"], results["mlflow"]
    meta = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "shipyard": version_of(ship_py, "shipyard"),
        "mlflow": version_of(ml_py, "mlflow"),
    }
    print(f"\n{meta}\n")
    print("| work | Shipyard | MLflow | MLflow / Shipyard | target |")
    print("|---|---|---|---|---|")
    for key, label, unit, target in ROWS:
        scale = 1000 if unit == "ms" else 1
        ratio = m[key] / s[key] if s[key] > 0 else float("inf")
        verdict = "" if target is None else (f">= {target}x: {'met' if ratio >= target else 'MISSED'}")
        print(f"| {label} | {s[key] * scale:.3g} {unit} | {m[key] * scale:.3g} {unit} | {ratio:.1f}x | {verdict} |")
    print(f"\nper log_metric call: Shipyard {s['log_metric_2000_calls_s'] / 2:.3f} ms, "
          f"MLflow {m['log_metric_2000_calls_s'] / 2:.3f} ms")
    print(f"per registered version: Shipyard {s['register_50_s'] / 50 * 1000:.1f} ms, "
          f"MLflow {m['register_50_s'] / 50 * 1000:.0f} ms (MLflow measured on {int(m['register_versions_measured'])})")
    print(f"environment capture (Shipyard, done once per process): {s['env_capture_s'] * 1000:.1f} ms; "
          f"re-captured for every version it would be "
          f"{(s['register_50_s'] / 50 + s['env_capture_s']) * 1000:.1f} ms per version; "
          f"from the site-packages cache (a new process, nothing installed since): "
          f"{s['env_capture_cached_s'] * 1000:.1f} ms (target < 20 ms)")
    print(f"search matches: Shipyard {int(s['search_200_matches'])}, MLflow {int(m['search_200_matches'])}")
    if "search_big_s" in s:
        print(f"search at {int(s['search_big_runs'])} runs (Shipyard): {s['search_big_s'] * 1000:.1f} ms for "
              f"'metrics.m0 > 0.5' (limit 1000), {s['search_big_selective_s'] * 1000:.1f} ms for 'metrics.m0 > 0.99'")
    targets = {"shipyard --help < 0.25 s": s["help_s"] < 0.25, "import shipyard < 0.15 s": s["import_s"] < 0.15,
               "search at 200 runs < 10 ms": s["search_200_s"] < 0.010}
    if "search_big_s" in s:
        targets["search at 10,000 runs < 100 ms"] = s["search_big_s"] < 0.100
    for name, ok in targets.items():
        print(f"{name}: {'met' if ok else 'MISSED'}")
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "tracking.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
