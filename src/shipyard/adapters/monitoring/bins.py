"""A reference profile's bins (``Baseline``), and rows counted into them (``Window``), with numpy.

The bins of a number are its reference deciles, read from the KLL sketch when the profile was built (ties
merged, so a feature with a few distinct values gets a bin per value), with the reference's share in each from
the sketch's CDF; a category's are its most frequent reference values and ``other``. Numeric features are
counted in one pass over blocks of rows that stay in the CPU's cache: a value's bin, whether it is outside the
reference's range and whether it is missing all come from its position among the feature's cut points
(``_Plan``), found by a few comparisons of the whole block against a column of cut points and one ``bincount``:
a million rows of 20 features take about 0.2 s, one row about a hundred microseconds for all of them.
Live rows are matched to the reference's columns by position, as a model takes them.
"""

from __future__ import annotations

from typing import Any

from shipyard.adapters.monitoring.sketches import category_text, columns_of
from shipyard.core.monitoring.drift import (
    MAX_CATEGORIES,
    MAX_FEATURES,
    MAX_KNOWN,
    Baseline,
    FeatureBins,
    FeatureCounts,
    Window,
)
from shipyard.core.monitoring.profile import CATEGORICAL, ColumnProfile, Profile


def baseline_of(profile: Profile, digest: str) -> Baseline:
    """The bins of the first ``MAX_FEATURES`` inputs and outputs of ``profile`` (stored as ``digest``)."""
    return Baseline(digest, profile.rows, tuple(feature_bins(c) for c in profile.inputs[:MAX_FEATURES]),
                    tuple(feature_bins(c) for c in profile.outputs[:MAX_FEATURES]))


def feature_bins(column: ColumnProfile) -> FeatureBins:
    """A column's bins from the plain numbers its profile keeps (never from its sketch's bytes: see profile.py)."""
    present = column.count - column.missing
    if column.kind == CATEGORICAL:
        top = column.top[:MAX_CATEGORIES]
        rest = max(present - sum(n for _, n in top), 0)
        expected = (*tuple(float(n) for _, n in top), float(rest))
        return FeatureBins(column.name, column.kind, _normalized(expected), categories=tuple(c for c, _ in top),
                           known=frozenset(c for c, _ in column.top[:MAX_KNOWN]), missing_rate=column.missing_rate)
    return FeatureBins(column.name, column.kind, _normalized(column.shares or (1.0,)), column.edges,
                       low=column.low, high=column.high, missing_rate=column.missing_rate)


def _normalized(values: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(values)
    return tuple(v / total for v in values) if total > 0 else tuple(1.0 / len(values) for _ in values)


def count_rows(baseline: Baseline, model: str, version: str, rows: Any, predictions: Any,
               start: float, end: float | None = None) -> Window:
    """``rows`` (inputs, by position) and ``predictions`` (outputs) counted into ``baseline``'s bins."""
    window = Window.empty(model, version, baseline, start, end)
    if rows is not None and len(rows):
        window.rows, counted = _count_side(baseline.inputs, rows, "x")
        window.inputs.update(counted)
    if predictions is not None and len(predictions) and baseline.outputs:
        window.outputs.update(_count_side(baseline.outputs, predictions, "y")[1])
    return window


def _count_side(features: tuple[FeatureBins, ...], data: Any, prefix: str) -> tuple[int, dict[str, FeatureCounts]]:
    """(rows, counts per feature) of one side. A numeric 2-D array is read in place, a block of rows at a time;
    other data (a DataFrame, a list of rows) column by column."""
    import numpy as np

    found: dict[str, FeatureCounts] = {}
    numeric: list[FeatureBins] = []
    where: list[int] = []  # the numeric features' positions among ``features``
    prepared = _prepared(features)
    planned = prepared.plans
    if isinstance(data, np.ndarray) and data.ndim in (1, 2) and data.dtype.kind in "biuf":
        matrix = data.reshape(-1, 1) if data.ndim == 1 else data
        rows = int(matrix.shape[0])
        for i, (bins, plan) in enumerate(zip(features[:matrix.shape[1]], planned, strict=False)):
            if plan is None:
                found[bins.name] = count_column(bins, matrix[:, i])
            else:
                numeric.append(bins)
                where.append(i)
        if where == list(range(len(where))):
            def block(a: int, b: int) -> Any:
                return np.ascontiguousarray(matrix[a:b, :len(where)].T, dtype=np.float64)
        else:
            def block(a: int, b: int) -> Any:
                return np.ascontiguousarray(matrix[a:b, where].T, dtype=np.float64)
    else:
        columns = columns_of(data, prefix=prefix)
        rows = int(columns[0][1].shape[0]) if columns else 0
        numbers: list[Any] = []
        for i, (bins, plan, (_, values)) in enumerate(zip(features, planned, columns, strict=False)):
            if plan is None:
                found[bins.name] = count_column(bins, values)
            else:
                numeric.append(bins)
                where.append(i)
                numbers.append(_floats(values))

        def block(a: int, b: int) -> Any:
            return np.stack([column[a:b] for column in numbers])

    if numeric:
        plans = [planned[i] for i in where]
        for bins, counts in zip(numeric, _count_blocks(plans, prepared.cuts(where), rows, block), strict=True):
            found[bins.name] = counts
    return rows, {b.name: found[b.name] for b in features if b.name in found}


BLOCK_VALUES = 1 << 17  # values (rows x features) counted at once: 1 MiB of float64, which stays in the CPU's cache


class _Plan:
    """How one numeric feature is counted in a single pass: its cut points, ascending, so that a value's position
    among them (``searchsorted``, side left) names its bin, whether it is outside the reference's range, or NaN.

    With a usable range: cuts ``[just below low, *edges, high, inf]``, positions ``0`` below the range, ``1..K``
    the bins up to the last edge, ``K+1`` the last bin within range, ``K+2`` above the range (inf included),
    ``K+3`` NaN (missing). Without one: cuts ``[*edges, inf]``, positions ``0..K`` the bins, ``K+1`` NaN.
    """

    __slots__ = ("cuts", "ranged")

    def __init__(self, cuts: tuple[float, ...], ranged: bool) -> None:
        self.cuts, self.ranged = cuts, ranged

    def counts(self, at: list[int]) -> FeatureCounts:
        """The feature's counts from the number of values at each position (``len(cuts) + 1`` of them)."""
        if not self.ranged:
            return FeatureCounts(at[:-1], at[-1])
        k = len(self.cuts) - 3
        return FeatureCounts([at[0] + at[1], *at[2:k + 1], at[k + 1] + at[k + 2]], at[k + 3], at[0] + at[k + 2])


class _Prepared:
    """A side's plans, and its cut points as the (features, cuts) array ``_count_blocks`` compares against."""

    __slots__ = ("_cuts", "features", "plans")

    def __init__(self, features: tuple[FeatureBins, ...]) -> None:
        self.features = features
        self.plans = [_plan(b) for b in features]
        self._cuts: dict[tuple[int, ...], Any] = {}

    def cuts(self, where: list[int]) -> Any:
        """The cut points of the features at ``where`` (all planned), a row each, padded with NaN."""
        import numpy as np

        key = tuple(where)
        table = self._cuts.get(key)
        if table is None:
            plans = [self.plans[i] for i in where]
            table = np.full((len(plans), max(len(p.cuts) for p in plans if p is not None)), np.nan)
            for row, plan in enumerate(plans):
                if plan is not None:
                    table[row, :len(plan.cuts)] = plan.cuts
            self._cuts[key] = table
        return table


_PREPARED: dict[int, _Prepared] = {}


def _prepared(features: tuple[FeatureBins, ...]) -> _Prepared:
    """The plans of a baseline's side, kept for the last few baselines (a server counts every request's rows on
    the same one): keyed by the tuple's identity, which the entry holds, so the key is never reused."""
    held = _PREPARED.get(id(features))
    if held is not None and held.features is features:
        return held
    prepared = _Prepared(features)
    if len(_PREPARED) >= 16:
        _PREPARED.clear()  # atomic, where popping the oldest could race with another thread's insert
    _PREPARED[id(features)] = prepared
    return prepared


def _plan(bins: FeatureBins) -> _Plan | None:
    """The single-pass plan of a numeric feature; None for a category, or for edges or a range that are not in
    order (a hand-made baseline): those are counted value by value, as ``count_column`` does."""
    import math

    edges, low, high = bins.edges, bins.low, bins.high
    if bins.kind == CATEGORICAL or len(edges) > 250 or any(e != e for e in edges) or list(edges) != sorted(edges):
        return None
    if not edges or low is None or high is None:
        return _Plan((*edges, math.inf), False)
    if math.isfinite(low) and math.isfinite(high) and low <= edges[0] and edges[-1] <= high:
        return _Plan((math.nextafter(low, -math.inf), *edges, high, math.inf), True)
    return None


def _count_blocks(plans: list[_Plan | None], cuts: Any, rows: int, block: Any) -> list[FeatureCounts]:
    """Every planned feature counted over ``rows`` rows, ``block(a, b)`` giving rows a..b as a C-contiguous
    (features, rows) float64 array. A value's position is the number of cuts below it, so it is counted as
    ``len(cuts)`` minus the cuts it is at most (NaN is at most none: it lands past the last cut, as in
    ``searchsorted``); a feature with fewer cuts is padded with NaN cuts, which no value is at most. A few
    comparisons of a block against a column of cuts, and one ``bincount`` per block: no sort, no copy of a column.
    """
    import numpy as np

    width = cuts.shape[1]
    slots = width + 1
    offsets = (np.arange(len(plans), dtype=np.int64) * slots)[:, None]
    seen = np.zeros(len(plans) * slots, dtype=np.int64)
    step = max(1, BLOCK_VALUES // len(plans))
    for a in range(0, rows, step):
        values = block(a, min(a + step, rows))
        at_most = np.zeros(values.shape, dtype=np.uint8)
        hit = np.empty(values.shape, dtype=np.bool_)
        for j in range(width):
            np.less_equal(values, cuts[:, j:j + 1], out=hit)
            at_most += hit.view(np.uint8)
        seen += np.bincount((offsets + at_most).ravel(), minlength=len(seen))
    table = seen.reshape(len(plans), slots).tolist()
    return [plan.counts(table[i][:len(plan.cuts) + 1][::-1]) for i, plan in enumerate(plans) if plan is not None]


def count_column(bins: FeatureBins, values: Any) -> FeatureCounts:
    """One column's values counted into ``bins``: per bin, and its missing, out-of-range and unseen values."""
    import numpy as np

    if bins.kind == CATEGORICAL:
        index = {c: i for i, c in enumerate(bins.categories)}
        counts = [0] * len(bins.expected)
        missing = unseen = 0
        for value in values.tolist():
            if value is None or (isinstance(value, float) and value != value):
                missing += 1
                continue
            text = category_text(value)
            counts[index.get(text, len(bins.categories))] += 1
            if text not in bins.known:
                unseen += 1
        return FeatureCounts(counts, missing, 0, unseen)
    numbers = _floats(values)
    plan = _plan(bins)
    if plan is not None:
        at = np.bincount(np.searchsorted(np.asarray(plan.cuts), numbers, side="left"), minlength=len(plan.cuts) + 1)
        return plan.counts([int(c) for c in at])
    present = numbers[~np.isnan(numbers)]
    missing = int(numbers.shape[0] - present.shape[0])
    if not bins.edges:
        return FeatureCounts([int(present.shape[0])], missing)
    placed = np.bincount(np.searchsorted(np.asarray(bins.edges), present, side="left"),
                         minlength=len(bins.edges) + 1)
    outside = 0
    if bins.low is not None and bins.high is not None:
        outside = int(np.count_nonzero((present < bins.low) | (present > bins.high)))
    return FeatureCounts([int(c) for c in placed], missing, outside)


def _floats(values: Any) -> Any:
    """A column as float64, a value that is not a number counting as missing (NaN)."""
    import numpy as np

    if values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    out = np.full(values.shape[0], np.nan)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = v
    return out
