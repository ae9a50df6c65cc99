"""The AnalysisTemplate that judges a canary: its shape, its guards, and PromQL that Prometheus accepts."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.core.deploy.analysis import (
    DISAGREEMENT,
    ERROR_RATE,
    LATENCY_P99,
    PSI,
    TEMPLATE_ARGS,
    analysis_template,
    promql,
    window,
)
from shipyard.core.deploy.config import AnalysisSpec

SPEC = AnalysisSpec(interval="2m", count=4, min_requests=50, max_error_rate=0.01, failure_limit=2,
                    inconclusive_limit=5, prometheus="http://prom:9090")


def test_template_has_the_rules_with_the_spec_limits() -> None:
    t = analysis_template("iris-analysis", "iris", SPEC)
    assert (t["apiVersion"], t["kind"], t["metadata"]["name"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate",
                                                                    "iris-analysis")
    assert [a["name"] for a in t["spec"]["args"]] == list(TEMPLATE_ARGS)
    # canary pods serve one version and cannot compare with stable: disagreement only when asked for
    assert {m["name"] for m in t["spec"]["metrics"]} == {ERROR_RATE, LATENCY_P99, PSI}
    t = analysis_template("iris-analysis", "iris", SPEC.model_copy(update={"cluster_disagreement": True}))
    metrics = {m["name"]: m for m in t["spec"]["metrics"]}
    assert set(metrics) == {ERROR_RATE, LATENCY_P99, DISAGREEMENT, PSI}
    for m in metrics.values():
        assert (m["interval"], m["count"], m["failureLimit"], m["inconclusiveLimit"]) == ("2m", 4, 2, 5)
        assert m["provider"]["prometheus"]["address"] == "http://prom:9090"
        assert "{{args.canary-version}}" in m["provider"]["prometheus"]["query"]
    assert metrics[ERROR_RATE]["failureCondition"].endswith("result[0] > 0.01")
    assert "stable-version" in metrics[LATENCY_P99]["provider"]["prometheus"]["query"]


def _holds(condition: str, result: list[float]) -> bool:
    """The condition evaluated as expr-lang would (&&, ||, !, len, isNaN, isInf), for the shapes we write."""
    import math
    py = condition.replace("&&", " and ").replace("||", " or ").replace("!isNaN", " not isNaN")
    py = py.replace("!isInf", " not isInf")
    return bool(eval(py, {"len": len, "isNaN": math.isnan, "isInf": math.isinf, "result": result}))


@pytest.mark.parametrize("result", [[], [float("nan")], [float("inf")]])
def test_no_traffic_is_inconclusive_not_failure(result: list[float]) -> None:
    for m in analysis_template("a", "iris", SPEC)["spec"]["metrics"]:
        # every condition reads len(result) before result[0]: an empty result (Argo Rollouts #1466) cannot abort
        for cond in (m["successCondition"], m["failureCondition"]):
            assert cond.index("len(result) > 0") < cond.index("result[0]")
            assert not _holds(cond, result)


def test_a_measured_value_passes_or_fails_on_the_limit() -> None:
    m = next(m for m in analysis_template("a", "iris", SPEC)["spec"]["metrics"] if m["name"] == ERROR_RATE)
    assert _holds(m["successCondition"], [0.01]) and not _holds(m["failureCondition"], [0.01])
    assert _holds(m["failureCondition"], [0.011]) and not _holds(m["successCondition"], [0.011])


def test_every_query_is_guarded_by_min_requests() -> None:
    for name, query in promql("iris", SPEC).items():
        assert ">= 50)" in query, name  # an empty vector below min_requests: inconclusive


def test_psi_keeps_buckets_seen_on_one_side_only() -> None:
    q = promql("iris", SPEC)[PSI]
    assert " * 0) + 0.5" in q  # the other side's buckets, at zero count, then smoothed


def test_model_names_are_quoted_in_label_values() -> None:
    q = promql('we"ird\\', SPEC)[ERROR_RATE]
    assert 'model="we\\"ird\\\\"' in q


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_prometheus_accepts_every_query(tmp_path: Path) -> None:
    rules = [{"record": "shipyard:" + name.replace("-", "_"),
              "expr": query.replace("{{args.canary-version}}", "2").replace("{{args.stable-version}}", "1")}
             for name, query in promql("iris", SPEC).items()]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "shipyard", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 rules found" in done.stdout


def until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def settled(server: Any) -> dict[Any, float]:
    """The server's metrics once two scrapes in a row agree (its background comparisons are done)."""
    from shipyard.core.deploy.measure import parse_scrape

    last: list[dict[Any, float]] = [parse_scrape(server.scrape())]

    def same() -> bool:
        now = parse_scrape(server.scrape())
        steady = {k: v for k, v in now.items() if "seconds" not in k[0] and "bytes" not in k[0]} == \
            {k: v for k, v in last[0].items() if "seconds" not in k[0] and "bytes" not in k[0]}
        last[0] = now
        return steady

    until(same)
    return last[0]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed")
def test_prometheus_computes_what_the_local_rollout_computes(tmp_path: Path) -> None:
    """The AnalysisTemplate's queries on a real Prometheus scraping the real server give the values the local
    rollout computes from two scrapes of the same server (every series exists before Prometheus' first scrape,
    so its extrapolation scales them all alike and ratios, shares and quantiles come out equal)."""
    import math
    import signal
    import time

    import httpx

    import shipyard as api
    from shipyard.core.deploy.measure import evaluate
    from shipyard.interfaces.serving.loading import load_slot
    from shipyard.interfaces.serving.rollout import LocalServer, Traffic
    from shipyard.interfaces.serving.router import Router
    from shipyard.wiring import build, settings_from_environment
    from tests.conftest import free_port, start_prometheus
    from tests.rollout_models import Flaky, Threshold, rows

    spec = AnalysisSpec(min_requests=10, latency_slack_ms=1.0)
    home = tmp_path / ".shipyard"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
            mp.delenv(key, raising=False)
        mp.setenv("SHIPYARD_HOME", str(home))
        mp.chdir(tmp_path)
        with api.start_run(name="models"):
            for model in (Threshold(), Flaky(cut=1.3)):  # the new version errs on 5% and answers otherwise
                api.log_model(model, "prom", flavor="python", examples=[[0.25, 0.3]])
        svc = build(settings_from_environment(), tmp_path)
    router = Router(load_slot(svc.registry, svc.registry.resolve("prom@1")),
                    canary=load_slot(svc.registry, svc.registry.resolve("prom@2")), canary_percent=100.0)
    prom_port = free_port()
    with LocalServer(router) as server:
        base = f"http://127.0.0.1:{server.port}"
        for weight in (100.0, 0.0):  # every series the traffic will touch, before Prometheus first looks
            router.canary_percent = weight
            for row in ([0.15, 0.1], [0.65, 0.6], [0.95, 0.9], [0.002, 0.9]):  # the last one trips Flaky
                expected = 500 if weight and row[0] == 0.002 else 200
                assert httpx.post(f"{base}/predict", json={"instances": [row]}).status_code == expected
        before = settled(server)  # the background comparisons done
        prom = start_prometheus(tmp_path, server.port, prom_port)
        api_url = f"http://127.0.0.1:{prom_port}/api/v1/query"

        def query(q: str) -> list[dict[str, object]]:
            body = httpx.get(api_url, params={"query": q}, timeout=10).json()
            assert body["status"] == "success", body
            return body["data"]["result"]  # type: ignore[no-any-return]

        try:
            for _ in range(300):  # Prometheus up, and its first scrape in
                try:
                    ready = httpx.get(f"http://127.0.0.1:{prom_port}/-/ready", timeout=1).status_code == 200
                    if ready and query('count(shipyard_predictions_total{model="prom"})'):
                        break
                except httpx.TransportError:
                    pass
                assert prom.poll() is None, prom.communicate()[1].decode()[-2000:]
                time.sleep(0.1)
            seen = 'count_over_time(shipyard_inference_requests_total{model="prom",version="1",outcome="ok"}[5m])'
            until(lambda: float(query(seen)[0]["value"][1]) >= 2)  # type: ignore[index]
            router.canary_percent = 50.0
            with Traffic(server.port, rows(), rate=150) as traffic:
                until(lambda: traffic.sent >= 400)
            after = settled(server)
            settled_at = time.time()
            last = 'timestamp(shipyard_inference_requests_total{model="prom",version="1",outcome="ok"})'
            until(lambda: float(query(last)[0]["value"][1]) > settled_at + 0.1)  # type: ignore[index]
            local = {m.rule: m for m in evaluate(before, after, "prom", "2", "1", spec)}
            # the window from the first sample (the warm-up, as `before`) to the last (as `after`), evaluated at
            # the last: Prometheus then extrapolates nothing, and increase() is exactly the difference
            samples = query('shipyard_inference_requests_total{model="prom",version="1",outcome="ok"}[5m]')
            stamps = [float(t) for t, _ in samples[0]["values"]]  # type: ignore[index, union-attr]
            span = f"[{round((stamps[-1] - stamps[0]) * 1000) + 1}ms]"
            for name, q in promql("prom", spec).items():
                q = q.replace("{{args.canary-version}}", "2").replace("{{args.stable-version}}", "1")
                body = httpx.get(api_url, params={"query": q.replace(f"[{window(spec)}]", span),
                                                  "time": stamps[-1]}, timeout=10).json()
                result = body["data"]["result"]
                value = float(result[0]["value"][1]) if result else math.nan
                expected = local[name].value
                assert expected is not None, local[name]
                assert value == pytest.approx(expected, rel=1e-3), (name, value, local[name])
            assert local[DISAGREEMENT].verdict == "fail"  # a cut at 1.3 answers otherwise on a quarter of rows
            assert local[ERROR_RATE].value is not None and local[ERROR_RATE].value > 0
            # no traffic to a version that does not exist: an empty vector, which the conditions call inconclusive
            idle = promql("prom", spec)[ERROR_RATE].replace("{{args.canary-version}}", "9")
            assert query(idle) == []
        finally:
            prom.send_signal(signal.SIGTERM)
            prom.communicate(timeout=30)
            svc.close()
