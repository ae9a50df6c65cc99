"""``shipyard alerts render``: the rules checked and unit-tested by Prometheus' own promtool (every rule fires after
its ``for`` on the series that should fire it, and not on the ones that should not), the PrometheusRule against
the prometheus-operator CRD schema, the dashboard's queries parsed by promtool, and the command's files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.core.deploy.config import deploy_config
from shipyard.core.deploy.layout import base_files
from shipyard.core.deploy.manifests import Target, plan
from shipyard.core.monitoring import alerts, dashboard
from shipyard.core.monitoring.config import monitoring_config
from shipyard.errors import ConfigError, ConflictError, NotFoundError
from tests.k8s_validators import K8sValidator, k8s_validator  # noqa: F401

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not "
                                                              "installed here")
RUNBOOKS = "https://runbooks.example.com/shipyard"
SPEC = monitoring_config({"alerts": {"runbook_url": RUNBOOKS}})  # the defaults: for 5m, drift_for 15m ...


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def write(path: Path, doc: dict[str, Any], model: str | None = None) -> Path:
    path.write_bytes(alerts.encode_rules(doc, model))
    return path


# -- what Prometheus makes of an annotation (the template forms the rules use) ------------------------------

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def expand(text: str, labels: dict[str, str], value: float) -> str:
    def one(m: re.Match[str]) -> str:
        body = m[1]
        if body.startswith("$labels."):
            return labels[body.removeprefix("$labels.")]
        if body == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if body == 'printf "%.3g" $value':
            return f"{value:.3g}"
        raise AssertionError(f"a template form this test does not know: {body}")

    return TEMPLATE.sub(one, text)


def expected(rule: dict[str, Any], labels: dict[str, str], value: float = 0.0) -> dict[str, Any]:
    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: expand(v, labels, value) for k, v in rule["annotations"].items()}}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    inside = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inside}}}", "values": values}


def unit_tests(by_name: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One promtool test group per rule: the input series (some that must fire it, some that must not) and the
    alerts expected before its ``for`` (none), after it, and later."""
    a = alerts
    iris = {"model": "iris", "version": "3"}
    v4 = {"model": "iris", "version": "4"}

    def case(name: str, inputs: list[dict[str, str]], checks: list[tuple[str, list[tuple[dict[str, str], float]]]],
             also: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
        rule = by_name[name]
        tests = [{"eval_time": at, "alertname": name, "exp_alerts": [expected(rule, lb, v) for lb, v in fired]}
                 for at, fired in checks]
        tests += [{"eval_time": at, "alertname": other, "exp_alerts": []} for at, other in also]
        return {"name": name, "interval": "1m", "input_series": inputs, "alert_rule_test": tests}

    req = a.REQUESTS
    buckets = ("0.25", "0.5", "1", "2.5", "+Inf")
    slow = dict(zip(buckets, ("0+50x20", "0+50x20", "0+100x20", "0+100x20", "0+100x20"), strict=True))
    return [
        # 10% of version 3's requests fail (errors and timeouts; rejected 4xx are not failures), 2% of version 4's
        case("ShipyardHighErrorRate", [
            series(req, "0+80x20", **iris, outcome="ok"), series(req, "0+5x20", **iris, outcome="error"),
            series(req, "0+5x20", **iris, outcome="timeout"), series(req, "0+10x20", **iris, outcome="rejected"),
            series(req, "0+88x20", **v4, outcome="ok"), series(req, "0+10x20", **v4, outcome="rejected"),
            series(req, "0+2x20", **v4, outcome="error"),
        ], [("4m", []), ("10m", [(iris, 0.1)])]),
        # version 3: half the requests take 0.5-1 s (p99 0.99 s); version 4: all under 0.25 s
        case("ShipyardLatencyP99High", [
            *(series(a.LATENCY_BUCKET, slow[le], **iris, le=le) for le in buckets),
            *(series(a.LATENCY_BUCKET, "0+100x20", **v4, le=le) for le in buckets),
        ], [("4m", []), ("10m", [(iris, 0.99)])]),
        # x0 (PSI) and color (JS) drift from 6m; x1's PSI 0.15 and y's JS 0.05 are below their thresholds;
        # version 4 drifts a lot but its window has fewer rows than min_rows
        case("ShipyardFeatureDrift", [
            series(a.FEATURE_DRIFT, "0.05x5 0.4x30", **iris, feature="x0", statistic="psi"),
            series(a.FEATURE_DRIFT, "0.15x35", **iris, feature="x1", statistic="psi"),
            series(a.FEATURE_DRIFT, "0.02x5 0.3x30", **iris, feature="color", statistic="js"),
            series(a.FEATURE_DRIFT, "0.05x35", **iris, feature="y", statistic="js"),
            series(a.WINDOW_ROWS, "500x35", **iris),
            series(a.FEATURE_DRIFT, "0.9x35", **v4, feature="x0", statistic="psi"),
            series(a.WINDOW_ROWS, "50x35", **v4),
        ], [("15m", []), ("25m", [({**iris, "feature": "x0", "statistic": "psi"}, 0.4),
                                  ({**iris, "feature": "color", "statistic": "js"}, 0.3)])]),
        case("ShipyardPredictionDrift", [
            series(a.PREDICTION_DRIFT, "0.01x5 0.5x30", **iris, output="y0", statistic="js"),
            series(a.WINDOW_ROWS, "500x35", **iris),
            series(a.PREDICTION_DRIFT, "0.9x35", **v4, output="y0", statistic="psi"),
            series(a.WINDOW_ROWS, "50x35", **v4),
        ], [("15m", []), ("25m", [({**iris, "output": "y0", "statistic": "js"}, 0.5)])]),
        # iris: requests until 10m; fresh: loaded at 20m, never asked; first: loaded at 15m, its first request at
        # 27m (a counter born at 1); busy: asked all along
        case("ShipyardNoTraffic", [
            series(a.LOAD_SECONDS, "0.2x60", **iris), series(req, "0+10x10 100x50", **iris, outcome="ok"),
            series(a.LOAD_SECONDS, "_x20 0.3x40", model="fresh", version="1"),
            series(a.LOAD_SECONDS, "_x15 0.1x45", model="first", version="1"),
            series(req, "_x27 1x32", model="first", version="1", outcome="ok"),
            series(a.LOAD_SECONDS, "0.1x60", model="busy", version="2"),
            series(req, "0+10x60", model="busy", version="2", outcome="ok"),
        ], [("20m", []), ("30m", [({"model": "iris"}, 0)]),
            ("40m", [({"model": "iris"}, 0), ({"model": "fresh"}, 0)])]),
        case("ShipyardServerDown", [
            series("up", "1x5 0x20", job="shipyard", instance="10.0.0.1:8080"),
            series("up", "1x25", job="shipyard", instance="10.0.0.2:8080"),
            series("up", "0x25", job="other", instance="10.0.0.3:9100"),
        ], [("8m", []), ("15m", [({"job": "shipyard", "instance": "10.0.0.1:8080"}, 0)])],
            also=(("15m", "ShipyardServerAbsent"),)),
        case("ShipyardServerAbsent", [series("up", "1x20", job="other", instance="10.0.0.3:9100")],
             [("3m", []), ("10m", [({"job": "shipyard"}, 1)])]),
        # the first failure (a counter born at 1) fires at once; a second at 16m; quiet 30m later. steady: a
        # counter at 0 that never moves
        case("ShipyardModelLoadFailed", [
            series(a.LOAD_FAILURES, "_x10 1x5 2x45", model="iris"),
            series(a.LOAD_FAILURES, "0x60", model="steady"),
        ], [("5m", []), ("12m", [({"model": "iris"}, 1)]), ("40m", [({"model": "iris"}, 0)]), ("50m", [])]),
        # version 4 disagrees on 20% of compared rows (its many errors are not comparisons); version 5 on 5%
        case("ShipyardCanaryDisagreement", [
            series(a.CANARY, "0+80x20", **v4, result="agree"), series(a.CANARY, "0+20x20", **v4, result="disagree"),
            series(a.CANARY, "0+200x20", **v4, result="error"),
            series(a.CANARY, "0+95x20", model="iris", version="5", result="agree"),
            series(a.CANARY, "0+5x20", model="iris", version="5", result="disagree"),
        ], [("4m", []), ("10m", [(v4, 0.2)])]),
        case("ShipyardShadowDisagreement", [
            series(a.SHADOW, "0+70x20", **v4, result="agree"), series(a.SHADOW, "0+30x20", **v4, result="disagree"),
            series(a.SHADOW, "0+99x20", model="iris", version="5", result="agree"),
            series(a.SHADOW, "0+1x20", model="iris", version="5", result="disagree"),
        ], [("4m", []), ("10m", [(v4, 0.3)])]),
        # x0: 6% missing + 4% unseen of 100 rows a minute; x1: 2% out of range
        case("ShipyardDataQuality", [
            series(a.QUALITY_ISSUES, "0+6x30", **iris, feature="x0", issue="missing"),
            series(a.QUALITY_ISSUES, "0+4x30", **iris, feature="x0", issue="unseen"),
            series(a.QUALITY_ISSUES, "0+2x30", **iris, feature="x1", issue="out_of_range"),
            series(a.MONITORED_ROWS, "0+100x30", **iris),
        ], [("8m", []), ("15m", [({**iris, "feature": "x0"}, 0.1)])]),
    ]


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("rules") / "shipyard-rules.yml", alerts.rule_groups(SPEC))


@needs_promtool
def test_promtool_accepts_the_rules_of_every_model_of_one_and_of_the_prometheus_rule(rules_file: Path,
                                                                                     tmp_path: Path) -> None:
    one = write(tmp_path / "iris.yml", alerts.rule_groups(SPEC, "iris"), "iris")
    operator = alerts.prometheus_rule(SPEC, "shipyard-iris", {}, "iris")
    spec_only = write(tmp_path / "operator.yml", operator["spec"])
    for path in (rules_file, one, spec_only):
        assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in promtool("check", "rules", path)
    scoped = yaml.safe_load(one.read_text())["groups"][0]["rules"]
    for rule in scoped:  # every series the one-model rules read is the model's
        reads = re.findall(r"(shipyard_[a-z_]+)(\{[^}]*\})?", rule["expr"])
        assert all('model="iris"' in sel for _, sel in reads), rule["alert"]
        assert reads or rule["alert"] in ("ShipyardServerDown", "ShipyardServerAbsent")  # those read `up`


@needs_promtool
def test_every_rule_fires_after_its_for_on_the_series_that_should_fire_it_and_only_those(rules_file: Path,
                                                                                         tmp_path: Path) -> None:
    rendered = yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rendered}
    groups = unit_tests(by_name)
    assert [g["name"] for g in groups] == list(alerts.ALERTS)  # a unit test for every rule
    for g in groups:
        fired = [t for t in g["alert_rule_test"] if t["alertname"] == g["name"] and t["exp_alerts"]]
        quiet = [t for t in g["alert_rule_test"] if t["alertname"] == g["name"] and not t["exp_alerts"]]
        assert fired and quiet, g["name"]  # each fires, and each has a moment it must not
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                     "tests": groups}, sort_keys=False))
    assert "SUCCESS" in promtool("test", "rules", tests)
    # scoped to one model: another model failing as much fires nothing
    one = write(tmp_path / "iris.yml", alerts.rule_groups(SPEC, "iris"), "iris")
    error_rule = yaml.safe_load(one.read_text())["groups"][0]["rules"][0]
    inputs = [series(alerts.REQUESTS, "0+9x20", model=m, version="1", outcome=o)
              for m in ("iris", "other") for o in ("ok", "error")]
    scoped = {"rule_files": [str(one)], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": inputs, "alert_rule_test": [
            {"eval_time": "10m", "alertname": "ShipyardHighErrorRate",
             "exp_alerts": [expected(error_rule, {"model": "iris", "version": "1"}, 0.5)]}]}]}
    (tmp_path / "scoped.yml").write_text(yaml.safe_dump(scoped, sort_keys=False))
    assert "SUCCESS" in promtool("test", "rules", tmp_path / "scoped.yml")


UNVERSIONED = {"ShipyardNoTraffic", "ShipyardModelLoadFailed",  # series of a model, not a version
               "ShipyardServerDown", "ShipyardServerAbsent"}  # series of a server


def test_each_rule_has_a_severity_a_runbook_and_names_what_fired() -> None:
    for rule in alerts.rules(SPEC):
        notes = rule["annotations"]
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert notes["runbook_url"] == f"{RUNBOOKS}#{rule['alert']}"
        assert all(part in notes["runbook"] for part in ("What it means:", "Check:", "Do:")), rule["alert"]
        if rule["alert"] not in UNVERSIONED:
            assert "{{ $labels.model }}" in notes["description"], rule["alert"]
            assert "{{ $labels.version }}" in notes["description"], rule["alert"]
        if rule["alert"] in ("ShipyardFeatureDrift", "ShipyardDataQuality"):
            assert "{{ $labels.feature }}" in notes["description"]
            assert "shipyard monitor {{ $labels.model }}@{{ $labels.version }}" in notes["runbook"]
    assert "runbook_url" not in alerts.rules(monitoring_config({}))[0]["annotations"]


def test_thresholds_and_durations_come_from_the_monitoring_section() -> None:
    spec = monitoring_config({"psi": 0.3, "js": 0.15, "min_rows": 40, "quality": 0.2, "alerts": {
        "error_rate": 0.01, "latency_p99": 0.25, "disagreement": 0.3, "drift_for": "2m", "quality_for": "3m",
        "no_traffic_for": "1h", "for": "30s"}})
    got = {r["alert"]: r for r in alerts.rules(spec)}
    assert got["ShipyardHighErrorRate"]["expr"].endswith("> 0.01") and got["ShipyardHighErrorRate"]["for"] == "30s"
    assert got["ShipyardLatencyP99High"]["expr"].endswith("> 0.25")
    drift = got["ShipyardFeatureDrift"]
    assert "> 0.3" in drift["expr"] and "> 0.15" in drift["expr"] and drift["expr"].endswith(">= 40")
    assert drift["for"] == "2m" and got["ShipyardDataQuality"]["for"] == "3m"
    assert "offset 1h" in got["ShipyardNoTraffic"]["expr"] and "for" not in got["ShipyardNoTraffic"]
    assert got["ShipyardCanaryDisagreement"]["expr"].endswith("> 0.3")
    assert got["ShipyardDataQuality"]["expr"].endswith("> 0.2")
    with pytest.raises(ConfigError, match="latency bucket"):  # a p99 past the last bucket reads as 2.5: never fires
        alerts.rules(monitoring_config({"alerts": {"latency_p99": 3}}))


def test_the_prometheus_rule_passes_its_crd_schema_in_the_deploy_base_too(k8s_validator: K8sValidator) -> None:  # noqa: F811
    standalone = alerts.prometheus_rule(SPEC, "shipyard-iris", {"app.kubernetes.io/part-of": "shipyard"}, "iris")
    p = plan(deploy_config({"environments": {"staging": {"namespace": "ml-staging"}}}),
             Target("Iris_v2", 3, "staging", "registry.example.com/iris@sha256:" + "ab" * 32, "sha256:" + "0" * 64),
             monitoring=monitoring_config({"psi": 0.35}))
    [in_base] = base_files(p)["prometheusrule.yaml"]
    broken = json.loads(json.dumps(standalone))
    broken["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    assert k8s_validator.errors([standalone, in_base]) == []
    assert any("for" in e for e in k8s_validator.errors([broken]))
    rules = {r["alert"]: r for r in in_base["spec"]["groups"][0]["rules"]}
    assert in_base["metadata"]["name"] == "iris-v2" and "kustomization" not in in_base
    assert 'model="Iris_v2"' in rules["ShipyardHighErrorRate"]["expr"]  # scoped to the model, not the version
    assert rules["ShipyardServerDown"]["expr"] == 'up{job="iris-v2-metrics"} == 0'  # the ServiceMonitor's job
    assert "> 0.35" in rules["ShipyardFeatureDrift"]["expr"]
    assert "prometheusrule.yaml" in base_files(p)["kustomization.yaml"][0]["resources"]


def substituted(expr: str, model: str = ".*") -> str:
    """A dashboard query as Grafana sends it: the variables filled in."""
    return expr.replace("$__rate_interval", "1m").replace("$model", model)


@needs_promtool
def test_the_dashboard_queries_parse_and_cover_the_series(tmp_path: Path) -> None:
    doc = dashboard.dashboard(SPEC)
    queries = dashboard.queries(doc)
    recorded = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": substituted(q)}
                                                           for i, q in enumerate(queries)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(recorded))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", path)
    text = "\n".join(queries)
    for name in ("shipyard_inference_requests_total", "shipyard_inference_request_duration_seconds_bucket",
                 "shipyard_feature_drift", "shipyard_prediction_drift", "shipyard_drift_window_rows",
                 "shipyard_data_quality_issues_total", "shipyard_monitored_rows_total",
                 "shipyard_canary_comparisons_total", "shipyard_shadow_comparisons_total",
                 "shipyard_model_load_failures_total", "shipyard_model_swaps_total", "shipyard_predictions_total"):
        assert name in text, name
    assert all('model=~"$model"' in q for q in queries)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["model"]["definition"] == "label_values(shipyard_inference_requests_total, model)"
    assert variables["datasource"]["query"] == "prometheus" and doc["schemaVersion"] == 39
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    one = dashboard.dashboard(SPEC, "iris")
    assert one["uid"] == "shipyard-iris" and one["templating"]["list"][1]["current"]["value"] == ["iris"]


@pytest.fixture
def render(project: Path) -> Callable[..., Any]:
    runner = CliRunner()

    def run(*args: str) -> Any:
        from shipyard.interfaces.cli.app import app

        return runner.invoke(app, ["alerts", "render", *args])

    return run


def test_render_writes_three_files_the_same_bytes_every_time_and_never_over_a_foreign_file(
        project: Path, render: Callable[..., Any]) -> None:
    (project / "shipyard.yaml").write_text("monitoring:\n  psi: 0.3\n  alerts:\n    drift_for: 30m\n")
    first = render()
    assert first.exit_code == 0, first.output
    folder = project / "monitoring"
    names = ("shipyard-rules.yml", "prometheusrule.yaml", "grafana-dashboard.json")
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    assert all(f"wrote monitoring/{n}" in first.output for n in names)
    written = {n: (folder / n).read_bytes() for n in names}
    drift = yaml.safe_load(written["shipyard-rules.yml"])["groups"][0]["rules"][2]
    assert "> 0.3" in drift["expr"] and drift["for"] == "30m"
    assert yaml.safe_load(written["prometheusrule.yaml"])["kind"] == "PrometheusRule"
    assert json.loads(written["grafana-dashboard.json"])["title"] == "Shipyard models"
    again = render("--json")
    assert again.exit_code == 0 and all(not f["changed"] for f in json.loads(again.output)["files"])
    assert {n: (folder / n).read_bytes() for n in names} == written

    (folder / "grafana-dashboard.json").write_text('{"title": "my own dashboard"}\n')
    (folder / "shipyard-rules.yml").write_text("# generated by shipyard alerts render\nstale: true\n")  # ours? no
    refused = render()
    assert isinstance(refused.exception, ConflictError) and "--force" in str(refused.exception)
    assert (folder / "grafana-dashboard.json").read_text() == '{"title": "my own dashboard"}\n'  # nothing written
    assert "stale" in (folder / "shipyard-rules.yml").read_text()
    forced = render("--force", "-o", str(folder))
    assert forced.exit_code == 0 and {n: (folder / n).read_bytes() for n in names} == written

    other = project / "elsewhere"
    assert render("-o", str(other), "--job", "models").exit_code == 0
    rules = yaml.safe_load((other / "shipyard-rules.yml").read_text())["groups"][0]["rules"]
    assert {r["alert"]: r["expr"] for r in rules}["ShipyardServerDown"] == 'up{job="models"} == 0'


def test_render_refuses_an_unknown_model_a_bad_job_and_a_bad_threshold(project: Path,
                                                                       render: Callable[..., Any]) -> None:
    unknown = render("iris")
    assert isinstance(unknown.exception, NotFoundError) and "registered" in str(unknown.exception)
    assert render("--job", 'a"b').exit_code != 0
    (project / "shipyard.yaml").write_text("monitoring:\n  alerts:\n    latency_p99: 5\n")
    assert isinstance(render().exception, ConfigError)
    assert not (project / "monitoring").exists()
