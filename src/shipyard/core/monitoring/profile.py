"""A reference profile: what a model version's inputs and outputs looked like when it was trained.

Per column, the count of values, how many were missing, and a mergeable sketch: a KLL quantile sketch for
numbers (with their range), a frequent-items sketch for categories. The sketches are the serialized bytes of
Apache DataSketches (the adapter builds and reads them); this module only holds and checks the record, which
is stored as an object and named by the version's ``profile`` record, so it is as immutable as the version.
A stored profile is untrusted input: ``Profile.from_dict`` bounds every part before anything reads a sketch.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidInputError

PROFILE_FORMAT = 1
NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
INPUTS, OUTPUTS = "inputs", "outputs"
MAX_COLUMNS = 10_000  # columns per side: a wider frame is summarized by its first MAX_COLUMNS columns
MAX_SKETCH_BYTES = 1 << 20  # a KLL sketch with k=200 is ~5 KB; a frequent-items sketch of 256 entries ~20 KB
MAX_NAME = 256
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

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "count": self.count, "missing": self.missing,
                "low": self.low, "high": self.high, "sketch": base64.b64encode(self.sketch).decode()}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ColumnProfile:
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"{where}: a column is not a mapping")
        name, kind, count, missing = d.get("name"), d.get("kind"), d.get("count"), d.get("missing")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInputError(f"{where}: a column name is missing, too long or holds control characters")
        if kind not in KINDS:
            raise InvalidInputError(f"{where}: column {name!r} has kind {str(kind)[:20]!r}, not one of {KINDS}")
        if not isinstance(count, int) or not isinstance(missing, int) or not _count(count) or not _count(missing) \
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
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InvalidInputError(f"{where}: column {name!r} has a range that is not numbers")
        return cls(name, kind, count, missing, sketch, None if low is None else float(low),
                   None if high is None else float(high))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 53


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
        if not isinstance(rows, int) or not _count(rows):
            raise InvalidInputError(f"{where}: rows is not a count")
        sides = []
        for side in (INPUTS, OUTPUTS):
            columns = d.get(side)
            if not isinstance(columns, Sequence) or isinstance(columns, str) or len(columns) > MAX_COLUMNS:
                raise InvalidInputError(f"{where}: {side} is not a list of at most {MAX_COLUMNS} columns")
            sides.append(tuple(ColumnProfile.from_dict(c, where) for c in columns))
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
