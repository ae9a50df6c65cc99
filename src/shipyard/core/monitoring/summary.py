"""What ``shipyard monitor`` found for one version over a period (pure): drift per feature, traffic, over time.

Built from what ``logs.LogReader`` kept: the drift windows (added up for the whole period, and per time bucket
for the drift-over-time chart) and the request records (count, error share, p50/p99 latency, per bucket too).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.monitoring.drift import (
    DRIFT,
    FEW_ROWS,
    OK,
    QUALITY,
    Baseline,
    FeatureDrift,
    Thresholds,
    Window,
    assess,
    shares,
    total,
)
from shipyard.core.monitoring.logs import SKEW, Period, Requests, Skipped

MAX_BUCKETS = 50  # points of a chart over time
ERRORS = ("error", "timeout")  # what the error share counts (a rejected request is the client's: 4xx)
NO_ROWS = "no rows"


@dataclass(frozen=True, slots=True)
class DriftBucket:
    """The windows whose middle falls in [start, end), added up and scored per feature."""

    start: float
    end: float
    rows: int
    features: tuple[FeatureDrift, ...]


@dataclass(frozen=True, slots=True)
class TrafficBucket:
    start: float
    end: float
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass
class MonitorReport:
    """One version's drift, data quality and traffic over ``period``, from its inference logs."""

    model: str
    version: str
    baseline: Baseline
    thresholds: Thresholds
    period: Period
    windows: list[Window]
    requests: Requests
    skipped: Skipped = field(default_factory=Skipped)
    payload_rows: int = 0  # rows counted from logged payloads (sources that logged no drift windows)
    files: int = 0
    bytes: int = 0
    notes: list[str] = field(default_factory=list)
    _features: list[FeatureDrift] | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    @property
    def total(self) -> Window:
        """Every window of the period added up (an empty one when there is none)."""
        return total(self.windows) or Window.empty(self.model, self.version, self.baseline, self.period.start,
                                                   self.period.end)

    @property
    def rows(self) -> int:
        return sum(w.rows for w in self.windows)

    @property
    def features(self) -> list[FeatureDrift]:
        """Each watched feature and output over the whole period, in the reference's order."""
        if self._features is None:
            self._features = assess(self.baseline, self.total, self.thresholds)
        return self._features

    @property
    def verdict(self) -> str:
        """The worst verdict of any feature: drift, quality, ok, few rows; ``no rows`` when nothing was seen."""
        found = {f.verdict for f in self.features}
        if self.rows == 0:
            return QUALITY if QUALITY in found else NO_ROWS
        return next((v for v in (DRIFT, QUALITY, OK) if v in found), FEW_ROWS)

    def outcomes(self) -> dict[str, int]:
        counts = dict.fromkeys(("ok", "error", "timeout", "rejected"), 0)
        for o in self.requests.outcomes:
            counts[o] = counts.get(o, 0) + 1
        return counts

    def error_share(self) -> float | None:
        n = len(self.requests)
        return sum(1 for o in self.requests.outcomes if o in ERRORS) / n if n else None

    def latency(self) -> tuple[float | None, float | None]:
        """p50 and p99 of the logged requests' latency, in milliseconds."""
        ordered = sorted(self.requests.latency_ms)
        return percentile(ordered, 0.5), percentile(ordered, 0.99)

    def distributions(self, side: str = "inputs") -> list[tuple[str, list[str], list[float], list[float]]]:
        """Per feature of ``side``: (name, bin labels, the reference's share per bin, the period's share)."""
        seen = self.total.inputs if side == "inputs" else self.total.outputs
        found = []
        for bins in self.baseline.side(side):
            counts = seen.get(bins.name)
            current = shares(counts.bins) if counts is not None else [0.0] * len(bins.expected)
            found.append((bins.name, bins.labels, list(bins.expected), current))
        return found

    def drift_over_time(self, buckets: int = MAX_BUCKETS) -> list[DriftBucket]:
        """The windows in at most ``buckets`` equal spans of the time they cover, each span scored; fewer spans
        when the rows are few, so that a span holds about ``min_rows`` rows or more."""
        buckets = max(1, min(buckets, self.rows // self.thresholds.min_rows))
        edges = _edges([w.start for w in self.windows], [w.end for w in self.windows], self.period, buckets)
        if edges is None:
            return []
        grouped: list[list[Window]] = [[] for _ in range(len(edges) - 1)]
        for w in self.windows:
            grouped[_index(edges, (w.start + w.end) / 2)].append(w)
        found = []
        for (a, b), group in zip(_pairs(edges), grouped, strict=True):
            merged = total(group)
            if merged is not None:
                found.append(DriftBucket(a, b, merged.rows, tuple(assess(self.baseline, merged, self.thresholds))))
        return found

    def traffic_over_time(self, buckets: int = MAX_BUCKETS) -> list[TrafficBucket]:
        """Requests, errors and p50/p99 latency in at most ``buckets`` equal spans of the time they cover."""
        times = self.requests.times
        edges = _edges(times, times, self.period, buckets)
        if edges is None:
            return []
        latency: list[list[float]] = [[] for _ in range(len(edges) - 1)]
        errors = [0] * (len(edges) - 1)
        for t, ms, outcome in zip(times, self.requests.latency_ms, self.requests.outcomes, strict=True):
            i = _index(edges, t)
            latency[i].append(ms)
            errors[i] += outcome in ERRORS
        found = []
        for (a, b), values, failed in zip(_pairs(edges), latency, errors, strict=True):
            if values:
                values.sort()
                found.append(TrafficBucket(a, b, len(values), failed, percentile(values, 0.5),
                                           percentile(values, 0.99)))
        return found

    def to_dict(self) -> dict[str, Any]:
        p50, p99 = self.latency()
        share = self.error_share()
        return {
            "model": self.model, "version": self.version, "reference": self.baseline.profile,
            "period": {"start": iso(self.period.start), "end": iso(self.period.end),
                       "seconds": round(self.period.end - self.period.start, 3)},
            "verdict": self.verdict, "rows": self.rows, "windows": len(self.windows),
            "rows_from_payloads": self.payload_rows,
            "requests": {"logged": len(self.requests), **self.outcomes(),
                         "error_share": None if share is None else round(share, 6)},
            "latency_ms": {"p50": _round(p50), "p99": _round(p99)},
            "thresholds": {"psi": self.thresholds.psi, "js": self.thresholds.js, "quality": self.thresholds.quality,
                           "min_rows": self.thresholds.min_rows},
            "features": [f.to_dict() for f in self.features],
            "skipped": self.skipped.to_dict(), "logs": {"files": self.files, "bytes": self.bytes},
            "notes": list(self.notes),
        }


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of ascending ``ordered`` (None when empty)."""
    if not ordered:
        return None
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _edges(starts: Sequence[float], ends: Sequence[float], period: Period, buckets: int) -> list[float] | None:
    """Bucket edges over the time the data covers (inside the period): at most ``buckets``, no more than there
    are items; None when there is nothing."""
    if not starts:
        return None
    low = max(min(starts), period.start)
    high = max(min(max(ends), period.end + SKEW), low)
    n = max(1, min(buckets, len(starts)))
    if high <= low:
        return [low, low + 1.0]
    step = (high - low) / n
    return [low + i * step for i in range(n)] + [high]


def _index(edges: Sequence[float], t: float) -> int:
    last = len(edges) - 2
    if t <= edges[0]:
        return 0
    step = edges[1] - edges[0]
    return min(last, int((t - edges[0]) / step)) if step > 0 else 0


def _pairs(edges: Sequence[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(edges))
