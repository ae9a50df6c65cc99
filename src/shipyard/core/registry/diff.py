"""Two model versions' metrics and params side by side, with the change: the table a pull request's comment shows.

Pure: the versions' metrics come in as mappings (the interface reads them from the registry and the producing
runs). Rendered as rows for a terminal table, a dict for ``--json``, or Markdown for a comment, where every
name and value is escaped (a metric key is data someone else wrote).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_ROWS = 200  # a comment stays readable; the rest is counted


@dataclass(frozen=True)
class Side:
    """One version: its label (``iris@3``), metrics and params; ``None`` when it does not exist (yet)."""

    label: str
    metrics: Mapping[str, float] | None
    params: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Row:
    key: str
    old: float | None
    new: float | None

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None or not (math.isfinite(self.old) and math.isfinite(self.new)):
            return None
        return self.new - self.old

    def change_text(self) -> str:
        if self.old is None and self.new is not None:
            return "new"
        if self.new is None and self.old is not None:
            return "gone"
        delta = self.change
        if delta is None:
            return "" if self.old == self.new or (self.old is not None and math.isnan(self.old)
                                                  and self.new is not None and math.isnan(self.new)) else "changed"
        if delta == 0:
            return "="
        text = f"{delta:+.4g}"
        if self.old:
            text += f" ({delta / abs(self.old):+.1%})"
        return text


@dataclass(frozen=True)
class MetricsDiff:
    base: Side
    head: Side
    metrics: tuple[Row, ...]
    params: tuple[tuple[str, str | None, str | None], ...]  # only the params that differ

    def to_dict(self) -> dict[str, object]:
        return {"base": self.base.label, "head": self.head.label, "base_exists": self.base.metrics is not None,
                "metrics": [{"key": r.key, "base": r.old, "head": r.new, "change": r.change} for r in self.metrics],
                "params": [{"key": k, "base": a, "head": b} for k, a, b in self.params]}


def diff(base: Side, head: Side) -> MetricsDiff:
    old, new = base.metrics or {}, head.metrics or {}
    rows = tuple(Row(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)))
    params: tuple[tuple[str, str | None, str | None], ...] = ()
    if base.params is not None and head.params is not None:
        a, b = base.params, head.params
        params = tuple((k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return MetricsDiff(base, head, rows, params)


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # what makes markup in a table cell


def md(text: str) -> str:
    """``text`` as literal Markdown table-cell text: no markup, no HTML, no line break, bounded."""
    flat = " ".join(text.split())
    if len(flat) > 120:
        flat = flat[:117] + "..."
    return _MD_SPECIAL.sub(r"\\\1", flat)


def markdown(d: MetricsDiff) -> str:
    lines = [f"### Shipyard: metrics of {md(d.head.label)} against {md(d.base.label)}", ""]
    if d.base.metrics is None:
        lines += [f"{md(d.base.label)} does not exist yet: {md(d.head.label)}'s metrics alone.", ""]
    if not d.metrics:
        lines.append("No metrics recorded for either version.")
    else:
        if d.base.metrics is None:
            lines += ["| metric | " + md(d.head.label) + " |", "| --- | ---: |"]
            lines += [f"| {md(r.key)} | {number(r.new)} |" for r in d.metrics[:MAX_ROWS]]
        else:
            lines += [f"| metric | {md(d.base.label)} | {md(d.head.label)} | change |", "| --- | ---: | ---: | ---: |"]
            lines += [f"| {md(r.key)} | {number(r.old)} | {number(r.new)} | {r.change_text()} |"
                      for r in d.metrics[:MAX_ROWS]]
        if len(d.metrics) > MAX_ROWS:
            lines.append(f"\n{len(d.metrics) - MAX_ROWS} more metrics not shown.")
    if d.params:
        lines += ["", "| param | " + md(d.base.label) + " | " + md(d.head.label) + " |", "| --- | --- | --- |"]
        lines += [f"| {md(k)} | {md(a if a is not None else '-')} | {md(b if b is not None else '-')} |"
                  for k, a, b in d.params[:MAX_ROWS]]
    return "\n".join(lines) + "\n"
