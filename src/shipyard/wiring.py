"""The composition root: settings -> adapters -> core services. The only module that sees both sides."""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config import CONFIG_FILE, Settings, default_db_url, load_settings, working_folder

if TYPE_CHECKING:  # the data commands import this module: keep what they don't use out of their way
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.golden import Check, Tolerance
    from shipyard.core.lineage.records import CodeVersion
    from shipyard.core.lineage.tracking import Tracker
    from shipyard.core.pipelines.jobs import Events
    from shipyard.core.pipelines.runner import PipelineRunner
    from shipyard.core.project.model import Executor as ExecutorSpec
    from shipyard.core.project.model import Project
    from shipyard.core.registry.records import ModelVersion
    from shipyard.core.registry.service import Registry
    from shipyard.core.workspace.data import Workspace
    from shipyard.core.workspace.history import LockHistory
    from shipyard.ports import Executor, Flavor, MetadataStore, ObjectStore, Remote

STATE_FILE = "state.db"


@dataclass
class Services:
    settings: Settings
    store: ObjectStore
    meta: MetadataStore
    tracker: Tracker
    registry: Registry

    def close(self) -> None:
        self.meta.close()


def open_store(settings: Settings) -> ObjectStore:
    from shipyard.adapters.stores.local import LocalObjectStore

    return LocalObjectStore(settings.store_path)


def open_metadata(settings: Settings) -> MetadataStore:
    from shipyard.adapters.db.store import SqlMetadataStore

    if settings.db_url == default_db_url(settings.home):
        make_home(settings)  # the database folder is Shipyard's own; any other must exist already
    return SqlMetadataStore(settings.db_url)


def open_workspace(settings: Settings) -> Workspace:
    """Store, stat cache and project root: all the data commands need (no metadata database)."""
    from shipyard.adapters.state.sqlite import SqliteStateCache
    from shipyard.core.workspace.data import Workspace

    return Workspace(settings.project_root, open_store(settings), SqliteStateCache(settings.home / STATE_FILE))


def open_pipeline(settings: Settings, environ: Mapping[str, str], events: Events | None = None) -> PipelineRunner:
    """The pipeline of the project's shipyard.yaml, ready to check or run.

    The metadata database and the remote are opened only when a stage really runs or misses the
    local cache, so checking an up-to-date pipeline stays fast.
    """
    from shipyard.core.pipelines import dag
    from shipyard.core.pipelines.params import ParamFiles
    from shipyard.core.pipelines.runner import PipelineRunner
    from shipyard.core.project.loader import load_config
    from shipyard.core.workspace.lockfile import load_lock

    root = settings.project_root
    if not os.path.lexists(root / CONFIG_FILE):  # a project the tracking API made holds only .shipyard/
        from shipyard.errors import ConfigError

        raise ConfigError(f"no {CONFIG_FILE} in the project {root}, so there is no pipeline: run `shipyard init` "
                          "to write one, then declare stages in it")
    config = load_config(root)
    pipeline = dag.build(config, root)
    ws = open_workspace(settings)

    guard = threading.Lock()  # stages start in parallel threads (-j): open each service once

    @functools.cache
    def _tracker() -> Tracker:
        return build(settings, root).tracker

    @functools.cache
    def _remote() -> Remote | None:
        return open_named_remote(config, root, None) if config.default_remote else None

    def tracker() -> Tracker:
        with guard:
            return _tracker()

    def remote() -> Remote | None:
        with guard:
            return _remote()

    child_env = {"SHIPYARD_HOME": str(settings.home), "SHIPYARD_DB_URL": settings.db_url,
                 "SHIPYARD_STORE": str(settings.store_path), "SHIPYARD_ACTOR": settings.actor}
    return PipelineRunner(pipeline, ws, load_lock(root), ParamFiles(root, config.params), environ,
                          open_executor(config.executor), tracker, remote, events, child_env)


def open_named_remote(config: Project, root: Path, name: str | None) -> Remote:
    """The remote ``name`` of shipyard.yaml; by default ``default_remote``, or the only one declared."""
    from shipyard.adapters.remotes import open_remote
    from shipyard.errors import ConfigError

    chosen = name or config.default_remote or (next(iter(config.remotes)) if len(config.remotes) == 1 else None)
    if chosen is None:
        raise ConfigError("no remote chosen: add one under `remotes:` in shipyard.yaml (and set default_remote), "
                          "or pass --remote NAME")
    if chosen not in config.remotes:
        known = ", ".join(sorted(config.remotes)) or "none"
        raise ConfigError(f"unknown remote {chosen!r}; shipyard.yaml defines: {known}")
    return open_remote(config.remotes[chosen], root, chosen)


def lock_history(root: Path) -> LockHistory:
    """Every version of the project's shipyard.lock that git holds (for gc); none outside a repository."""
    from shipyard.adapters.vcs.history import lock_history as read

    return read(root)


def flavor(name: str) -> Flavor:
    """The flavor adapter called ``name`` (sklearn, torch, onnx, python), imported on first use."""
    from shipyard.adapters.flavors import get_flavor

    return get_flavor(name)


def open_executor(spec: ExecutorSpec) -> Executor:
    if spec.kind == "ray":
        from shipyard.adapters.executors.ray import RayExecutor

        return RayExecutor(spec)
    from shipyard.adapters.executors.local import LocalExecutor

    return LocalExecutor()


def build(settings: Settings, cwd: Path | None = None) -> Services:
    from shipyard.adapters.process import pid_alive
    from shipyard.adapters.vcs.git import code_version
    from shipyard.core.environments.capture import to_bytes
    from shipyard.core.lineage.tracking import Origin, Tracker
    from shipyard.core.registry.service import Registry

    store = open_store(settings)
    meta = open_metadata(settings)
    here = cwd or working_folder()

    # Captured once per process: the interpreter and its packages do not change under a running program.
    @functools.cache
    def env_digest() -> Digest:
        return store.put_bytes(to_bytes(current_environment(settings)))

    @functools.cache
    def code() -> CodeVersion:
        return code_version(here, store)

    origin = Origin(user=settings.actor, host=socket.gethostname(), pid=os.getpid())
    tracker = Tracker(meta, store, origin, code_version=code, env_digest=env_digest, pid_alive=pid_alive)
    registry = Registry(meta, store, flavor, settings.actor, env_digest=env_digest,
                        reviewers=settings.trusted_actors, where=registry_of(settings.db_url))
    return Services(settings, store, meta, tracker, registry)


def current_environment(settings: Settings) -> dict[str, Any]:
    """This process's environment record, its slow part cached in the project's data folder."""
    from shipyard.adapters.environments.probe import capture

    return capture(settings.home if settings.home.is_dir() else None)


def registry_of(db_url: str) -> str:
    """Where a registry lives, for messages: a SQLite file's folder, or the database URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    if db_url.startswith("sqlite:///"):
        return f"in {Path(db_url.removeprefix('sqlite:///')).parent}"
    parts = urlsplit(db_url)
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        db_url = urlunsplit(parts._replace(netloc=netloc))
    return f"at {db_url}"


def make_home(settings: Settings) -> None:
    """Create Shipyard's data folder (``.shipyard``) if missing; its parent is checked by ``load_settings``."""
    from shipyard.errors import BackendUnavailableError

    try:
        settings.home.mkdir(exist_ok=True)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot create {settings.home} ({exc.strerror or exc}); "
                                      "set SHIPYARD_HOME to a writable folder") from exc


def settings_from_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                              anywhere: bool = False) -> Settings:
    """The settings of the project around ``cwd``; outside any project a ConfigError naming
    `shipyard init`, unless ``anywhere`` (the tracking API: then ``cwd/.shipyard``)."""
    return load_settings(os.environ if environ is None else environ, cwd or working_folder(), anywhere=anywhere)


def from_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                     anywhere: bool = False) -> Services:
    here = cwd or working_folder()
    return build(settings_from_environment(environ, here, anywhere=anywhere), here)


# --- The Python API's services (interfaces/api/client.py) -------------------------------------------------------


@dataclass(frozen=True)
class ApiServices:
    services: Services
    note: str | None  # where a new .shipyard folder will be made, said once by the API; None if nothing to say


def open_api(project: Path | None = None, tracking_uri: str | None = None,
             environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> ApiServices:
    """Services for a ``shipyard.Client``.

    ``project``: its folder (its ``.shipyard`` holds the store, and the database unless ``tracking_uri``
    names one); explicit arguments beat ``SHIPYARD_HOME``/``SHIPYARD_STORE``/``SHIPYARD_DB_URL``.
    Without ``project``, the environment and the project found at or above ``cwd`` decide, and outside
    any project the API records in ``cwd/.shipyard``, as MLflow records in ``./mlruns``.
    """
    from dataclasses import replace

    from shipyard.config import HOME_DIR, find_project_root

    env = dict(os.environ if environ is None else environ)
    here = (cwd or working_folder()).resolve()
    note = None
    if project is not None:
        root = Path(project).resolve()
        for key in ("SHIPYARD_HOME", "SHIPYARD_STORE", "SHIPYARD_DB_URL"):
            env.pop(key, None)
        env["SHIPYARD_HOME"] = str(root / HOME_DIR)
        here = root
    elif not env.get("SHIPYARD_HOME"):
        found = find_project_root(here)
        home = (found or here) / HOME_DIR
        if not home.exists():
            where = f"project {found}" if found else f"no shipyard.yaml found above {here}"
            note = f"shipyard: recording in {home} ({where})"
    if tracking_uri is not None:
        env["SHIPYARD_DB_URL"] = tracking_uri
    settings = settings_from_environment(env, here, anywhere=True)
    if project is not None:
        settings = replace(settings, root=Path(project).resolve())
    return ApiServices(build(settings, here), note)


# --- verify: a version's golden examples in another environment -------------------------------------------------

FLAVOR_PACKAGES = {
    "sklearn": ("scikit-learn", "skops", "numpy", "scipy", "joblib", "threadpoolctl"),
    "python": ("numpy",),
    "onnx": ("onnxruntime", "numpy"),
    "torch": ("torch", "numpy"),
}


def verify_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where verify keeps its environments: ``$SHIPYARD_CACHE_DIR/envs``, else the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/shipyard/envs``."""
    env = os.environ if environ is None else environ
    if env.get("SHIPYARD_CACHE_DIR"):
        return Path(env["SHIPYARD_CACHE_DIR"]).expanduser() / "envs"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "shipyard" / "envs"


def model_requirements(svc: Services, mv: ModelVersion, flavor_meta: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(the Python version, the requirement lines) a version's environment is built from.

    Until the lock lands: the flavor's packages (and the package of a python model's class) at the
    versions its registration environment recorded.
    """
    import platform

    from shipyard.core.environments.capture import normalize, packages_of

    record: dict[str, Any] = {}
    if mv.env_digest is not None:
        import json

        with svc.store.open(mv.env_digest) as f:
            record = json.loads(f.read(64 * 1024 * 1024))
    version = str((record.get("python") or {}).get("version") or platform.python_version())
    python = ".".join(version.split(".")[:2])
    packages = packages_of(record)
    wanted = list(FLAVOR_PACKAGES.get(mv.flavor, ()))
    if mv.flavor == "python":  # the distribution of the model's class, where its top module names one
        wanted.append(str(flavor_meta.get("class", "")).split(".")[0])
    lines = [f"{name}=={packages[name]['version']}" for name in map(normalize, wanted) if name in packages]
    return python, lines


def check_overrides(overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--with`` values, each checked as a PEP 508 requirement (a one-line error otherwise)."""
    from shipyard.adapters.environments.venvs import requirement_name

    for line in overrides:
        requirement_name(line)
    return tuple(o.strip() for o in overrides)


@dataclass(frozen=True)
class VerifyRequest:
    overrides: tuple[str, ...] = ()
    python: str | None = None
    find_links: tuple[Path, ...] = ()
    current: bool = False


def verify_version(svc: Services, ref: str | ModelVersion, request: VerifyRequest,
                   on_line: Callable[[str], None] = lambda _: None, environ: Mapping[str, str] | None = None,
                   record: bool = True) -> tuple[ModelVersion, Check]:
    """Run ``ref``'s golden examples in a fresh environment (or the current one) and record the outcome."""
    from shipyard._version import __version__
    from shipyard.core.environments.golden import Tolerance
    from shipyard.errors import NotFoundError

    mv = ref if not isinstance(ref, str) else svc.registry.resolve(ref)
    examples = svc.registry.examples(mv)
    if not examples or "inputs" not in examples or "outputs" not in examples:
        raise NotFoundError(f"{mv.ref} has no golden examples to verify: register it with "
                            "log_model(..., examples=X[:5]) (its outputs on them are stored as the expected answers)")
    tolerance = Tolerance.of(examples)
    if request.current:
        check = _verify_current(svc, mv, examples, tolerance)
    else:
        check = _verify_venv(svc, mv, examples, tolerance, request, on_line, environ)
    if record:
        svc.registry.record_result(mv, "verify", check.to_record(__version__), check.summary())
    return mv, check


def _verify_current(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance) -> Check:
    import platform

    from shipyard.adapters.environments.child import as_inputs
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.capture import to_bytes
    from shipyard.core.environments.golden import FAIL, PASS, Check, compare

    env = Digest.of_bytes(to_bytes(current_environment(svc.settings)))
    model = svc.registry.load(mv.ref)  # trust-checked, re-hashed: an untrusted version raises here
    flavor_ = svc.registry.flavors(mv.flavor)
    where = str(env)
    try:
        got = flavor_.to_json(flavor_.predict(model, as_inputs(examples["inputs"])))
    except Exception as exc:  # the model's own failure is the verdict, not a crash of verify
        from shipyard.adapters.flavors import first_line

        return Check("current", FAIL, where, platform.python_version(),
                     reason=f"the model failed to answer: {type(exc).__name__}: {first_line(exc)}")
    verdict = compare(examples["outputs"], got, tolerance)
    return Check("current", PASS if verdict.passed else FAIL, where, platform.python_version(), verdict=verdict)


def _verify_venv(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance,
                 request: VerifyRequest, on_line: Callable[[str], None], environ: Mapping[str, str] | None) -> Check:
    import tempfile
    from dataclasses import replace

    from shipyard.adapters.environments.venvs import EnvCache, EnvSpec, NotInstalled, run_child, with_overrides
    from shipyard.core.artifacts.tree import materialize
    from shipyard.core.environments.golden import FAIL, NOT_INSTALLED, PASS, Check, compare
    from shipyard.core.registry.service import SavedModel
    from shipyard.core.registry.trust import untrusted_error
    from shipyard.errors import IntegrityError

    with tempfile.TemporaryDirectory(prefix="shipyard-verify-model-") as tmp:
        folder = Path(tmp) / "model"
        materialize(svc.store, mv.manifest_digest, folder)  # every file re-hashed against its digest
        saved = SavedModel.read(folder)
        if saved.flavor != mv.flavor:
            raise IntegrityError(f"{mv.ref} was registered as {mv.flavor} but its files say {saved.flavor}")
        # Trust is decided here, by the registry's rules; the child gets exactly that set and its flavor
        # refuses anything outside it before deserializing (what the version needs is read there, where
        # the flavor's libraries are imported anyway: the same check Registry.load makes)
        granted = svc.registry.trusted(mv)
        python, lines = model_requirements(svc, mv, saved.flavor_meta)
        python = request.python or python
        spec = EnvSpec(python, tuple(with_overrides(lines, request.overrides)), request.overrides,
                       tuple(p.resolve() for p in request.find_links))
        env = EnvCache(verify_cache_dir(environ)).ensure(spec, on_line)
        if isinstance(env, NotInstalled):
            return Check("venv", NOT_INSTALLED, env.key, python, request.overrides, reason=env.reason)
        result = run_child(env.python, folder, saved.flavor, saved.flavor_meta, granted.items(), examples["inputs"])
        if result.untrusted:  # refused there: is it untrusted here too (then say how to trust it, as load does)?
            needed = svc.registry.requirements(folder)
            if needed - granted:
                raise untrusted_error(mv.ref, needed, granted)
            # trusted by this registry's rules, refused by the flavor there: that environment cannot read it
            found = ", ".join(f"{k} {v}" for k, v in (result.packages or {}).items() if k != "python")
            result = replace(result, stage="refused", error=f"the {saved.flavor} flavor there ({found}) does not "
                             f"accept what this registry trusts: {result.error}")
    ran = Check("venv", FAIL, env.key, env.python_version, request.overrides, reused=env.reused,
                packages=dict(result.packages or {}))
    if not result.ok:
        what = {"load": "the model did not load", "predict": "the model failed to answer",
                "import": "the flavor did not import", "refused": "the model did not load"}.get(result.stage,
                                                                                                "the model failed")
        return replace(ran, reason=f"{what}: {result.error}")
    verdict = compare(examples["outputs"], result.outputs, tolerance)
    return replace(ran, status=PASS if verdict.passed else FAIL, verdict=verdict)
