"""Serving under abuse: the figures behind tests/interfaces/test_serving_abuse.py, printed, on 127.0.0.1.

    python bench/serving_abuse.py [--body-mib 512] [--idle 1100]

1. health latency while one big valid request (about 15 MB of rows) is parsed and predicted;
2. peak server memory (VmHWM) while a chunked body far past the 16 MiB limit is sent;
3. idle connections (more than the 1,024 open files the server is started with): can a client
   still get an answer, and how many lines reach the server's stderr in 10 s;
4. how long a stalled request head (half a request line) keeps its connection, with --header-timeout 2.
Bounded: one server per part, every socket closed, a few seconds each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REGISTER = ("import shipyard\nfrom sklearn.dummy import DummyClassifier\nwith shipyard.start_run():\n"
            "    m = DummyClassifier(strategy='constant', constant=1).fit([[0, 0]] * 2, [1, 1])\n"
            "    shipyard.log_model(m, 'const', examples=[[0.0, 0.0]])\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 30) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return int(r.status)


def post(url: str, body: bytes, timeout: float = 120) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Server:
    def __init__(self, env: dict[str, str], *args: str, stderr: Path, open_files: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

        def limit() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.err = stderr.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "shipyard", "serve", "const", "--no-log", *args,
                                      "--port", str(self.port)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.err, preexec_fn=limit)
        deadline = time.time() + 120
        while True:
            try:
                if get(f"{self.url}/v2/health/ready", timeout=1) == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the server did not start: {stderr.read_text()[-2000:]}")
            time.sleep(0.1)

    def peak_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.err.close()


def health_during_big_request(env: dict[str, str], tmp: Path) -> None:
    server = Server(env, stderr=tmp / "health.log")
    try:
        body = json.dumps({"instances": [[float(i), 1.0] for i in range(700_000)]}).encode()
        done = threading.Event()
        status: list[int] = []

        def big() -> None:
            status.append(post(f"{server.url}/predict", body))
            done.set()

        latencies: list[float] = []
        thread = threading.Thread(target=big)
        start = time.perf_counter()
        thread.start()
        while not done.is_set():  # every check sent while the big request was in flight, however late its answer
            t = time.perf_counter()
            get(f"{server.url}/v2/health/live")
            latencies.append(time.perf_counter() - t)
            time.sleep(0.01)
        took = time.perf_counter() - start
        thread.join()
        print(f"1. big request ({len(body) / 1e6:.1f} MB, status {status[0]}) took {took:.2f} s; health "
              f"{len(latencies)} checks sent meanwhile: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
    finally:
        server.stop()


def chunked_past_the_limit(env: dict[str, str], tmp: Path, mib: int) -> None:
    server = Server(env, stderr=tmp / "chunked.log")
    try:
        before = server.peak_kib()
        chunk = b"[" + b"1.0," * (256 * 1024 - 1) + b"1.0]"
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        sent = 0
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(mib):
                if select.select([s], [], [], 0)[0]:
                    break
                try:
                    s.sendall(frame)
                except OSError:
                    break
                sent += len(frame)
            try:
                answer = s.recv(200)
            except OSError:
                answer = b"(reset)"
        took = time.perf_counter() - start
        after = server.peak_kib()
        first = answer.split(b"\r\n")[0].decode()
        print(f"2. chunked body, up to {mib} MiB offered, {sent / 2**20:.0f} MiB sent before the answer "
              f"({first}, {took:.2f} s); server peak RSS {before / 1024:.0f} -> "
              f"{after / 1024:.0f} MiB")
    finally:
        server.stop()


def idle_connections(env: dict[str, str], tmp: Path, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))
    log = tmp / "idle.log"
    server = Server(env, stderr=log, open_files=1024)  # as in the report: 1,024 open files at most
    idle: list[socket.socket] = []
    try:
        start = time.perf_counter()
        for _ in range(count):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        opened = time.perf_counter() - start
        t = time.perf_counter()
        status = post(f"{server.url}/predict", b'{"instances": [[1.0, 2.0]]}', timeout=30)
        answer_ms = (time.perf_counter() - t) * 1000
        time.sleep(10)
        lines = log.read_text().splitlines()
        print(f"3. {count} idle connections opened in {opened:.2f} s; then /predict answered {status} in "
              f"{answer_ms:.0f} ms; {len(lines)} stderr lines in the next 10 s: {lines[-3:]}")
    finally:
        for s in idle:
            s.close()
        server.stop()


def stalled_head(env: dict[str, str], tmp: Path) -> None:
    server = Server(env, "--header-timeout", "2", stderr=tmp / "head.log")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"GET /v2/hea")
            start = time.perf_counter()
            with contextlib.suppress(OSError):
                s.recv(100)
            print(f"4. half a request line, --header-timeout 2: closed after {time.perf_counter() - start:.2f} s")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-mib", type=int, default=512)
    parser.add_argument("--idle", type=int, default=1100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env["SHIPYARD_HOME"] = str(tmp / ".shipyard")
        subprocess.run([sys.executable, "-c", REGISTER], env=env, check=True, timeout=120)
        health_during_big_request(env, tmp)
        chunked_past_the_limit(env, tmp, args.body_mib)
        idle_connections(env, tmp, args.idle)
        stalled_head(env, tmp)


if __name__ == "__main__":
    main()
