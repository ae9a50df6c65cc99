"""Alerts end to end, no mocks: a real Prometheus scrapes `shipyard serve` with the rules `shipyard alerts render`
wrote (short `for` durations from shipyard.yaml's monitoring.alerts), a real Alertmanager routes what fires to a
webhook receiver on 127.0.0.1; in-distribution traffic fires no drift alert, shifted traffic fires one naming the
model, the version and the feature; every query of the rendered Grafana dashboard runs on that Prometheus."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard.interfaces.cli.app import app
from tests.conftest import cli_env, free_port, stop, wait_for_http, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="Debian's prometheus and prometheus-alertmanager are not installed here")

MODEL = "drifty"
MIN_ROWS = 500  # a window of fewer rows has a PSI bias of about 9 / rows: 500 keeps it near 0.02
CONFIG = f"""monitoring:
  min_rows: {MIN_ROWS}
  alerts:
    drift_for: 2s
    quality_for: 1m
    for: 1m
    no_traffic_for: 1h
"""
DRIFT = "ShipyardFeatureDrift"


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every alert Alertmanager posts."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length", "0")), 1 << 20)
                received.extend(json.loads(self.rfile.read(length))["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def named(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in list(self.alerts) if a["labels"].get("alertname") == alertname]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Traffic:
    """Rows from ``make()`` sent to the server in a thread, 40 rows a request, as fast as it answers."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=10)
        self.make: Callable[[], list[list[float]]] | None = None
        self.sent = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            make = self.make
            if make is None:
                time.sleep(0.05)
                continue
            answer = self.client.post("/predict", json={"instances": make()})
            if answer.status_code != 200:
                self.errors.append(answer.text[:200])
            self.sent += 1
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=15)
        self.client.close()


def query(prometheus: str, path: str, **params: str) -> Any:
    url = f"{prometheus}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 400/422: the query did not parse or evaluate
        body = json.loads(exc.read())
    return body


@contextlib.contextmanager
def process(cmd: list[str], log: Path, **kw: Any) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    try:
        yield proc
    finally:
        stop(proc, timeout=20)


def register(root: Path) -> None:
    """A model of two normal features, registered with them as its reference profile."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    import shipyard as sy

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, size=(5000, 2))
    client = sy.Client(root)
    try:
        run = client.start_run("train")
        client.log_model(run.id, LinearRegression().fit(x, x @ [1.0, -1.0]), MODEL, examples=x[:2], reference=x)
    finally:
        client.close()


def test_drift_alert_reaches_the_receiver_only_when_the_traffic_shifts(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    monkeypatch.chdir(root)
    for key in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(root / ".shipyard"))
    register(root)
    rendered = CliRunner().invoke(app, ["alerts", "render", MODEL, "-o", str(tmp_path / "rules")])
    assert rendered.exit_code == 0, rendered.output
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    rules = tmp_path / "rules" / "shipyard-rules.yml"

    receiver = Receiver()
    serve_port, prom_port, am_port = free_port(), free_port(), free_port()
    (tmp_path / "am.yml").write_text(
        "route:\n  receiver: hook\n  group_by: [alertname, model, feature]\n  group_wait: 1s\n"
        "  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n"
        f"      - url: {receiver.url}\n        send_resolved: false\n")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {rules}\n"
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n"
        f"scrape_configs:\n  - job_name: shipyard\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{serve_port}']\n")
    prometheus = f"http://127.0.0.1:{prom_port}"
    rng = np.random.default_rng(1)
    with contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        serve = stack.enter_context(process(
            [sys.executable, "-m", "shipyard", "serve", MODEL, "--drift-window", "6", "--no-log",
             "--port", str(serve_port)], tmp_path / "serve.log", env=env, cwd=root))
        am = stack.enter_context(process(
            ["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
             f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address="], tmp_path / "am.log"))
        prom = stack.enter_context(process(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            tmp_path / "prometheus.log"))
        wait_for_http(f"http://127.0.0.1:{serve_port}/v2/health/ready", serve, "shipyard serve",
                      tmp_path / "serve.log")
        wait_for_http(f"http://127.0.0.1:{am_port}/-/ready", am, "alertmanager", tmp_path / "am.log")
        wait_for_http(f"{prometheus}/-/ready", prom, "prometheus", tmp_path / "prometheus.log")

        traffic = Traffic(f"http://127.0.0.1:{serve_port}")
        stack.callback(traffic.close)
        traffic.make = lambda: rng.normal(0.0, 1.0, size=(40, 2)).tolist()  # as the reference

        def drift_values() -> dict[str, float]:
            found = query(prometheus, "/api/v1/query", query=f'shipyard_feature_drift{{model="{MODEL}"}} and '
                          f'ignoring (feature, statistic) shipyard_drift_window_rows >= {MIN_ROWS}')
            return {r["metric"]["feature"]: float(r["value"][1]) for r in found["data"]["result"]}

        def drift_alerts() -> list[dict[str, Any]]:
            return [a for a in query(prometheus, "/api/v1/alerts")["data"]["alerts"]
                    if a["labels"]["alertname"] == DRIFT]

        # (3) in-distribution: both features' drift is measured on enough rows, and the rule stays quiet (not
        # even pending) for longer than its `for`
        seen = wait_until("the drift gauges in Prometheus", lambda: (lambda v: v if len(v) == 2 else None)(
            drift_values()))
        assert all(value < 0.2 for value in seen.values()), seen
        quiet_until = time.monotonic() + 3
        while time.monotonic() < quiet_until:
            assert drift_alerts() == [], drift_values()
            time.sleep(0.25)
        rule = next(r for g in query(prometheus, "/api/v1/rules")["data"]["groups"] for r in g["rules"]
                    if r["name"] == DRIFT)
        assert rule["health"] == "ok" and rule["state"] == "inactive"
        assert receiver.named(DRIFT) == [] and traffic.errors == []

        # (4) x0 shifts by two standard deviations: the alert fires and reaches the receiver
        shift = np.array([2.0, 0.0])
        traffic.make = lambda: (rng.normal(0.0, 1.0, size=(40, 2)) + shift).tolist()
        [alert] = wait_until("the drift alert at the webhook receiver", lambda: receiver.named(DRIFT))
        assert alert["status"] == "firing"
        assert {k: alert["labels"][k] for k in ("model", "version", "feature", "statistic", "severity")} == {
            "model": MODEL, "version": "1", "feature": "x0", "statistic": "psi", "severity": "ticket"}
        text = alert["annotations"]["description"]
        assert "Feature x0 of drifty version 1: psi " in text, text
        assert f"shipyard monitor {MODEL}@1 --since 1h" in alert["annotations"]["runbook"]
        assert drift_values()["x1"] < 0.2  # the feature that did not move stays quiet

        # (5) every query of the rendered dashboard runs on this Prometheus, without an error
        board = json.loads((tmp_path / "rules" / "grafana-dashboard.json").read_text())
        variable = next(v for v in board["templating"]["list"] if v["name"] == "model")
        assert variable["definition"] == "label_values(shipyard_inference_requests_total, model)"
        models = query(prometheus, "/api/v1/label/model/values", **{"match[]": "shipyard_inference_requests_total"})
        assert models["status"] == "success" and MODEL in models["data"]
        now = time.time()
        empty = []
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "5s").replace("$model", MODEL)
                answer = query(prometheus, "/api/v1/query_range", query=expr, start=str(now - 30), end=str(now),
                               step="1")
                assert answer["status"] == "success", f"{panel['title']}: {answer.get('error')}\n{expr}"
                if not answer["data"]["result"]:
                    empty.append(panel["title"])
        for title in ("Requests by outcome", "Latency p50 and p99", "Feature drift", "Prediction drift",
                      "Drift window rows", "Monitored and dropped rows", "Predictions by bucket"):
            assert title not in empty, f"{title}: no data from the server's series"
