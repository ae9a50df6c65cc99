"""A real Prometheus server scrapes the model server; the request counter is read back through its API."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, free_port, register_constant, start_prometheus

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="Debian's prometheus is not installed (.ci/run installs it)")


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1].decode()[-2000:])
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_prometheus_scrapes_the_request_counter(tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))
    register_constant(env, "scraped")
    port, prom_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "shipyard", "serve", "scraped", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prom = start_prometheus(tmp_path, port, prom_port)
    try:
        _wait(f"http://127.0.0.1:{port}/v2/health/ready", server)
        for _ in range(25):
            assert httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": [[1.0, 2.0]]}).status_code == 200
        _wait(f"http://127.0.0.1:{prom_port}/-/ready", prom)
        query = 'shipyard_inference_requests_total{model="scraped",outcome="ok"}'
        value = 0.0
        for _ in range(40):  # the first scrape lands about 5 s after start
            data = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": query}).json()
            results = data["data"]["result"]
            if results:
                value = float(results[0]["value"][1])
                if value >= 25:
                    break
            time.sleep(0.5)
        assert value == 25.0
    finally:
        for proc in (prom, server):
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
