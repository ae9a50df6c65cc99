"""Serving: Shipyard vs a bare Starlette app, BentoML and `mlflow models serve`, same model, same load, one run.

    python bench/serving.py [--duration 8] [--only shipyard,bare] [--drift-rounds 10] [--drift-duration 4]

Each server is pinned to core 0 and wrk to core 1 (taskset), all on 127.0.0.1. BentoML and MLflow
are installed into bench/.venvs/ by the script on first use. The iris model is registered with its training
data as reference, so `shipyard serve` measures live drift by default (`shipyard-nodrift`: `--no-drift`).

The overhead of live drift (issue 12: at most 5% fewer requests/s and +0.2 ms p50 at 8 connections with 1-row
bodies): after the table, `shipyard serve` with and without `--drift` are both started (both on core 0, one
loaded at a time), warmed up for 2 s each, then loaded in turn, ``--drift-rounds`` times each, alternating, so
that a slow period of the machine falls on both; each round's pair is compared (requests/s ratio, p50 and CPU
time per request of the server difference) and the medians of those are reported, beside each side's medians;
the drift server's /metrics must show every row counted.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from venvs import tool_python

HERE = Path(__file__).resolve().parent
SERVING = HERE / "serving"
SPECS = {"mlflow": ["mlflow==3.17.2", "scikit-learn"], "bentoml": ["bentoml", "scikit-learn"]}


def venv_python(name: str) -> str:
    return tool_python(name, SPECS[name])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 2.0) -> bool:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            total += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text())[1])  # type: ignore[index]
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (OSError, TypeError):
            continue
    return total / 1024


def wrk(url: str, body: str, connections: int, duration: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    env = {**os.environ, "BENCH_BODY": body}
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", str(SERVING / "post.lua"), url], env=env, capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)[1])  # type: ignore[index]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out.stdout)
        if m is None:
            return float("nan")
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx[1]} failed responses under load:\n{out.stdout}")
    return rps, pct("50"), pct("99")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--only", default="bare,shipyard,shipyard-nobatch,bentoml,mlflow,fixed,fixed-nobatch")
    ap.add_argument("--drift-rounds", type=int, default=10, help="rounds of the drift overhead comparison (0: none)")
    ap.add_argument("--drift-duration", type=int, default=4, help="seconds of each load of that comparison")
    args = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("needs wrk and taskset (apt-get install wrk util-linux)")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    one = json.dumps({"instances": x[:1].tolist()})
    hundred = json.dumps({"instances": (x.tolist() * 2)[:100]})
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        t = Path(tmp)
        (t / "model.pkl").write_bytes(pickle.dumps(model))
        home = t / ".shipyard"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        reg = ("import pickle, shipyard\nfrom sklearn.datasets import load_iris\n"
               "m = pickle.load(open('model.pkl', 'rb'))\nwith shipyard.start_run():\n"
               "    v = shipyard.log_model(m, 'iris', examples=[[5.1, 3.5, 1.4, 0.2]], "
               "reference=load_iris(return_X_y=True)[0])\n"
               "shipyard.set_alias('iris', 'production', v.version)\n")
        subprocess.run([sys.executable, "-c", reg], cwd=t, env={**env, "SHIPYARD_HOME": str(home)}, check=True)
        fixed_env = {**env, "SHIPYARD_HOME": str(home), "PYTHONPATH": str(SERVING)}
        subprocess.run([sys.executable, "-c", "import shipyard, fixed_cost\nwith shipyard.start_run():\n"
                        "    shipyard.log_model(fixed_cost.FixedCost(), 'fixed', flavor='python')\n"],
                       cwd=t, env=fixed_env, check=True)
        servers = {
            "bare": lambda port: ([sys.executable, str(SERVING / "bare_app.py"), str(t / "model.pkl"), str(port)],
                                  env, f"http://127.0.0.1:{port}/predict"),
            "shipyard": lambda port: ([str(Path(sys.executable).parent / "shipyard"), "serve", "iris@production",
                                       "--port", str(port)], {**env, "SHIPYARD_HOME": str(home)},
                                      f"http://127.0.0.1:{port}/predict"),
            "shipyard-nobatch": lambda port: ([str(Path(sys.executable).parent / "shipyard"), "serve",
                                               "iris@production", "--port", str(port), "--no-batching"],
                                              {**env, "SHIPYARD_HOME": str(home)}, f"http://127.0.0.1:{port}/predict"),
            "shipyard-nodrift": lambda port: ([str(Path(sys.executable).parent / "shipyard"), "serve",
                                               "iris@production", "--port", str(port), "--no-drift"],
                                              {**env, "SHIPYARD_HOME": str(home)}, f"http://127.0.0.1:{port}/predict"),
            "bentoml": lambda port: ([str(Path(venv_python("bentoml")).parent / "bentoml"), "serve",
                                      "bento_service:Iris", "--port", str(port), "--host", "127.0.0.1"],
                                     {**env, "BENCH_MODEL": str(t / "model.pkl"), "BENTOML_DO_NOT_TRACK": "True"},
                                     f"http://127.0.0.1:{port}/predict"),
            "mlflow": lambda port: mlflow_server(t, port, env),
            # the batching case: a model whose every predict call costs 3 ms however many rows it gets
            "fixed": lambda port: ([str(Path(sys.executable).parent / "shipyard"), "serve", "fixed", "--port",
                                    str(port)], fixed_env, f"http://127.0.0.1:{port}/predict"),
            "fixed-nobatch": lambda port: ([str(Path(sys.executable).parent / "shipyard"), "serve", "fixed", "--port",
                                            str(port), "--no-batching"], fixed_env, f"http://127.0.0.1:{port}/predict"),
        }
        for name in [n for n in args.only.split(",") if n]:
            proc, url, ready = start_server(name, servers, one)
            print(f"{name}: ready in {ready:.2f} s; loading...", flush=True)
            r: dict[str, float] = {"ready_s": ready}
            r["rps8"], r["p50_8"], r["p99_8"] = wrk(url, one, 8, args.duration)
            r["rps64"], r["p50_64"], r["p99_64"] = wrk(url, one, 64, args.duration)
            r["rps100rows"], _, r["p99_100rows"] = wrk(url, hundred, 8, args.duration)
            r["rps1"], r["p50_1"], r["p99_1"] = wrk(url, one, 1, args.duration)
            r["rss_mib"] = rss_mib(proc.pid)
            stop(proc)
            results[name] = r
        overhead = drift_overhead(servers, one, args.drift_duration, args.drift_rounds) if args.drift_rounds else None
    base = results.get("bare")
    print("\n| server | req/s (8 conn) | p50 / p99 ms (8) | req/s (64) | p99 ms (64) | req/s 100 rows | "
          "p50 ms (1 conn) | RSS MiB | ready s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rel = f" ({r['rps8'] / base['rps8']:.2f}x)" if base and name != "bare" else ""
        print(f"| {name} | {r['rps8']:.0f}{rel} | {r['p50_8']:.2f} / {r['p99_8']:.2f} | {r['rps64']:.0f} | "
              f"{r['p99_64']:.1f} | {r['rps100rows']:.0f} | {r['p50_1']:.2f} | {r['rss_mib']:.0f} | "
              f"{r['ready_s']:.2f} |")
    if "fixed" in results and "fixed-nobatch" in results:
        f, n = results["fixed"], results["fixed-nobatch"]
        print(f"\nbatching on a 3 ms-per-call model: {f['rps64']:.0f} vs {n['rps64']:.0f} req/s at 64 connections "
              f"({f['rps64'] / n['rps64']:.1f}x); p50 at 1 connection {f['p50_1']:.2f} vs {n['p50_1']:.2f} ms "
              f"(+{f['p50_1'] - n['p50_1']:.2f} ms)")
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "serving.json").write_text(json.dumps({**results, "drift_overhead": overhead}, indent=2))


Servers = dict[str, Any]


def start_server(name: str, servers: Servers, one: str) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start server ``name`` pinned to core 0; (process, URL, seconds until it answered a prediction)."""
    port = free_port()
    cmd, server_env, url = servers[name](port)
    start = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=SERVING, env=server_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    while not post(url, one.encode()):
        if proc.poll() is not None or time.perf_counter() - start > 120:
            raise SystemExit(f"{name} did not start: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    return proc, url, time.perf_counter() - start


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def metric_total(url: str, name: str) -> float | None:
    """The sum of a metric's series on a server's /metrics (None: no such series)."""
    with urllib.request.urlopen(url.replace("/predict", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return sum(values) if values else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) and its children."""
    total, pids = 0.0, [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            pids.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def drift_overhead(servers: Servers, one: str, duration: int, rounds: int) -> dict[str, object]:
    """requests/s and p50 at 8 connections, 1-row bodies, with and without live drift, alternating rounds; and
    the server's CPU time per request (less sensitive than requests/s to other work on a shared machine)."""
    import statistics

    started = {name: start_server(name, servers, one) for name in ("shipyard", "shipyard-nodrift")}
    try:
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in started}
        cpu: dict[str, list[float]] = {name: [] for name in started}  # CPU microseconds per request
        for name in started:  # a first load of each, not counted: first calls, the monitor's first windows
            wrk(started[name][1], one, 8, 2)
        for i in range(rounds):
            for name in (("shipyard", "shipyard-nodrift") if i % 2 == 0 else ("shipyard-nodrift", "shipyard")):
                pid = started[name][0].pid
                before, start = cpu_seconds(pid), time.perf_counter()
                runs[name].append(wrk(started[name][1], one, 8, duration))
                time.sleep(0.5)  # the drift monitor's last count of this load (it drains every 0.2 s)
                requests = runs[name][-1][0] * (time.perf_counter() - start - 0.5)
                cpu[name].append((cpu_seconds(pid) - before) / requests * 1e6)
                print(f"drift overhead, round {i + 1}, {name}: {runs[name][-1][0]:.0f} req/s, "
                      f"p50 {runs[name][-1][1]:.2f} ms, {cpu[name][-1]:.0f} us CPU a request", flush=True)
        time.sleep(1.0)  # the monitor counts every 0.2 s: let it take the last requests
        counted = metric_total(started["shipyard"][1], "shipyard_monitored_rows_total")
        uncounted = metric_total(started["shipyard"][1], "shipyard_monitor_dropped_rows_total")
        absent = metric_total(started["shipyard-nodrift"][1], "shipyard_monitored_rows_total")
        memory = {name: rss_mib(proc.pid) for name, (proc, _, _) in started.items()}
    finally:
        for proc, _, _ in started.values():
            stop(proc)
    if not counted or absent:
        raise SystemExit(f"live drift is not measured as expected: {counted} rows counted with --drift, {absent} "
                         "without (the model needs its reference profile)")
    med = {name: {"rps": statistics.median(r[0] for r in rs), "p50": statistics.median(r[1] for r in rs),
                  "p99": statistics.median(r[2] for r in rs), "cpu_us": statistics.median(cpu[name]), "rounds": rs}
           for name, rs in runs.items()}
    on, off = med["shipyard"], med["shipyard-nodrift"]
    pairs = list(zip(runs["shipyard"], runs["shipyard-nodrift"], strict=True))
    ratio = statistics.median(a[0] / b[0] for a, b in pairs)  # each round's pair: the same period of the machine
    added = statistics.median(a[1] - b[1] for a, b in pairs)
    cpu_added = statistics.median(a - b for a, b in zip(cpu["shipyard"], cpu["shipyard-nodrift"], strict=True))
    print(f"\nlive drift at 8 connections, 1-row bodies, {rounds} alternating rounds of {duration} s (medians):")
    print("| server | req/s | p50 ms | p99 ms | CPU us a request | RSS MiB | req/s each round |")
    print("|---|---|---|---|---|---|---|")
    for name, label in (("shipyard-nodrift", "--no-drift"), ("shipyard", "--drift (default)")):
        m = med[name]
        print(f"| {label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu_us']:.0f} | "
              f"{memory[name]:.0f} | {', '.join(f'{r[0]:.0f}' for r in runs[name])} |")
    print(f"per round (median of the {rounds} pairs): drift costs {(1 - ratio) * 100:.1f}% of requests/s (target "
          f"<= 5%: {'met' if ratio >= 0.95 else 'MISSED'}) and {added:+.2f} ms p50 (target <= +0.2 ms: "
          f"{'met' if added <= 0.2 else 'MISSED'}), {cpu_added:+.1f} us of the server's CPU a request; medians "
          f"apart: {float(on['rps']) / float(off['rps']):.3f}x requests/s, "  # type: ignore[arg-type]
          f"{float(on['p50']) - float(off['p50']):+.2f} ms p50; {counted:.0f} rows counted, "  # type: ignore[arg-type]
          f"{uncounted or 0:.0f} dropped")
    return {"median": {k: {kk: vv for kk, vv in v.items() if kk != "rounds"} for k, v in med.items()},
            "paired": {"rps_ratio": ratio, "p50_added_ms": added, "cpu_added_us": cpu_added},
            "rounds": runs, "cpu_us": cpu, "rows_counted": counted, "rows_dropped": uncounted, "rss_mib": memory}


def mlflow_server(t: Path, port: int, env: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    py = venv_python("mlflow")
    uri = f"sqlite:///{t / 'mlflow.db'}"
    code = ("import pickle, mlflow, mlflow.sklearn\nm = pickle.load(open('model.pkl', 'rb'))\n"
            "with mlflow.start_run() as r:\n    mlflow.sklearn.log_model(m, name='model')\n"
            "print(f'runs:/{r.info.run_id}/model')\n")
    menv = {**env, "MLFLOW_TRACKING_URI": uri, "GIT_PYTHON_REFRESH": "quiet",
            "PATH": os.pathsep.join([str(Path(py).parent), env.get("PATH", "")])}  # it execs its own uvicorn
    model_uri = subprocess.run([py, "-c", code], cwd=t, env=menv, capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
    exe = str(Path(py).parent / "mlflow")
    return ([exe, "models", "serve", "-m", model_uri, "--env-manager", "local", "--host", "127.0.0.1",
             "-p", str(port), "-w", "1"], menv, f"http://127.0.0.1:{port}/invocations")


if __name__ == "__main__":
    main()
