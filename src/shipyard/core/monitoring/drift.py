"""Drift and data quality: a window of what a model saw, compared with its reference profile.

The reference profile (``profile.py``) gives each feature its bins: for a number, the cut points at its reference
deciles (read from the KLL sketch, ties merged) and the reference's share in each bin; for a category, its most
frequent reference values and an ``other`` bin. What a server or a log saw is a ``Window``: per feature, its count
in each of those bins, and how many values were missing, outside the reference's range, or categories the
reference never had. Windows add up (a day is the sum of its minutes), so the server keeps a rolling window as a
ring of short ones and the inference log keeps each short one.

Statistics, both on the same bins:

- PSI (population stability index) for numbers: sum over bins of (q - p) * ln(q / p), p the reference share and q
  the window's, each floored at ``EPSILON`` so an empty bin is finite. About 0 for the same distribution; 0.1 is
  usually read as a shift worth watching and 0.2 as drift. A shift of half a standard deviation of a normal
  feature gives about 0.24 on decile bins.
- Jensen-Shannon distance (base 2, between 0 and 1) for categories: the square root of the mean KL divergence of
  each side from their average; finite with empty bins, symmetric.

Nothing here touches numpy or a sketch: counting rows into bins is the adapter's work (``adapters/monitoring``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidInputError

PSI, JS = "psi", "js"
EPSILON = 1e-4  # the smallest share a bin counts with: an empty bin adds a large, finite term
PSI_DRIFT = 0.2
JS_DRIFT = 0.1
QUALITY_SHARE = 0.05  # a feature whose missing (beyond the reference's), out-of-range or unseen share passes this
NOISE_FACTOR = 2.0  # a score under twice its sampling noise on the window's rows is no drift (see ``noise``)
MIN_ROWS = 100  # below this a window's statistics are noise (PSI on 10 bins: about 9 / rows): verdict "few rows"
DECILES = tuple(i / 10 for i in range(1, 10))
MAX_CATEGORIES = 20  # bins of a categorical feature: its most frequent reference values, then "other"
MAX_FEATURES = 100  # features watched per side: the first ones of the reference (bounded label cardinality)
MAX_KNOWN = 1000  # reference categories remembered to tell an unseen one
OTHER = "__other__"

OK, DRIFT, QUALITY, FEW_ROWS = "ok", "drift", "quality", "few rows"
ISSUES = ("missing", "out_of_range", "unseen")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a feature counts as drifted, or as having a data-quality problem."""

    psi: float = PSI_DRIFT
    js: float = JS_DRIFT
    quality: float = QUALITY_SHARE
    min_rows: int = MIN_ROWS

    def __post_init__(self) -> None:
        for name in ("psi", "js", "quality"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < 1e6):
                raise InvalidInputError(f"drift threshold {name} must be a number above 0, not {value!r}")
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise InvalidInputError(f"min_rows must be a whole number of at least 1, not {self.min_rows!r}")


@dataclass(frozen=True, slots=True)
class FeatureBins:
    """One feature's bins and the reference's share in each.

    A number has ``edges`` (ascending cut points; bin i holds values in (edges[i-1], edges[i]], the first and last
    bins are open), so ``len(edges) + 1`` bins. A category has ``categories`` and one more bin for the rest.
    ``known`` are the reference categories an unseen one is told from; ``low``/``high`` the reference's range.
    """

    name: str
    kind: str  # profile.NUMERIC or profile.CATEGORICAL
    expected: tuple[float, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    known: frozenset[str] = frozenset()
    low: float | None = None
    high: float | None = None
    missing_rate: float = 0.0

    @property
    def statistic(self) -> str:
        return JS if self.categories or self.kind == "categorical" else PSI

    @property
    def labels(self) -> list[str]:
        """A readable name per bin: ``<= 5.1``, ``(5.1, 5.8]``, ``> 7.2``, or the category."""
        if self.kind == "categorical":
            return [*self.categories, "other"]
        if not self.edges:
            return ["all"]
        cuts = [f"{e:.4g}" for e in self.edges]
        return [f"<= {cuts[0]}", *(f"({a}, {b}]" for a, b in itertools.pairwise(cuts)), f"> {cuts[-1]}"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The bins of every watched input feature and model output, from one version's reference profile."""

    profile: str  # the profile object's digest: windows counted on other bins do not add up with these
    rows: int
    inputs: tuple[FeatureBins, ...]
    outputs: tuple[FeatureBins, ...] = ()

    def side(self, name: str) -> tuple[FeatureBins, ...]:
        return self.inputs if name == "inputs" else self.outputs


@dataclass(slots=True)
class FeatureCounts:
    """What a window saw of one feature: a count per bin, and its data-quality issues."""

    bins: list[int]
    missing: int = 0
    out_of_range: int = 0
    unseen: int = 0

    @property
    def present(self) -> int:
        return sum(self.bins)

    def add(self, other: FeatureCounts) -> None:
        if len(other.bins) != len(self.bins):
            raise InvalidInputError("two windows counted on different bins cannot be added")
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        self.missing += other.missing
        self.out_of_range += other.out_of_range
        self.unseen += other.unseen

    def to_dict(self) -> dict[str, Any]:
        return {"bins": self.bins, "missing": self.missing, "out_of_range": self.out_of_range,
                "unseen": self.unseen}

    @classmethod
    def from_dict(cls, d: Any, bins: int, where: str) -> FeatureCounts:
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"{where} is not a mapping")
        counts = d.get("bins")
        if not isinstance(counts, list) or len(counts) != bins or not all(is_count(c) for c in counts):
            raise InvalidInputError(f"{where}: bins is not a list of {bins} counts")
        issues = [d.get(k, 0) for k in ISSUES]
        if not all(is_count(c) for c in issues):
            raise InvalidInputError(f"{where}: {', '.join(ISSUES)} must be counts")
        return cls(list(counts), *issues)


def is_count(value: Any) -> bool:
    """Whether a value read from JSON is a count: a whole number from 0 to 2^53 (no bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 53


def finite(value: Any) -> bool:
    """Whether a value read from JSON is a finite number (an int of 400 digits is not: no float holds it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -(1 << 63) < value < 1 << 63
    return math.isfinite(value)


@dataclass(slots=True)
class Window:
    """What a model version saw from ``start`` to ``end`` (Unix seconds): ``rows`` rows, counted per feature on
    the bins of the baseline named ``profile``. Windows of one version and baseline add up."""

    model: str
    version: str
    profile: str
    start: float
    end: float
    rows: int = 0
    inputs: dict[str, FeatureCounts] = field(default_factory=dict)
    outputs: dict[str, FeatureCounts] = field(default_factory=dict)

    @classmethod
    def empty(cls, model: str, version: str, baseline: Baseline, start: float, end: float | None = None) -> Window:
        return cls(model, version, baseline.profile, start, start if end is None else end, 0,
                   {b.name: FeatureCounts([0] * len(b.expected)) for b in baseline.inputs},
                   {b.name: FeatureCounts([0] * len(b.expected)) for b in baseline.outputs})

    def add(self, other: Window) -> None:
        """Add ``other`` (same version and baseline) into this window, which then spans both."""
        if (other.model, other.version, other.profile) != (self.model, self.version, self.profile):
            raise InvalidInputError(f"a window of {other.model}@{other.version} cannot be added to one of "
                                    f"{self.model}@{self.version}, nor windows counted on other bins")
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.rows += other.rows
        for mine, theirs in ((self.inputs, other.inputs), (self.outputs, other.outputs)):
            for name, counts in theirs.items():
                if name in mine:
                    mine[name].add(counts)
                else:
                    mine[name] = FeatureCounts(list(counts.bins), counts.missing, counts.out_of_range, counts.unseen)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": WINDOW_KIND, "model": self.model, "version": self.version, "profile": self.profile,
                "start": self.start, "end": self.end, "rows": self.rows,
                "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}

    @classmethod
    def from_dict(cls, d: Any, baseline: Baseline, where: str = "a drift window") -> Window:
        """A window read from a log (untrusted): every feature must be one of ``baseline``'s, on its bins."""
        if not isinstance(d, Mapping) or d.get("kind") != WINDOW_KIND:
            raise InvalidInputError(f"{where} is not a drift window")
        model, version, profile = d.get("model"), d.get("version"), d.get("profile")
        if not all(isinstance(v, str) and 0 < len(v) <= 300 for v in (model, version, profile)):
            raise InvalidInputError(f"{where}: model, version and profile must be short strings")
        start, end, rows = d.get("start"), d.get("end"), d.get("rows")
        if not all(finite(t) for t in (start, end)) or not is_count(rows):
            raise InvalidInputError(f"{where}: start and end must be times, rows a count")
        window = cls(str(model), str(version), str(profile), float(start), float(end), int(rows))  # type: ignore[arg-type]
        for side, target in (("inputs", window.inputs), ("outputs", window.outputs)):
            given = d.get(side) or {}
            if not isinstance(given, Mapping) or len(given) > MAX_FEATURES:
                raise InvalidInputError(f"{where}: {side} is not a mapping of at most {MAX_FEATURES} features")
            bins = {b.name: len(b.expected) for b in baseline.side(side)}
            for name, counts in given.items():
                if name not in bins:
                    raise InvalidInputError(f"{where}: {side} feature {str(name)[:60]!r} is not in the reference")
                target[name] = FeatureCounts.from_dict(counts, bins[name], f"{where}: {side}[{name!r}]")
        return window


WINDOW_KIND = "drift-window"


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's (or output's) drift over a window, and its data-quality counts."""

    feature: str
    side: str  # "inputs" or "outputs"
    statistic: str  # PSI or JS
    score: float | None  # None: no value present in the window
    verdict: str  # OK, DRIFT, QUALITY or FEW_ROWS
    rows: int
    missing: int
    out_of_range: int
    unseen: int
    drifted: bool = False
    quality_issue: bool = False

    @property
    def label(self) -> str:
        """The verdict as shown: both findings when the feature drifted and has a data-quality issue too."""
        return f"{DRIFT}, {QUALITY}" if self.drifted and self.quality_issue else self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "side": self.side, "statistic": self.statistic,
                "score": None if self.score is None else round(self.score, 6), "verdict": self.verdict,
                "drifted": self.drifted, "quality_issue": self.quality_issue, "rows": self.rows,
                "missing": self.missing, "out_of_range": self.out_of_range, "unseen": self.unseen}


def shares(counts: Sequence[int | float]) -> list[float]:
    """Each bin's share of the total (all 0 when there is nothing)."""
    total = float(sum(counts))
    return [c / total for c in counts] if total > 0 else [0.0] * len(counts)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of ``actual`` against ``expected`` (shares or counts, same bins)."""
    _same_bins(expected, actual)
    p, q = shares(expected), shares(actual)
    return sum((b - a) * math.log(b / a) for a, b in ((max(x, EPSILON), max(y, EPSILON)) for x, y in zip(p, q,
                                                                                                     strict=True)))


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The Jensen-Shannon distance (base 2, 0 to 1) between two distributions on the same bins."""
    _same_bins(expected, actual)
    p, q = shares(expected), shares(actual)

    def kl(a: Sequence[float], m: Sequence[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    middle = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return math.sqrt(max(0.0, (kl(p, middle) + kl(q, middle)) / 2))


def _same_bins(expected: Sequence[float], actual: Sequence[float]) -> None:
    if len(expected) != len(actual) or not expected:
        raise InvalidInputError(f"drift is measured on the same bins: {len(expected)} against {len(actual)}")


def score(bins: FeatureBins, counts: FeatureCounts) -> float | None:
    """The feature's drift statistic (PSI or JS distance) for ``counts``; None when no value was present."""
    if counts.present == 0:
        return None
    return (js_distance if bins.statistic == JS else psi)(bins.expected, counts.bins)


def noise(bins: FeatureBins, rows: int) -> float:
    """The score ``rows`` rows drawn from the reference itself get on average, from sampling alone: PSI about
    (bins - 1) / rows, the Jensen-Shannon distance about sqrt((bins - 1) / (8 rows ln 2)) (both from the
    chi-squared limit). Many bins and few rows give a noisy score: a category of 20 values on 100 rows scores
    about 0.19 with no drift at all."""
    if rows <= 0:
        return math.inf
    degrees = max(len(bins.expected) - 1, 1)
    return math.sqrt(degrees / (8 * rows * math.log(2))) if bins.statistic == JS else degrees / rows


def assess(baseline: Baseline, window: Window, thresholds: Thresholds = Thresholds()) -> list[FeatureDrift]:
    """Each watched input feature and output of ``baseline``, scored on ``window``, in the reference's order."""
    found = []
    for side, seen in (("inputs", window.inputs), ("outputs", window.outputs)):
        for bins in baseline.side(side):
            counts = seen.get(bins.name) or FeatureCounts([0] * len(bins.expected))
            value = score(bins, counts)
            limit = thresholds.js if bins.statistic == JS else thresholds.psi
            rows = counts.present + counts.missing
            drifted = value is not None and rows >= thresholds.min_rows and value > limit \
                and value > NOISE_FACTOR * noise(bins, counts.present)
            quality = rows > 0 and max(counts.missing / rows - bins.missing_rate, counts.out_of_range / rows,
                                       counts.unseen / rows) > thresholds.quality
            verdict = DRIFT if drifted else QUALITY if quality else FEW_ROWS if rows < thresholds.min_rows else OK
            found.append(FeatureDrift(bins.name, side, bins.statistic, value, verdict, rows, counts.missing,
                                      counts.out_of_range, counts.unseen, drifted, quality))
    return found


def total(windows: Iterable[Window]) -> Window | None:
    """The sum of ``windows`` (of one version and baseline), or None when there are none."""
    merged: Window | None = None
    for w in windows:
        if merged is None:
            merged = Window(w.model, w.version, w.profile, w.start, w.end)
        merged.add(w)
    return merged
