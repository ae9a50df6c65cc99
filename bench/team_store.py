"""A team's shared store: Shipyard with its store in S3 (moto) and PostgreSQL, against raw obstore transfers and
against MLflow (S3 artifact store on the same moto server, PostgreSQL tracking backend), in one run.

    python bench/team_store.py [--pg-url URL] [--repeats 5] [--mib 100] [--profile] [--mlflow-python PATH]

The script starts its own moto server (`moto_server` beside this interpreter, 127.0.0.1, a free port) and
creates, then drops, two databases on the PostgreSQL server of --pg-url (default SHIPYARD_TEST_PG_URL). The
model is a scikit-learn LinearRegression whose weights take --mib MiB: Shipyard saves it with skops, MLflow
with cloudpickle, one large file each. "Machines" are separate homes (separate caches) and processes:
A registers, B loads with an empty cache (a fresh B for every repeat), C loads from a local store.
MLflow, boto3 and psycopg2-binary are installed into bench/.venvs/mlflow on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from venvs import tool_python

HERE = Path(__file__).resolve().parent
MLFLOW_SPEC = "mlflow==3.17.2"
BUCKET = "team"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def mlflow_python(explicit: str | None) -> str:
    py = explicit or tool_python("mlflow", [MLFLOW_SPEC, "scikit-learn"])
    if subprocess.run([py, "-c", "import boto3, psycopg2"], capture_output=True).returncode:
        print("installing boto3 and psycopg2-binary beside MLflow (first run only)...", flush=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "boto3",
                        "psycopg2-binary"], check=True)
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"moto_server did not answer on {endpoint}; see {log}")
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=10).close()
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def databases(admin_url: str, names: list[str]) -> Iterator[dict[str, str]]:
    import psycopg

    def create_or_drop(sql: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.format(name))  # our own names, made below

    create_or_drop("DROP DATABASE IF EXISTS {} WITH (FORCE)")
    create_or_drop("CREATE DATABASE {}")
    parts = urlsplit(admin_url)
    try:
        yield {name: urlunsplit(parts._replace(path=f"/{name}")) for name in names}
    finally:
        create_or_drop("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def run(python: str, script: str, role: str, env: dict[str, str], cwd: Path, echo: bool = True) -> dict[str, Any]:
    proc = subprocess.Popen([python, str(HERE / "workloads" / script), role], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    result = None
    for line in out.splitlines(keepends=True):
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        elif echo:
            sys.stdout.write(line)
    sys.stdout.flush()
    if proc.returncode or result is None:
        raise SystemExit(f"{script} {role} failed ({proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}")
    return dict(result)


def version_of(python: str, package: str) -> str:
    return subprocess.run([python, "-c", f"from importlib.metadata import version; print(version({package!r}))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-url", default=os.environ.get("SHIPYARD_TEST_PG_URL"),
                    help="a PostgreSQL server (any database) where this script may create and drop its own")
    ap.add_argument("--repeats", type=int, default=5, help="measurements per figure (the median is reported)")
    ap.add_argument("--mib", type=float, default=100, help="size of the model's weights")
    ap.add_argument("--profile", action="store_true", help="also profile one extra register and load (cProfile)")
    ap.add_argument("--mlflow-python", help="python of a venv with mlflow, scikit-learn, boto3, psycopg2")
    ap.add_argument("--skip-mlflow", action="store_true")
    args = ap.parse_args()
    if not args.pg_url:
        raise SystemExit("no PostgreSQL: pass --pg-url postgresql://USER@HOST:PORT/DB or set SHIPYARD_TEST_PG_URL")

    ml_py = None if args.skip_mlflow else mlflow_python(args.mlflow_python)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_", "AWS_"))}
    base.update(CREDENTIALS, BENCH_REPEATS=str(args.repeats), BENCH_MIB=str(args.mib), BENCH_BUCKET=BUCKET,
                BENCH_PROFILE="1" if args.profile else "0", GIT_PYTHON_REFRESH="quiet")
    tag = f"{os.getpid()}"
    s: dict[str, list[float]] = {}
    m: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, \
            moto_server(Path(tmp) / "moto.log") as endpoint, \
            databases(args.pg_url, [f"bench_team_shipyard_{tag}", f"bench_team_mlflow_{tag}"]) as dbs:
        t = Path(tmp)
        ship_db, ml_db = dbs[f"bench_team_shipyard_{tag}"], dbs[f"bench_team_mlflow_{tag}"]
        ml_db = "postgresql+psycopg2://" + ml_db.split("://", 1)[1]  # the driver installed beside MLflow

        def machine(name: str, **extra: str) -> tuple[dict[str, str], Path]:
            folder = t / name
            folder.mkdir()
            env = {**base, "SHIPYARD_HOME": str(folder / ".shipyard"), "SHIPYARD_DB_URL": ship_db,
                   "SHIPYARD_STORE": f"s3://{BUCKET}/store", "AWS_ENDPOINT_URL": endpoint, **extra}
            return env, folder

        print(f"moto on {endpoint}; model weights {args.mib:g} MiB; {args.repeats} repeats", flush=True)
        print("Shipyard, machine A: registering...", flush=True)
        reg = run(sys.executable, "team_shipyard.py", "register", *machine("a"))
        for key in ("register_s", "raw_upload_s", "serialize_s"):
            s[key] = reg[key]
        size = reg["bytes"]
        if ml_py:
            print("MLflow: logging...", flush=True)
            ml_env = {**base, "MLFLOW_TRACKING_URI": ml_db, "MLFLOW_S3_ENDPOINT_URL": endpoint}
            (t / "mlflow").mkdir()
            logged = run(ml_py, "team_mlflow.py", "log", ml_env, t / "mlflow")
            m["log_s"] = logged["log_s"]
        for key in ("cold_s", "warm_s", "raw_download_file_s", "raw_download_memory_s", "deserialize_s", "local_s"):
            s[key] = []
        m["load_s"], m["load_again_s"] = [], []
        for i in range(args.repeats):
            profile = "1" if args.profile and i == 0 else "0"
            got = run(sys.executable, "team_shipyard.py", "load",
                      *machine(f"b{i}", BENCH_VERSION=str(reg["version"]), BENCH_PROFILE=profile))
            for key in ("cold_s", "warm_s", "raw_download_file_s", "raw_download_memory_s", "deserialize_s"):
                s[key].append(got[key])
            env, folder = machine(f"c{i}", BENCH_VERSION=str(reg["version"]), BENCH_PROFILE=profile)
            env["SHIPYARD_STORE"] = got["cache_folder"]  # B's cache, now a local store holding the same objects
            s["local_s"].append(run(sys.executable, "team_shipyard.py", "local", env, folder)["local_s"])
            line = (f"  load #{i}: cold {got['cold_s']:.3f} s (raw download to a file "
                    f"{got['raw_download_file_s']:.3f} s, to memory {got['raw_download_memory_s']:.3f} s), "
                    f"warm {got['warm_s']:.3f} s, local store "
                    f"{s['local_s'][-1]:.3f} s, skops deserialization alone {got['deserialize_s']:.3f} s")
            if ml_py:
                (t / f"mlflow-b{i}").mkdir()
                got = run(ml_py, "team_mlflow.py", "load",
                          {**ml_env, "BENCH_VERSION": logged["version"], "BENCH_PROFILE": profile}, t / f"mlflow-b{i}")
                m["load_s"].append(got["load_s"])
                m["load_again_s"].append(got["load_again_s"])
                line += f"; MLflow load {got['load_s']:.3f} s / {got['load_again_s']:.3f} s"
            print(line, flush=True)
            shutil.rmtree(t / f"b{i}", ignore_errors=True)
            shutil.rmtree(t / f"c{i}", ignore_errors=True)
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "shipyard": version_of(sys.executable, "shipyard"),
            "obstore": version_of(sys.executable, "obstore"), "moto": version_of(sys.executable, "moto"),
            "skops": version_of(sys.executable, "skops"), "postgresql": postgres_version(args.pg_url),
            "mlflow": version_of(ml_py, "mlflow") if ml_py else "-", "load_average": os.getloadavg()[0],
            "model_file_bytes": size,
        }
    report(meta, {k: statistics.median(v) for k, v in s.items()},
           {k: statistics.median(v) for k, v in m.items() if v}, args.repeats)
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "team_store.json").write_text(json.dumps({"meta": meta, "shipyard": s, "mlflow": m}, indent=2))


def report(meta: dict[str, Any], s: dict[str, float], m: dict[str, float], repeats: int) -> None:
    mib = meta["model_file_bytes"] / 2**20
    print(f"\n{meta}\n\nmedians of {repeats}; the model file is {mib:.1f} MiB\n")
    print("| work | Shipyard | baseline | Shipyard / baseline | target |")
    print("|---|---|---|---|---|")

    def row(label: str, ours: float, base_label: str, theirs: float, target: float | None) -> None:
        ratio = ours / theirs
        verdict = "" if target is None else f"<= {target}x: {'met' if ratio <= target else 'MISSED'}"
        print(f"| {label} | {ours:.3f} s | {base_label} {theirs:.3f} s | {ratio:.2f}x | {verdict} |")

    row("load on B, cold (empty cache)", s["cold_s"], "raw obstore download to a file", s["raw_download_file_s"], 1.5)
    row("load on B, cold", s["cold_s"], "raw obstore download to memory", s["raw_download_memory_s"], None)
    row("load on B, cold, less the skops deserialization", s["cold_s"] - s["deserialize_s"],
        "raw obstore download to a file", s["raw_download_file_s"], None)
    row("what a miss adds: cold less warm", s["cold_s"] - s["warm_s"], "raw obstore download to a file",
        s["raw_download_file_s"], None)
    row("load on B, warm (cached)", s["warm_s"], "load from a local store", s["local_s"], 1.1)
    row("register a version to the S3 store", s["register_s"], "raw obstore upload", s["raw_upload_s"], 1.3)
    row("register, less the skops serialization", s["register_s"] - s["serialize_s"], "raw obstore upload",
        s["raw_upload_s"], None)
    print(f"\nthroughput: raw download {mib / s['raw_download_file_s']:.0f} MiB/s, raw upload "
          f"{mib / s['raw_upload_s']:.0f} MiB/s; skops: serialization {s['serialize_s']:.3f} s, "
          f"deserialization {s['deserialize_s']:.3f} s")
    if m:
        print("\n| work | Shipyard | MLflow | MLflow / Shipyard |")
        print("|---|---|---|---|")
        print(f"| log + register the model (A) | {s['register_s']:.3f} s | {m['log_s']:.3f} s | "
              f"{m['log_s'] / s['register_s']:.1f}x |")
        print(f"| load the version on another machine, first time | {s['cold_s']:.3f} s | {m['load_s']:.3f} s | "
              f"{m['load_s'] / s['cold_s']:.1f}x |")
        print(f"| load it again (Shipyard: cached; MLflow downloads again) | {s['warm_s']:.3f} s | "
              f"{m['load_again_s']:.3f} s | {m['load_again_s'] / s['warm_s']:.1f}x |")


if __name__ == "__main__":
    main()
