"""The AnalysisTemplate that judges a canary: its shape, its guards, and PromQL that Prometheus accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
)
from shipyard.core.deploy.config import AnalysisSpec

SPEC = AnalysisSpec(interval="2m", count=4, min_requests=50, max_error_rate=0.01, failure_limit=2,
                    inconclusive_limit=5, prometheus="http://prom:9090")


def test_template_has_the_four_rules_with_the_spec_limits() -> None:
    t = analysis_template("iris-analysis", "iris", SPEC)
    assert (t["apiVersion"], t["kind"], t["metadata"]["name"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate",
                                                                    "iris-analysis")
    assert [a["name"] for a in t["spec"]["args"]] == list(TEMPLATE_ARGS)
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
