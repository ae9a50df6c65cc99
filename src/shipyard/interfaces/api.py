"""The Python API, familiar to MLflow users: ``with shipyard.start_run(): shipyard.log_metric(...)``.

Services are opened from the environment (``SHIPYARD_HOME``, ``SHIPYARD_DB_URL``,
``SHIPYARD_STORE``) and the working directory on first use, and reused while those stay the same.
A pipeline runner hands its run to a child process through ``SHIPYARD_RUN_ID``.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
from shipyard.core.registry.records import AuditEvent, ModelVersion
from shipyard.wiring import Services, from_environment

_ENV_KEYS = ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_ACTOR")
_lock = threading.RLock()
_services: dict[tuple[str | None, ...], Services] = {}
_stack: list[ActiveRun] = []


def _svc() -> Services:
    key = (*(os.environ.get(k) for k in _ENV_KEYS), os.getcwd())
    svc = _services.get(key)
    if svc is None:
        with _lock:
            svc = _services.get(key)
            if svc is None:
                svc = _services[key] = from_environment(anywhere=True)
    return svc


class ActiveRun:
    """A run being recorded; use it as a context manager to end it (failed if an error escapes)."""

    def __init__(self, record: RunRecord, services: Services, owned: bool = True) -> None:
        self.record = record
        self._svc = services
        self._owned = owned

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    def log_param(self, key: str, value: Any) -> None:
        self._svc.tracker.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._svc.tracker.log_params(self.id, params)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._svc.tracker.log_metrics(self.id, {key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._svc.tracker.log_metrics(self.id, metrics, step)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        with _lock:
            if self in _stack:
                _stack.remove(self)
        if self._owned:
            self._svc.tracker.end_run(self.id, RunStatus(status))

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        else:
            self.end(RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id[:8]}>"


def start_run(name: str | None = None, experiment: str | None = None,
              tags: Mapping[str, Any] | None = None) -> ActiveRun:
    """Start recording a run; inside another run it becomes that run's child."""
    svc = _svc()
    parent = _stack[-1].id if _stack else os.environ.get("SHIPYARD_RUN_ID")
    record = svc.tracker.start_run(name=name, experiment=experiment or "default", tags=tags, parent_id=parent)
    run = ActiveRun(record, svc)
    with _lock:
        _stack.append(run)
    return run


def active_run() -> ActiveRun | None:
    """The innermost run started here, or the run handed over in ``SHIPYARD_RUN_ID``, or None."""
    if _stack:
        return _stack[-1]
    handed = os.environ.get("SHIPYARD_RUN_ID")
    if handed:
        svc = _svc()
        return ActiveRun(svc.tracker.get_run(handed), svc, owned=False)
    return None


def _current() -> ActiveRun:
    run = active_run()
    if run is None:
        run = start_run()
        atexit.register(_end_at_exit, run)
    return run


def _end_at_exit(run: ActiveRun) -> None:
    if run in _stack:
        run.end(RunStatus.FINISHED)


def end_run(status: str = "finished") -> None:
    """End the innermost active run."""
    if _stack:
        _stack[-1].end(RunStatus(status))


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _current().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    _current().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _current().log_metrics(metrics, step)


def log_batch(metrics: Iterable[tuple[str, float, int]] = (), params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None) -> None:
    """Log many values at once: ``metrics`` as ``(key, value, step)`` tuples, written in one transaction."""
    run = _current()
    tracker = run._svc.tracker
    if params:
        tracker.log_params(run.id, params)
    if tags:
        tracker.set_tags(run.id, tags)
    now = time.time()
    batch = [Metric(key, value, step, now) for key, value, step in metrics]
    if batch:
        tracker.log_metric_batch(run.id, batch)


def set_tags(tags: Mapping[str, Any]) -> None:
    run = _current()
    run._svc.tracker.set_tags(run.id, tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> ArtifactRecord:
    """Store a file or folder in the content-addressed store and record it on the current run."""
    run = _current()
    return run._svc.tracker.log_artifact(run.id, Path(path), name)


def save_model(model: Any, path: str | os.PathLike[str], flavor: str = "sklearn", examples: Any = None,
               **options: Any) -> Path:
    """Write ``model`` into a new folder that ``shipyard models register`` or ``log_model`` accepts."""
    from shipyard.core.registry.saving import save_model as _save
    from shipyard.wiring import flavor as get_flavor

    _save(get_flavor(flavor), model, Path(path), examples, options)
    return Path(path)


def log_model(model: Any, name: str, flavor: str = "sklearn", examples: Any = None,
              description: str = "", version: int | None = None, **options: Any) -> ModelVersion:
    """Save ``model`` and register it as the next version of ``name``, linked to the current run.

    ``examples`` (a few inputs) are kept with the model's outputs on them as golden examples.
    ``version`` is only a check: naming a version that exists fails, versions never change.
    """
    from shipyard.core.registry.refs import check_model_name

    check_model_name(name)
    run = _current()
    svc = run._svc
    with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
        folder = Path(tmp) / "model"
        save_model(model, folder, flavor, examples, **options)
        current = svc.tracker.get_run(run.id)
        return svc.registry.register(name, folder, run_id=run.id, metrics=current.metrics,
                                     params=current.params, description=description, version=version,
                                     trust_as_registrant=True)


def load_model(ref: str) -> Any:
    """The model behind ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``, verified against its digests.

    A version that needs code run to load (a pickle, a class to import, stored code, skops types
    beyond Shipyard's allowlist, functions included) loads only if that was trusted for it, by you
    (``SHIPYARD_ACTOR``) or a reviewer you list in ``SHIPYARD_TRUSTED_ACTORS``: ``log_model`` trusts
    what it saved itself, for its own actor; anything else needs ``trust_model`` (or
    ``shipyard models trust``).
    """
    return _svc().registry.load(ref)


def trust_model(ref: str, reason: str, *, pickle: bool = False, code: bool = False,
                types: Iterable[str] = (), classes: Iterable[str] = ()) -> AuditEvent:
    """Trust what loading ``ref``'s version may run, and say why; the decision goes in the audit log.

    ``pickle``: unpickle its files; ``code``: run its stored program (TorchScript); ``types``: skops
    types and functions beyond Shipyard's allowlist (``"mypackage.MyTransformer"``, ``"numpy.sort"``);
    ``classes``: classes to import and build (``"mypackage.nets:TinyNet"``). Each call replaces your
    earlier decision for the version: name everything it needs. The decision counts for you and for
    those who list you in ``SHIPYARD_TRUSTED_ACTORS``. Only trust a version whose author you trust.
    """
    from shipyard.core.registry.trust import TrustSet

    items = TrustSet.of(pickle, code, types, classes)
    return _svc().registry.trust(ref, items, reason)


def get_model_version(ref: str) -> ModelVersion:
    return _svc().registry.resolve(ref)


def set_alias(name: str, alias: str, version: int, reason: str = "") -> None:
    """Point ``name@alias`` at ``version``; the move is written to the audit log."""
    _svc().registry.set_alias(name, alias, version, reason)


def get_run(run_id: str) -> RunRecord:
    return _svc().tracker.get_run(run_id)


def search_runs(filter: str | None = None, limit: int = 1000, order_by: str | None = None) -> list[RunRecord]:
    """Runs matching ``filter`` (e.g. ``"metrics.accuracy > 0.9 and params.C = '1.0'"``), newest first."""
    return _svc().tracker.search(filter, limit, order_by)
