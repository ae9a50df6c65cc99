"""Live drift in `shipyard serve` (issue 12): each served version's inputs and outputs counted against its own
reference profile off the request path, PSI gauges over a rolling window, data-quality counters, drift windows in
the inference log, series that follow the served versions, and load failures counted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import shipyard
from shipyard.core.monitoring.drift import Baseline, Window, total
from shipyard.interfaces.serving import drift as live_drift
from shipyard.interfaces.serving.drift import LiveDrift
from shipyard.interfaces.serving.logs import InferenceLog
from shipyard.interfaces.serving.middleware.metrics import Metrics
from shipyard.wiring import Services, from_environment
from shipyard.wiring.monitoring import baseline, count_rows
from tests.conftest import cli_env, free_port, serving_process, wait_until

pytestmark = pytest.mark.xdist_group("serving-drift")  # one project and one server for the module, in order

FEATURES = 4
SHIFTED = (1, 3)  # the features the shifted traffic moves by one standard deviation
SENT = 1000  # rows per kind of traffic, 100 a request
MONITOR_SERIES = ("shipyard_feature_drift", "shipyard_prediction_drift", "shipyard_drift_window_rows",
                  "shipyard_monitored_rows", "shipyard_data_quality_issues", "shipyard_monitor_dropped_rows")


def _data(seed: int, n: int) -> Any:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, FEATURES))


REFERENCE = _data(0, 3000)


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
        self.stderr = root / "serve.err"
        self.no_drift: tuple[str, subprocess.Popen[bytes]] = ("", None)  # type: ignore[assignment]

    def services(self) -> Services:
        return from_environment({"SHIPYARD_HOME": str(self.root / ".shipyard")}, self.root)

    def move(self, alias: str, version: int) -> None:
        with shipyard.Client(self.root) as client:
            client.set_registered_model_alias("m", alias, version)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Model m: v1 (m@prod), v2, v4 and v5 with a reference profile, v3 without; v5's files then corrupted."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("drift")
    y = (REFERENCE[:, 0] + REFERENCE[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(REFERENCE, y)
    with shipyard.Client(root) as client:
        run = client.start_run("train")
        for n in (1, 2, 3, 4):
            client.log_model(run.id, model, "m", examples=REFERENCE[:3], reference=None if n == 3 else REFERENCE)
        other = client.log_model(run.id, LogisticRegression(C=0.01).fit(REFERENCE, y), "m", examples=REFERENCE[:3],
                                 reference=REFERENCE)
        client.set_registered_model_alias("m", "prod", 1)
    victim = root / ".shipyard" / "objects" / "sha256" / other.manifest_digest.hex[:2] / other.manifest_digest.hex[2:]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"!")  # m@5 cannot be verified: the alias may move there, not serve it
    return Project(root)


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[tuple[str, Any]]:
    """`shipyard serve m@prod` with a canary (m@2, 0%: asked by version only), a shadow without a profile (m@3),
    a 6-second drift window (sub-windows of 1 s) and the alias followed every 0.2 s. Once it is up, a second
    server (m@1 with --no-drift) starts, while the first one's tests mostly wait for their windows."""
    with open(project.stderr, "wb") as err, serving_process(
            project.env, "m@prod", "--canary", "m@2=0", "--shadow", "m@3", "--drift-window", "6", "--poll", "0.2",
            stderr=err) as (url, proc), open(project.root / "no-drift.err", "wb") as quiet_err:
        port = free_port()
        quiet = subprocess.Popen([sys.executable, "-m", "shipyard", "serve", "m@1", "--no-drift", "--drift-window",
                                  "6", "--port", str(port)], env=project.env, stdout=subprocess.DEVNULL,
                                 stderr=quiet_err)
        project.no_drift = (f"http://127.0.0.1:{port}", quiet)
        try:
            yield url, proc
        finally:
            quiet.send_signal(signal.SIGTERM)
            quiet.wait(timeout=30)


def _infer(url: str, version: str, rows: Any) -> None:
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}]}
    r = httpx.post(f"{url}/v2/models/m/versions/{version}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _wait(what: str, ready: Callable[[], Any], seconds: float = 15.0) -> Any:
    return wait_until(what, ready, seconds, interval=0.1)


def _window_of(url: str, version: str, rows: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The metrics once the drift window of ``version`` holds ``rows`` rows (the gauges follow each sub-window)."""
    def full() -> Any:
        found = _samples(url)
        return found if _value(found, "shipyard_drift_window_rows", model="m", version=version) == rows else None

    return _wait(f"the drift window of m@{version} holds {rows} rows", full)  # type: ignore[no-any-return]


def _psi(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], version: str) -> dict[str, float | None]:
    return {f"x{i}": _value(samples, "shipyard_feature_drift", model="m", version=version, feature=f"x{i}",
                            statistic="psi") for i in range(FEATURES)}


def test_in_distribution_traffic_keeps_every_feature_near_its_reference(server: tuple[str, Any],
                                                                        project: Project) -> None:
    url, _ = server
    rows = _data(1, SENT)
    for start in range(0, SENT, 100):
        _infer(url, "1", rows[start:start + 100])
    samples = _window_of(url, "1", SENT)
    psi = _psi(samples, "1")
    assert all(v is not None and 0 <= v < 0.1 for v in psi.values()), psi
    assert _value(samples, "shipyard_monitored_rows_total", model="m", version="1") == SENT
    assert _value(samples, "shipyard_prediction_drift", model="m", version="1", output="y0", statistic="js") < 0.1
    assert _value(samples, "shipyard_monitor_dropped_rows_total", model="m", version="1") == 0
    # the shadow (m@3) answered every request too, but it has no reference: it is not watched, and said so once
    assert not [k for k in samples if dict(k[1]).get("version") == "3" and "drift" in k[0]]
    said = [line for line in project.stderr.read_text().splitlines() if "drift of" in line]
    assert said == ["drift of m@3 is not measured: it has no reference profile; register it with "
                    "log_model(..., reference=X_train), or give reference: (a data file) to its entry in "
                    "shipyard.yaml's models:, to get one"]


def test_shifted_traffic_raises_exactly_the_shifted_features_and_counts_values_out_of_range(
        server: tuple[str, Any]) -> None:
    url, _ = server
    rows = _data(2, SENT)
    rows[:, list(SHIFTED)] += 1.0
    rows[:20, 0] = 50.0  # far outside what the reference ever had
    for start in range(0, SENT, 100):
        _infer(url, "2", rows[start:start + 100])
    samples = _window_of(url, "2", SENT)
    psi = _psi(samples, "2")
    assert sorted(f for f, v in psi.items() if v is not None and v > 0.2) == [f"x{i}" for i in SHIFTED], psi
    assert all(v is not None and v < 0.1 for f, v in psi.items() if f not in ("x1", "x3")), psi
    assert max(_psi(samples, "1").values()) < 0.1  # each version against its own reference, in its own window
    assert _value(samples, "shipyard_prediction_drift", model="m", version="2", output="y0", statistic="js") > 0
    low, high = REFERENCE.min(axis=0), REFERENCE.max(axis=0)
    for i in range(FEATURES):
        outside = int(((rows[:, i] < low[i]) | (rows[:, i] > high[i])).sum())
        assert _value(samples, "shipyard_data_quality_issues_total", model="m", version="2", feature=f"x{i}",
                      issue="out_of_range") == outside
        assert _value(samples, "shipyard_data_quality_issues_total", model="m", version="2", feature=f"x{i}",
                      issue="missing") == 0
    assert _value(samples, "shipyard_data_quality_issues_total", model="m", version="2", feature="x0",
                  issue="out_of_range") >= 20


def test_the_watch_follows_the_alias_and_a_version_that_cannot_load_is_counted(server: tuple[str, Any],
                                                                             project: Project) -> None:
    url, _ = server
    project.move("prod", 4)

    def moved() -> Any:
        found = _samples(url)
        return found if _value(found, "shipyard_drift_window_rows", model="m", version="4") is not None else None

    samples = _wait("m@4 watched after the alias moved", moved)  # and m@1, served no more, lost its series:
    assert not [k for k in samples if dict(k[1]).get("version") == "1" and k[0].startswith(MONITOR_SERIES)]
    assert _value(samples, "shipyard_model_load_failures_total", model="m") == 0
    _infer(url, "4", _data(3, 200))
    _window_of(url, "4", 200)
    project.move("prod", 5)  # its manifest no longer matches its digest
    _wait("the load failure counted", lambda: _value(_samples(url), "shipyard_model_load_failures_total",
                                                     model="m") == 1)
    assert httpx.get(f"{url}/v2/models/m").json()["versions"][0] == "4"
    time.sleep(0.5)  # more polls: the same refusal is counted once
    assert _value(_samples(url), "shipyard_model_load_failures_total", model="m") == 1
    assert "keeping m@4" in project.stderr.read_text()


def test_drift_windows_land_in_the_inference_log_and_add_up_to_the_traffic(server: tuple[str, Any],
                                                                         project: Project) -> None:
    _, proc = server
    proc.send_signal(signal.SIGTERM)  # the shutdown writes the current sub-windows before the log closes
    proc.wait(timeout=30)
    svc = project.services()
    try:
        records = []
        for run in svc.tracker.search(None):
            for artifact in run.artifacts:
                if artifact.path.startswith("inference-logs/"):
                    with svc.store.open(artifact.digest) as f:
                        records += [json.loads(line) for line in f.read().splitlines()]
        bases = {v: baseline(svc, svc.registry.resolve(f"m@{v}")) for v in ("1", "2", "4")}
        # a file the server could not record (the database busy, on a loaded machine) stays on this machine, where
        # `shipyard monitor` reads it too
        for kept in sorted((svc.settings.home / "inference-logs").rglob("*.jsonl")):
            records += [json.loads(line) for line in kept.read_bytes().splitlines()]
    finally:
        svc.close()
    windows: dict[str, list[Window]] = {}
    for record in records:
        if record.get("kind") == "drift-window":
            found = bases[record["version"]]
            assert found is not None
            windows.setdefault(record["version"], []).append(Window.from_dict(record, found))
    sums = {v: total(ws) for v, ws in windows.items()}
    assert {v: w.rows for v, w in sums.items() if w is not None} == {"1": SENT, "2": SENT, "4": 200}
    for ws in windows.values():
        assert all(w.start <= w.end for w in ws) and len({w.start for w in ws}) == len(ws)
    merged = sums["2"]
    assert merged is not None and merged.inputs["x0"].out_of_range >= 20 and merged.profile == bases["2"].profile  # type: ignore[union-attr]
    requests = [r for r in records if r.get("outcome") == "ok"]
    assert len(requests) == 10 + 10 + 1


def test_the_shadow_is_watched_against_its_own_reference(project: Project) -> None:
    """The shadow's answers on the mirrored rows are counted under its own version (in-process: the app with a
    monitor, as `serve` builds it)."""
    from shipyard.interfaces.serving.app import create_app
    from shipyard.interfaces.serving.loading import load_slot
    from shipyard.interfaces.serving.router import Router

    svc = project.services()
    try:
        primary, shadow = (svc.registry.resolve(f"m@{v}") for v in (1, 2))
        router = Router(load_slot(svc.registry, primary), shadow=load_slot(svc.registry, shadow))
        bases = baseline(svc, primary), baseline(svc, shadow)
    finally:
        svc.close()
    metrics = Metrics()
    monitor = LiveDrift(metrics, count_rows, window=6)
    for version, base in zip(("1", "2"), bases, strict=True):
        assert base is not None
        monitor.watch("m", version, base)

    def counted(version: str) -> float | None:
        return metrics.registry.get_sample_value("shipyard_monitored_rows_total", {"model": "m", "version": version})

    rows = _data(5, 300)
    app = create_app(router, drift=monitor)

    async def send() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            for start in range(0, 300, 100):
                answer = await client.post("/predict", json={"instances": rows[start:start + 100].tolist()})
                assert answer.status_code == 200
            deadline = time.monotonic() + 15
            while not counted("1") == counted("2") == 300:  # the shadow answers in the background
                assert time.monotonic() < deadline, "the shadow's rows counted within 15 s"
                await asyncio.sleep(0.05)

    monitor.start()  # as the app's lifespan does (the transport does not run it)
    try:
        asyncio.run(send())
    finally:
        monitor.close()


def test_no_drift_exports_no_drift_series(server: tuple[str, Any], project: Project) -> None:
    url, quiet = project.no_drift

    def up() -> bool:
        assert quiet.poll() is None, (project.root / "no-drift.err").read_text()[-2000:]
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    _wait("`serve --no-drift` ready", up, 90)
    _infer(url, "1", _data(4, 100))
    lines = [line for line in httpx.get(f"{url}/metrics").text.splitlines() if not line.startswith("#")]
    assert any(line.startswith("shipyard_inference_requests_total{") for line in lines)
    assert not [line for line in lines if line.startswith(MONITOR_SERIES)]
    assert "drift" not in (project.root / "no-drift.err").read_text()


# the monitor in the same process, on real baselines: what HTTP cannot send, and the bounds


def _categorical() -> Baseline:
    from shipyard.adapters.monitoring.bins import baseline_of
    from shipyard.adapters.monitoring.sketches import build_profile

    rows = [["red", 1.0]] * 600 + [["blue", 2.0]] * 400
    return baseline_of(build_profile(rows, np.array([0, 1] * 500)), "sha256:" + "0" * 64)


def test_missing_and_unseen_values_count_as_data_quality_issues(tmp_path: Path) -> None:
    published: list[Path] = []
    log = InferenceLog(tmp_path / "logs", published.append)
    metrics = Metrics()
    monitor = LiveDrift(metrics, count_rows, window=6, log=log)
    base = _categorical()
    monitor.watch("c", "1", base)
    monitor.start()
    rows = np.array([["red", 1.5], ["green", np.nan], [None, 3.0], ["blue", None]], dtype=object)
    monitor.observe("c", "1", rows, [0, 1, 0, 1], time.time())
    monitor.observe("c", "2", rows, [0, 1, 0, 1], time.time())  # not watched: not counted, not queued
    monitor.close()
    log.close()

    def issues(feature: str, issue: str) -> float | None:
        return metrics.registry.get_sample_value("shipyard_data_quality_issues_total", {
            "model": "c", "version": "1", "feature": feature, "issue": issue})

    assert (issues("x0", "missing"), issues("x0", "unseen")) == (1, 1)  # None; "green"
    assert (issues("x1", "missing"), issues("x1", "out_of_range")) == (2, 1)  # NaN and None; 3.0
    assert metrics.registry.get_sample_value("shipyard_monitored_rows_total", {"model": "c", "version": "1"}) == 4
    assert metrics.registry.get_sample_value("shipyard_monitored_rows_total", {"model": "c", "version": "2"}) is None
    [path] = published
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    window = Window.from_dict(record, base)
    assert (window.model, window.version, window.rows) == ("c", "1", 4)
    assert window.inputs["x0"].bins == [1, 1, 1] and window.outputs["y0"].bins == [2, 2, 0]  # red, blue, other


def test_a_monitor_that_falls_behind_drops_and_counts_and_never_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_drift, "MAX_PENDING_REQUESTS", 3)
    metrics = Metrics()
    monitor = LiveDrift(metrics, count_rows, window=6)
    monitor.watch("c", "1", _categorical())  # its thread is not started: nothing drains the queue
    rows = np.array([["red", 1.0], ["blue", 2.0]], dtype=object)
    for _ in range(5):
        monitor.observe("c", "1", rows, [0, 1], time.time())
    assert metrics.registry.get_sample_value("shipyard_monitor_dropped_rows_total",
                                             {"model": "c", "version": "1"}) == 4
    monitor.forget("c", "1")  # what was queued is counted, then the version's series go
    assert metrics.registry.get_sample_value("shipyard_monitored_rows_total", {"model": "c", "version": "1"}) is None
    assert metrics.registry.get_sample_value("shipyard_monitor_dropped_rows_total",
                                             {"model": "c", "version": "1"}) is None


def test_the_gauges_cover_the_rolling_window_and_clear_when_it_empties() -> None:
    """A clock the test moves: the gauges are set at each tick from the ring's sum, and a feature with no value in
    the window has no gauge value."""
    now = [1000.0]
    metrics = Metrics()
    monitor = LiveDrift(metrics, count_rows, window=3, clock=lambda: now[0])  # 3 sub-windows of 1 s
    base = _categorical()
    monitor.watch("c", "1", base)

    def gauge(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"model": "c", "version": "1", **labels})

    rows = np.array([["blue", 1.0]] * 200, dtype=object)  # every row in one category: drifted
    monitor.observe("c", "1", rows, [1] * 200, now[0])
    with monitor._lock:
        monitor._drain()
    assert gauge("shipyard_drift_window_rows") == 0  # not before the sub-window ends
    for second in range(4):
        now[0] += 1
        with monitor._lock:
            monitor._tick()
        js = gauge("shipyard_feature_drift", feature="x0", statistic="js")
        if second < 3:
            assert gauge("shipyard_drift_window_rows") == 200 and js is not None and js > 0.5
        else:  # three ticks later the rows have left the window
            assert gauge("shipyard_drift_window_rows") == 0 and js is None
