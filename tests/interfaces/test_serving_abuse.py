"""One client must not exhaust the model server: bodies, time, connections (real HTTP on 127.0.0.1, bounded).

Timing figures (health latency under load, peak memory) are printed by bench/serving_abuse.py; these
tests assert only behaviour.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import cli_env, register_constant, serving, serving_process

# a python-flavor model that takes 2 s to answer a big request: long enough to see what the loop does meanwhile
SLOW = """
import time

class Slow:
    def predict(self, rows):
        if len(rows) > 1000:
            time.sleep(2.0)
        return [float(row[0]) for row in rows]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("abuse")
    (root / "slow.py").write_text(SLOW)
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    register = ("import shipyard, slow\nwith shipyard.start_run():\n"
                "    shipyard.log_model(slow.Slow(), 'slow', flavor='python', examples=[[1.0, 2.0]])\n")
    subprocess.run([sys.executable, "-c", register], env=env, check=True, timeout=120)
    register_constant(env, "const")
    return env


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return str(parts.hostname), int(parts.port or 80)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def _big_rows(n: int) -> bytes:
    return json.dumps({"instances": [[float(i), 1.0] for i in range(n)]}).encode()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_a_chunked_body_past_the_limit_gets_413_without_being_buffered(env: dict[str, str]) -> None:
    """256 MiB sent chunked (no Content-Length) against the 16 MiB limit: 413, and the peak RSS grows < 96 MiB."""
    with serving_process(env, "const", "--no-log") as (url, proc):
        before = _peak_rss_kib(proc.pid)
        chunk = b"[" + b"1.0," * (256 * 1024 - 1) + b"1.0]"  # about 1 MiB of JSON numbers
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        with socket.create_connection(_address(url), timeout=30) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"transfer-encoding: chunked\r\n\r\n")
            answer = b""
            for _ in range(256):
                if select.select([s], [], [], 0)[0]:  # the server answered early: stop sending
                    break
                try:
                    s.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    break
            try:
                while b"\r\n\r\n" not in answer and (data := s.recv(65536)):
                    answer += data
            except ConnectionResetError:
                pass
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert _peak_rss_kib(proc.pid) - before < 96 * 1024
        assert httpx.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]}).status_code == 200


def test_health_answers_while_a_big_request_is_processed(env: dict[str, str]) -> None:
    """A 6 MB request that parses for a while and predicts for 2 s; health checks keep being answered."""
    with serving(env, "slow", "--no-log") as url:
        body = _big_rows(300_000)
        status: list[int] = []
        done = threading.Event()

        def big() -> None:
            try:
                status.append(httpx.post(f"{url}/predict", content=body, timeout=60).status_code)
            finally:
                done.set()

        thread = threading.Thread(target=big)
        answered = 0
        with httpx.Client(timeout=30) as client:
            thread.start()
            while not done.is_set():
                ok = client.get(f"{url}/v2/health/live").status_code == 200
                answered += ok and not done.is_set()
                time.sleep(0.02)
        thread.join()
        assert status == [200]
        assert answered >= 30  # with parse and predict on the event loop, only a few got through (6 seen)


def test_timeout_covers_the_whole_request(env: dict[str, str]) -> None:
    """--timeout 1: a big body whose predict takes 2 s, and a body that trickles in, both get 504."""
    with serving(env, "slow", "--no-log", "--timeout", "1") as url:
        r = httpx.post(f"{url}/predict", content=_big_rows(200_000), timeout=60)
        assert r.status_code == 504 and "1 s" in r.json()["error"]
        with socket.create_connection(_address(url), timeout=30) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: 1000\r\n\r\n{\"instances\": [")
            answer = b""
            while b"\r\n\r\n" not in answer and (data := s.recv(65536)):
                answer += data
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        assert httpx.post(f"{url}/predict", json={"instances": [[3.0, 1.0]]}).json()["predictions"] == [3.0]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'shipyard_inference_requests_total{model="slow",outcome="timeout",version="1"} 2.0' in metrics


def _closed_by_server(s: socket.socket) -> bool:
    """Whether the server has closed ``s`` (read EOF or reset); waits at most the socket's timeout."""
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_stalled_request_head_is_closed_and_others_are_answered(env: dict[str, str]) -> None:
    """--header-timeout 1: half a request line, nothing at all, or a head sent a byte at a time get closed."""
    with serving(env, "const", "--no-log", "--header-timeout", "1") as url:
        address = _address(url)
        with socket.create_connection(address, timeout=20) as half, \
                socket.create_connection(address, timeout=20) as silent:
            half.sendall(b"GET /v2/hea")
            assert httpx.get(f"{url}/v2/health/live").status_code == 200  # others are answered meanwhile
            assert _closed_by_server(half)
            assert _closed_by_server(silent)
        with socket.create_connection(address, timeout=20) as trickle:
            closed = False
            for byte in b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 100:
                try:
                    trickle.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if select.select([trickle], [], [], 0.1)[0]:
                    closed = _closed_by_server(trickle)
                    break
            assert closed  # the deadline is for the whole head, not reset by each byte
        with socket.create_connection(address, timeout=20) as reused:  # after one answer, half a second head
            reused.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while b'{"live":true}' not in answer:
                answer += reused.recv(1024)
            reused.sendall(b"GET /v2/hea")
            assert _closed_by_server(reused)
        assert httpx.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]}).json()["predictions"] == [1]


def test_many_idle_connections_neither_lock_out_a_client_nor_flood_the_log(env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    """300 idle connections against --max-connections 50: a real request is still answered, the log stays short."""
    log = tmp_path / "stderr.log"
    with log.open("wb") as err, serving_process(env, "const", "--no-log", "--max-connections", "50",
                                                stderr=err) as (url, _):
        idle: list[socket.socket] = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(_address(url), timeout=10))
            r = httpx.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]}, timeout=10)
            assert r.status_code == 200 and r.json()["predictions"] == [1]
            assert sum(_closed_by_server(s) for s in idle[:100]) == 100  # the oldest idle ones made room
        finally:
            for s in idle:
                s.close()
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
    lines = log.read_text().splitlines()
    assert len(lines) < 20, lines[:40]
    assert any("closed an idle connection" in line for line in lines)


@pytest.mark.parametrize("open_files", [64, 256, 1024, 4096, 1 << 20])
def test_the_connection_cap_leaves_room_for_what_asyncio_accepts_at_once(open_files: int) -> None:
    """1,100 connections against 1,024 open files once ran the server out of them; the cap now fits any limit."""
    from shipyard.interfaces.serving.connections import OPEN_FILES_RESERVE
    from shipyard.interfaces.serving.server import fit_open_files

    cap, backlog = fit_open_files(1000, open_files)
    assert 1 <= cap <= 1000 and backlog >= 4
    assert cap + 2 * backlog + OPEN_FILES_RESERVE <= max(open_files, 16 + OPEN_FILES_RESERVE)


def test_an_answer_before_the_body_closes_the_connection(env: dict[str, str]) -> None:
    """A 404 for an endless chunked body: the server answers and closes, rather than reading on."""
    with serving(env, "const", "--no-log") as url, socket.create_connection(_address(url), timeout=20) as s:
        s.sendall(b"POST /v2/models/nope/infer HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                  b"5\r\n[1,2,\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(1024)
        assert answer.startswith(b"HTTP/1.1 404") and b"connection: close" in answer.lower()
        for _ in range(100):  # keep sending: the server no longer reads
            try:
                s.sendall(b"5\r\n1,2,3\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0.05)[0] and _closed_by_server(s):
                break
        else:
            raise AssertionError("the server kept reading the body of a request it had answered")


def test_a_flood_of_one_error_is_logged_once_per_interval_with_a_count() -> None:
    import logging

    from shipyard.interfaces.serving.connections import RateLimited

    logger = logging.getLogger("shipyard.test.flood")
    logger.propagate = False
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    now = [100.0]  # the filter's clock: a busy machine logging slowly cannot move it past the interval
    logger.addFilter(RateLimited(interval=0.2, clock=lambda: now[0]))
    for i in range(10_000):
        logger.error("Too many open files (%d)", i)
    logger.error("another kind of error")
    now[0] += 0.25
    logger.error("Too many open files (%d)", 10_000)
    assert seen[:2] == ["Too many open files (0)", "another kind of error"] and len(seen) == 3
    assert seen[2].startswith("Too many open files (10000) (9999 more like this in the last")
