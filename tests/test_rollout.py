"""The local rollout: the step machine and the rules on scrapes (pure, in-process), then real rollouts on the
model server under synthetic load: a good version promoted, a failing one and a shifted one rolled back by
themselves, each verdict in `models history` with the failing metric and its value."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.deploy.analysis import DISAGREEMENT, ERROR_RATE, LATENCY_P99, PSI
from shipyard.core.deploy.config import AnalysisSpec, CanaryStep
from shipyard.core.deploy.measure import Measurement, evaluate, histogram_quantile, parse_scrape, psi
from shipyard.core.deploy.rollout import Plan, State, advance, parse_steps, start
from shipyard.core.serving.buckets import MAX_CLASSES, bucket, value_range
from tests.conftest import cli_env, shipyard

pytest.importorskip("uvicorn")

# --- the step machine ---------------------------------------------------------------------------------------

SPEC = AnalysisSpec(interval="1s", count=2, failure_limit=1, inconclusive_limit=2, min_requests=20)
STEPS = parse_steps("20,analysis,50,pause=2s,analysis")
RULES = (ERROR_RATE, LATENCY_P99, DISAGREEMENT, PSI)


def _all(verdict: str, value: float | None = 0.0) -> tuple[Measurement, ...]:
    return tuple(Measurement(r, value, 1.0, verdict) for r in RULES)  # type: ignore[arg-type]


def _failing(rule: str, value: float) -> tuple[Measurement, ...]:
    return tuple(Measurement(r, value if r == rule else 0.0, 0.02, "fail" if r == rule else "pass") for r in RULES)


def test_steps_parse_as_argo_writes_them() -> None:
    expected = (CanaryStep(weight=20), CanaryStep(analysis=True), CanaryStep(weight=50), CanaryStep(pause="2s"),
                CanaryStep(analysis=True))
    assert parse_steps("20, analysis,50,pause:2s,analysis") == expected
    for bad in ("", "20,analyse", "pause=soon"):
        with pytest.raises(ValueError, match="--steps: cannot read"):
            parse_steps(bad)
    with pytest.raises(ValueError, match="--steps: weight 150 is over 100"):
        parse_steps("150,analysis")


def test_passing_measurements_walk_every_step_to_promotion() -> None:
    plan = Plan.of(STEPS, SPEC)
    state = start(plan)
    assert (state.step, state.weight, state.status) == (1, 20, "running")
    weights = []
    while not state.done:
        state = advance(plan, state, _all("pass"))
        weights.append(state.weight)
    # 2 measurements at 20%, then 50%: 2 intervals of pause and 2 measurements, then promoted
    assert weights == [20, 50, 50, 50, 50, 100]
    assert state.status == "promoted"


def test_a_rule_failing_past_the_limit_rolls_back_at_once_naming_it() -> None:
    plan = Plan.of(STEPS, SPEC)
    state = advance(plan, start(plan), _failing(ERROR_RATE, 0.06))
    assert state.status == "running" and state.failed(ERROR_RATE) == 1  # failure_limit 1: one is tolerated
    state = advance(plan, state, _failing(ERROR_RATE, 0.07))
    assert (state.status, state.weight) == ("rolled back", 0)
    assert state.why.startswith("error-rate 0.07 > 0.02")


def test_failures_count_during_a_pause_too() -> None:
    plan = Plan.of(parse_steps("30,pause=1m"), SPEC.model_copy(update={"failure_limit": 0}))
    state = advance(plan, start(plan), _failing(PSI, 0.9))
    assert state.status == "rolled back" and "psi 0.9" in state.why


def test_no_traffic_is_inconclusive_then_stops_without_promoting() -> None:
    plan = Plan.of(STEPS, SPEC)
    state: State = start(plan)
    for _ in range(SPEC.inconclusive_limit):
        state = advance(plan, state, _all("inconclusive", None))
        assert state.status == "running"
    state = advance(plan, state, _all("inconclusive", None))
    assert (state.status, state.weight) == ("inconclusive", 0)


# --- the rules on two scrapes --------------------------------------------------------------------------------

def _exposition(counts: dict[str, Any]) -> str:
    """Prometheus text written by the server's own Metrics, after ``counts`` happened."""
    from prometheus_client import generate_latest

    from shipyard.interfaces.serving.middleware.metrics import Metrics

    m = Metrics()
    for (version, outcome), n in counts.get("requests", {}).items():
        m.requests.labels("clf", version, outcome).inc(n)
    for version, seconds in counts.get("latency", {}).items():
        for s in seconds:
            m.latency.labels("clf", version).observe(s)
    for (version, label), n in counts.get("buckets", {}).items():
        m.predictions.labels("clf", version, label).inc(n)
    for result, n in counts.get("compared", {}).items():
        m.comparisons.labels("clf", "2", result).inc(n)
    return generate_latest(m.registry).decode()


def _by_rule(measured: tuple[Measurement, ...]) -> dict[str, Measurement]:
    return {m.rule: m for m in measured}


def test_no_traffic_is_inconclusive_for_every_rule() -> None:
    empty = parse_scrape(_exposition({}))
    measured = evaluate(empty, empty, "clf", "2", "1", SPEC)
    assert [m.verdict for m in measured] == ["inconclusive"] * 4
    assert all(m.value is None for m in measured)


def test_rules_read_the_interval_between_two_scrapes() -> None:
    before = parse_scrape(_exposition({"requests": {("2", "ok"): 1000, ("2", "error"): 500}}))
    after = parse_scrape(_exposition({
        "requests": {("2", "ok"): 1090, ("2", "error"): 510, ("1", "ok"): 300, ("2", "rejected"): 0},
        "latency": {"2": [0.004] * 100, "1": [0.002] * 300},
        "buckets": {("2", "high"): 50, ("2", "low"): 50, ("1", "high"): 150, ("1", "low"): 150},
        "compared": {"agree": 97, "disagree": 3}}))
    m = _by_rule(evaluate(before, after, "clf", "2", "1", SPEC))
    assert m[ERROR_RATE].value == pytest.approx(10 / 100) and m[ERROR_RATE].verdict == "fail"
    assert m[DISAGREEMENT].value == pytest.approx(0.03) and m[DISAGREEMENT].verdict == "pass"
    assert m[PSI].value == pytest.approx(0.0, abs=1e-3) and m[PSI].verdict == "pass"
    # p99 4 ms against 2 ms: twice as slow, but within the 5 ms slack: 1.5 * 4 / max(1.5 * 2, 2 + 5) < 1.5
    assert m[LATENCY_P99].verdict == "pass" and m[LATENCY_P99].value < SPEC.max_latency_ratio


def test_psi_counts_a_bucket_seen_on_one_side_only() -> None:
    same, _ = psi({"a": 50, "b": 50}, {"a": 50, "b": 50})
    assert same == pytest.approx(0.0)
    new_class, buckets = psi({"a": 50, "b": 30, "c": 20}, {"a": 50, "b": 50})
    assert buckets == 3 and math.isfinite(new_class) and new_class > 0.2


def test_histogram_quantile_matches_prometheus() -> None:
    # 100 observations: 50 in (0, 0.1], 50 in (0.1, 0.2]; p99 interpolates inside the second bucket
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.1 * 49 / 50)
    assert histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 10.0)]) == 0.1  # in +Inf: the highest bound
    assert math.isnan(histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]))


def test_prediction_buckets_are_bounded_and_agree_across_processes() -> None:
    assert value_range(1.3) == "[1.26,1.58)" and value_range(-1.3) == "(-1.58,-1.26]"
    assert value_range(1e-9) == "0" and value_range(1e30) == ">=1e12"
    assert {value_range(1.0 + i / 1000) for i in range(250)} == {"[1,1.26)"}
    assert bucket("setosa") == ("setosa", True) and bucket(2) == ("2", True)
    assert bucket([0.1, 0.7, 0.2]) == ("argmax=1", False)
    assert len({value_range(10 ** (e / 7)) for e in range(-200, 200)}) <= 2 * 180 + 3


def test_the_server_caps_classes_per_version() -> None:
    from shipyard.interfaces.serving.middleware.metrics import Metrics
    from shipyard.interfaces.serving.quality import PredictionCounter

    metrics = Metrics()
    counter = PredictionCounter(metrics)
    for i in range(MAX_CLASSES + 30):
        counter.count("clf", "1", [f"class-{i}"])
    labels = {s.labels["bucket"] for f in metrics.predictions.collect() for s in f.samples
              if s.name.endswith("_total")}
    assert len(labels) == MAX_CLASSES + 1 and "other" in labels


# --- real rollouts ------------------------------------------------------------------------------------------

LOAD_SPEC = AnalysisSpec(interval="1s", count=2, failure_limit=1, inconclusive_limit=4, min_requests=15,
                         latency_slack_ms=200.0)  # a shared CI machine's latency is not what is tested here
LOAD_STEPS = parse_steps("25,analysis,75,analysis")
EXAMPLES = [[0.25, 0.3], [0.95, 0.8]]  # none of them trips Flaky


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """clf@1 (stable), @2 good, @3 raises on 5% of inputs, @4 shifted answers with no errors, @5 raises on its
    golden examples once the file ``broken`` exists beside the project, @6 takes 1.2 s over each answer once the file
    ``slow`` exists."""
    import shipyard as api
    from shipyard.wiring import build, settings_from_environment
    from tests.rollout_models import Flaky, Hangs, Shifted, StartsFailing, Threshold

    home = tmp_path_factory.mktemp("rollout") / ".shipyard"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
            mp.delenv(key, raising=False)
        mp.setenv("SHIPYARD_HOME", str(home))
        mp.chdir(home.parent)
        with api.start_run(name="rollout-models"):
            for model in (Threshold(), Threshold(), Flaky(), Shifted(1.3), StartsFailing(str(home.parent / "broken")),
                          Hangs(str(home.parent / "slow"), 1.2, EXAMPLES)):
                api.log_model(model, "clf", flavor="python", examples=EXAMPLES)
        svc = build(settings_from_environment(), home.parent)
    yield svc
    svc.close()


def _roll(svc: Any, version: int, steps: tuple[CanaryStep, ...] = LOAD_STEPS,
          spec: AnalysisSpec = LOAD_SPEC) -> tuple[State, list[Any]]:
    from shipyard.interfaces.serving.rollout import conclude, run_rollout
    from tests.rollout_models import rows

    ticks: list[Any] = []
    new, stable = svc.registry.resolve(f"clf@{version}"), svc.registry.resolve("clf@1")
    state = run_rollout(svc.registry, new, stable, Plan.of(steps, spec), spec,
                        traffic=rows(), rate=250, on_tick=ticks.append)
    conclude(svc.registry, new, stable, state, "production", {})
    return state, ticks


def _history(svc: Any, version: int) -> str:
    return next(e.reason for e in reversed(svc.registry.history("clf"))
                if e.action == "rollout" and e.name == str(version))


def test_a_good_version_is_promoted_and_the_alias_moves(registry: Any) -> None:
    state, ticks = _roll(registry, 2)
    assert state.status == "promoted", state.why
    assert ticks[0].state.weight == 25 and ticks[-1].state.weight == 100
    assert registry.registry.resolve("clf@production").version == 2
    assert _history(registry, 2).startswith("promoted from clf@1")


def test_a_version_that_raises_on_5_percent_is_rolled_back(registry: Any) -> None:
    state, _ = _roll(registry, 3)
    assert (state.status, state.weight) == ("rolled back", 0)
    assert state.why.startswith("error-rate ")
    failed = next(m for m in state.last if m.rule == ERROR_RATE)
    assert failed.verdict == "fail" and failed.value is not None and failed.value > LOAD_SPEC.max_error_rate
    assert _history(registry, 3).startswith(f"rolled back: error-rate {failed.value:.4g} > 0.02")


def test_shifted_predictions_with_no_errors_are_rolled_back_by_the_model_rules(registry: Any) -> None:
    state, ticks = _roll(registry, 4)
    assert state.status == "rolled back"
    rule = state.why.split()[0]
    assert rule in (DISAGREEMENT, PSI)
    # an HTTP-only analysis would have passed it: no error-rate measurement ever failed
    errors = [m for t in ticks for m in t.measured if m.rule == ERROR_RATE]
    assert errors and all(m.verdict == "pass" and m.value == 0 for m in errors)
    assert _history(registry, 4).startswith(f"rolled back: {rule} ")


def test_a_version_that_hangs_fails_a_rule_while_stable_keeps_its_traffic(registry: Any) -> None:
    (registry.settings.project_root / "slow").touch()
    try:
        # the first failed measurement rolls back: a request times out after one interval (1 s)
        state, ticks = _roll(registry, 6, parse_steps("50,analysis"), LOAD_SPEC.model_copy(update={"failure_limit": 0}))
    finally:
        (registry.settings.project_root / "slow").unlink()
    # the replay's senders are not all held by the slow version: the analysis measures, and fails it
    assert (state.status, state.weight) == ("rolled back", 0), state.why
    assert state.why.split()[0] in (ERROR_RATE, LATENCY_P99), state.why
    assert any(m.verdict == "fail" for t in ticks for m in t.measured)


def test_a_version_failing_its_golden_examples_is_rolled_back_in_one_line(registry: Any) -> None:
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.serving.loading import load_slot

    (registry.settings.project_root / "broken").touch()
    try:
        with pytest.raises(InvalidInputError, match=r"^clf@5 fails on its golden examples: ValueError: this version "
                                                     r"started failing$"):
            load_slot(registry.registry, registry.registry.resolve("clf@5"))  # what `shipyard serve` says
        state, ticks = _roll(registry, 5)
    finally:
        (registry.settings.project_root / "broken").unlink()
    assert (state.status, state.weight, ticks) == ("rolled back", 0, [])  # before any traffic
    assert _history(registry, 5) == ("rolled back: clf@5 fails on its golden examples: ValueError: this version "
                                     "started failing; stable clf@1")


def test_a_passing_rollout_to_an_environment_promotes_through_git(registry: Any, tmp_path: Path) -> None:
    """rollout --env: the verdict recorded, then the environment rendered, committed and pushed, and only then its
    alias moved (its reason names the commit); a refused gate is one error after the verdict is recorded."""
    import subprocess

    from shipyard.core.deploy.config import DeploySpec, EnvironmentSpec
    from shipyard.core.deploy.rollout import State
    from shipyard.errors import PolicyDeniedError
    from shipyard.interfaces.cli.rollout import Target, finish
    from shipyard.wiring.gitops import local_repository

    reg = registry.registry
    new, stable = reg.resolve("clf@2"), reg.resolve("clf@1")
    deploy = DeploySpec(repo=local_repository(tmp_path / "gitops.git"),
                        environments={"prod": EnvironmentSpec(alias="live")})
    passed = State(step=4, weight=100, status="promoted", why="every step passed")
    with pytest.raises(PolicyDeniedError, match=r"^clf@2 passed every step \(its verdict is in `shipyard models "
                                                r"history clf`\), but cannot promote clf@2 to prod: "):  # no image
        finish(registry, new, stable, passed, Target("live", "prod"), {}, spec=deploy)
    assert [e.action for e in reg.history("clf")][-1] == "rollout"  # the verdict stands; no alias moved
    image = "registry.example.com/t/clf@sha256:" + "ab" * 32
    summary, done = finish(registry, new, stable, passed, Target("live", "prod"), {}, image=image, spec=deploy)
    assert done is not None and done.commit is not None and done.alias_moved
    assert summary == f"promoted from clf@1; committed {done.commit[:12]} to main of {done.repo}; clf@live -> clf@2"
    log = subprocess.run(["git", "-C", str(tmp_path / "gitops.git"), "log", "-1", "--format=%H%n%B"],
                         capture_output=True, text=True, check=True).stdout
    assert log.startswith(done.commit) and f"Shipyard-Image: {image}" in log
    moved = [e for e in reg.history("clf") if e.action == "alias.set" and e.name == "live"]
    assert reg.resolve("clf@live").version == 2 and done.commit in moved[-1].reason


def test_cli_rolls_back_from_replayed_logs_and_history_shows_why(registry: Any, tmp_path: Path) -> None:
    from tests.rollout_models import rows

    logs = tmp_path / "logs" / "serve.jsonl"
    logs.parent.mkdir()
    logs.write_text("".join(json.dumps({"request_id": str(i), "inputs": b, "outputs": ["low"]}) + "\n"
                            for i, b in enumerate(rows())) + '{"torn": ')
    (registry.settings.project_root / "shipyard.yaml").write_text(
        "deploy:\n  analysis:\n    latency_slack_ms: 200\n    max_disagreement: 0.05\n")
    env = cli_env(SHIPYARD_HOME=str(registry.settings.home),
                  PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = shipyard("rollout", "clf@4", "--from", "clf@1", "--steps", "25,analysis,75,analysis", "--interval", "1s",
                    "--count", "2", "--min-requests", "15", "--port", "0", "--replay", str(logs.parent), "--rate",
                    "250", "--json", env=env, cwd=registry.settings.project_root, check=False)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "rolled back" and result["alias"] is None
    assert result["why"].split()[0] in (DISAGREEMENT, PSI)
    history = shipyard("models", "history", "clf", "--json", env=env, cwd=registry.settings.project_root).stdout
    reasons = [e["reason"] for e in json.loads(history) if e["action"] == "rollout"]
    assert any(r.startswith("rolled back: " + result["why"].split()[0]) for r in reasons)


def test_a_rollout_with_no_traffic_says_where_to_send_it_and_exits_inconclusive(registry: Any) -> None:
    env = cli_env(SHIPYARD_HOME=str(registry.settings.home),
                  PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = shipyard("rollout", "clf@2", "--from", "clf@1", "--steps", "50,analysis", "--interval", "200ms",
                    "--count", "2", "--port", "0", env=env, cwd=registry.settings.project_root, check=False)
    assert done.returncode == 12, done.stderr  # not 1: nothing was judged, nothing rolled back
    assert done.stdout.startswith("inconclusive: 4 inconclusive measurements at step 2")
    hints = [line for line in done.stderr.splitlines() if "no requests reached http://127.0.0.1:" in line]
    # once after the first idle interval, and again with the verdict
    assert len(hints) == 2 and hints[-1].startswith("no verdict: ") and "--replay RUN" in hints[0], done.stderr


def test_replay_reads_a_serve_runs_inference_logs(registry: Any, tmp_path: Path) -> None:
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.cli.rollout import _replayed

    log = tmp_path / "20261129T000000-1.jsonl"
    log.write_text('{"request_id": "a", "inputs": [[0.1, 0.2]]}\n{"request_id": "b"}\n'
                   '{"request_id": "c", "inputs": [[0.3, 0.4], [0.5, 0.6]]}\n{"torn')
    tracker = registry.tracker
    served = tracker.start_run(name="serve clf@1", experiment="serving")
    tracker.log_artifact(served.id, log, name=f"inference-logs/{log.name}")
    assert _replayed(registry, served.id[:8]) == [[[0.1, 0.2]], [[0.3, 0.4], [0.5, 0.6]]]
    other = tracker.start_run(name="train")
    with pytest.raises(InvalidInputError, match="recorded no inference logs"):
        _replayed(registry, other.id)
    assert _replayed(registry, str(log)) == _replayed(registry, served.id)  # a file reads the same


def test_replayed_logs_are_bounded_in_depth_width_and_total_bytes() -> None:
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.serving.rollout import MAX_DEPTH, MAX_REPLAY_BYTES, MAX_ROW_VALUES, logged_rows

    def log(inputs: bytes) -> bytes:
        return b'{"inputs": ' + inputs + b'}\n'

    deep = 200_000
    with pytest.raises(InvalidInputError, match=f"line 1\\) is nested deeper than {MAX_DEPTH} lists"):
        logged_rows([log(b"[" * deep + b"]" * deep)], "--replay x")  # a RecursionError in json before
    with pytest.raises(InvalidInputError, match=f"nested deeper than {MAX_DEPTH} lists"):
        logged_rows([log(b"[" * 40 + b"]" * 40)], "--replay x")
    with pytest.raises(InvalidInputError, match=f"has a row of over {MAX_ROW_VALUES} values"):
        logged_rows([log(json.dumps([[0] * (MAX_ROW_VALUES + 1)]).encode())], "--replay x")
    with pytest.raises(InvalidInputError, match="holds over 1000000 values"):
        logged_rows([log(b"[[" + b"0," * 1_000_001 + b"0]]")], "--replay x")

    def logs() -> Iterator[bytes]:  # the first log fills the budget: the second is never read
        yield log(b"[[1.0]]") + b'{"pad": "' + b"x" * MAX_REPLAY_BYTES + b'"}\n'
        raise AssertionError("read past the byte budget")

    assert logged_rows(logs(), "--replay x") == [[[1.0]]]


def test_steps_limits_and_alias_come_from_shipyard_yaml_then_flags(tmp_path: Path) -> None:
    from shipyard.interfaces.cli.rollout import Target, _configure

    (tmp_path / "shipyard.yaml").write_text(
        "deploy:\n  canary:\n    - weight: 5\n    - analysis: true\n  analysis:\n    interval: 10s\n"
        "    max_psi: 0.3\n  environments:\n    prod:\n      alias: live\n    staging: {}\n")
    steps, spec, target = _configure(tmp_path, None, None, None, None, None, "prod")
    assert (steps, spec.interval, spec.max_psi, target) == (parse_steps("5,analysis"), "10s", 0.3,
                                                            Target("live", "prod"))
    assert _configure(tmp_path, None, None, None, None, None, "staging")[2] == Target("staging", "staging")
    steps, spec, target = _configure(tmp_path, "50,analysis", "500ms", 4, 7, None, None)
    assert (steps, spec.interval, spec.count, spec.min_requests, target) == (
        parse_steps("50,analysis"), "500ms", 4, 7, Target("production"))
    assert _configure(tmp_path, None, None, None, None, "live", None)[2] == Target("live")  # no deploy.repo
    with pytest.raises(ValueError, match="no environment 'qa'"):
        _configure(tmp_path, None, None, None, None, None, "qa")
    with pytest.raises(ValueError, match="not a duration"):
        _configure(tmp_path, None, "2 seconds", None, None, None, None)


def test_with_a_gitops_repository_an_environments_alias_moves_only_through_env(tmp_path: Path) -> None:
    from shipyard.interfaces.cli.rollout import Target, _configure

    (tmp_path / "shipyard.yaml").write_text("deploy:\n  repo: https://git.example.com/ops.git\n")
    with pytest.raises(ValueError, match=r"^--alias production \(the default\) is the alias of deploy environment "
                                         r"'production', .*: use --env production \(commits, then moves it\), or "
                                         r"another --alias$"):
        _configure(tmp_path, None, None, None, None, None, None)
    with pytest.raises(ValueError, match=r"^--alias staging is the alias of deploy environment 'staging'"):
        _configure(tmp_path, None, None, None, None, "staging", None)
    assert _configure(tmp_path, None, None, None, None, "candidate", None)[2] == Target("candidate")
    assert _configure(tmp_path, None, None, None, None, None, "production")[2] == Target("production", "production")


def test_a_step_must_take_more_measurements_than_the_failures_it_tolerates(tmp_path: Path) -> None:
    """count 1 with failure_limit 1 would pass a step whose only measurement failed: refused, in the yaml and the
    flag alike."""
    from shipyard.core.deploy.config import AnalysisSpec
    from shipyard.interfaces.cli.rollout import _configure

    with pytest.raises(ValueError, match=r"failure_limit \(1\) must be below count \(1\)"):
        AnalysisSpec(count=1)
    assert AnalysisSpec(count=1, failure_limit=0).count == 1
    with pytest.raises(ValueError, match=r"^--count 1: .*use --count 2 or more$"):
        _configure(tmp_path, None, None, 1, None, "candidate", None)


def test_an_environments_alias_needs_a_commit_when_the_project_has_an_origin(tmp_path: Path) -> None:
    """No deploy.repo, but promote would commit to the project's origin: the environment's alias moves only through
    --env there too."""
    import subprocess

    from shipyard.interfaces.cli.rollout import Target, _configure

    (tmp_path / "shipyard.yaml").write_text("deploy: {}\n")
    assert _configure(tmp_path, None, None, None, None, None, None)[2] == Target("production")  # no repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://git.example.com/p.git"],
                   check=True)
    with pytest.raises(ValueError, match=r"^--alias production \(the default\) is the alias of deploy environment "
                                         r"'production', which moves only with a commit to its GitOps repository "
                                         r"\(this project's origin\)"):
        _configure(tmp_path, None, None, None, None, None, None)


def test_a_logged_request_is_bounded_in_bytes_whatever_its_values() -> None:
    """One long string or one big dict is one "value": the bytes of the line bound it before it is parsed."""
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.serving.rollout import MAX_LINE_BYTES, logged_rows

    big = b'{"inputs": [["' + b"A" * MAX_LINE_BYTES + b'"]]}\n'
    with pytest.raises(InvalidInputError, match=f"line 1\\) is over {MAX_LINE_BYTES} bytes"):
        logged_rows([big], "--replay x")


def test_a_version_that_exits_on_its_golden_examples_is_refused_in_one_line(registry: Any) -> None:
    """SystemExit from the model's predict is its failure too, not the server's exit."""
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.serving.loading import warm

    class Exits:
        version = registry.registry.resolve("clf@1")

        def predict_rows(self, rows: Any) -> Any:
            raise SystemExit(3)

    with pytest.raises(InvalidInputError, match=r"^clf@1 fails on its golden examples: SystemExit: 3$"):
        warm(registry.registry, Exits())  # type: ignore[arg-type]
