"""``shipyard.Client``: one project's tracking and registry, owned and closed like ``httpx.Client``.

A client holds no "current run": its methods name the run they write to, in MlflowClient's shapes
(``client.log_metric(run_id, key, value, timestamp=None, step=None)``). The module functions
(``shipyard.log_metric(key, value)``) keep the current run per thread and task, and delegate to a
default client.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.core.lineage.records import ArtifactRecord, RunData, RunInfo, RunRecord, RunStatus
from shipyard.core.lineage.tracking import DEFAULT_EXPERIMENT, DEFAULT_SEARCH_LIMIT
from shipyard.core.registry.records import AuditEvent, ModelVersion
from shipyard.core.registry.refs import RUNS_URI, ModelRef
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.interfaces.api import shapes
from shipyard.interfaces.api.client_files import FileMethods
from shipyard.interfaces.api.mlflow_client import MlflowMethods
from shipyard.wiring import ApiServices, Services, open_api

PathLike = str | os.PathLike[str]
# set_tracking_uri's choice (project folder, database URL), for the whole process as MLflow's tracking
# URI: the default of Client() and of the module functions
TRACKING: list[tuple[Path | None, str | None]] = []


class Client(MlflowMethods, FileMethods):
    """Runs and models of one project, through services this object opens and closes.

    ``project``: the project folder (default: the project found at or above the working folder, or
    the working folder itself outside any project); ``tracking_uri``: a database URL
    (``sqlite:///…``, ``postgresql://…``) for runs and models instead of the project's own. With
    neither, what ``shipyard.set_tracking_uri`` chose, if anything, as ``MlflowClient()`` does.
    Use it in a ``with`` block, or call ``close()``: it releases the database connections.
    """

    def __init__(self, project: PathLike | None = None, *, tracking_uri: str | None = None) -> None:
        if project is None and tracking_uri is None and TRACKING:
            chosen, tracking_uri = TRACKING[-1]
            project = chosen
        self._setup(open_api(Path(project) if project is not None else None, tracking_uri))

    @classmethod
    def _opened(cls, opened: ApiServices) -> Client:
        client = cls.__new__(cls)
        client._setup(opened)
        return client

    def _setup(self, opened: ApiServices) -> None:
        self._svc: Services | None = opened.services
        self.note = opened.note  # where a new .shipyard folder is made, for the default client to say once
        self._lock = threading.Lock()
        self._adopted: dict[str, ActiveRun] = {}

    # -- lifetime --------------------------------------------------------------------------------------------

    @property
    def services(self) -> Services:
        if self._svc is None:
            raise RuntimeError("this shipyard.Client is closed: open a new one")
        return self._svc

    @property
    def closed(self) -> bool:
        return self._svc is None

    def close(self) -> None:
        """Release the database connections; later calls raise. Closing twice is harmless."""
        svc, self._svc = self._svc, None
        if svc is not None:
            svc.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._svc is None:
            return "<shipyard.Client closed>"
        return f"<shipyard.Client home={self._svc.settings.home}>"

    # -- runs ------------------------------------------------------------------------------------------------

    def start_run(self, run_name: str | None = None, experiment: str | None = None,
                  tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None) -> ActiveRun:
        """Start a run and return it; use it as a context manager to end it (failed if an error escapes)."""
        record = self.services.tracker.start_run(name=run_name, experiment=experiment or DEFAULT_EXPERIMENT,
                                                 tags=tags, parent_id=parent_run_id)
        return ActiveRun(record, self)

    def adopt_run(self, run_id: str, owned: bool = False) -> ActiveRun:
        """A run started elsewhere and still running (a pipeline stage's), looked up once.

        Later writes to it skip the lookup. ``owned``: this program ends it (MLflow's resumed run).
        """
        with self._lock:
            run = self._adopted.get(run_id)
            if run is None or run.ended:
                run = ActiveRun(self.services.tracker.adopt(run_id), self, owned=owned)
                self._adopted[run_id] = self._adopted[run.id] = run
            return run

    def create_run(self, experiment_id: str | None = None, start_time: int | None = None,
                   tags: Mapping[str, Any] | None = None, run_name: str | None = None) -> RunRecord:
        """MlflowClient's form: start a run; end it with ``set_terminated``. Experiments are named, not numbered."""
        if start_time is not None:
            raise InvalidInputError("start_time cannot be set: Shipyard records when it starts the run")
        return self.start_run(run_name, experiment_id, tags).record

    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
        """End a run (``"FINISHED"`` by default, or ``"FAILED"``/``"KILLED"``); its record is closed after."""
        if end_time is not None:
            raise InvalidInputError("end_time cannot be set: Shipyard records when it ends the run")
        self.services.tracker.end_run(run_id, shapes.status(status))

    def get_run(self, run_id: str) -> RunRecord:
        """The run (an id or a unique prefix), with the status ``shipyard runs`` shows: a run recorded as
        running whose process is gone is killed. MLflow's ``run.info`` and ``run.data`` read on it."""
        return self._shown(self.services.tracker.get_run(run_id))

    def _shown(self, run: RunRecord) -> RunRecord:
        if run.status is not RunStatus.RUNNING:
            return run
        status = self.services.tracker.status_of(run)
        return run if status is run.status else replace(run, status=status)

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        self.services.tracker.log_params(run_id, {key: value})
        return value

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.services.tracker.log_params(run_id, params)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None, step: int | None = None,
                   synchronous: bool | None = None) -> None:
        """``timestamp`` in milliseconds since the epoch, as MLflow's (default: now)."""
        self.services.tracker.log_metrics(run_id, {key: value}, step, shapes.seconds(timestamp))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None,
                    timestamp: int | None = None) -> None:
        self.services.tracker.log_metrics(run_id, metrics, step, shapes.seconds(timestamp))

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        self.services.tracker.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.services.tracker.set_tags(run_id, tags)

    def log_batch(self, run_id: str, metrics: Iterable[Any] = (), params: Mapping[str, Any] | Iterable[Any] = (),
                  tags: Mapping[str, Any] | Iterable[Any] = (), synchronous: bool | None = None) -> None:
        """Metrics as ``(key, value, step)`` tuples or MLflow ``Metric`` objects; params and tags as
        mappings or ``Param``/``RunTag`` objects. The metrics are written in one transaction."""
        tracker = self.services.tracker
        if values := shapes.pairs(params):
            tracker.log_params(run_id, values)
        if values := shapes.pairs(tags):
            tracker.set_tags(run_id, values)
        batch = shapes.metrics(metrics, time.time())
        if batch:
            tracker.log_metric_batch(run_id, batch)

    def log_artifact(self, run_id: str, local_path: PathLike, artifact_path: str | None = None, *,
                     name: str | None = None) -> ArtifactRecord:
        """Store a file or folder and record it on the run: as ``artifact_path/BASENAME`` (MLflow's
        folder within the run), or exactly as ``name``."""
        path = Path(local_path)
        return self.services.tracker.log_artifact(run_id, path, name or shapes.artifact_name(path.name, artifact_path))

    def log_artifacts(self, run_id: str, local_dir: PathLike, artifact_path: str | None = None) -> ArtifactRecord:
        """Store a folder as one artifact, named ``artifact_path`` (default: the folder's name)."""
        folder = Path(local_dir)
        if not folder.is_dir():
            raise InvalidInputError(f"cannot log artifacts from {folder}: not a folder (log_artifact takes a file)")
        return self.services.tracker.log_artifact(run_id, folder, artifact_path or folder.resolve().name)

    def search_runs(self, experiment_ids: Sequence[str] | str | None = None, filter_string: str = "",
                    run_view_type: int | None = None, max_results: int = DEFAULT_SEARCH_LIMIT,
                    order_by: Sequence[str] | str | None = None, page_token: str | None = None) -> list[RunRecord]:
        """Runs matching ``filter_string`` (``"metrics.acc > 0.9 and params.C = '1.0'"``), newest first.

        ``status = 'killed'`` (or MLflow's ``attributes.status = 'KILLED'``) matches the status runs are
        shown with: a run recorded as running whose process is gone is killed.

        ``experiment_ids``: one experiment's name (Shipyard names experiments); ``order_by``: one key,
        e.g. ``["metrics.acc DESC"]``. All results come in one page.
        """
        if page_token:
            raise InvalidInputError("search_runs returns every match in one page: there is no next page token")
        found = self.services.tracker.search(shapes.experiment_filter(filter_string, experiment_ids), max_results,
                                             _one_order(order_by))
        return [self._shown(r) for r in found]

    # -- models ----------------------------------------------------------------------------------------------

    def log_model(self, run_id: str, model: Any, name: str, flavor: str = "sklearn", examples: Any = None,
                  description: str = "", version: int | None = None, artifact_path: str | None = None, *,
                  requirements: Sequence[str] = (), tolerance: Mapping[str, float] | None = None,
                  reference: Any = None, code_paths: Sequence[PathLike] | None = None,
                  **options: Any) -> ModelVersion:
        """Save ``model``, keep it on the run (as ``artifact_path``, if given) and register it as the
        next version of ``name``, with the run's params and metrics. ``requirements``: the packages the
        model's own code needs (names; the lock pins them); ``tolerance``: ``{"rtol", "atol"}`` for
        its golden examples; ``reference``: the training data (or a sample), profiled with the model's answers
        on it and recorded with the version, for drift monitoring (``pip install 'shipyard[monitor]'``);
        ``code_paths``: project files or folders stored with the version and importable when it loads."""
        from shipyard.core.registry.refs import check_model_name
        from shipyard.core.registry.saving import save_model as _save
        from shipyard.wiring import flavor as get_flavor

        check_model_name(name)
        options = flavor_options(flavor, options, code_paths)
        profile = None
        if reference is not None:  # profiled before anything is saved: a reference that fails registers nothing
            from shipyard.errors import InvalidInputError, ShipyardError
            from shipyard.wiring.monitoring import profile_reference

            try:
                answers = get_flavor(flavor).predict(model, reference)
            except ShipyardError:
                raise
            except Exception as exc:  # the model's own error on this data: nothing is registered
                raise InvalidInputError(f"reference: the model cannot answer on it ({type(exc).__name__}: "
                                        f"{str(exc)[:300]}); give the data it was trained on, or a sample") from exc
            profile = profile_reference(reference, answers)
        svc = self.services
        with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
            folder = Path(tmp) / "model"
            _save(get_flavor(flavor), model, folder, examples, options, requirements=requirements,
                  tolerance=tolerance)
            if artifact_path:
                svc.tracker.log_artifact(run_id, folder, artifact_path)
            current = svc.tracker.get_run(run_id)
            mv = svc.registry.register(name, folder, run_id=current.id, metrics=current.metrics,
                                       params=current.params, description=description, version=version,
                                       trust_as_registrant=True)
        if "shipyard.stage" in current.tags:  # a pipeline stage's run: the version gets its SLSA provenance
            from shipyard.wiring.signing import record_version_provenance

            record_version_provenance(svc, mv, current)
        if profile is not None:
            from shipyard.wiring.monitoring import record_profile

            record_profile(svc, mv, profile)
        return mv

    def register_model(self, model_uri: PathLike, name: str) -> ModelVersion:
        """Register the saved model at ``runs:/RUN_ID/PATH`` (logged on a run) or in a local folder."""
        from shipyard.core.artifacts.tree import materialize
        from shipyard.core.registry.service import SavedModel

        svc = self.services
        text = os.fspath(model_uri)
        if not text.startswith(RUNS_URI):
            return svc.registry.register(name, Path(text))
        run_id, path = shapes.run_artifact(text)
        run = svc.tracker.get_run(run_id)
        logged = next((a for a in run.artifacts if a.path == path.strip("/")), None)
        if logged is None or not logged.is_dir:
            raise NotFoundError(f"run {run.id[:8]} has no saved model at {path!r}: log one with "
                                "log_model(..., artifact_path=PATH)")
        with tempfile.TemporaryDirectory(prefix="shipyard-register-") as tmp:
            folder = Path(tmp) / "model"
            materialize(svc.store, logged.digest, folder)
            SavedModel.read(folder, text)  # not one: the error names the URI, not this temporary folder
            return svc.registry.register(name, folder, run_id=run.id, metrics=run.metrics, params=run.params)

    def load_model(self, model_uri: str | os.PathLike[str]) -> Any:
        """The model behind ``iris@3``, ``iris@champion``, ``models:/iris/3``, ``models:/iris@champion``,
        ``runs:/RUN_ID/PATH`` (registered or not) or a folder ``save_model`` wrote (a path with a ``/`` in it, or a
        ``file://`` URI)."""
        from shipyard.wiring.signing import require_signature

        registry = self.services.registry
        folder = shapes.local_folder(model_uri)
        if folder is not None:  # save_model's folder, by path or file:// URI, as MLflow loads it
            require_signature(self.services, None, "load", str(folder))
            return registry.load_folder(folder)
        ref = ModelRef.parse(shapes.model_ref(model_uri))
        try:
            mv = registry.resolve(ref)
        except NotFoundError:
            if ref.run_id is None:
                raise
            require_signature(self.services, None, "load", str(ref))  # a version is signed, never a run's files
            return registry.load_logged(ref)  # runs:/ID/PATH that no version holds: as MLflow loads it
        require_signature(self.services, mv, "load")  # with signing.require_signed, before any byte is loaded
        return registry.load(mv.ref)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return self.services.registry.resolve(shapes.version_ref(name, version))

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.services.registry.resolve(shapes.alias_ref(name, alias))

    def search_model_versions(self, filter_string: str | None = None, max_results: int = DEFAULT_SEARCH_LIMIT,
                              order_by: Sequence[str] | None = None,
                              page_token: str | None = None) -> list[ModelVersion]:
        """Versions matching MLflow's ``"name = 'iris'"`` or ``"run_id = '…'"`` (joined with ``and``),
        newest first, in one page."""
        if page_token:
            raise InvalidInputError("search_model_versions returns every match in one page: there is no next "
                                    "page token")
        if order_by:
            raise InvalidInputError("search_model_versions lists versions newest first; it takes no order_by")
        if max_results < 1:  # as search_runs: -1 listed every version but the oldest
            raise InvalidInputError(f"max_results must be at least 1, not {max_results}")
        wanted = shapes.version_filter(filter_string)
        registry = self.services.registry
        names = [m.name for m in registry.models() if m.name == wanted.get("name", m.name)]
        found = [mv for name in names for mv in registry.versions(name)
                 if "run_id" not in wanted or mv.run_id == wanted["run_id"]]
        found.sort(key=lambda mv: (mv.created_at, mv.model, mv.version), reverse=True)
        return found[:max_results]

    def set_registered_model_alias(self, name: str, alias: str, version: int | str, reason: str = "") -> AuditEvent:
        """Point ``name@alias`` at ``version``; the move is written to the audit log. A protected alias
        (``policy.protected_aliases``) moves only when the project's policy allows it (PolicyDeniedError)."""
        from shipyard.wiring.policy import move_alias

        return move_alias(self.services, name, alias, shapes.version_number(version), reason)

    def delete_registered_model_alias(self, name: str, alias: str, reason: str = "") -> AuditEvent:
        return self.services.registry.remove_alias(name, alias, reason)

    def trust_model(self, ref: str, reason: str, *, pickle: bool = False, code: bool = False,
                    types: Iterable[str] = (), classes: Iterable[str] = ()) -> AuditEvent:
        """Trust what loading ``ref``'s version may run, and say why (see ``shipyard.trust_model``)."""
        from shipyard.core.registry.trust import TrustSet

        return self.services.registry.trust(shapes.model_ref(ref), TrustSet.of(pickle, code, types, classes), reason)


class ActiveRun:
    """A run being recorded; use it as a context manager to end it (failed if an error escapes).

    Its methods write to this run from any thread: hand the object (or its ``id``) to worker threads.
    """

    def __init__(self, record: RunRecord, client: Client, owned: bool = True) -> None:
        self.record = record
        self.client = client
        self._owned = owned
        self._pid = os.getpid()  # a forked child inherits the object (and its `with` block), not the run
        self.ended = False

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def run_id(self) -> str:
        return self.record.id

    @property
    def info(self) -> RunInfo:
        """MLflow's ``run.info`` (``run_id``, ``run_name``, ``status``...), as when the run started."""
        return self.record.info

    @property
    def data(self) -> RunData:
        """MLflow's ``run.data``, as when the run started; ``shipyard.get_run(run.id).data`` reads it now."""
        return self.record.data

    @property
    def run_name(self) -> str:
        return self.record.name

    def log_param(self, key: str, value: Any) -> Any:
        return self.client.log_param(self.id, key, value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.client.log_params(self.id, params)

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        self.client.log_metric(self.id, key, value, timestamp, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        self.client.log_metrics(self.id, metrics, step, timestamp)

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.id, key, value)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.set_tags(self.id, tags)

    def log_artifact(self, local_path: PathLike, artifact_path: str | None = None, *,
                     name: str | None = None) -> ArtifactRecord:
        return self.client.log_artifact(self.id, local_path, artifact_path, name=name)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """End the run (once); a run handed over by a pipeline is ended by the pipeline, not here, and a
        run is ended by the process that started it, never by a child it forked."""
        if self.ended:
            return
        self.ended = True
        if self._owned and os.getpid() == self._pid:
            self.client.services.tracker.end_run(self.id, shapes.status(status))

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


def _one_order(order_by: Sequence[str] | str | None) -> str | None:
    keys = [order_by] if isinstance(order_by, str) else list(order_by or ())
    if len(keys) > 1:
        raise InvalidInputError(f"order runs by one key, not {len(keys)}: e.g. ['metrics.acc DESC']")
    return keys[0] if keys else None


def flavor_options(flavor: str, options: dict[str, Any], code_paths: Sequence[PathLike] | None) -> dict[str, Any]:
    """``options`` for the flavor's save, with ``code_paths`` when given: refused for a flavor that cannot put
    stored code on ``sys.path`` as it loads (it would be stored and never used)."""
    if code_paths is None:
        return options
    from shipyard.errors import InvalidInputError
    from shipyard.wiring import flavor as get_flavor

    if not getattr(get_flavor(flavor), "takes_code_paths", False):
        raise InvalidInputError(f"the {flavor} flavor does not take code_paths: its models load without project "
                                "code (use the python or sklearn flavor for a model whose classes live in the project)")
    if isinstance(code_paths, str | os.PathLike):
        raise InvalidInputError(f"code_paths is a list of paths, not the single path {os.fspath(code_paths)!r}: "
                                "write code_paths=[...]")
    return {**options, "code_paths": [os.fspath(p) for p in code_paths]}
