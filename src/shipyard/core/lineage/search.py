"""Run filters: ``metrics.accuracy > 0.9 and params.model = 'lr' and status = 'finished'``.

Parsed here into plain conditions; the metadata adapter turns them into its query language.
``status`` compares the status runs are shown with: a run recorded as running whose process is
gone is ``killed`` (the tracker lists those runs in ``Condition.dead`` before the query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shipyard.core.lineage.records import RunStatus
from shipyard.errors import InvalidInputError

Field = Literal["metrics", "params", "tags", "attr"]
OPS = ("<=", ">=", "!=", "=", "<", ">")
ATTRIBUTES = ("status", "name", "experiment", "user")
_COND = re.compile(
    r"""^\s*(?P<lhs>[A-Za-z_][\w.\-/:@]*)\s*(?P<op><=|>=|!=|==|=|<|>)\s*
        (?P<rhs>'[^']*'|"[^"]*"|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)
_ATTRIBUTE_PREFIXES = ("attributes", "attribute", "attr", "run")
_MLFLOW_ATTRIBUTES = {"run_name": "name", "user_id": "user", "experiment_id": "experiment"}
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
HINT = "write conditions like metrics.accuracy > 0.9 and params.model = 'lr', joined with 'and'"


@dataclass(frozen=True, slots=True)
class Condition:
    field: Field
    key: str
    op: str
    value: float | str
    # a status condition on running or killed: the ids of runs recorded as running that are shown as
    # killed (their process is gone); filled by the tracker, which alone can tell
    dead: tuple[str, ...] = ()

    @property
    def needs_liveness(self) -> bool:
        """Does this condition depend on which recorded-running runs are really alive?"""
        return self.field == "attr" and self.key == "status" and self.value in (RunStatus.RUNNING, RunStatus.KILLED)


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
    if dot and prefix in _ATTRIBUTE_PREFIXES:  # MLflow's attributes.status, attributes.run_name
        lhs = key
    lhs = _MLFLOW_ATTRIBUTES.get(lhs, lhs)
    if lhs in ATTRIBUTES:
        if op not in ("=", "!="):
            raise InvalidInputError(f"{lhs} is text: compare it with = or != and a quoted value")
        return Condition("attr", lhs, op, _status(str(value)) if lhs == "status" else str(value))
    raise InvalidInputError(
        f"unknown field {lhs!r} in filter: use metrics.KEY, params.KEY, tags.KEY or one of {', '.join(ATTRIBUTES)}"
    )


def _status(value: str) -> str:
    """A status to compare with: one of RunStatus, any case (MLflow writes ``'FINISHED'``)."""
    chosen = next((s for s in RunStatus if s.value == value.lower()), None)
    if chosen is None:
        raise InvalidInputError(f"unknown run status {value!r} in filter: use one of "
                                f"{', '.join(s.value for s in RunStatus)}")
    return chosen.value
