"""Experiments: the stage runs of one ``shipyard run`` joined into one row, as DVC's ``exp show`` shows them.

Every stage run a ``shipyard run`` invocation starts carries the tag ``shipyard.pipeline_run`` (one id
per invocation); a stage that was up to date or came from the cache is named, with the run that made
its result, in ``shipyard.pipeline_uses`` of the stage runs started after it. A row is then one
invocation: its commit and time, and the params and metrics of all its stages, the reused ones
included. The rows are built here from run records; the database is read by the caller, in a few
batched queries whatever the number of runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.lineage.records import RunRecord, RunStatus
from shipyard.core.lineage.search import Condition, parse_filter
from shipyard.core.lineage.valuediff import expand_recorded
from shipyard.errors import InvalidInputError

PIPELINE_RUN_TAG = "shipyard.pipeline_run"
PIPELINE_USES_TAG = "shipyard.pipeline_uses"
STAGE_TAG = "shipyard.stage"
METRICS_TAG = "shipyard.metrics"  # the stage's metrics files, a JSON list
MAX_USES_CHARS = 100_000  # a uses tag names a run per stage: far less; a larger one is ignored
_ORDER_ATTRS = ("time", "start_time", "commit")


@dataclass(frozen=True)
class Experiment:
    """One pipeline run: the stage runs of one ``shipyard run``, and the runs it reused as they were."""

    id: str
    start_time: float
    commit: str | None
    dirty: bool
    status: str
    stages: dict[str, str] = field(default_factory=dict)  # stage -> the run that made its result
    reused: tuple[str, ...] = ()  # the stages of ``stages`` that were up to date or came from the cache
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start_time": self.start_time, "commit": self.commit, "dirty": self.dirty,
                "status": self.status, "stages": dict(self.stages), "reused": list(self.reused),
                "params": dict(self.params), "metrics": dict(self.metrics)}


def uses_of(run: RunRecord) -> dict[str, str]:
    """The ``shipyard.pipeline_uses`` tag of ``run`` read as ``{stage: run id}``; {} when absent or damaged (a tag
    is text anyone with the database could write)."""
    text = run.tags.get(PIPELINE_USES_TAG)
    if not text or len(text) > MAX_USES_CHARS:
        return {}
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if isinstance(k, str) and isinstance(v, str) and len(v) == 32}


def join(runs: Iterable[RunRecord], fetch: Callable[[Sequence[str]], Iterable[RunRecord]],
         status_of: Callable[[RunRecord], RunStatus] | None = None) -> list[Experiment]:
    """One ``Experiment`` per pipeline run id among ``runs`` (stage runs tagged with one), newest first.

    ``fetch`` looks up, in one batch, the reused runs that ``runs`` does not hold. When two stages of one pipeline
    run record the same metric key (a ``foreach`` group's ``eval/lr/metrics.json`` and ``eval/rf/metrics.json``),
    that key is qualified in every row by where each value came from, as ``dvc exp show`` does: the stage's metrics
    file (``eval/lr/metrics.json:acc``), or the stage (``evaluate@lr:acc``) when it has several. A param key that
    two stages record with different values is qualified by the stage (``evaluate@lr:threshold``); one they share
    (params.yaml's ``train.lr``, read by both) stays one column.
    """
    groups: dict[str, list[RunRecord]] = {}
    by_id: dict[str, RunRecord] = {}
    uses: dict[str, dict[str, str]] = {}
    for run in runs:
        by_id[run.id] = run
        pid = run.tags.get(PIPELINE_RUN_TAG)
        if pid:
            groups.setdefault(pid, []).append(run)
            if PIPELINE_USES_TAG in run.tags:
                uses[run.id] = uses_of(run)
    wanted = {rid for used in uses.values() for rid in used.values()} - by_id.keys()
    if wanted:
        by_id.update((r.id, r) for r in fetch(sorted(wanted)))
    joined = []
    for pid, group in groups.items():
        group.sort(key=lambda r: (r.start_time, r.id))
        used: dict[str, str] = {}
        for r in group:
            used.update(uses.get(r.id, ()))
        stages: dict[str, tuple[float, RunRecord]] = {}
        for stage, rid in used.items():
            found = by_id.get(rid)
            if found is not None:
                stages[stage] = (found.start_time - 1e12, found)  # reused results come before what ran
        for r in group:
            stages[r.tags.get(STAGE_TAG) or r.name] = (r.start_time, r)
        joined.append((pid, group, used, stages))
    expanded: dict[str, dict[str, str]] = {}  # each run's params read once, though a reused run serves many rows
    for _, _, _, stages in joined:
        for _, r in stages.values():
            if r.id not in expanded:
                expanded[r.id] = expand_recorded(r.params)
    clashing_metrics, clashing_params = _clashes((stages for _, _, _, stages in joined), expanded)
    out = []
    for pid, group, used, stages in joined:
        params: dict[str, str] = {}
        metrics: dict[str, float] = {}
        for stage, (_, r) in sorted(stages.items(), key=lambda item: (item[1][0], item[1][1].id)):
            for k, v in expanded[r.id].items():
                params[f"{stage}:{k}" if k in clashing_params else k] = v
            if clashing_metrics.isdisjoint(r.metrics):
                metrics.update(r.metrics)
                continue
            source = _metrics_source(stage, r)
            for k, x in r.metrics.items():
                metrics[f"{source}:{k}" if k in clashing_metrics else k] = x
        statuses = {status_of(r) if status_of and r.status is RunStatus.RUNNING else r.status for r in group}
        status = next((s for s in (RunStatus.FAILED, RunStatus.KILLED, RunStatus.RUNNING) if s in statuses),
                      RunStatus.FINISHED)
        first = group[0]
        out.append(Experiment(
            id=pid, start_time=first.start_time, commit=first.code.commit, dirty=any(r.code.dirty for r in group),
            status=str(status), stages={s: r.id for s, (_, r) in sorted(stages.items())},
            reused=tuple(sorted(s for s in used if s in stages and stages[s][1].tags.get(PIPELINE_RUN_TAG) != pid)),
            params=params, metrics=metrics))
    out.sort(key=lambda e: (e.start_time, e.id), reverse=True)
    return out


def _clashes(runs_of: Iterable[dict[str, tuple[float, RunRecord]]],
             expanded: dict[str, dict[str, str]]) -> tuple[set[str], set[str]]:
    """The metric keys two stages of one pipeline run record, and the param keys they record with different
    values: those are qualified by where they came from in every row (so each row has the same columns)."""
    metrics: set[str] = set()
    params: set[str] = set()
    for stages in runs_of:
        seen_metrics: set[str] = set()
        seen_params: dict[str, str] = {}
        for _, r in stages.values():
            metrics.update(seen_metrics.intersection(r.metrics))
            seen_metrics.update(r.metrics)
            for k, v in expanded[r.id].items():
                if seen_params.setdefault(k, v) != v:
                    params.add(k)
    return metrics, params


def _metrics_source(stage: str, run: RunRecord) -> str:
    """Where ``run``'s metrics came from: its stage's one metrics file (the ``shipyard.metrics`` tag), else the
    stage's name."""
    text = run.tags.get(METRICS_TAG) or ""
    try:
        files = json.loads(text) if 0 < len(text) <= MAX_USES_CHARS else None
    except (ValueError, RecursionError):
        files = None
    if isinstance(files, list) and len(files) == 1 and isinstance(files[0], str) and files[0]:
        return files[0]
    return stage


def select(experiments: Sequence[Experiment], where: str | None, order_by: str | None,
           limit: int) -> list[Experiment]:
    """``experiments`` that pass ``where`` (``runs list``'s filter: ``metrics.acc > 0.9 and params.train.lr =
    '0.1'``; a qualified key as written: ``metrics.eval/lr/metrics.json:acc > 0.8``), ordered by ``order_by``
    (``time``, ``commit``, ``metrics.KEY`` or ``params.KEY``, ``asc`` or
    ``desc``: default newest first), at most ``limit``."""
    if limit < 1:
        raise InvalidInputError(f"limit must be at least 1, not {limit}")
    conditions = parse_filter(where)
    for c in conditions:
        if c.field not in ("metrics", "params"):
            raise InvalidInputError(f"exp show filters on metrics.KEY and params.KEY, not {c.key!r}")
    kept = [e for e in experiments if all(_passes(e, c) for c in conditions)]
    if order_by and order_by.strip():
        key, _, direction = order_by.strip().partition(" ")
        direction = direction.strip().lower()
        if direction not in ("", "asc", "desc"):
            raise InvalidInputError(f"cannot order by {order_by!r}: write KEY, 'KEY asc' or 'KEY desc'")
        sort_key = _sort_key(key)
        present = [e for e in kept if sort_key(e) is not None]
        absent = [e for e in kept if sort_key(e) is None]
        present.sort(key=lambda e: sort_key(e) or (0, 0.0, ""), reverse=direction != "asc")
        kept = present + absent  # rows without the key last, either way
    return kept[:limit]


def _sort_key(key: str) -> Callable[[Experiment], tuple[int, float, str] | None]:
    prefix, dot, name = key.partition(".")
    if key in _ORDER_ATTRS:
        if key == "commit":
            return lambda e: None if e.commit is None else (1, 0.0, e.commit)
        return lambda e: (0, e.start_time, "")
    if dot and prefix in ("metrics", "metric"):
        return lambda e: None if name not in e.metrics else (0, e.metrics[name], "")
    if dot and prefix in ("params", "param"):
        return lambda e: None if name not in e.params else _orderable(e.params[name])
    raise InvalidInputError(f"cannot order by {key!r}: use time, commit, metrics.KEY or params.KEY")


def _orderable(text: str) -> tuple[int, float, str]:
    """Numbers before text, numbers by value (a param is recorded as text: "0.1", "10")."""
    try:
        value = float(text)
    except ValueError:
        return (1, 0.0, text)
    return (0, value, "") if math.isfinite(value) else (1, 0.0, text)


def _passes(e: Experiment, c: Condition) -> bool:
    if c.field == "metrics":
        if c.key not in e.metrics:
            return False
        return _compare(e.metrics[c.key], c.op, float(c.value))
    value = e.params.get(c.key)
    if value is None:
        return c.op == "!="  # as runs list: a run without the key differs from any value
    return (value == str(c.value)) == (c.op == "=")


def _compare(a: float, op: str, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b, "!=": a != b}[op]


def columns(experiments: Sequence[Experiment]) -> tuple[list[str], list[str]]:
    """The param keys and the metric keys of ``experiments``, each sorted: the table's columns."""
    params = sorted({k for e in experiments for k in e.params})
    metrics = sorted({k for e in experiments for k in e.metrics})
    return params, metrics
