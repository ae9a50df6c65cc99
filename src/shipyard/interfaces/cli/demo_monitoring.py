"""The demo's monitoring part: serve a version with live drift, send it the traffic it was trained on, then traffic
that moved, and show what the server and ``shipyard monitor`` make of it.

The server is ``shipyard serve`` itself, in a process of its own as a user starts it (a short drift window, so
the gauges move within seconds); the traffic is rows drawn from the training data with a little noise, then the
same with petal length (x2) 1.5 cm longer. Stopped with SIGTERM, the server writes its last drift windows into its
inference log and stores it with its run, where ``shipyard monitor`` reads them for the table and the HTML report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.markup import escape

from shipyard.errors import MissingExtraError
from shipyard.interfaces.cli import output as out

NAMES = ("sepal length", "sepal width", "petal length", "petal width")  # the iris features x0..x3
WINDOW = 12  # seconds of the server's rolling drift window: a sub-window (and a refresh of the gauges) each second
ROWS, BATCH = 300, 10  # rows of each phase, rows per request
SHIFT = (2, 1.5)  # petal length (x2) 1.5 cm longer


def monitoring_demo(ref: str, x_train: Any) -> bool:
    """Serve ``ref``, send in-distribution then shifted traffic, print the drift the server measures live and
    ``shipyard monitor``'s table, and write its HTML report; False when an extra is missing."""
    import numpy as np

    c = out.console()
    missing = [extra for extra, module in (("serve", "uvicorn"), ("monitor", "datasketches"), ("monitor", "plotly"))
               if importlib.util.find_spec(module) is None]
    if missing:
        c.print(out.plain(str(MissingExtraError("live drift and the monitoring report", missing[0]))))
        return False
    from shipyard.wiring import settings_from_environment

    settings = settings_from_environment()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", ref, "--port", str(port), "--drift-window", str(WINDOW),
         "--poll", "0"], env={**os.environ, "SHIPYARD_HOME": str(settings.home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not _ready(base, server):
            said = server.stderr.read() if server.stderr and server.poll() is not None else ""
            c.print(escape(f"skipped: the server did not start: {said[-300:]}"))
            return False
        c.print(f"serving {escape(ref)} on {base} with a {WINDOW} s drift window: GET {base}/metrics has "
                "shipyard_feature_drift per feature, the PSI (population stability index) of what the server saw "
                "against the training data's profile: about 0 when alike, 0.1 worth watching, 0.2 and up drift")
        rng = np.random.default_rng(7)
        normal = x_train[rng.integers(0, len(x_train), ROWS)] + rng.normal(0, 0.05, (ROWS, x_train.shape[1]))
        shifted = normal.copy()
        shifted[:, SHIFT[0]] += SHIFT[1]
        phases: list[tuple[str, dict[str, float]]] = []
        for label, rows in (("like the training data", normal), (f"petal length +{SHIFT[1]} cm", shifted)):
            _send(base, rows)
            phases.append((label, _gauges(base, len(phases) + 1)))
        out.table("PSI per feature over the server's window, from /metrics (0.2 and up: drift)",
                  ["feature", *(label for label, _ in phases)],
                  ((f"x{i} {n}", *(_psi(g, i) for _, g in phases)) for i, n in enumerate(NAMES)))
    finally:
        server.send_signal(signal.SIGTERM)  # the server writes its last drift windows and stores its log
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    return _report(ref, settings.home / "demo" / "monitoring-report.html")


def _ready(base: str, server: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def _send(base: str, rows: Any) -> None:
    for start in range(0, len(rows), BATCH):
        body = json.dumps({"instances": rows[start:start + BATCH].tolist()}).encode()
        request = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def _gauges(base: str, phase: int) -> dict[str, float]:
    """The feature drift gauges once the server has counted this phase's rows (it refreshes them each second)."""
    wanted = phase * ROWS
    found: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        rows = 0.0
        found = {}
        for line in text.splitlines():
            if line.startswith("shipyard_drift_window_rows{"):
                rows = float(line.rsplit(" ", 1)[1])
            elif line.startswith("shipyard_feature_drift{"):
                labels, value = line.rsplit(" ", 1)
                feature = labels.split('feature="', 1)[1].split('"', 1)[0]
                found[feature] = float(value)
        if rows >= wanted and len(found) == len(NAMES):
            return found
        time.sleep(0.2)
    return found


def _psi(gauges: dict[str, float], i: int) -> str:
    value = gauges.get(f"x{i}")
    return "-" if value is None else f"{value:.2f}" + (" drift" if value >= 0.2 else "")


def _report(ref: str, html: Path) -> bool:
    """``shipyard monitor REF --since 1h --html PATH``'s table and report, in-process."""
    from shipyard.interfaces.cli.monitor import print_report
    from shipyard.wiring.monitoring import monitor, write_report

    c = out.console()
    svc = out.services()
    try:
        report = monitor(svc, svc.registry.resolve(ref), since="1h")
    finally:
        svc.close()
    c.print(f"\n$ shipyard monitor {escape(ref)} --since 1h --html {escape(str(html))}   "
            "# the inference log of the last hour: this server's drift windows and requests")
    print_report(report)
    written = write_report(report, html)
    c.print(f"the HTML report (distributions, drift over time, latency, errors; opens offline): "
            f"{escape(str(written))}")
    return True
