"""``metrics diff`` and ``params diff``: the values of two revisions side by side, with the change.

A side is either files (``{path: {key: value}}``, read from a metrics or params file of the workspace
or a commit) or recorded values (a run's or a model version's, keyed without a file). A recorded key is
shown under the file the other side holds it in, so a commit compares with a run key by key. Metrics
are numbers (nested keys joined with dots, as the runner records them); params are compared as the
runner records them: text as it is, other values as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Values = dict[str, dict[str, Any]]  # path -> key -> value
RECORDED = ""  # the path of a recorded value no file of the other side holds
MAX_EXPANDED_CHARS = 100_000  # a recorded section larger than this stays one value


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    key: str
    old: Any  # None: absent on that side
    new: Any
    change: float | None  # new - old when both are numbers

    @property
    def changed(self) -> bool:
        return bool(self.old != self.new)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "old": self.old, "new": self.new, "change": self.change}


def parse_file(raw: bytes, source: str, name: str | None = None) -> Any:
    """A metrics or params file's body by its ``name``'s suffix: JSON, TOML, else YAML (bounded parsers; a
    ConfigError naming ``source`` when it is not one)."""
    from shipyard.core.pipelines.params import parse_params

    return parse_params(raw, name or source, source)


def flat_metrics(body: Any) -> dict[str, float]:
    """Numbers of a metrics file, nested keys joined with dots (booleans and text left out)."""
    out: dict[str, float] = {}
    for key, value in _leaves(body):
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def flat_params(body: Any) -> dict[str, str]:
    """Every leaf of a params file as the runner records a param: text as it is, other values as JSON (a list is
    one value, as in DVC)."""
    return {key: as_text(value) for key, value in _leaves(body, lists=False)}


def pick(params: Mapping[str, str], keys: list[str]) -> dict[str, str]:
    """The params of ``params`` named by ``keys`` (a dotted key may name a whole section: its leaves)."""
    out: dict[str, str] = {}
    for key in keys:
        if not key:
            return dict(params)
        out.update({k: v for k, v in params.items() if k == key or k.startswith(key + ".")})
    return out


def expand_recorded(params: Mapping[str, str]) -> dict[str, str]:
    """A run's params with a section expanded: a stage that uses all of a section (DVC's ``- params.yaml: [train]``)
    records ``train`` as a JSON object; it reads as ``train.lr``, ``train.depth``, as a params file's leaves."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value.startswith("{") and len(value) <= MAX_EXPANDED_CHARS:
            try:
                body = json.loads(value)
            except (ValueError, RecursionError):
                body = None
            if isinstance(body, dict) and body:
                file, sep, name = key.rpartition(":")
                out.update({f"{file}{sep}{leaf}": v for leaf, v in flat_params({name: body}).items()})
                continue
        out[key] = value
    return out


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _leaves(body: Any, lists: bool = True, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    if depth > 100:
        return []
    if isinstance(body, dict):
        out: list[tuple[str, Any]] = []
        for k, v in body.items():
            out.extend(_leaves(v, lists, f"{prefix}.{k}" if prefix else str(k), depth + 1))
        return out
    if lists and isinstance(body, list):
        out = []
        for i, v in enumerate(body):
            out.extend(_leaves(v, lists, f"{prefix}.{i}" if prefix else str(i), depth + 1))
        return out
    return [(prefix, body)] if prefix else []


def recorded_params(params: Mapping[str, str], default_file: str) -> Values:
    """A run's params (``train.lr``, ``other.yaml:key``) by file, as ``params diff`` shows files."""
    out: Values = {}
    for key, value in params.items():
        path, sep, name = key.rpartition(":")
        out.setdefault(path if sep else default_file, {})[name if sep else key] = value
    return out


def align(recorded: Mapping[str, Any], other: Values) -> Values:
    """Recorded values (keys without a file) by the files ``other`` holds each key in (``RECORDED`` for the
    rest): so a run's ``acc`` lines up with ``metrics.json``'s ``acc``."""
    where: dict[str, str] = {}
    for path in sorted(other):
        for key in other[path]:
            where.setdefault(key, path)
    out: Values = {}
    for key, value in recorded.items():
        out.setdefault(where.get(key, RECORDED), {})[key] = value
    return out


def diff(old: Values, new: Values, include_unchanged: bool = False) -> list[Change]:
    """Every (path, key) of either side whose value differs (or all, with ``include_unchanged``), sorted."""
    changes = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, {}), new.get(path, {})
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if va == vb and not include_unchanged:
                continue
            changes.append(Change(path, key, va, vb, _delta(va, vb)))
    return changes


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _delta(old: Any, new: Any) -> float | None:
    a, b = _number(old), _number(new)
    if a is None or b is None:
        return None
    return float(f"{b - a:.12g}")  # 0.56 - 0.53 is 0.03, not 0.030000000000000027
