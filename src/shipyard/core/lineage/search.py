"""Run filters: ``metrics.accuracy > 0.9 and params.model = 'lr' and status = 'finished'``.

Parsed here into plain conditions; the metadata adapter turns them into its query language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shipyard.errors import InvalidInputError

Field = Literal["metrics", "params", "tags", "attr"]
OPS = ("<=", ">=", "!=", "=", "<", ">")
ATTRIBUTES = ("status", "name", "experiment", "user")
_COND = re.compile(
    r"""^\s*(?P<lhs>[A-Za-z_][\w.\-/]*)\s*(?P<op><=|>=|!=|==|=|<|>)\s*
        (?P<rhs>'[^']*'|"[^"]*"|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
HINT = "write conditions like metrics.accuracy > 0.9 and params.model = 'lr', joined with 'and'"


@dataclass(frozen=True, slots=True)
class Condition:
    field: Field
    key: str
    op: str
    value: float | str


def parse_filter(text: str | None) -> tuple[Condition, ...]:
    if text is None or not text.strip():
        return ()
    return tuple(_parse_one(part) for part in _AND.split(text.strip()))


def _parse_one(part: str) -> Condition:
    m = _COND.match(part)
    if not m:
        raise InvalidInputError(f"cannot read filter condition {part.strip()!r}: {HINT}")
    lhs, op, rhs = m["lhs"], m["op"], m["rhs"]
    op = "=" if op == "==" else op
    quoted = rhs[0] in "'\""
    value: float | str = rhs[1:-1] if quoted else float(rhs)
    prefix, dot, key = lhs.partition(".")
    if dot and prefix in ("metrics", "metric"):
        if quoted:
            raise InvalidInputError(f"metric {key!r} is a number: compare it with a number, not {rhs}")
        return Condition("metrics", key, op, value)
    if dot and prefix in ("params", "param", "tags", "tag"):
        field: Field = "params" if prefix.startswith("param") else "tags"
        if op not in ("=", "!="):
            raise InvalidInputError(f"{prefix}.{key} is text: compare it with = or != and a quoted value")
        return Condition(field, key, op, str(value) if quoted else rhs)
    if not dot and lhs in ATTRIBUTES:
        if op not in ("=", "!="):
            raise InvalidInputError(f"{lhs} is text: compare it with = or != and a quoted value")
        return Condition("attr", lhs, op, str(value))
    raise InvalidInputError(
        f"unknown field {lhs!r} in filter: use metrics.KEY, params.KEY, tags.KEY or one of {', '.join(ATTRIBUTES)}"
    )
