"""The tracking service: start and end runs, log params, metrics, tags and artifacts."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.tree import put_path
from shipyard.core.lineage.records import (
    NO_CODE_VERSION,
    ArtifactRecord,
    CodeVersion,
    Metric,
    RunRecord,
    RunStatus,
)
from shipyard.core.lineage.search import Condition, parse_filter
from shipyard.errors import ImmutableError, InvalidInputError
from shipyard.ports import MetadataStore, ObjectStore, Progress, no_progress

DEFAULT_EXPERIMENT = "default"
DEFAULT_SEARCH_LIMIT = 1000
MAX_KEY = 250
MAX_NAME = 255
MAX_PARAM_VALUE = 6000
_ALL = 2**31 - 1  # a search limit that keeps every match


@dataclass(frozen=True, slots=True)
class Origin:
    """Where runs come from: who, on which host, in which process."""

    user: str
    host: str
    pid: int


class Tracker:
    def __init__(self, meta: MetadataStore, store: ObjectStore, origin: Origin,
                 code_version: Callable[[], CodeVersion] = lambda: NO_CODE_VERSION,
                 env_digest: Callable[[], Digest | None] = lambda: None,
                 pid_alive: Callable[[int], bool] = lambda pid: True,
                 writing: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext) -> None:
        self.meta = meta
        # held from storing objects to recording them on a run, so gc on a shared store never deletes them in
        # between (``MetadataStore.writers_lock``); a store of this project's own needs none
        self.writing = writing
        self.store = store
        self.origin = origin
        self._code_version = code_version
        self._env_digest = env_digest
        self._pid_alive = pid_alive
        self._open: set[str] = set()  # runs this process started (or adopted) and has not ended

    def start_run(self, name: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                  tags: Mapping[str, Any] | None = None, parent_id: str | None = None) -> RunRecord:
        run_id = uuid.uuid4().hex
        tags = {_key(k): str(v) for k, v in (tags or {}).items()}
        with self.writing():  # the code's diff and the environment capture are stored, then recorded
            run = RunRecord(
                id=run_id, name=_name(name or f"run-{run_id[:8]}", "run name"),
                experiment=_name(experiment or DEFAULT_EXPERIMENT, "experiment"),
                status=RunStatus.RUNNING, start_time=time.time(), end_time=None, user=self.origin.user,
                host=self.origin.host, pid=self.origin.pid, code=self._code_version(),
                env_digest=self._env_digest(), parent_id=parent_id, tags=tags,
            )
            self.meta.create_run(run)
        self._open.add(run_id)
        return run

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> None:
        self.meta.end_run(run_id, status, time.time())
        self._open.discard(run_id)

    def adopt(self, run_id: str) -> RunRecord:
        """Take over a run started by another process (a pipeline stage's run, handed to the stage).

        The run is looked up and checked once; later writes to it skip the lookup, as for a run this
        process started. Its end stays with the process that started it.
        """
        run = self.meta.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            raise ImmutableError(f"run {run.id[:8]} is {run.status}; its record is closed: start a new run")
        self._open.add(run.id)
        return run

    def _writable(self, run_id: str) -> None:
        if run_id in self._open:
            return
        run = self.meta.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            raise ImmutableError(f"run {run.id[:8]} is {run.status}; its record is closed: start a new run")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._writable(run_id)
        clean = {_key(k): _param_value(k, v) for k, v in params.items()}
        if clean:
            self.meta.log_params(run_id, clean)

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None,
                    timestamp: float | None = None) -> None:
        self._writable(run_id)
        now = time.time() if timestamp is None else timestamp
        batch = [Metric(_key(k), _metric_value(k, v), _step(step), now) for k, v in metrics.items()]
        if batch:
            self.meta.log_metrics(run_id, batch)

    def log_metric_batch(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self._writable(run_id)
        checked = [Metric(_key(m.key), _metric_value(m.key, m.value), _step(m.step), m.timestamp)
                   for m in metrics]
        if checked:
            self.meta.log_metrics(run_id, checked)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self._writable(run_id)
        self.meta.set_tags(run_id, {_key(k): str(v) for k, v in tags.items()})

    def log_artifact(self, run_id: str, path: Path, name: str | None = None,
                     progress: Progress = no_progress) -> ArtifactRecord:
        """Store a file or folder and record it on the run under ``name`` (default: its base name)."""
        self._writable(run_id)
        path = Path(path)
        if not path.exists():
            raise InvalidInputError(f"cannot log artifact {path}: no such file or folder")
        artifact = _artifact_name(name or path.name)
        with self.writing():
            stored = put_path(self.store, path, progress)
            record = ArtifactRecord(artifact, stored.digest, stored.size, stored.is_dir)
            self.meta.add_artifact(run_id, record)
        return record

    def record_inputs(self, run_id: str, inputs: Mapping[str, Digest]) -> None:
        self._writable(run_id)
        self.meta.add_inputs(run_id, inputs)

    def record_input_path(self, run_id: str, path: Path, name: str) -> Digest:
        """Store a file or folder the run read (the digest ``shipyard data add`` gives it) and record it among the
        run's inputs as ``name``; recording the same content again changes nothing."""
        self._writable(run_id)
        key = _artifact_name(name)
        with self.writing():
            stored = put_path(self.store, Path(path))
            known = self.meta.get_run(run_id).inputs.get(key)
            if known is not None and known != stored.digest:
                raise InvalidInputError(f"this run already read another version of {key}: log_input records "
                                        "what a run read once")
            if known is None:
                self.meta.add_inputs(run_id, {key: stored.digest})
        return stored.digest

    def record_output(self, run_id: str, path: str, digest: Digest, size: int, is_dir: bool) -> None:
        """Record an output already in the store (a stage's declared outs) on the run."""
        self._writable(run_id)
        self.meta.add_artifact(run_id, ArtifactRecord(_artifact_name(path), digest, size, is_dir))

    def get_run(self, run_id: str) -> RunRecord:
        return self.meta.get_run(run_id)

    def search(self, filter: str | None = None, limit: int = DEFAULT_SEARCH_LIMIT,
               order_by: str | None = None) -> list[RunRecord]:
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, not {limit}")
        conditions = parse_filter(filter)
        if any(c.needs_liveness for c in conditions):
            dead = self._dead_runs()
            conditions = tuple(replace(c, dead=dead) if c.needs_liveness else c for c in conditions)
        return self.meta.search_runs(conditions, limit, order_by)

    def _dead_runs(self) -> tuple[str, ...]:
        """The runs recorded as running that ``status_of`` shows as killed: their process is gone."""
        here = (Condition("attr", "status", "=", RunStatus.RUNNING.value),
                Condition("attr", "host", "=", self.origin.host))
        running = self.meta.search_runs(here, _ALL, None)
        return tuple(sorted(r.id for r in running if self.status_of(r) is RunStatus.KILLED))

    def status_of(self, run: RunRecord) -> RunStatus:
        """The run's status, with a run whose process died on this host shown as killed."""
        alive = run.id in self._open or self._pid_alive(run.pid)
        return run.effective_status(self.origin.host, alive)


def _key(key: Any) -> str:
    k = str(key)
    if not k or len(k) > MAX_KEY or k.strip() != k or any(c in k for c in "\n\r\t"):
        raise InvalidInputError(f"invalid key {k!r}: use 1-{MAX_KEY} characters without surrounding spaces")
    return k


def _name(text: str, what: str) -> str:
    if len(text) > MAX_NAME or not text.strip() or any(c in text for c in "\n\r\t"):
        raise InvalidInputError(f"invalid {what} {text[:40]!r}: use 1-{MAX_NAME} characters on one line")
    return text


def _param_value(key: Any, value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInputError(f"param {key!r} is {len(text)} characters; the limit is {MAX_PARAM_VALUE}: "
                                "log long values as an artifact")
    return text


def _metric_value(key: Any, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"metric {key!r} must be a number, not {value!r}") from None
    if math.isnan(number):
        raise InvalidInputError(f"metric {key!r} is NaN; log a number")
    return number


def _step(step: int | None) -> int:
    if step is None:
        return 0
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidInputError(f"step must be a non-negative integer, not {step!r}")
    return step


def _artifact_name(name: str) -> str:
    posix = name.replace("\\", "/").strip("/")
    if not posix or any(part in ("", ".", "..") for part in posix.split("/")):
        raise InvalidInputError(f"invalid artifact name {name!r}: use a relative path without '..'")
    return posix
