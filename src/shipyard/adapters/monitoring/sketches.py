"""Profiles built with Apache DataSketches (PyPI ``datasketches``): KLL quantile sketches for numeric columns,
frequent-items sketches for categorical ones. Both are mergeable and bounded in memory whatever the row count,
so the model server can keep the same sketches of what it sees and compare them with the reference.

A 2-D array, a pandas DataFrame (its columns' names and dtypes), or a list of rows is accepted; a 1-D array is
one column (a model's outputs). Numbers are fed to KLL vectorized (a million rows in tens of milliseconds);
categories go through the frequent-items sketch value by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.core.monitoring.drift import DECILES
from shipyard.core.monitoring.profile import (
    CATEGORICAL,
    MAX_COLUMNS,
    MAX_TOP,
    NUMERIC,
    ColumnProfile,
    Profile,
    column_names,
)
from shipyard.errors import InvalidInputError, MissingExtraError

KLL_K = 200  # about 1.65% rank error, ~5 KB a sketch
FREQUENT_LG_MAX = 8  # at most 2^8 * 3/4 = 192 tracked categories a column
MAX_CLASSES = 100  # a model's integer answers with at most this many values are classes
MAX_CATEGORY_CHARS = 200


def _ds() -> Any:
    try:
        import datasketches
    except ModuleNotFoundError as exc:
        raise MissingExtraError("profiling reference data", "monitor") from exc
    return datasketches


def columns_of(data: Any, prefix: str = "x") -> list[tuple[str, Any]]:
    """(name, 1-D numpy array) per column of ``data`` (at most MAX_COLUMNS)."""
    import numpy as np

    names: Sequence[str] | None = None
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        names = [str(c) for c in data.columns][:MAX_COLUMNS]
        return list(zip(column_names(len(names), names), (data[c].to_numpy() for c in data.columns[:MAX_COLUMNS]),
                        strict=True))
    array = np.asarray(data, dtype=object if _ragged_or_mixed(data) else None)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise InvalidInputError(f"reference data must be rows of columns (2 dimensions), not {array.ndim}")
    width = min(array.shape[1], MAX_COLUMNS)
    return list(zip(column_names(width, names, prefix), (array[:, i] for i in range(width)), strict=True))


def _ragged_or_mixed(data: Any) -> bool:
    return isinstance(data, list) and any(isinstance(v, str) for row in data[:100]
                                          for v in (row if isinstance(row, (list, tuple)) else [row]))


def profile_column(name: str, values: Any, classes: bool = False) -> ColumnProfile:
    """The profile of one column: numeric when every present value is a number, else categorical. With
    ``classes`` (a model's answers), integers of at most ``MAX_CLASSES`` values are classes: categorical, so
    drift compares each class's share, never deciles that would merge classes."""
    import numpy as np

    ds = _ds()
    count = int(values.shape[0])
    if classes and values.dtype.kind in "biu" and np.unique(values).shape[0] <= MAX_CLASSES:
        values = values.astype(object)
    elif values.dtype.kind == "O" and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                         for v in values.tolist()):
        values = np.array([np.nan if v is None else v for v in values.tolist()], dtype=np.float64)
    if values.dtype.kind in "biuf":
        numbers = values.astype(np.float64, copy=False)
        present = numbers[~np.isnan(numbers)]
        sketch = ds.kll_doubles_sketch(KLL_K)
        if present.size:
            sketch.update(present)
        low, high = (float(present.min()), float(present.max())) if present.size else (None, None)
        edges, shares = _deciles(sketch)
        return ColumnProfile(name, NUMERIC, count, count - int(present.size), bytes(sketch.serialize()), low, high,
                             edges, shares)
    frequent = ds.frequent_strings_sketch(FREQUENT_LG_MAX)
    missing = 0
    for value in values.tolist():
        if value is None or (isinstance(value, float) and value != value):
            missing += 1
            continue
        frequent.update(category_text(value))
    rows = frequent.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
    top = sorted(((str(item), int(estimate)) for item, estimate, *_ in rows), key=lambda kv: (-kv[1], kv[0]))
    return ColumnProfile(name, CATEGORICAL, count, missing, bytes(frequent.serialize()), top=tuple(top[:MAX_TOP]))


def _deciles(sketch: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A KLL sketch's decile cut points (ties merged: a column of few values gets a bin per value) and the share
    of values in each bin, (a, b] as rows are counted: the sketch's CDF at each cut point, inclusive."""
    if sketch.is_empty():
        return (), (1.0,)
    edges = sorted({float(q) for q in sketch.get_quantiles(list(DECILES))})
    cdf = [float(c) for c in sketch.get_cdf(edges, True)]  # share at most each cut point, then 1.0
    shares = [max(b - a, 0.0) for a, b in zip([0.0, *cdf[:-1]], cdf, strict=True)]
    total = sum(shares)
    return tuple(edges), tuple(v / total for v in shares)


def category_text(value: Any) -> str:
    """How a category is named in a profile and counted against one: its text, at most 200 characters."""
    return str(value)[:MAX_CATEGORY_CHARS]


def build_profile(inputs: Any, outputs: Any = None) -> Profile:
    """The profile of ``inputs`` (the reference data) and, when given, of the model's ``outputs`` on it."""
    columns = columns_of(inputs)
    rows = int(columns[0][1].shape[0]) if columns else 0
    notes = []
    if hasattr(inputs, "shape") and len(getattr(inputs, "shape", ())) == 2 and inputs.shape[1] > MAX_COLUMNS:
        notes.append(f"only the first {MAX_COLUMNS} of {inputs.shape[1]} columns are profiled")
    answers = columns_of(outputs, prefix="y") if outputs is not None else []
    return Profile(rows, tuple(profile_column(n, v) for n, v in columns),
                   tuple(profile_column(n, v, classes=True) for n, v in answers), tuple(notes))


def quantiles(column: ColumnProfile, ranks: Sequence[float]) -> list[float]:
    """The values at ``ranks`` (0..1) of a numeric column's sketch (empty for a column with no value)."""
    ds = _ds()
    sketch = ds.kll_doubles_sketch.deserialize(column.sketch)
    return [] if sketch.is_empty() else [float(q) for q in sketch.get_quantiles(list(ranks))]


def frequencies(column: ColumnProfile) -> dict[str, int]:
    """A categorical column's most frequent values and their (estimated) counts."""
    ds = _ds()
    sketch = ds.frequent_strings_sketch.deserialize(column.sketch)
    rows = sketch.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
    return {str(item): int(estimate) for item, estimate, *_ in rows}
