"""`shipyard import mlflow` of 10,000 runs x 20 metrics vs MLflow's own `search_runs` returning them.

    python bench/import_mlflow.py [--runs 10000] [--metrics 20] [--repeats 3]

The target (issue 14): importing the runs of MLflow's SQLite store takes less time than MLflow's own
`search_runs` over the same store takes to return them. The store is made by the real MLflow (bench's side
venv, bench/.venvs/mlflow) through its tracking store API: runs in 3 experiments, each with 20 metrics,
5 params and 3 tags, finished. MLflow's API makes the first 500 (about 10 a second here); the rest are copies
of those rows under new run ids, written into MLflow's tables with sqlite3. It is kept in bench/.work.

Both sides are timed in-process, interpreter start and imports excluded: MLflow's `search_runs` over every
experiment, paged to the end (`output_format="list"`: MLflow's entities, no pandas), and Shipyard's
`import_mlflow` into a fresh project (SQLite metadata database), which reads every metric value (the whole
history, not only the latest) and writes every run, param, tag and metric row. The two alternate; medians.
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
MLFLOW_SPEC = "mlflow==3.17.2"
BASE = 500  # runs MLflow's API makes; the rest are copies of its rows (see MAKE)

MAKE = f"BASE = {BASE}\n" + r'''
import sys, time
from mlflow.entities import Metric, Param, RunTag, RunStatus
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

path, runs, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = SqlAlchemyStore(f"sqlite:///{path}/mlflow.db", f"{path}/mlruns")
exps = [store.create_experiment(f"exp-{i}") for i in range(3)]
t0 = int(time.time() * 1000)
made = min(runs, BASE)
for i in range(made):
    r = store.create_run(exps[i % 3], "bench", t0 + i, [RunTag("mlflow.runName", f"run-{i}")], f"run-{i}")
    rid = r.info.run_id
    store.log_batch(rid, metrics=[Metric(f"m{k}", i / (k + 1), t0 + i, 0) for k in range(metrics)],
                    params=[Param(f"p{k}", str(i * k)) for k in range(5)],
                    tags=[RunTag("team", f"t{i % 4}"), RunTag("idx", str(i))])
    store.update_run_info(rid, RunStatus.FINISHED, t0 + i + 10, None)
store.engine.dispose()

# the rest: copies of MLflow's own rows under new run ids (MLflow's API makes ~10 runs a second here)
import sqlite3, uuid
db = sqlite3.connect(f"{path}/mlflow.db")
base = db.execute("SELECT * FROM runs").fetchall()
cols = [c[1] for c in db.execute("PRAGMA table_info(runs)")]
rid_col, name_col, uri_col = cols.index("run_uuid"), cols.index("name"), cols.index("artifact_uri")
children = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in ("params", "tags", "metrics", "latest_metrics")}
child_cols = {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in children}
by_run = {}
for t, rows in children.items():
    at = child_cols[t].index("run_uuid")
    for r in rows:
        by_run.setdefault((t, r[at]), []).append(r)
n = made
while n < runs:
    for row in base:
        if n >= runs:
            break
        new = uuid.uuid4().hex
        old = row[rid_col]
        row = list(row)
        row[rid_col], row[name_col] = new, f"run-{n}"
        row[uri_col] = row[uri_col].replace(old, new)
        db.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(row))})", row)
        for t in children:
            at = child_cols[t].index("run_uuid")
            mine = [list(r) for r in by_run.get((t, old), [])]
            for r in mine:
                r[at] = new
            if mine:
                db.executemany(f"INSERT INTO {t} VALUES ({','.join('?' * len(mine[0]))})", mine)
        n += 1
db.commit()
'''

SEARCH = r'''
import json, sys, time
import mlflow

mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlflow.db")
ids = [e.experiment_id for e in mlflow.search_experiments()]
mlflow.search_runs(ids, max_results=1, output_format="list")  # the engine and its connection pool ready
start = time.perf_counter()
runs = mlflow.search_runs(ids, output_format="list", max_results=1_000_000)
took = time.perf_counter() - start
print(json.dumps({"seconds": took, "runs": len(runs), "metrics": sum(len(r.data.metrics) for r in runs)}))
'''

IMPORT = r'''
import json, sys, time
from pathlib import Path
from shipyard.wiring import from_environment
from shipyard.wiring.mlflow_import import import_mlflow

project = Path(sys.argv[2])
project.mkdir()
svc = from_environment({"SHIPYARD_HOME": str(project / ".shipyard")}, project, anywhere=True)
svc.meta.existing_runs(["0" * 32])  # the database made and migrated (as MLflow's, before the clock starts)
start = time.perf_counter()
report = import_mlflow(svc, f"sqlite:///{sys.argv[1]}/mlflow.db")
took = time.perf_counter() - start
print(json.dumps({"seconds": took, "runs": report.added["runs"], "metrics": report.added["metrics"]}))
'''


def run(python: str, script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mlflow = tool_python("mlflow", [MLFLOW_SPEC])
    store = HERE / ".work" / f"mlflow-store-{args.runs}x{args.metrics}"
    if not (store / "done").exists():
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        print(f"making the MLflow store ({args.runs} runs x {args.metrics} metrics) with MLflow; first run only...",
              flush=True)
        start = time.perf_counter()
        run(mlflow, MAKE + "\nimport json; print(json.dumps({}))", str(store), str(args.runs), str(args.metrics))
        (store / "done").write_text(f"{time.perf_counter() - start:.0f} s\n")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    searches, imports = [], []
    for rep in range(args.repeats):
        found = run(mlflow, SEARCH, str(store))
        with tempfile.TemporaryDirectory() as tmp:
            got = run(sys.executable, IMPORT, str(store), str(Path(tmp) / "project"), env=env)
        if found["runs"] != args.runs or got["runs"] != args.runs or got["metrics"] != args.runs * args.metrics:
            raise SystemExit(f"counts differ: search_runs {found}, import {got}")
        searches.append(found["seconds"])
        imports.append(got["seconds"])
        print(f"repeat {rep + 1}: MLflow search_runs {searches[-1]:.2f} s, shipyard import mlflow {imports[-1]:.2f} s",
              flush=True)
    search, imported = statistics.median(searches), statistics.median(imports)
    print(f"\n{args.runs} runs x {args.metrics} metrics (+5 params, 3 tags each) in MLflow 3.17.2's SQLite store; "
          f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; median of "
          f"{args.repeats}")
    print("| step | time | speed vs MLflow's `search_runs` (higher is faster) |\n|---|---|---|")
    print(f"| MLflow `search_runs` over every experiment (entities, no pandas) | {search:.2f} s | 1.00x |")
    print(f"| `shipyard import mlflow` (every run, param, tag and metric value written) | {imported:.2f} s | "
          f"{search / imported:.2f}x |")


if __name__ == "__main__":
    main()
