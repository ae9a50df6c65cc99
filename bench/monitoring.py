"""Offline drift: Shipyard against Evidently's data-drift report, same data, one run.

    python bench/monitoring.py [--rows 1000000] [--reference 100000] [--features 20] [--rounds 3] [--no-evidently]

The data: a reference of 100k rows x 20 numeric features (feature i normal with mean i and standard deviation
1 + i/10) and 1M logged rows of the same features, the first 5 shifted by half their standard deviation. Both are
written to .npy files and each side runs in its own process, which loads them (not timed), then times its job and
reads its peak resident memory (``VmHWM``, beside the resident memory once the data is loaded):

- Shipyard: profile the reference (``build_profile``: DataSketches KLL), its bins (``baseline_of``), count the 1M
  rows into them (``count_rows``), score and judge every feature (``assess``); the median of ``--rounds`` rounds,
  and apart, counting and assessing alone (what ``shipyard monitor`` does once the profile is stored with the
  version, as ``log_model(reference=...)`` does at training time).
- Evidently 0.7 (installed by this script into bench/.venvs/evidently with uv, or pip, and ``pandas<3``):
  ``Report([DataDriftPreset()]).run(current_data=..., reference_data=...)`` on pandas DataFrames of the same
  arrays, once (about a minute and over a GB).

Then, in this process, what live drift costs a server per request (``interfaces/serving/drift.py``): the
``observe`` call on the request path and the monitor thread's share of counting (``_drain``, which stacks the
rows of a batch of requests and counts them with ``count_rows``), for 1-row requests of 4 and 20 features; the
wrk measurement of the same, with and without ``--drift``, is in ``bench/serving.py``.

Both must flag exactly the 5 shifted features. Where the statistics differ: Evidently, on numeric columns of
more than 1,000 rows with more than 5 distinct values, uses the normed Wasserstein distance (the earth mover's
distance over the reference's standard deviation), drift at 0.1, computed from every value of both samples;
Shipyard uses PSI on the reference's decile bins (read from its KLL sketch, ties merged), drift above 0.2, computed
from the counts of the logged rows in those bins, so a window's counts add up and a server can keep them. On
categories, Evidently uses chi-squared (or Jensen-Shannon above 1,000 rows); Shipyard the Jensen-Shannon distance
on the reference's top 20 categories and an "other" bin, drift above 0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvs import VENVS, tool_python

HERE = Path(__file__).resolve().parent
EVIDENTLY = ["evidently>=0.7,<0.8", "pandas<3"]
SHIFTED = 5

# Each side's job, run by its own interpreter: argv = reference.npy current.npy rounds. Prints one JSON line.
COMMON = r'''
import json, re, sys, time
from pathlib import Path

def rss_mib(field="VmRSS"):
    return int(re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024

def peak_mib():  # this process' high-water mark (ru_maxrss would carry the forking parent's over exec)
    return rss_mib("VmHWM")
'''

SHIPYARD_JOB = COMMON + r'''
started = time.perf_counter()
import numpy as np
from shipyard.adapters.monitoring.bins import baseline_of, count_rows
from shipyard.adapters.monitoring.sketches import build_profile
from shipyard.core.monitoring.drift import assess
imported = time.perf_counter() - started
reference, current = np.load(sys.argv[1]), np.load(sys.argv[2])
loaded = rss_mib()
rounds = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    baseline = baseline_of(build_profile(reference), "sha256:bench")
    t1 = time.perf_counter()
    found = assess(baseline, count_rows(baseline, "bench", "1", current, None, 0.0))
    t2 = time.perf_counter()
    rounds.append((t2 - t0, t1 - t0, t2 - t1))
rounds.sort()
total, profile, count = rounds[len(rounds) // 2]
print(json.dumps({"seconds": total, "profile_s": profile, "count_assess_s": count,
                  "all_rounds": [r[0] for r in rounds], "import_s": imported, "loaded_mib": loaded,
                  "peak_mib": peak_mib(), "flagged": [int(f.feature[1:]) for f in found if f.drifted],
                  "scores": [round(f.score, 4) for f in found], "statistic": found[0].statistic}))
'''

EVIDENTLY_JOB = COMMON + r'''
started = time.perf_counter()
import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
import evidently
imported = time.perf_counter() - started
reference, current = np.load(sys.argv[1]), np.load(sys.argv[2])
names = [f"f{i}" for i in range(reference.shape[1])]
reference, current = pd.DataFrame(reference, columns=names), pd.DataFrame(current, columns=names)
loaded = rss_mib()
t0 = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
result = snapshot.dict()
seconds = time.perf_counter() - t0
drift = [m for m in result["metrics"] if m["config"].get("type", "").endswith("ValueDrift")]
flagged = [int(m["config"]["column"][1:]) for m in drift if m["value"] >= m["config"]["threshold"]]
print(json.dumps({"seconds": seconds, "import_s": imported, "loaded_mib": loaded, "peak_mib": peak_mib(),
                  "flagged": sorted(flagged), "scores": [round(m["value"], 4) for m in drift],
                  "statistic": drift[0]["config"]["method"], "threshold": drift[0]["config"]["threshold"],
                  "version": evidently.__version__, "pandas": pd.__version__}))
'''


def evidently_python() -> str:
    """bench/.venvs/evidently's python, created on first use with uv (pip when uv is missing)."""
    py = VENVS / "evidently" / "bin" / "python"
    if py.exists() and not subprocess.run([str(py), "-c", "import evidently, pandas"], capture_output=True).returncode:
        return str(py)
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        return tool_python("evidently", EVIDENTLY, module="evidently")
    print(f"installing {' '.join(EVIDENTLY)} into {VENVS / 'evidently'} with uv (first run only)...", flush=True)
    subprocess.run([uv, "venv", "-q", "--clear", "-p", sys.executable, str(VENVS / "evidently")], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(py), *EVIDENTLY], check=True)
    return str(py)


def run_job(python: str, job: str, reference: Path, current: Path, rounds: int) -> dict[str, object]:
    out = subprocess.run([python, "-c", job, str(reference), str(current), str(rounds)], capture_output=True,
                         text=True)
    if out.returncode:
        raise SystemExit(f"{python}: the job failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reference", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-evidently", action="store_true", help="Shipyard alone (no install, no minute-long run)")
    args = ap.parse_args()
    import numpy as np

    rng = np.random.default_rng(12)
    means = np.arange(args.features, dtype=np.float64)
    sds = 1 + np.arange(args.features) / 10
    shift = np.zeros(args.features)
    shift[:SHIFTED] = sds[:SHIFTED] / 2
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        reference, current = Path(tmp) / "reference.npy", Path(tmp) / "current.npy"
        np.save(reference, rng.standard_normal((args.reference, args.features)) * sds + means)
        np.save(current, rng.standard_normal((args.rows, args.features)) * sds + means + shift)
        print(f"data: reference {args.reference:,} x {args.features}, current {args.rows:,} x {args.features}, "
              f"features 0-{SHIFTED - 1} shifted by half a standard deviation", flush=True)
        results["shipyard"] = run_job(sys.executable, SHIPYARD_JOB, reference, current, args.rounds)
        print(f"shipyard: {json.dumps(results['shipyard'])}", flush=True)
        if not args.no_evidently:
            py = evidently_python()
            start = time.perf_counter()
            results["evidently"] = run_job(py, EVIDENTLY_JOB, reference, current, 1)
            print(f"evidently ({time.perf_counter() - start:.0f} s with its start-up): "
                  f"{json.dumps(results['evidently'])}", flush=True)
    expected = list(range(SHIFTED))
    ours = results["shipyard"]
    print("\n| tool | statistic | job s | peak RSS MiB (data loaded: MiB) | added MiB | flagged | exactly the 5? |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        stat = "PSI on deciles > 0.2" if name == "shipyard" else f"{r['statistic']} >= {r['threshold']}"
        added = float(r["peak_mib"]) - float(r["loaded_mib"])  # type: ignore[arg-type]
        print(f"| {name} | {stat} | {float(r['seconds']):.3f} | {float(r['peak_mib']):.0f} "  # type: ignore[arg-type]
              f"({float(r['loaded_mib']):.0f}) | {added:.0f} | {r['flagged']} | "  # type: ignore[arg-type]
              f"{'yes' if r['flagged'] == expected else 'NO'} |")
    print(f"\nshipyard: profile {float(ours['profile_s']):.3f} s + count and assess "  # type: ignore[arg-type]
          f"{float(ours['count_assess_s']):.3f} s (rounds: "  # type: ignore[arg-type]
          f"{', '.join(f'{s:.3f}' for s in ours['all_rounds'])} s)")  # type: ignore[attr-defined]
    if "evidently" in results:
        theirs = results["evidently"]
        speed = float(theirs["seconds"]) / float(ours["seconds"])  # type: ignore[arg-type]
        count_only = float(theirs["seconds"]) / float(ours["count_assess_s"])  # type: ignore[arg-type]
        memory = (float(theirs["peak_mib"]) - float(theirs["loaded_mib"])) / max(  # type: ignore[arg-type]
            float(ours["peak_mib"]) - float(ours["loaded_mib"]), 1.0)  # type: ignore[arg-type]
        print(f"shipyard is {speed:.0f}x faster than Evidently {theirs['version']} (target >= 30x: "
              f"{'met' if speed >= 30 else 'MISSED'}); {count_only:.0f}x with the profile already stored; "
              f"{memory:.0f}x less memory added over the loaded data")
        if ours["flagged"] != expected or theirs["flagged"] != expected:
            print("NOT the same features flagged: see the table")
    live = {width: live_cost(width) for width in (4, 20)}
    for width, (observe, count) in live.items():
        print(f"live drift, 1-row requests of {width} features, batches of 1,000: observe {observe:.2f} us on the "
              f"request path, counting {count:.2f} us a request on the monitor's thread")
    work = HERE / ".work"
    work.mkdir(exist_ok=True)
    (work / "monitoring.json").write_text(json.dumps({**results, "live_us": live}, indent=2))


def live_cost(width: int, batch: int = 1000, rounds: int = 7) -> tuple[float, float]:
    """(observe, counting) microseconds per 1-row request of ``width`` features: a server's drift monitor with
    its real metrics, a classifier's reference profile (inputs and outputs), batches of ``batch`` requests."""
    import statistics

    import numpy as np

    from shipyard.adapters.monitoring.bins import baseline_of
    from shipyard.adapters.monitoring.sketches import build_profile
    from shipyard.interfaces.serving.drift import LiveDrift
    from shipyard.interfaces.serving.middleware.metrics import Metrics
    from shipyard.wiring.monitoring import count_rows

    rng = np.random.default_rng(width)
    x = rng.standard_normal((10_000, width))
    answers = (x[:, 0] > 0).astype(np.int64)
    live = LiveDrift(Metrics(), count_rows, 300.0)
    live.watch("bench", "1", baseline_of(build_profile(x, answers), "sha256:live"))
    requests = [(x[i:i + 1], [int(answers[i])]) for i in range(batch)]  # what a request hands in: rows as parsed
    observed, counted = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for rows, answer in requests:
            live.observe("bench", "1", rows, answer, 0.0)
        t1 = time.perf_counter()
        live._drain()  # what the monitor's thread does every 0.2 s
        t2 = time.perf_counter()
        observed.append((t1 - t0) / batch * 1e6)
        counted.append((t2 - t1) / batch * 1e6)
    return statistics.median(observed), statistics.median(counted)


if __name__ == "__main__":
    main()
