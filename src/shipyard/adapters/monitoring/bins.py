"""A reference profile's bins (``Baseline``), and rows counted into them (``Window``), with numpy.

The bins of a number are its reference deciles read from the KLL sketch (ties merged, so a feature with a few
distinct values gets a bin per value), with the reference's share in each from the sketch's CDF; a category's
are its most frequent reference values and ``other``. Counting is vectorized per column (``searchsorted`` and
``bincount``): a million rows of 20 features take a fraction of a second, and one row a few microseconds a column.
Live rows are matched to the reference's columns by position, as a model takes them.
"""

from __future__ import annotations

from typing import Any

from shipyard.adapters.monitoring.sketches import _ds, category_text, columns_of, frequencies
from shipyard.core.monitoring.drift import (
    DECILES,
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
    present = column.count - column.missing
    if column.kind == CATEGORICAL:
        counted = sorted(frequencies(column).items(), key=lambda kv: (-kv[1], kv[0]))
        top = counted[:MAX_CATEGORIES]
        seen = sum(n for _, n in top)
        rest = max(present - seen, 0)
        expected = (*tuple(float(n) for _, n in top), float(rest))
        return FeatureBins(column.name, column.kind, _normalized(expected), categories=tuple(c for c, _ in top),
                           known=frozenset(c for c, _ in counted[:MAX_KNOWN]), missing_rate=column.missing_rate)
    sketch = _ds().kll_doubles_sketch.deserialize(column.sketch)
    if sketch.is_empty():
        return FeatureBins(column.name, column.kind, (1.0,), missing_rate=column.missing_rate)
    edges = sorted({float(q) for q in sketch.get_quantiles(list(DECILES))})
    cdf = [float(c) for c in sketch.get_cdf(edges, True)]  # rank of each cut point (inclusive), then 1.0
    expected = tuple(max(b - a, 0.0) for a, b in zip([0.0, *cdf[:-1]], cdf, strict=True))
    return FeatureBins(column.name, column.kind, _normalized(expected), tuple(edges), low=column.low,
                       high=column.high, missing_rate=column.missing_rate)


def _normalized(values: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(values)
    return tuple(v / total for v in values) if total > 0 else tuple(1.0 / len(values) for _ in values)


def count_rows(baseline: Baseline, model: str, version: str, rows: Any, predictions: Any,
               start: float, end: float | None = None) -> Window:
    """``rows`` (inputs, by position) and ``predictions`` (outputs) counted into ``baseline``'s bins."""
    window = Window.empty(model, version, baseline, start, end)
    inputs = columns_of(rows) if rows is not None and len(rows) else []
    window.rows = int(inputs[0][1].shape[0]) if inputs else 0
    for bins, (_, values) in zip(baseline.inputs, inputs, strict=False):
        window.inputs[bins.name] = count_column(bins, values)
    if predictions is not None and len(predictions) and baseline.outputs:
        for bins, (_, values) in zip(baseline.outputs, columns_of(predictions, prefix="y"), strict=False):
            window.outputs[bins.name] = count_column(bins, values)
    return window


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
