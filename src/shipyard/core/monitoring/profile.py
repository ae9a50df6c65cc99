"""A reference profile: what a model version's inputs and outputs looked like when it was trained.

Per column, the count of values, how many were missing, and a mergeable sketch: a KLL quantile sketch for
numbers (with their range), a frequent-items sketch for categories. The sketches are the serialized bytes of
Apache DataSketches (the adapter builds them); this module only holds and checks the record, which
is stored as an object and named by the version's ``profile`` record, so it is as immutable as the version.

Beside each sketch, what drift is measured on, as plain numbers read from the sketch when it was built: a
number's decile cut points and the reference's share between them, a category's most frequent values and their
counts. Drift never parses a stored sketch: DataSketches' deserializer trusts its bytes (a few changed bytes
crash the process), and a stored profile is untrusted input. ``Profile.from_dict`` bounds and checks every part.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.monitoring.drift import finite, is_count
from shipyard.errors import InvalidInputError

PROFILE_FORMAT = 1
NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
INPUTS, OUTPUTS = "inputs", "outputs"
MAX_COLUMNS = 10_000  # columns per side: a wider frame is summarized by its first MAX_COLUMNS columns
MAX_SKETCH_BYTES = 1 << 20  # a KLL sketch with k=200 is ~5 KB; a frequent-items sketch of 256 entries ~20 KB
MAX_NAME = 256
MAX_EDGES = 64  # cut points of a numeric column (its deciles: at most 9)
MAX_TOP = 1000  # a categorical column's most frequent values kept with their counts
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """One column: ``count`` rows seen, ``missing`` of them None/NaN; numbers keep their range."""

    name: str
    kind: str
    count: int
    missing: int
    sketch: bytes  # DataSketches' serialized KLL (numeric) or frequent-items (categorical) sketch
    low: float | None = None
    high: float | None = None
    edges: tuple[float, ...] = ()  # numeric: ascending cut points (the deciles, ties merged)
    shares: tuple[float, ...] = ()  # numeric: the reference's share in each of the len(edges) + 1 bins
    top: tuple[tuple[str, int], ...] = ()  # categorical: the most frequent values and their counts, most first

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        bins: dict[str, Any] = ({"top": [list(t) for t in self.top]} if self.kind == CATEGORICAL else
                                {"edges": list(self.edges), "shares": list(self.shares)})
        return {"name": self.name, "kind": self.kind, "count": self.count, "missing": self.missing,
                "low": self.low, "high": self.high, "bins": bins, "sketch": base64.b64encode(self.sketch).decode()}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ColumnProfile:
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"{where}: a column is not a mapping")
        name, kind, count, missing = d.get("name"), d.get("kind"), d.get("count"), d.get("missing")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInputError(f"{where}: a column name is missing, too long or holds control characters")
        if kind not in KINDS:
            raise InvalidInputError(f"{where}: column {name!r} has kind {str(kind)[:20]!r}, not one of {KINDS}")
        if not isinstance(count, int) or not isinstance(missing, int) or not is_count(count) or not is_count(missing) \
                or missing > count:
            raise InvalidInputError(f"{where}: column {name!r} has no valid count and missing count")
        text = d.get("sketch")
        if not isinstance(text, str) or len(text) > MAX_SKETCH_BYTES * 4 // 3 + 4:
            raise InvalidInputError(f"{where}: column {name!r} has no sketch, or one over {MAX_SKETCH_BYTES} bytes")
        try:
            sketch = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"{where}: column {name!r} has a sketch that is not base64") from None
        low, high = d.get("low"), d.get("high")
        for value in (low, high):
            if value is not None and not finite(value):
                raise InvalidInputError(f"{where}: column {name!r} has a range that is not finite numbers")
        edges, shares, top = _bins(d.get("bins"), kind, f"{where}: column {name!r}")
        return cls(name, kind, count, missing, sketch, None if low is None else float(low),
                   None if high is None else float(high), edges, shares, top)


def _bins(d: Any, kind: str, where: str) -> tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[str, int], ...]]:
    """A column's bins, checked: ascending finite cut points and shares that add up to 1, or named counts."""
    if not isinstance(d, Mapping):
        raise InvalidInputError(f"{where} has no bins (a profile recorded before Shipyard kept them): register the "
                                "version again with log_model(..., reference=X_train)")
    if kind == CATEGORICAL:
        top = d.get("top")
        if not isinstance(top, list) or len(top) > MAX_TOP or not all(
                isinstance(t, list) and len(t) == 2 and isinstance(t[0], str) and _NAME.fullmatch(t[0])
                and is_count(t[1]) for t in top):
            raise InvalidInputError(f"{where}: bins.top is not a list of at most {MAX_TOP} [value, count] pairs")
        if len({t[0] for t in top}) != len(top):
            raise InvalidInputError(f"{where}: bins.top names a value twice")
        return (), (), tuple((str(t[0]), int(t[1])) for t in top)
    edges, shares = d.get("edges"), d.get("shares")
    if not isinstance(edges, list) or not isinstance(shares, list) or len(edges) > MAX_EDGES \
            or len(shares) != len(edges) + 1 or not all(finite(e) for e in edges) \
            or not all(finite(v) and 0 <= v <= 1 for v in shares):
        raise InvalidInputError(f"{where}: bins is not at most {MAX_EDGES} finite cut points and a share (0 to 1) "
                                "for each bin between them")
    if any(b <= a for a, b in itertools.pairwise(edges)) or abs(sum(shares) - 1) > 1e-6:
        raise InvalidInputError(f"{where}: bins' cut points must ascend and their shares add up to 1")
    return tuple(float(e) for e in edges), tuple(float(v) for v in shares), ()


@dataclass(frozen=True, slots=True)
class Profile:
    """The profile of a version's reference data (``inputs``) and of its answers on it (``outputs``)."""

    rows: int
    inputs: tuple[ColumnProfile, ...]
    outputs: tuple[ColumnProfile, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def column(self, name: str, side: str = INPUTS) -> ColumnProfile:
        for col in self.inputs if side == INPUTS else self.outputs:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROFILE_FORMAT, "rows": self.rows, INPUTS: [c.to_dict() for c in self.inputs],
                OUTPUTS: [c.to_dict() for c in self.outputs], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "the profile") -> Profile:
        if not isinstance(d, Mapping) or d.get("format") != PROFILE_FORMAT:
            raise InvalidInputError(f"{where} is not a Shipyard profile (format {PROFILE_FORMAT})")
        rows = d.get("rows")
        if not isinstance(rows, int) or not is_count(rows):
            raise InvalidInputError(f"{where}: rows is not a count")
        sides = []
        for side in (INPUTS, OUTPUTS):
            columns = d.get(side)
            if not isinstance(columns, Sequence) or isinstance(columns, str) or len(columns) > MAX_COLUMNS:
                raise InvalidInputError(f"{where}: {side} is not a list of at most {MAX_COLUMNS} columns")
            found = tuple(ColumnProfile.from_dict(c, where) for c in columns)
            if len({c.name for c in found}) != len(found):
                raise InvalidInputError(f"{where}: two {side} columns have the same name")
            sides.append(found)
        notes = d.get("notes") or []
        if not isinstance(notes, list) or len(notes) > 100 or not all(isinstance(n, str) for n in notes):
            raise InvalidInputError(f"{where}: notes is not a short list of strings")
        return cls(rows, sides[0], sides[1], tuple(n[:300] for n in notes))


def column_names(count: int, given: Sequence[str] | None, prefix: str = "x") -> list[str]:
    """The names of ``count`` columns: ``given`` (a frame's own names) or ``x0, x1, ...``; each a printable
    string of at most 256 characters, no two the same."""
    names = [str(n) for n in given] if given is not None else [f"{prefix}{i}" for i in range(count)]
    if len(names) != count:
        raise InvalidInputError(f"{len(names)} column names for {count} columns")
    for n in names:
        if not _NAME.fullmatch(n):
            raise InvalidInputError(f"column name {n[:40]!r} is empty, over {MAX_NAME} characters or holds control "
                                    "characters: rename it")
    if len(set(names)) != len(names):
        raise InvalidInputError("two columns have the same name: give each its own")
    return names
