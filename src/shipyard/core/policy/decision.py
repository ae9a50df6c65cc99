"""A policy decision: the engine's answer read strictly, the audit record and its one-line summary, and the
decision as one more gate of a promotion (core.deploy.promotion).

Pure: the engine (a PolicyEngine port) is passed in; storing the input and recording the event is the wiring's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.deploy.promotion import Facts, Verdict, one_line
from shipyard.errors import ConfigError

NO_BUNDLE = "no policy bundle in policies/ (`shipyard policy init` writes the default one)"
MAX_REASONS = 50
MAX_SUMMARY_REASONS = 5
MAX_SUMMARY = 500  # the registry's limit on an audit event's summary (``models history``)


@dataclass(frozen=True)
class PolicyDecision:
    """Allow or deny at one gate, with why, the bundle's and the input's digests (None without a bundle)."""

    action: str
    env: str | None
    ref: str
    actor: str
    allowed: bool
    reasons: tuple[str, ...]
    bundle: str | None
    input: str | None
    notes: tuple[str, ...] = ()
    checks: tuple[tuple[str, bool], ...] = ()
    skipped: tuple[str, ...] = ()  # checks that do not apply (the metric with no policy.primary_metric)
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def evaluated(self) -> bool:
        """Whether a bundle decided (False: no policies/ folder, the gate passed without one)."""
        return self.bundle is not None

    def record(self) -> dict[str, Any]:
        """The ``policy`` record (``Registry.record_result(mv, "policy", ...)``)."""
        return {"action": self.action, "env": self.env, "allowed": self.allowed, "reasons": list(self.reasons),
                "bundle": self.bundle, "input": self.input, "actor": self.actor}

    def summary(self) -> str:
        """The history's line: ``policy deny promote iris@3 to production: <reasons>``, or an allow naming the
        bundle digest. Whole reasons only, as many as fit the registry's limit (never one cut mid-command, save
        a first reason longer than the limit, which ends with "…"); the record keeps them all."""
        where = f" to {self.env}" if self.env else ""
        head = f"policy {'allow' if self.allowed else 'deny'} {self.action} {self.ref}{where}"
        if self.allowed:
            return f"{head} (bundle {self.bundle})"
        line = f"{head}: "
        shown = 0
        for r in self.reasons[:MAX_SUMMARY_REASONS]:
            more = len(self.reasons) - shown - 1
            tail = f"; and {more} more" if more > 0 else ""
            candidate = line + ("; " if shown else "") + r
            if len(candidate + tail) > MAX_SUMMARY:
                break
            line, shown = candidate, shown + 1
        if shown == 0:
            return one_line(line + self.reasons[0], MAX_SUMMARY)
        more = len(self.reasons) - shown
        return line + (f"; and {more} more" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {**self.record(), "ref": self.ref, "notes": list(self.notes),
                "checks": [{"check": c, "passed": p, "skipped": c in self.skipped} for c, p in self.checks]}

    def eval_command(self) -> str:
        """The command that shows this decision's every check."""
        return f"shipyard policy eval {self.ref} --action {self.action}" + (f" --env {self.env}" if self.env else "")

    def denied_message(self, before: Sequence[str] = ()) -> str:
        """PolicyDeniedError's message, the same at every gate: one line per reason (``before``: a gate's own
        reasons, promote's image checks), then the command that shows every check."""
        where = f" to {self.env}" if self.env else ""
        return refusal(f"policy denied {self.action} {self.ref}{where} (bundle {self.bundle})",
                       (*before, *self.reasons), self.eval_command())


def refusal(head: str, reasons: Sequence[str], command: str) -> str:
    """A refused gate: ``head:``, one ``  - reason`` line each, then ```command` shows every check``."""
    return "\n".join([f"{head}:", *(f"  - {r}" for r in reasons), f"  `{command}` shows every check"])


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"policies: data.shipyard.decision.{what} must be a list of strings")
    return tuple(one_line(v) for v in value[:MAX_REASONS])


def read_decision(raw: Mapping[str, Any]) -> tuple[bool, tuple[str, ...], tuple[str, ...],
                                                    tuple[tuple[str, bool], ...], tuple[str, ...]]:
    """(allowed, reasons, notes, checks, skipped checks) from the bundle's decision object, read strictly:
    ``allow`` must be exactly true or false (undefined is never false here: it is a broken bundle), ``reasons``
    a list of strings. A deny must say why: with no reason, one is given."""
    allow = raw.get("allow")
    if not isinstance(allow, bool):
        raise ConfigError("policies: data.shipyard.decision.allow must be true or false; fix the bundle "
                          "(`shipyard policy test`)")
    reasons = _strings(raw.get("reasons", []), "reasons")
    notes = _strings(raw.get("notes", []), "notes")
    checks: list[tuple[str, bool]] = []
    skipped: list[str] = []
    for c in raw.get("checks", []) if isinstance(raw.get("checks"), list) else []:
        if isinstance(c, Mapping) and isinstance(c.get("check"), str) and isinstance(c.get("passed"), bool):
            checks.append((one_line(c["check"], 60), c["passed"]))
            if c.get("skipped") is True:
                skipped.append(checks[-1][0])
    if not allow and not reasons:
        reasons = ("the policy denied it without a reason (make the bundle's decision name one)",)
    return allow, reasons, notes, tuple(checks[:MAX_REASONS]), tuple(skipped)


class PolicyGate:
    """A decision already made, as one more gate of a promotion (``decide(facts, (*DEFAULT_GATES, gate))``)."""

    name = "policy"

    def __init__(self, decision: PolicyDecision) -> None:
        self.decision = decision

    def check(self, facts: Facts) -> Verdict:
        d = self.decision
        if not d.evaluated:
            return Verdict(self.name, True, NO_BUNDLE)
        if d.allowed:
            return Verdict(self.name, True, f"allowed by the policy bundle {d.bundle}")
        return Verdict(self.name, False, "policy: " + "; ".join(d.reasons))
