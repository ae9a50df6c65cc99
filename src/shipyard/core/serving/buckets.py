"""Prediction buckets: what ``shipyard_predictions_total{bucket}`` counts, with a bounded number of labels.

The stable and the canary version run in different processes (pods) that share nothing, yet their
buckets must line up for the drift rule (PSI) to compare them. So the buckets follow a fixed scheme that
needs no state and no data:

- a class (a string, an integer or a boolean answer) is its own bucket, cut to ``CLASS_CHARS``; a counter
  keeps at most ``MAX_CLASSES`` per version and pools the rest into ``other`` (a classifier with more
  classes than that pools its late-seen ones, which each process may pick differently: raise the cap
  rather than rely on ``other``);
- a number falls in a range of a fixed logarithmic grid: ten ranges per decade (edges 10^(k/10), each
  about 26% wider than the last), by sign, from 1e-6 to 1e12; ``0`` below, ``>=1e12`` above. At most
  ``2 * 180 + 3`` labels, and a model's answers usually span a decade or two (20 to 40 labels);
- a vector (probabilities, scores) is bucketed by the index of its largest element (``argmax=3``);
- anything else is ``other``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

MAX_CLASSES = 50
CLASS_CHARS = 40
PER_DECADE = 10
LOW, HIGH = -6 * PER_DECADE, 12 * PER_DECADE  # grid steps: 1e-6 .. 1e12
MAX_VECTOR = 1024
OTHER = "other"


def bucket(value: Any) -> tuple[str, bool]:
    """(the bucket of one prediction, whether it is a class that counts against ``MAX_CLASSES``)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), True
    if isinstance(value, int):
        return str(value)[:CLASS_CHARS], True
    if isinstance(value, str):
        return value[:CLASS_CHARS], True
    if isinstance(value, float):
        return value_range(value), False
    if isinstance(value, list) and 0 < len(value) <= MAX_VECTOR and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return f"argmax={max(range(len(value)), key=value.__getitem__)}", False
    return OTHER, False


def value_range(x: float) -> str:
    """The grid range of ``x``: ``[1.26,1.58)`` for 1.3, ``(-1.58,-1.26]`` for -1.3."""
    if math.isnan(x):
        return "nan"
    a = abs(x)
    if a < 10 ** (LOW / PER_DECADE):
        return "0"
    if a >= 10 ** (HIGH / PER_DECADE):
        return ">=1e12" if x > 0 else "<=-1e12"
    return _grid(min(max(math.floor(PER_DECADE * math.log10(a)), LOW), HIGH - 1), x > 0)


@functools.lru_cache(maxsize=2 * (HIGH - LOW))
def _grid(k: int, positive: bool) -> str:
    lo, hi = 10 ** (k / PER_DECADE), 10 ** ((k + 1) / PER_DECADE)
    return f"[{lo:.3g},{hi:.3g})" if positive else f"({-hi:.3g},{-lo:.3g}]"
