"""The module functions, familiar to MLflow users: ``with shipyard.start_run(): shipyard.log_metric(...)``.

They delegate to a default ``Client``, opened on first use from the environment (``SHIPYARD_HOME``,
``SHIPYARD_DB_URL``, ``SHIPYARD_STORE``) and the working folder, reopened when those change, and
closed when the interpreter exits.

The current run lives in a ``ContextVar``: each thread and each asyncio task sees the runs it
started (a task also sees those of the code that created it). A new ``threading.Thread`` starts
with no current run, as in MLflow: to write to a run from a worker thread, hand it the run
(``run.log_metric(...)``) or its id (``shipyard.log_metric(..., run_id=run.id)``), or start the
thread's target in ``contextvars.copy_context().run``. A pipeline runner hands its stage's run to
the stage's process in ``SHIPYARD_RUN_ID``: there every thread writes to that run, checked once.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.config import working_folder
from shipyard.core.lineage.records import ArtifactRecord, RunRecord, RunStatus
from shipyard.core.lineage.tracking import DEFAULT_EXPERIMENT, DEFAULT_SEARCH_LIMIT
from shipyard.core.registry.records import AuditEvent, ModelVersion
from shipyard.errors import ImmutableError, InvalidInputError, NotFoundError
from shipyard.interfaces.api import shapes
from shipyard.interfaces.api.client import TRACKING, ActiveRun, Client, PathLike
from shipyard.wiring import Services, open_api

HANDED_RUN = "SHIPYARD_RUN_ID"  # set by the pipeline runner (core/pipelines/runner.py) for a stage's process
_ENV_KEYS = ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_ACTOR", "SHIPYARD_TRUSTED_ACTORS")
log = logging.getLogger("shipyard")

_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], Client] = {}
_said: set[str] = set()
_runs: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar("shipyard_runs", default=())
_experiment: list[str] = []  # set_experiment's choice, for the whole process as in MLflow
_started: list[ActiveRun] = []  # runs start_run began and nothing ended yet: ended at exit, as MLflow does
LAST_STARTED: list[str] = []  # the id of the run start_run began last in this process (last_active_run's)


def default_client() -> Client:
    """The client the module functions use, for the current environment and working folder."""
    project, tracking_uri = TRACKING[-1] if TRACKING else (None, None)
    key = (*(os.environ.get(k) for k in _ENV_KEYS), str(working_folder()), str(project), tracking_uri)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                if not _clients:
                    atexit.register(_close_clients)
                client = _clients[key] = Client._opened(open_api(project, tracking_uri))
                if client.note and client.note not in _said:
                    # a library does not print: a warning reaches stderr through logging's last-resort
                    # handler when the program set up no logging, and follows its handlers when it did
                    _said.add(client.note)
                    log.warning(client.note)
    return client


def _close_clients() -> None:
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _svc() -> Services:
    return default_client().services


# -- the current run -----------------------------------------------------------------------------------------


def active_run() -> ActiveRun | None:
    """The innermost run started in this thread or task, or the run handed over in ``SHIPYARD_RUN_ID``, or None."""
    stack = _runs.get()
    if stack and stack[-1].ended:
        stack = tuple(r for r in stack if not r.ended)
        _runs.set(stack)
    if stack:
        return stack[-1]
    handed = os.environ.get(HANDED_RUN)
    if handed:
        try:
            return default_client().adopt_run(handed)
        except (NotFoundError, ImmutableError, InvalidInputError) as exc:  # say where the run id came from
            raise type(exc)(f"{HANDED_RUN}={handed[:40]} (set by `shipyard run` for a stage): {exc}; outside "
                            f"a pipeline stage, unset {HANDED_RUN}") from exc
    return None


def start_run(run_id: str | None = None, experiment_id: str | None = None, run_name: str | None = None,
              nested: bool = False, parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
              description: str | None = None, log_system_metrics: bool | None = None, *,
              name: str | None = None, experiment: str | None = None) -> ActiveRun:
    """Start recording a run, current in this thread or task until it ends; inside another run it
    becomes that run's child (``nested`` is accepted for MLflow's sake: nesting needs no flag).

    MLflow's forms work: ``start_run(run_name="train")``, ``start_run(run_id=...)`` (carry on a run
    that is still running), ``experiment_id`` (an experiment's name here), ``description`` (kept as
    the ``description`` tag). ``name=`` and ``experiment=`` are Shipyard's spellings.
    """
    client = default_client()
    if run_id is not None:  # MLflow's resumed run: this program ends it, unless the pipeline handed it over
        run = client.adopt_run(run_id, owned=run_id != os.environ.get(HANDED_RUN))
    else:
        current = active_run()
        parent = parent_run_id or (current.id if current else None)
        all_tags = {**(tags or {}), **({"description": description} if description else {})}
        chosen = experiment_id or experiment or (_experiment[-1] if _experiment else DEFAULT_EXPERIMENT)
        run = client.start_run(run_name or name, chosen, all_tags, parent)
    _runs.set((*_runs.get(), run))
    with _lock:
        if not _started:  # registered after the default client's closing, so it runs before it
            atexit.register(_end_started_runs)
        _started[:] = [r for r in _started if not r.ended]
        _started.append(run)
        LAST_STARTED[:] = [run.id]
    return run


def _end_started_runs() -> None:
    """At exit, end as finished the runs the program started and left open (MLflow's habit: a script
    without ``end_run()`` leaves a finished run, not one that looks killed)."""
    with _lock:
        runs = _started[::-1]
        _started.clear()
    for run in runs:
        try:
            run.end(RunStatus.FINISHED)
        except Exception:  # at exit, one run that cannot be ended must not stop the others
            log.warning("shipyard: could not end run %s at exit", run.id[:8])


def end_run(status: str = "FINISHED") -> None:
    """End the innermost run of this thread or task (MLflow's ``"FINISHED"``, ``"FAILED"``, ``"KILLED"``)."""
    chosen = shapes.status(status)
    stack = [r for r in _runs.get() if not r.ended]
    if stack:
        stack.pop().end(chosen)
        _runs.set(tuple(stack))


class Experiment(str):
    """An experiment's name, which is also its id here: MLflow's ``exp.experiment_id`` and ``exp.name`` read it."""

    __slots__ = ()

    @property
    def experiment_id(self) -> str:
        return str(self)

    @property
    def name(self) -> str:
        return str(self)

    @property
    def lifecycle_stage(self) -> str:
        return "active"  # experiments are never deleted here


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Runs started after this go to this experiment (experiments are named; they need no creating). Returns
    its name, on which MLflow's ``.experiment_id`` and ``.name`` read the same."""
    chosen = experiment_name or experiment_id
    if not chosen:
        raise InvalidInputError("set_experiment needs an experiment name")
    _experiment[:] = [chosen]
    return Experiment(chosen)


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Where the module functions record from now on, for the whole process as in MLflow: a database
    URL (``sqlite:///…``, ``postgresql://…``) for runs and models, or an existing project folder (a
    path or ``file://`` URI; its ``.shipyard`` holds them). None or "" goes back to the environment."""
    chosen = shapes.tracking_target(uri) if uri is not None and os.fspath(uri).strip() else None
    TRACKING[:] = [chosen] if chosen else []


def get_tracking_uri() -> str:
    """The database URL the module functions record in."""
    return default_client().services.settings.db_url


def _current(run_id: str | None = None) -> tuple[Client, str]:
    """The client and run a module call writes to: ``run_id`` if given, else the current run, else a new
    run started for this thread and ended when the program exits (as MLflow does)."""
    if run_id is not None:
        return default_client(), run_id
    run = active_run()
    if run is None:
        run = start_run()  # ended when the program exits, if nothing ends it before
    return run.client, run.id


# -- logging -------------------------------------------------------------------------------------------------


def log_param(key: str, value: Any, synchronous: bool | None = None, *, run_id: str | None = None) -> Any:
    client, rid = _current(run_id)
    return client.log_param(rid, key, value)


def log_params(params: Mapping[str, Any], synchronous: bool | None = None, run_id: str | None = None) -> None:
    client, rid = _current(run_id)
    client.log_params(rid, params)


def log_metric(key: str, value: float, step: int | None = None, synchronous: bool | None = None,
               timestamp: int | None = None, run_id: str | None = None) -> None:
    """Log ``value`` at ``step`` (default 0); ``timestamp`` in milliseconds since the epoch, as MLflow's."""
    client, rid = _current(run_id)
    client.log_metric(rid, key, value, timestamp, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, synchronous: bool | None = None,
                run_id: str | None = None, timestamp: int | None = None) -> None:
    client, rid = _current(run_id)
    client.log_metrics(rid, metrics, step, timestamp)


def log_batch(metrics: Iterable[Any] = (), params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> None:
    """Log many values at once: ``metrics`` as ``(key, value, step)`` tuples, written in one transaction."""
    client, rid = _current(run_id)
    client.log_batch(rid, metrics, params or {}, tags or {})


def set_tag(key: str, value: Any, synchronous: bool | None = None, *, run_id: str | None = None) -> None:
    client, rid = _current(run_id)
    client.set_tag(rid, key, value)


def set_tags(tags: Mapping[str, Any], synchronous: bool | None = None, *, run_id: str | None = None) -> None:
    client, rid = _current(run_id)
    client.set_tags(rid, tags)


def log_artifact(local_path: PathLike, artifact_path: str | None = None, run_id: str | None = None, *,
                 name: str | None = None) -> ArtifactRecord:
    """Store a file or folder in the content-addressed store and record it on the current run, as
    ``artifact_path/BASENAME`` (MLflow's folder within the run's artifacts) or exactly as ``name``."""
    client, rid = _current(run_id)
    return client.log_artifact(rid, local_path, artifact_path, name=name)


def log_artifacts(local_dir: PathLike, artifact_path: str | None = None, run_id: str | None = None) -> ArtifactRecord:
    """Store a folder as one artifact of the current run, named ``artifact_path`` (default: its name)."""
    client, rid = _current(run_id)
    return client.log_artifacts(rid, local_dir, artifact_path)


# -- models --------------------------------------------------------------------------------------------------


def save_model(model: Any, path: PathLike, flavor: str = "sklearn", examples: Any = None, *,
               requirements: Sequence[str] = (), tolerance: Mapping[str, float] | None = None,
               code_paths: Sequence[PathLike] | None = None, **options: Any) -> Path:
    """Write ``model`` into a new folder that ``shipyard models register`` or ``register_model`` accepts
    (``code_paths``: as for ``log_model``)."""
    from shipyard.core.registry.saving import save_model as _save
    from shipyard.interfaces.api.client import flavor_options
    from shipyard.wiring import flavor as get_flavor

    _save(get_flavor(flavor), model, Path(path), examples, flavor_options(flavor, options, code_paths),
          requirements=requirements, tolerance=tolerance)
    return Path(path)


def log_model(model: Any, name: str, flavor: str = "sklearn", examples: Any = None,
              description: str = "", version: int | None = None, *, artifact_path: str | None = None,
              run_id: str | None = None, requirements: Sequence[str] = (),
              tolerance: Mapping[str, float] | None = None, reference: Any = None,
              code_paths: Sequence[PathLike] | None = None, **options: Any) -> ModelVersion:
    """Save ``model`` and register it as the next version of ``name``, linked to the current run.

    ``examples`` (a few inputs) are kept with the model's outputs on them as golden examples, compared
    within ``tolerance`` (``{"rtol": 1e-6, "atol": 0.0}`` by default; labels exactly) by ``verify``.
    ``requirements``: the packages the model's own code imports (names, e.g. ``["pandas"]``), pinned in
    its lock (``shipyard env lock``) beside what its flavor needs.
    ``version`` is only a check: naming a version that exists fails, versions never change.
    ``artifact_path``: also keep the saved folder on the run under that name (``runs:/RUN_ID/PATH``).
    ``reference``: the training data (or a sample of it): its profile (quantile and frequent-item sketches per
    column, missing rates, ranges) and that of the model's answers on it are recorded with the version, the
    baseline drift is measured against (``pip install 'shipyard[monitor]'``).
    ``examples`` may be a scipy sparse matrix (kept as its CSR parts) or text (a list of strings: the
    signature says ``str``, BYTES to the model server).
    ``code_paths``: project files or folders the model's code lives in (``["src/mypkg", "src/model.py"]``,
    relative to the working folder, as MLflow's), stored with the version and put on ``sys.path`` when it
    loads (``serve``, ``reproduce``, ``load_model``), so no PYTHONPATH is needed (python and sklearn flavors).
    """
    client, rid = _current(run_id)
    return client.log_model(rid, model, name, flavor, examples, description, version, artifact_path,
                            requirements=requirements, tolerance=tolerance, reference=reference,
                            code_paths=code_paths, **options)


def register_model(model_uri: PathLike, name: str, await_registration_for: int | None = None, *,
                   tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register the saved model at ``runs:/RUN_ID/PATH`` or in a local folder as the next version of ``name``.

    Registration is done when this returns (``await_registration_for`` has nothing to wait for).
    """
    if tags:
        raise InvalidInputError("model versions take no tags in Shipyard: put them on the run that made the model")
    return default_client().register_model(model_uri, name)


def load_model(model_uri: str | PathLike, dst_path: PathLike | None = None) -> Any:
    """The model behind ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS`` or ``runs:/RUN_ID/PATH``, verified against its digests; or the one in a folder
    ``save_model`` wrote (a path with a ``/``, or ``file://``), loaded within its flavor's allowlist only.

    A version that needs code run to load (a pickle, a class to import, stored code, skops types
    beyond Shipyard's allowlist, functions included) loads only if that was trusted for it, by you
    (``SHIPYARD_ACTOR``) or a reviewer you list in ``SHIPYARD_TRUSTED_ACTORS``: ``log_model`` trusts
    what it saved itself, for its own actor; anything else needs ``trust_model`` (or
    ``shipyard models trust``). ``dst_path`` is accepted for MLflow's sake: files go to a temporary folder.
    """
    return default_client().load_model(model_uri)


def trust_model(ref: str, reason: str, *, pickle: bool = False, code: bool = False,
                types: Iterable[str] = (), classes: Iterable[str] = ()) -> AuditEvent:
    """Trust what loading ``ref``'s version may run, and say why; the decision goes in the audit log.

    ``pickle``: unpickle its files; ``code``: run its stored program (TorchScript); ``types``: skops
    types and functions beyond Shipyard's allowlist (``"mypackage.MyTransformer"``, ``"numpy.sort"``);
    ``classes``: classes to import and build (``"mypackage.nets:TinyNet"``). Each call replaces your
    earlier decision for the version: name everything it needs. The decision counts for you and for
    those who list you in ``SHIPYARD_TRUSTED_ACTORS``. Only trust a version whose author you trust.
    """
    return default_client().trust_model(ref, reason, pickle=pickle, code=code, types=types, classes=classes)


def get_model_version(name: str, version: int | str | None = None) -> ModelVersion:
    """``get_model_version("iris", 1)`` (MLflow's form) or ``get_model_version("iris@1")``."""
    if version is None:
        return default_client().services.registry.resolve(shapes.model_ref(name))
    return default_client().get_model_version(name, version)


def get_model_version_by_alias(name: str, alias: str) -> ModelVersion:
    return default_client().get_model_version_by_alias(name, alias)


def search_model_versions(max_results: int | str | None = None, filter_string: str | None = None,
                          order_by: Sequence[str] | None = None) -> list[ModelVersion]:
    """Versions matching ``"name = 'iris'"`` or ``"run_id = '…'"``, newest first (MLflow's form).

    MLflow's module function takes ``max_results`` first, while ``MlflowClient``'s takes the filter first:
    a string in first place is read as the filter, so both habits work."""
    if isinstance(max_results, str):
        if filter_string is not None:
            raise InvalidInputError("search_model_versions: give the filter once (filter_string=), and "
                                    "max_results as a number")
        max_results, filter_string = None, max_results
    return default_client().search_model_versions(filter_string, max_results or DEFAULT_SEARCH_LIMIT, order_by)


def set_registered_model_alias(name: str, alias: str, version: int | str) -> None:
    """Point ``name@alias`` at ``version``; the move is written to the audit log."""
    default_client().set_registered_model_alias(name, alias, version)


def set_alias(name: str, alias: str, version: int | str, reason: str = "") -> None:
    """Point ``name@alias`` at ``version``, saying why; the move is written to the audit log."""
    default_client().set_registered_model_alias(name, alias, version, reason)


def delete_registered_model_alias(name: str, alias: str) -> None:
    default_client().delete_registered_model_alias(name, alias)


# -- reading runs --------------------------------------------------------------------------------------------


def get_run(run_id: str) -> RunRecord:
    return default_client().get_run(run_id)


def search_runs(experiment_ids: Sequence[str] | str | None = None, filter_string: str = "",
                run_view_type: int | None = None, max_results: int | None = None,
                order_by: Sequence[str] | str | None = None, output_format: str | None = None,
                search_all_experiments: bool = False, experiment_names: Sequence[str] | None = None, *,
                filter: str | None = None, limit: int | None = None) -> Any:
    """Runs matching a filter (``"metrics.accuracy > 0.9 and params.C = '1.0'"``), newest first: a pandas
    DataFrame in MLflow's columns (``run_id``, ``experiment_id``, ``status``, ``start_time``, ``end_time``,
    ``metrics.*``, ``params.*``, ``tags.*``) when pandas is installed, else a list of runs;
    ``output_format="list"`` always gives the list, ``"pandas"`` the DataFrame (or says to install pandas).

    Shipyard's form: ``search_runs("metrics.acc > 0.9", limit=10, order_by="metrics.acc desc")``.
    MLflow's: ``search_runs([EXPERIMENT], filter_string=..., max_results=..., order_by=[...])``; an
    experiment is named by its name. With none named, the experiment ``set_experiment`` chose is searched, as in
    MLflow (``search_all_experiments=True``: every one); without ``set_experiment``, every experiment.
    """
    if output_format not in (None, "list", "pandas"):
        raise InvalidInputError(f"output_format is 'pandas' or 'list', not {output_format!r}")
    if isinstance(experiment_ids, str):  # Shipyard's positional filter: MLflow's first argument is a list
        filter, experiment_ids = filter or experiment_ids, None
    experiments = experiment_ids or experiment_names
    if not experiments and not search_all_experiments and _experiment:
        experiments = _experiment[-1:]  # as MLflow: the experiment set_experiment chose, unless told otherwise
    runs = default_client().search_runs(experiments, filter or filter_string, run_view_type,
                                        limit or max_results or DEFAULT_SEARCH_LIMIT, order_by)
    if output_format == "list":
        return runs
    try:
        import importlib

        pd: Any = importlib.import_module("pandas")  # not a dependency: a DataFrame when the user has pandas
    except ImportError:
        if output_format is None:
            return runs
        raise InvalidInputError("search_runs(output_format='pandas') needs pandas: pip install pandas, or pass "
                                "output_format='list'") from None
    from shipyard.interfaces.api.content import frame_columns

    columns = frame_columns(runs)
    for when in ("start_time", "end_time"):
        columns[when] = pd.to_datetime(pd.Series(columns[when], dtype="float64"), unit="s", utc=True)
    return pd.DataFrame(columns)
