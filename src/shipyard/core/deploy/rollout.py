"""The local rollout's step machine (pure): the canary steps and each interval's measurements in, the next
weight, the verdict and why out. The interface runs the server, takes a measurement every analysis interval
(``core.deploy.measure``) and applies what this returns.

It reads the steps as Argo Rollouts does:

- ``weight: N`` sends N% of the traffic to the new version and goes straight on;
- ``pause: 30s`` waits (whole intervals);
- ``analysis: true`` waits for ``count`` conclusive measurements.

While the new version takes traffic every interval is measured, as Argo Rollouts' background analysis:
a rule that fails more than ``failure_limit`` times rolls back at once (weight 0), whatever the step; an
analysis step that sees more than ``inconclusive_limit`` inconclusive measurements stops the rollout
without promoting (no traffic is never a failure, nor a pass). After the last step the new version is
promoted (weight 100) and the caller moves the alias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from shipyard.core.deploy.config import AnalysisSpec, CanaryStep, seconds
from shipyard.core.deploy.measure import Measurement

Status = Literal["running", "promoted", "rolled back", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[CanaryStep, ...]
    interval_s: float
    count: int
    failure_limit: int
    inconclusive_limit: int

    @classmethod
    def of(cls, steps: Sequence[CanaryStep], spec: AnalysisSpec) -> Plan:
        return cls(tuple(steps), seconds(spec.interval), spec.count, spec.failure_limit, spec.inconclusive_limit)

    def ticks(self, step: CanaryStep) -> int:
        """Intervals a pause step lasts (at least one)."""
        return max(1, math.ceil(seconds(step.pause or "0s") / self.interval_s - 1e-9))


@dataclass(frozen=True, slots=True)
class State:
    step: int = 0  # index of the step in progress (len(steps) once done)
    weight: int = 0
    status: Status = "running"
    why: str = ""
    ticks: int = 0  # intervals spent in this step
    conclusive: int = 0  # conclusive measurements in this analysis step
    inconclusive: int = 0
    failures: tuple[tuple[str, int], ...] = ()  # (rule, failed measurements so far)
    last: tuple[Measurement, ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.status != "running"

    def failed(self, rule: str) -> int:
        return dict(self.failures).get(rule, 0)


def parse_steps(text: str) -> tuple[CanaryStep, ...]:
    """``10,analysis,50,pause=5s,analysis``: weights, ``analysis`` and ``pause=DURATION`` (or ``pause:``)."""
    out = []
    for raw in (p.strip() for p in text.split(",")):
        unreadable = ValueError(f"--steps: cannot read {raw!r}: write weights (10), `analysis` and `pause=30s`, "
                                "comma-separated, e.g. 10,analysis,50,analysis")
        if raw == "analysis":
            out.append(CanaryStep(analysis=True))
            continue
        try:
            if raw.startswith(("pause=", "pause:")):
                out.append(CanaryStep(pause=raw[6:].strip()))
                continue
            weight = int(raw)
        except ValueError:
            raise unreadable from None
        if not 0 <= weight <= 100:
            raise ValueError(f"--steps: weight {weight} is {'over 100' if weight > 100 else 'below 0'}: a weight is "
                             "the percent of traffic to the new version, 0 to 100")
        out.append(CanaryStep(weight=weight))
    if not out:
        raise ValueError("--steps: give at least one step, e.g. 10,analysis,50,analysis")
    return tuple(out)


def describe(step: CanaryStep) -> str:
    if step.weight is not None:
        return f"weight {step.weight}%"
    if step.pause is not None:
        return f"pause {step.pause}"
    return "analysis"


def start(plan: Plan) -> State:
    """The state before the first interval: the leading weight steps applied."""
    return _enter(plan, State())


def advance(plan: Plan, state: State, measured: Sequence[Measurement]) -> State:
    """The state after one analysis interval whose measurements are ``measured`` (empty: none taken)."""
    if state.done:
        return state
    state = replace(state, last=tuple(measured), ticks=state.ticks + 1)
    if state.weight > 0 and measured:
        counts = dict(state.failures)
        for m in measured:
            if m.verdict == "fail":
                counts[m.rule] = counts.get(m.rule, 0) + 1
                if counts[m.rule] > plan.failure_limit:
                    return replace(state, failures=tuple(sorted(counts.items())), weight=0, status="rolled back",
                                   why=f"{m.rule} {_show(m.value)} > {m.limit:g}"
                                       + (f" ({m.note})" if m.note else ""))
        state = replace(state, failures=tuple(sorted(counts.items())))
    step = plan.steps[state.step]
    if step.pause is not None:
        return _enter(plan, _next(state)) if state.ticks >= plan.ticks(step) else state
    # an analysis step: every rule measured, or the interval counts as inconclusive
    if measured and all(m.verdict != "inconclusive" for m in measured):
        state = replace(state, conclusive=state.conclusive + 1)
        return _enter(plan, _next(state)) if state.conclusive >= plan.count else state
    state = replace(state, inconclusive=state.inconclusive + 1)
    if state.inconclusive > plan.inconclusive_limit:
        idle = "; ".join(f"{m.rule}: {m.note}" for m in measured if m.verdict == "inconclusive")
        return replace(state, weight=0, status="inconclusive",
                       why=f"{state.inconclusive} inconclusive measurements at step {state.step + 1}"
                           + (f" ({idle})" if idle else ""))
    return state


def _next(state: State) -> State:
    return replace(state, step=state.step + 1, ticks=0, conclusive=0, inconclusive=0)


def _enter(plan: Plan, state: State) -> State:
    """Apply weight steps from ``state.step`` on, up to the next step that waits (or the end: promoted)."""
    while state.step < len(plan.steps):
        step = plan.steps[state.step]
        if step.weight is None:
            return state
        state = replace(_next(state), weight=step.weight)
    return replace(state, weight=100, status="promoted", why="every step passed")


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
