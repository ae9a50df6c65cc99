"""``shipyard promote`` end to end: the gate checks, the render, the commit, the push to a local ``git daemon``
and the alias move. Target: under 2 s.

    python bench/promote_bench.py [--repeats 5]

Two versions of one model are promoted in turn, so every promotion makes a commit. Timed in-process (the
``promote`` of the wiring, from the gates to the alias move) and as the CLI a user runs (a new interpreter each
time, imports included).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from sklearn.dummy import DummyClassifier

    import shipyard
    from shipyard.config import Settings
    from shipyard.errors import BackendUnavailableError
    from shipyard.wiring import build
    from shipyard.wiring.gitops import promote

    with tempfile.TemporaryDirectory(prefix="shipyard-promote-bench-") as tmp:
        t = Path(tmp)
        (t / "git").mkdir()
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(t / "git" / "gitops.git")], check=True)
        port = free_port()
        pid = t / "git" / "daemon.pid"
        subprocess.run(["git", "daemon", f"--base-path={t / 'git'}", "--export-all", "--enable=receive-pack",
                        "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", f"--pid-file={pid}", "--detach"],
                       check=True)
        try:
            proj = t / "proj"
            proj.mkdir()
            (proj / "shipyard.yaml").write_text(f"deploy:\n  repo: git://127.0.0.1:{port}/gitops.git\n")
            home = proj / ".shipyard"
            settings = Settings(home=home, db_url=f"sqlite:///{home / 'meta.db'}", store_path=home / "objects",
                                actor="bench@local", root=proj)
            svc = build(settings, proj)
            folder = t / "saved"
            shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
            for v in (1, 2):
                mv = svc.registry.register("iris", folder)
                pushed = f"registry.example.com/ml/iris@sha256:{str(v) * 64}"
                svc.registry.record_result(mv, "build", {"image": f"shipyard/iris:{v}", "pushed": pushed},
                                           f"pushed {pushed}")
            for attempt in range(10):  # the daemon may still be starting; the first promotion makes the clone
                try:
                    promote(svc, "iris@1", "staging")
                    break
                except BackendUnavailableError:
                    if attempt == 9:
                        raise
                    time.sleep(0.2)
            in_process = []
            for i in range(args.repeats * 2):
                start = time.perf_counter()
                done = promote(svc, f"iris@{2 - i % 2}", "staging")
                in_process.append(time.perf_counter() - start)
                assert done.commit is not None and done.alias_moved, done
            svc.close()
            env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_DB_URL": settings.db_url,
                   "SHIPYARD_ACTOR": "bench@local"}
            cli = []
            for i in range(args.repeats):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "shipyard", "promote", f"iris@{2 - i % 2}", "--env", "staging"],
                               cwd=proj, env=env, check=True, capture_output=True)
                cli.append(time.perf_counter() - start)
        finally:
            os.kill(int(pid.read_text()), signal.SIGTERM)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}")
    for name, times in (("promote, in process (gates -> render -> commit -> push -> alias)", in_process),
                        ("shipyard promote, the CLI (a new interpreter each time)", cli)):
        med = statistics.median(times)
        print(f"{name}: median {med:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} "
              f"[target < {TARGET_S:.0f} s: {'met' if med < TARGET_S else 'MISSED'}]")


if __name__ == "__main__":
    main()
