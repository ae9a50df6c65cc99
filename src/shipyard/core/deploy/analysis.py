"""The rules that judge a new version against the stable one: the same rules rendered as an Argo Rollouts
AnalysisTemplate (PromQL over the server's series) and evaluated by ``shipyard rollout`` on one machine
(``core.deploy.measure`` computes them from two scrapes of the server's /metrics).

Four rules, each on one analysis interval (a cluster's AnalysisTemplate leaves ``disagreement`` out unless
``analysis.cluster_disagreement`` is set: see ``cluster_rules``):

- ``error-rate``: the new version's failed answers (5xx and timeouts) over its requests;
- ``latency-p99``: the new version's p99 against the stable one's, as a ratio with slack: the value is
  ``ratio * canary / max(ratio * stable, stable + slack)``, which is the plain ratio ``canary / stable``
  whenever the slack does not matter and stays under the limit while the difference is below the slack;
- ``disagreement``: the share of compared predictions (canary comparisons, and shadow comparisons when the
  new version runs as a shadow) where the new version's answer differs from the stable one's;
- ``psi``: the population stability index of the new version's prediction distribution against the stable
  one's, over the server's bounded prediction buckets, each share smoothed by half a count so that a bucket
  seen on one side only adds a large but finite term instead of vanishing from the sum; less the PSI two
  samples of one distribution show by chance, ``(buckets - 1) * (1/n_canary + 1/n_stable)``, and at least 0
  (small samples, as a canary at a low weight gets, otherwise read as drift).

Every measurement is guarded: fewer than ``min_requests`` requests to a version in the window (no traffic)
makes the query return an empty vector, and the conditions are written so that neither success nor
failure holds for an empty result, NaN or infinity: the measurement is inconclusive, never a failure
(Argo Rollouts #1466 aborts on ``result[0]`` of an empty result unless the condition checks ``len``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.deploy.config import AnalysisSpec, seconds

# The model server's Prometheus series (prometheus_client adds _total to counters in the exposition).
REQUESTS = "shipyard_inference_requests_total"  # labels: model, version, outcome (ok|rejected|error|timeout)
LATENCY = "shipyard_inference_request_duration_seconds"  # histogram; labels: model, version
COMPARISONS = "shipyard_canary_comparisons_total"  # labels: model, version (the new one), result (agree|disagree|error)
SHADOW_COMPARISONS = "shipyard_shadow_comparisons_total"  # the same, for a version that runs as a shadow
PREDICTIONS = "shipyard_predictions_total"  # labels: model, version, bucket (bounded: a class, or a value range)
IN_FLIGHT = "shipyard_inference_in_flight"  # gauge per server: what the HPA/KEDA scale on

TEMPLATE_ARGS = ("canary-version", "stable-version")
CANARY = "{{args.canary-version}}"
STABLE = "{{args.stable-version}}"

FAILED_OUTCOMES = ("error", "timeout")  # a rejected request (4xx) is the client's mistake, not the version's
QUANTILE = 0.99
SMOOTHING = 0.5  # pseudo-count added to every prediction bucket on both sides before the shares are taken
MIN_WINDOW_S = 60  # a Prometheus window must hold two scrapes (30 s scrape interval) for increase() to answer

ERROR_RATE, LATENCY_P99, DISAGREEMENT, PSI = "error-rate", "latency-p99", "disagreement", "psi"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: the measured value must stay at or below ``limit``."""

    name: str
    limit: float
    what: str


def rules(spec: AnalysisSpec) -> tuple[Rule, ...]:
    return (
        Rule(ERROR_RATE, spec.max_error_rate, "failed answers of the new version over its requests"),
        Rule(LATENCY_P99, spec.max_latency_ratio,
             f"p99 of the new version over the stable one's (differences under {spec.latency_slack_ms:g} ms pass)"),
        Rule(DISAGREEMENT, spec.max_disagreement, "share of compared predictions that differ from stable"),
        Rule(PSI, spec.max_psi, "prediction-distribution drift (PSI) against stable"),
    )


def cluster_rules(spec: AnalysisSpec) -> tuple[Rule, ...]:
    """The rules a cluster's AnalysisTemplate holds: disagreement only with ``cluster_disagreement``, as a canary
    pod serves the new version alone and has no stable answer to compare with (the rule would stay inconclusive
    and pause every Rollout); the local rollout, whose server holds both, applies all of ``rules``."""
    return tuple(r for r in rules(spec) if r.name != DISAGREEMENT or spec.cluster_disagreement)


def analysis_template(name: str, model: str, spec: AnalysisSpec) -> dict[str, Any]:
    """The AnalysisTemplate (argoproj.io/v1alpha1) named ``name`` that judges ``model``'s canary version.

    It takes the args ``canary-version`` and ``stable-version`` (the registry version numbers the server
    reports in its ``version`` label); the Rollout passes them.
    """
    queries = promql(model, spec)
    metrics = []
    for rule in cluster_rules(spec):
        metrics.append({
            "name": rule.name,
            "interval": spec.interval,
            "count": spec.count,
            "failureLimit": spec.failure_limit,
            "inconclusiveLimit": spec.inconclusive_limit,
            "successCondition": success_condition(rule.limit),
            "failureCondition": failure_condition(rule.limit),
            "provider": {"prometheus": {"address": spec.prometheus, "query": queries[rule.name]}},
        })
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": model,
                                              "app.kubernetes.io/managed-by": "shipyard"}},
        "spec": {"args": [{"name": arg} for arg in TEMPLATE_ARGS], "metrics": metrics},
    }


# a measured value: a non-empty result whose first element is a number (not NaN, not infinite)
_MEASURED = "len(result) > 0 && !isNaN(result[0]) && !isInf(result[0])"


def success_condition(limit: float) -> str:
    return f"{_MEASURED} && result[0] <= {_number(limit)}"


def failure_condition(limit: float) -> str:
    return f"{_MEASURED} && result[0] > {_number(limit)}"


def window(spec: AnalysisSpec) -> str:
    """The PromQL range of one measurement: the analysis interval, at least ``MIN_WINDOW_S``."""
    return f"{max(round(seconds(spec.interval)), MIN_WINDOW_S)}s"


def promql(model: str, spec: AnalysisSpec) -> dict[str, str]:
    """The query of each rule, by rule name; ``{{args.*}}`` are left for Argo Rollouts to fill in."""
    w, m = window(spec), _label(model)
    slack = spec.latency_slack_ms / 1000
    ratio = _number(spec.max_latency_ratio)

    def sel(version: str, **more: str) -> str:
        extra = "".join(f",{k}={v}" for k, v in more.items())
        return f'{{model="{m}",version="{version}"{extra}}}'

    def traffic(version: str) -> str:  # the no-traffic guard: empty below min_requests
        return f"(sum(increase({REQUESTS}{sel(version)}[{w}])) >= {spec.min_requests})"

    failed = '~"' + "|".join(FAILED_OUTCOMES) + '"'
    error_rate = f"(sum(increase({REQUESTS}{sel(CANARY, outcome=failed)}[{w}])) or vector(0))\n/ {traffic(CANARY)}"

    def p99(version: str) -> str:
        return f"histogram_quantile({QUANTILE}, sum by (le) (rate({LATENCY}_bucket{sel(version)}[{w}])))"

    c, s = p99(CANARY), p99(STABLE)
    budget = f"((({ratio} * {s}) >= ({s} + {_number(slack)})) or ({s} + {_number(slack)}))"
    latency = f"({ratio} * {c} / {budget})\nand on() {traffic(CANARY)}\nand on() {traffic(STABLE)}"

    compared = f'{{__name__=~"{COMPARISONS}|{SHADOW_COMPARISONS}",model="{m}",version="{CANARY}"'
    disagreement = (f'(sum(increase({compared},result="disagree"}}[{w}])) or vector(0))\n'
                    f'/ (sum(increase({compared},result=~"agree|disagree"}}[{w}])) >= {spec.min_requests})')

    def counts(version: str) -> str:  # the buckets the version answered in within the window
        return f"(sum by (bucket) (increase({PREDICTIONS}{sel(version)}[{w}])) > 0)"

    def shares(one: str, other: str) -> str:  # every bucket either side saw, smoothed, as shares of one side
        smoothed = f"(({one}) or ({other}) * 0) + {_number(SMOOTHING)}"
        return f"(({smoothed}) / on() group_left sum({smoothed}))"

    cc, sc = counts(CANARY), counts(STABLE)
    p, q = shares(cc, sc), shares(sc, cc)
    bias = f"(count(({cc}) or ({sc}) * 0) - 1) * (1 / sum({cc}) + 1 / sum({sc}))"  # measure.psi_bias
    psi = (f"clamp_min(sum(({p} - {q}) * ln({p} / {q}))\n- {bias}, 0)\n"
           f"and on() {traffic(CANARY)}\nand on() {traffic(STABLE)}")
    return {ERROR_RATE: error_rate, LATENCY_P99: latency, DISAGREEMENT: disagreement, PSI: psi}


def _label(value: str) -> str:
    """``value`` as the inside of a PromQL double-quoted label value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(x: float) -> str:
    return repr(float(x))
