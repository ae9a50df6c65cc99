"""Golden examples: compare what a model answers now with what it answered at registration (pure).

Labels (ints, strings, bools) must be equal; floats may differ within the version's tolerance,
``|got - expected| <= atol + rtol * |expected|`` (numpy's ``isclose``). NaN matches NaN only, and an
infinity only the same infinity. A shape that differs is a difference of its own, at the position
where the shapes part. The verdict keeps the worst differences, each naming its example and position.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 0.0
MAX_WORST = 5  # differences a verdict keeps, worst first
MAX_VALUES = 1_000_000  # values compared at most: a hostile examples file cannot make this unbounded
_SHOWN = 80  # characters of a value kept in a difference


@dataclass(frozen=True, slots=True)
class Tolerance:
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL

    @classmethod
    def of(cls, examples: Mapping[str, Any]) -> Tolerance:
        """The tolerance stored with the golden examples (``log_model(..., tolerance=...)``), or the defaults.

        Accepts ``{"rtol": R, "atol": A}`` or a bare number (an rtol); anything else is the default.
        """
        raw = examples.get("tolerance")
        if _number(raw):
            return cls(rtol=_bounded(raw, DEFAULT_RTOL))
        if isinstance(raw, Mapping):
            return cls(_bounded(raw.get("rtol"), DEFAULT_RTOL), _bounded(raw.get("atol"), DEFAULT_ATOL))
        return cls()

    def to_dict(self) -> dict[str, float]:
        return {"rtol": self.rtol, "atol": self.atol}


@dataclass(frozen=True, slots=True)
class Difference:
    """One value (or shape) that does not match: which example, where in it, what was expected and got."""

    example: int
    position: tuple[int, ...]
    expected: Any
    got: Any
    reason: str  # "value", "label", "shape", "type", "nan"
    error: float | None = None  # the relative error of a float difference; None for anything else

    @property
    def where(self) -> str:
        return f"example {self.example}" + "".join(f"[{i}]" for i in self.position)

    def to_dict(self) -> dict[str, Any]:
        return {"example": self.example, "position": list(self.position), "expected": _shown(self.expected),
                "got": _shown(self.got), "reason": self.reason, "error": self.error}

    def describe(self) -> str:
        """One line: ``example 3[0]: expected 0.5, got 0.6 (relative error 0.2)``."""
        text = f"{self.where}: expected {_shown(self.expected)!r}, got {_shown(self.got)!r}"
        if self.reason == "shape":
            text = f"{self.where}: expected {_shown(self.expected)}, got {_shown(self.got)}"
        if self.error is not None and math.isfinite(self.error):
            text += f" (relative error {self.error:.3g})"
        elif self.reason not in ("value", "shape"):
            text += f" ({self.reason})"
        return text


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    examples: int  # golden examples compared
    differing: int  # examples with at least one difference
    values: int  # values compared
    tolerance: Tolerance
    worst: tuple[Difference, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "examples": self.examples, "differing": self.differing, "values": self.values,
                "tolerance": self.tolerance.to_dict(), "worst": [d.to_dict() for d in self.worst]}

    def describe(self) -> str:
        """One line for people."""
        if self.passed:
            return f"{self.examples} golden examples match (rtol {self.tolerance.rtol:g}, atol {self.tolerance.atol:g})"
        head = f"{self.differing} of {self.examples} golden examples differ"
        return f"{head}; worst: {self.worst[0].describe()}" if self.worst else head


def compare(expected: Any, got: Any, tolerance: Tolerance | None = None) -> Verdict:
    """Compare the stored outputs with fresh ones, example by example (the first axis)."""
    tol = tolerance or Tolerance()
    diffs: list[Difference] = []
    counter = [0]
    if not isinstance(expected, list):  # a single answer, not one per example
        _walk(0, (), expected, got, tol, diffs, counter)
        return _verdict(1, diffs, counter[0], tol)
    if not isinstance(got, list):
        return _verdict(len(expected), [Difference(0, (), _shape(expected), _shape(got), "shape")], 0, tol)
    examples = max(len(expected), len(got))
    for i in range(examples):
        if i >= len(got):
            diffs.append(Difference(i, (), expected[i], "(missing)", "shape"))
        elif i >= len(expected):
            diffs.append(Difference(i, (), "(none)", got[i], "shape"))
        else:
            _walk(i, (), expected[i], got[i], tol, diffs, counter)
        if counter[0] > MAX_VALUES:
            diffs.append(Difference(i, (), f"at most {MAX_VALUES} values", "more", "shape"))
            break
    return _verdict(len(expected), diffs, counter[0], tol)


def _verdict(examples: int, diffs: list[Difference], values: int, tol: Tolerance) -> Verdict:
    differing = len({d.example for d in diffs})
    worst = sorted(diffs, key=_severity, reverse=True)[:MAX_WORST]
    return Verdict(not diffs, examples, differing, values, tol, tuple(worst))


def _severity(d: Difference) -> tuple[int, float]:
    """Shape and type differences first, then labels and NaNs, then floats by relative error."""
    rank = {"shape": 3, "type": 2, "label": 1, "nan": 1}.get(d.reason, 0)
    err = d.error if d.error is not None else math.inf
    return rank, err if not math.isnan(err) else math.inf


def _walk(example: int, pos: tuple[int, ...], exp: Any, got: Any, tol: Tolerance, diffs: list[Difference],
          counter: list[int]) -> None:
    stack = [(pos, exp, got)]
    while stack:
        where, e, g = stack.pop()
        if isinstance(e, list) or isinstance(g, list):
            if not (isinstance(e, list) and isinstance(g, list)) or len(e) != len(g):
                diffs.append(Difference(example, where, _shape(e), _shape(g), "shape"))
                continue
            stack.extend(((*where, j), ej, gj) for j, ej, gj in reversed(list(zip(range(len(e)), e, g, strict=True))))
            continue
        diff = _value_diff(example, where, e, g, tol, counter)
        if diff is not None:
            diffs.append(diff)
        if counter[0] > MAX_VALUES:
            return


def _value_diff(example: int, where: tuple[int, ...], e: Any, g: Any, tol: Tolerance,
                counter: list[int]) -> Difference | None:
    counter[0] += 1
    if isinstance(e, bool) or isinstance(g, bool) or isinstance(e, str) or isinstance(g, str) or e is None or g is None:
        if type(e) is type(g) and e == g:
            return None
        return Difference(example, where, e, g, "label")
    if isinstance(e, int) and isinstance(g, int):
        return None if e == g else Difference(example, where, e, g, "label")
    if not (_number(e) and _number(g)):
        return None if e == g else Difference(example, where, e, g, "type")
    fe, fg = float(e), float(g)
    if math.isnan(fe) or math.isnan(fg):
        return None if math.isnan(fe) and math.isnan(fg) else Difference(example, where, e, g, "nan", math.inf)
    if math.isinf(fe) or math.isinf(fg):
        return None if fe == fg else Difference(example, where, e, g, "value", math.inf)
    delta = abs(fg - fe)
    if delta <= tol.atol + tol.rtol * abs(fe):
        return None
    return Difference(example, where, e, g, "value", delta / abs(fe) if fe else math.inf)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounded(value: Any, default: float) -> float:
    if not _number(value) or not math.isfinite(float(value)) or float(value) < 0:
        return default
    return float(value)


def _shape(value: Any) -> str:
    """``shape (3, 2)`` of nested lists (read along the first items), ``a str`` of anything else."""
    if not isinstance(value, list):
        return f"a {type(value).__name__}"
    dims: list[int] = []
    while isinstance(value, list) and len(dims) < 32:
        dims.append(len(value))
        value = value[0] if value else None
    return "shape (" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _shown(value: Any) -> Any:
    """A value kept in a difference: numbers and short labels as they are, anything else cut short."""
    if value is None or isinstance(value, bool | int | float):
        return value if not (isinstance(value, float) and not math.isfinite(value)) else str(value)
    text = value if isinstance(value, str) else _REPR.repr(value)  # bounded: a deep or huge list is cut short
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 4, 8, 8, _SHOWN, _SHOWN


# -- a verify's outcome, as recorded with the version --------------------------------------------------------

PASS, FAIL, NOT_INSTALLED = "pass", "fail", "could-not-install"


@dataclass(frozen=True, slots=True)
class Check:
    """One ``verify`` of a version somewhere: where (target, environment), what changed (overrides), the verdict.

    ``status`` is ``pass``, ``fail`` (the answers differ, or the model did not load or answer: ``reason``) or
    ``could-not-install`` (the environment could not be made: ``reason`` is the installer's).
    """

    target: str  # "venv", "current", "image"
    status: str
    environment: str | None  # the environment's key (venv) or record digest (current), or the image
    python: str | None
    overrides: tuple[str, ...] = ()
    reason: str = ""
    verdict: Verdict | None = None
    reused: bool | None = None  # venv: found complete in the cache, nothing installed
    packages: Mapping[str, str] = field(default_factory=dict)  # what the model ran on (python, numpy, ...)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def describe(self) -> str:
        """One line: the verdict, or why there is none."""
        if self.verdict is not None:
            return self.verdict.describe()
        return self.reason

    def to_record(self, shipyard_version: str) -> dict[str, Any]:
        return {"target": self.target, "status": self.status, "passed": self.passed, "environment": self.environment,
                "python": self.python, "overrides": list(self.overrides), "reason": self.reason,
                "verdict": self.verdict.to_dict() if self.verdict is not None else None, "reused": self.reused,
                "packages": dict(self.packages), "shipyard": shipyard_version}

    def summary(self) -> str:
        """The audit event's line: ``pass in venv 3f2a…(python 3.11.9) with scikit-learn==1.5.2``."""
        where = self.target
        if self.environment:  # a venv's key or an environment digest, cut short; an image's name, whole
            where += " " + (self.environment if self.target == "image" else
                            self.environment.removeprefix("sha256:")[:12])
        text = f"{self.status} in {where}" + (f" (python {self.python})" if self.python else "")
        if self.overrides:
            text += " with " + " ".join(self.overrides)
        return text if self.passed else f"{text}: {self.describe()}"
