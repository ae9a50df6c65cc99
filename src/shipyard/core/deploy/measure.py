"""The analysis rules evaluated on one machine: from two scrapes of the model server's /metrics, one
analysis interval apart, each rule's value, its limit and pass | fail | inconclusive.

The arithmetic is the AnalysisTemplate's (``core.deploy.analysis``), on the counters' increase between
the two scrapes instead of a Prometheus range: the same guards (fewer than ``min_requests`` requests to
a version, or a value that is not a number, is inconclusive), the same latency ratio with slack, the same
smoothed PSI over the union of both versions' buckets, and ``histogram_quantile`` as Prometheus computes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shipyard.core.deploy.analysis import (
    COMPARISONS,
    DISAGREEMENT,
    ERROR_RATE,
    FAILED_OUTCOMES,
    LATENCY,
    LATENCY_P99,
    PREDICTIONS,
    PSI,
    QUANTILE,
    REQUESTS,
    SHADOW_COMPARISONS,
    SMOOTHING,
    Rule,
    rules,
)
from shipyard.core.deploy.config import AnalysisSpec
from shipyard.errors import InvalidInputError

Labels = frozenset[tuple[str, str]]
Scrape = Mapping[tuple[str, Labels], float]  # (sample name, labels) -> value
Verdict = Literal["pass", "fail", "inconclusive"]
MAX_SAMPLES = 100_000  # a scrape with more samples than this is not one of our servers'


@dataclass(frozen=True, slots=True)
class Measurement:
    """One rule on one interval. ``value`` is None when there was nothing to measure."""

    rule: str
    value: float | None
    limit: float
    verdict: Verdict
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "value": self.value, "limit": self.limit, "verdict": self.verdict,
                "note": self.note}


def parse_scrape(text: str) -> dict[tuple[str, Labels], float]:
    """The samples of a Prometheus text exposition (prometheus_client's parser), at most ``MAX_SAMPLES``."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, Labels], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = float(s.value)
                if len(out) > MAX_SAMPLES:
                    raise InvalidInputError(f"the metrics have more than {MAX_SAMPLES} samples: not a model server's")
    except ValueError as exc:
        raise InvalidInputError(f"cannot read the server's metrics: {exc}") from exc
    return out


def evaluate(before: Scrape, after: Scrape, model: str, canary: str, stable: str,
             spec: AnalysisSpec) -> tuple[Measurement, ...]:
    """Every rule on the interval between ``before`` and ``after`` (the canary judged against stable)."""
    d = _Deltas(before, after, model)
    limits = {r.name: r for r in rules(spec)}
    canary_traffic, stable_traffic = d.total(REQUESTS, canary), d.total(REQUESTS, stable)
    few = spec.min_requests

    def judged(rule: Rule, value: float, note: str = "") -> Measurement:
        if math.isnan(value) or math.isinf(value):
            return Measurement(rule.name, None, rule.limit, "inconclusive", note or "no value")
        return Measurement(rule.name, value, rule.limit, "pass" if value <= rule.limit else "fail", note)

    def idle(rule: Rule, who: str, seen: float) -> Measurement:
        return Measurement(rule.name, None, rule.limit, "inconclusive",
                           f"{seen:.0f} {who} in the interval, fewer than {few}")

    out = []
    rule = limits[ERROR_RATE]
    if canary_traffic < few:
        out.append(idle(rule, "requests to the new version", canary_traffic))
    else:
        failed = sum(d.total(REQUESTS, canary, outcome=o) for o in FAILED_OUTCOMES)
        out.append(judged(rule, failed / canary_traffic, f"{failed:.0f} of {canary_traffic:.0f} failed"))

    rule = limits[LATENCY_P99]
    if min(canary_traffic, stable_traffic) < few:
        out.append(idle(rule, "requests to a version", min(canary_traffic, stable_traffic)))
    else:
        c = histogram_quantile(QUANTILE, d.buckets(LATENCY, canary))
        s = histogram_quantile(QUANTILE, d.buckets(LATENCY, stable))
        ratio, slack = spec.max_latency_ratio, spec.latency_slack_ms / 1000
        value = ratio * c / max(ratio * s, s + slack) if not (math.isnan(c) or math.isnan(s)) else math.nan
        out.append(judged(rule, value, f"p99 {c * 1000:.1f} ms against {s * 1000:.1f} ms"))

    rule = limits[DISAGREEMENT]
    agree = d.total(COMPARISONS, canary, result="agree") + d.total(SHADOW_COMPARISONS, canary, result="agree")
    differ = d.total(COMPARISONS, canary, result="disagree") + d.total(SHADOW_COMPARISONS, canary, result="disagree")
    if agree + differ < few:
        out.append(idle(rule, "compared predictions", agree + differ))
    else:
        out.append(judged(rule, differ / (agree + differ), f"{differ:.0f} of {agree + differ:.0f} differ"))

    rule = limits[PSI]
    if min(canary_traffic, stable_traffic) < few:
        out.append(idle(rule, "requests to a version", min(canary_traffic, stable_traffic)))
    else:
        value, buckets = psi(d.by_label(PREDICTIONS, canary, "bucket"), d.by_label(PREDICTIONS, stable, "bucket"))
        out.append(judged(rule, value, f"{buckets} buckets"))
    return tuple(out)


def requests(before: Scrape, after: Scrape, model: str, *versions: str) -> float:
    """Requests to ``model``'s ``versions`` between two scrapes, whatever their outcome."""
    d = _Deltas(before, after, model)
    return sum(d.total(REQUESTS, v) for v in versions)


def psi(canary: Mapping[str, float], stable: Mapping[str, float]) -> tuple[float, int]:
    """(PSI of ``canary`` against ``stable``, buckets compared), as ``analysis.promql`` computes it: over every
    bucket either side saw, each count smoothed by ``SMOOTHING`` (so one seen on one side only adds a large
    but finite term), less the PSI two samples of one distribution show by chance, and at least 0."""
    names = set(canary) | set(stable)
    n_canary, n_stable = sum(canary.values()), sum(stable.values())
    if n_canary <= 0 or n_stable <= 0:
        return math.nan, len(names)
    c = {b: canary.get(b, 0.0) + SMOOTHING for b in names}
    s = {b: stable.get(b, 0.0) + SMOOTHING for b in names}
    ct, st = sum(c.values()), sum(s.values())
    raw = sum((c[b] / ct - s[b] / st) * math.log((c[b] / ct) / (s[b] / st)) for b in names)
    return max(0.0, raw - psi_bias(len(names), n_canary, n_stable)), len(names)


def psi_bias(buckets: int, n_canary: float, n_stable: float) -> float:
    """What PSI averages between two samples of one distribution: ``(buckets - 1) (1/n1 + 1/n2)`` (PSI is
    close to a chi-squared statistic over the effective sample size). Subtracted, a few dozen requests at a
    low canary weight do not read as drift, while thousands (a cluster's window) leave PSI as it is."""
    return (buckets - 1) * (1 / n_canary + 1 / n_stable)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over (upper bound, cumulative count) pairs: linear within the
    bucket the rank falls in, the highest finite bound when it falls in +Inf, NaN with no observations."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for i, (upper, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(upper):
                return ordered[i - 1][0] if i > 0 else math.nan
            if i == 0 and upper <= 0:
                return upper
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = upper, count
    return math.nan


class _Deltas:
    """Counter increases between two scrapes of one model's series (a counter that went down restarted)."""

    def __init__(self, before: Scrape, after: Scrape, model: str) -> None:
        self._rows: list[tuple[str, dict[str, str], float]] = []
        for (name, labels), value in after.items():
            tags = dict(labels)
            if tags.get("model") != model:
                continue
            prior = before.get((name, labels), 0.0)
            self._rows.append((name, tags, value - prior if value >= prior else value))

    def _match(self, name: str, version: str, where: Mapping[str, str]) -> Iterable[tuple[dict[str, str], float]]:
        for n, tags, delta in self._rows:
            if n == name and tags.get("version") == version and all(tags.get(k) == v for k, v in where.items()):
                yield tags, delta

    def total(self, name: str, version: str, **where: str) -> float:
        return sum(delta for _, delta in self._match(name, version, where))

    def by_label(self, name: str, version: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for tags, delta in self._match(name, version, {}):
            if delta > 0:
                out[tags.get(label, "")] = out.get(tags.get(label, ""), 0.0) + delta
        return out

    def buckets(self, histogram: str, version: str) -> list[tuple[float, float]]:
        out: dict[float, float] = {}
        for tags, delta in self._match(f"{histogram}_bucket", version, {}):
            le = float(tags.get("le", "nan"))
            if not math.isnan(le):
                out[le] = out.get(le, 0.0) + delta
        return list(out.items())
