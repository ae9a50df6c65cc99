"""The composition root: settings -> adapters -> core services. The only module that sees both sides."""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config import CONFIG_FILE, Settings, default_db_url, load_settings, working_folder

if TYPE_CHECKING:  # the data commands import this module: keep what they don't use out of their way
    from shipyard.adapters.environments.venvs import Child
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.golden import Check, Tolerance
    from shipyard.core.environments.lock import Lock
    from shipyard.core.lineage.records import CodeVersion
    from shipyard.core.lineage.tracking import Tracker
    from shipyard.core.pipelines.jobs import Events
    from shipyard.core.pipelines.runner import PipelineRunner
    from shipyard.core.project.model import Executor as ExecutorSpec
    from shipyard.core.project.model import Project
    from shipyard.core.registry.records import ModelVersion
    from shipyard.core.registry.service import Registry, SavedModel
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

    # Read again at a run or registration (cheap: the probe caches the slow part by the state of sys.path), so a
    # notebook's `%pip install`, a folder put on sys.path or a framework imported since makes a new record.
    # Within a second of the last look, with the same sys.path and frameworks, the last answer stands: the
    # distributions' stat calls (~2 ms with 300 of them) are not paid by every run of a loop.
    last: dict[str, Any] = {"quick": None, "at": float("-inf"), "key": None, "digest": None}

    def env_digest() -> Digest:
        from shipyard.adapters.environments.probe import cache_key
        from shipyard.core.environments.capture import FRAMEWORKS

        quick = (tuple(sys.path), tuple(m for m in FRAMEWORKS if m in sys.modules))
        now = time.monotonic()
        if last["digest"] is not None and quick == last["quick"] and now - last["at"] < ENV_RECHECK_SECONDS:
            return last["digest"]  # type: ignore[no-any-return]
        key = json.dumps([cache_key(), quick[1]], sort_keys=True)
        if key != last["key"]:
            last["key"], last["digest"] = key, store.put_bytes(to_bytes(current_environment(settings)))
        last["quick"], last["at"] = quick, now
        return last["digest"]  # type: ignore[no-any-return]

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


ENV_RECHECK_SECONDS = 1.0  # how long a process trusts its last look at its own environment (see build)
MAX_ENV_RECORD_BYTES = 16 * 1024 * 1024  # as the probe's cache: thousands of distributions fit
MAX_EXAMPLES_BYTES = 256 * 1024 * 1024  # golden examples verify reads (as much as the model's process may answer)


def version_environment(svc: Services | Registry, mv: ModelVersion) -> dict[str, Any]:
    """The environment record ``mv`` was registered from, re-hashed against its digest and read within a
    bound; a version registered without one is a NotFoundError saying so."""
    from shipyard.errors import NotFoundError

    if mv.env_digest is None:
        raise NotFoundError(f"{mv.ref} was registered without an environment record: register it again "
                            "(log_model or `shipyard models register`) to lock or check it")
    return stored_environment(svc.store, mv.env_digest, mv.ref)


def stored_environment(store: ObjectStore, digest: Digest, label: str) -> dict[str, Any]:
    """The environment record ``digest`` (of ``label``: "iris@3", "run 0a1b..."), read within a bound,
    re-hashed, and of the shape its readers expect; an IntegrityError in one line otherwise."""
    import json

    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.capture import record_problem
    from shipyard.errors import IntegrityError

    with store.open(digest) as f:
        raw = f.read(MAX_ENV_RECORD_BYTES + 1)
    if len(raw) > MAX_ENV_RECORD_BYTES:
        raise IntegrityError(f"the environment record {digest} of {label} is larger than "
                             f"{MAX_ENV_RECORD_BYTES // 1024 // 1024} MiB: Shipyard never writes one that large; "
                             f"{_record_again(label)}")
    if Digest.of_bytes(raw) != digest:
        raise IntegrityError(f"the environment record {digest} of {label} is corrupt (its bytes no "
                             "longer hash to its name); restore the project's store from a backup")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"the environment record of {label} is not JSON: {str(exc)[:160]}") from None
    problem = record_problem(record)
    if problem is not None:
        raise IntegrityError(f"the environment record of {label} is not one Shipyard wrote ({problem}); "
                             f"{_record_again(label)}")
    return dict(record)


def _record_again(label: str) -> str:
    return "start the run again" if label.startswith("run ") else "register the model again from its environment"


def saved_model(svc: Services | Registry, mv: ModelVersion) -> SavedModel:
    """``mv``'s ``shipyard-model.json``, read from its manifest (re-hashed), without materializing the model."""
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.tree import load_manifest
    from shipyard.core.registry.service import MAX_DESCRIPTION_BYTES, MODEL_FILE, SavedModel
    from shipyard.errors import IntegrityError

    store = svc.store
    entry = next((e for e in load_manifest(store, mv.manifest_digest).entries if e.path == MODEL_FILE), None)
    if entry is None:
        raise IntegrityError(f"{mv.ref} has no {MODEL_FILE} in its stored files")
    with store.open(entry.digest) as f:
        raw = f.read(MAX_DESCRIPTION_BYTES + 1)
    if len(raw) <= MAX_DESCRIPTION_BYTES and Digest.of_bytes(raw) != entry.digest:
        raise IntegrityError(f"{mv.ref}'s {MODEL_FILE} ({entry.digest}) is corrupt (its bytes no longer hash to "
                             "its name); restore the project's store from a backup")
    return SavedModel.parse(raw, f"{mv.ref}'s {MODEL_FILE}")


def model_lock(svc: Services | Registry, mv: ModelVersion) -> Lock:
    """The lock of ``mv``: what its flavor and its own code need, pinned as in the environment it was
    registered from (a record captured before dependencies were recorded closes through the current
    environment's same versions, and says what it could not close)."""
    from shipyard.adapters.environments.probe import requires_of
    from shipyard.core.environments.lock import lock_of

    record = version_environment(svc, mv)
    saved = saved_model(svc, mv)
    roots = (*flavor(saved.flavor).packages(saved.flavor_meta), *saved.requirements)
    return lock_of(record, roots, requires_of=requires_of, label=mv.ref, env_digest=str(mv.env_digest))


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


# --- Container images (shipyard build, verify --image) ------------------------------------------------------

def image_lock(svc: Services, mv: ModelVersion) -> Lock:
    """The model's lock for its image: complete, or refused naming the package it lacks."""
    return model_lock(svc, mv).complete(f"build {mv.ref}")


def build_image(svc: Services, ref: str, environ: Mapping[str, str], *, base: str | None = None,
                tag: str | None = None, output: Path | None = None, push: str | None = None,
                engine: bool = True, progress: Callable[[str], None] = lambda _: None) -> Any:
    """``shipyard build``: the lock checked, the context written (``output``, or the project's
    ``.shipyard/images/NAME-V``), built and recorded where an engine answers, pushed on request."""
    import shutil

    from shipyard.adapters.images import build as images
    from shipyard.adapters.images.engine import detect

    mv = svc.registry.resolve(ref)
    env = version_environment(svc, mv)
    lock = image_lock(svc, mv)  # refused here, before anything is written
    found = detect(environ) if engine else None
    if output is not None:
        store = svc.settings.store_path.resolve()
        if output.resolve() == store or store in output.resolve().parents:
            from shipyard.errors import InvalidInputError

            raise InvalidInputError(f"--output {output} is inside the object store {store}: give a folder "
                                    "outside it (the store holds only objects named by their digest)")
    if output is None:
        output = svc.settings.home / "images" / f"{mv.model}-{mv.version}"
        if output.is_symlink() or output.is_file():  # not what Shipyard writes there: replaced, never followed
            output.unlink()
        elif output.exists():
            shutil.rmtree(output)  # Shipyard's own folder: the last context written for this version
    return images.build_image(svc.registry, mv, lock.text(), env=env, engine=found, context_dir=output,
                              site_cache=verify_cache_dir(environ).parent / "image-site", base=base, tag=tag,
                              push=push, progress=progress)
# --- verify: a version's golden examples in another environment -------------------------------------------------

def verify_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where verify keeps its environments: ``$SHIPYARD_CACHE_DIR/envs``, else the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/shipyard/envs``."""
    env = os.environ if environ is None else environ
    if env.get("SHIPYARD_CACHE_DIR"):  # absolute: the model's process runs in a folder of its own
        return Path(env["SHIPYARD_CACHE_DIR"]).expanduser().absolute() / "envs"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base.absolute() / "shipyard" / "envs"


def check_overrides(overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--with`` values, each checked as a PEP 508 requirement (a one-line error otherwise)."""
    from shipyard.core.environments.lock import parse_overrides

    parse_overrides(overrides)
    return tuple(o.strip() for o in overrides)


def check_python(python: str | None) -> str | None:
    """A ``--python`` value: a version (``3.12``), an interpreter name or a path; never an option, an empty
    word or one with whitespace or control characters (it is passed to uv and shown in one-line reasons)."""
    from shipyard.errors import InvalidInputError

    if python is not None and (not python or python.startswith("-") or len(python) > 255
                               or any(c.isspace() or not c.isprintable() for c in python)):
        raise InvalidInputError(f"--python {python[:80]!r}: give a version like 3.12, or the path of a Python")
    return python


@dataclass(frozen=True)
class VerifyRequest:
    overrides: tuple[str, ...] = ()
    python: str | None = None
    find_links: tuple[Path, ...] = ()
    current: bool = False


def verify_early(ref: str, request: VerifyRequest, environ: Mapping[str, str] | None = None
                 ) -> tuple[str, Child | None]:
    """(the hint of this request, a model process started in the environment it used last time, or None).

    Started before the registry is opened, so the flavor's imports (seconds for scikit-learn) overlap with
    opening it; ``verify_version`` uses it only if the environment it computes is that one.
    """
    import json

    from shipyard.adapters.environments.venvs import early

    settings = settings_from_environment(environ)
    hint = json.dumps([settings.db_url, str(settings.store_path), settings.actor, ref, list(request.overrides),
                       request.python, [str(p.resolve()) for p in request.find_links]])
    return hint, None if request.current else early(verify_cache_dir(environ), hint)


def golden_examples(svc: Services, mv: ModelVersion) -> dict[str, Any]:
    """``mv``'s golden examples (re-hashed), read as untrusted: a file that is not JSON, nested past the
    parser's bound, or not an object with ``inputs`` and ``outputs`` is one line, never a traceback."""
    import json

    from shipyard.core.artifacts.digest import Digest
    from shipyard.errors import IntegrityError, NotFoundError

    examples: Any = None
    if mv.examples_digest is not None:
        with svc.store.open(mv.examples_digest) as f:
            raw = f.read(MAX_EXAMPLES_BYTES + 1)
        if len(raw) > MAX_EXAMPLES_BYTES:
            raise IntegrityError(f"the golden examples of {mv.ref} are larger than "
                                 f"{MAX_EXAMPLES_BYTES // 1024 // 1024} MiB: register it with fewer examples")
        if Digest.of_bytes(raw) != mv.examples_digest:
            raise IntegrityError(f"the golden examples {mv.examples_digest} of {mv.ref} are corrupt (their bytes "
                                 "no longer hash to their name); restore the project's store from a backup")
        try:
            examples = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(f"the golden examples of {mv.ref} are not JSON Shipyard wrote "
                                 f"({type(exc).__name__}: {str(exc)[:120]}); register the model again") from None
        if not isinstance(examples, dict):
            raise IntegrityError(f"the golden examples of {mv.ref} are a JSON {type(examples).__name__}, not "
                                 "the object Shipyard writes; register the model again")
    if not examples or "inputs" not in examples or "outputs" not in examples:
        raise NotFoundError(f"{mv.ref} has no golden examples to verify: register it with "
                            "log_model(..., examples=X[:5]) (its outputs on them are stored as the expected answers)")
    return dict(examples)


def verify_version(svc: Services, ref: str | ModelVersion, request: VerifyRequest,
                   on_line: Callable[[str], None] = lambda _: None, environ: Mapping[str, str] | None = None,
                   record: bool = True, early: Child | None = None, hint: str | None = None
                   ) -> tuple[ModelVersion, Check]:
    """Run ``ref``'s golden examples in a fresh environment (or the current one) and record the outcome.

    ``early`` and ``hint``: from ``verify_early`` (the caller closes ``early``)."""
    from shipyard._version import __version__
    from shipyard.core.environments.golden import Tolerance

    mv = ref if not isinstance(ref, str) else svc.registry.resolve(ref)
    examples = golden_examples(svc, mv)
    tolerance = Tolerance.of(examples)
    if request.current:
        check = _verify_current(svc, mv, examples, tolerance)
    else:
        check = _verify_venv(svc, mv, examples, tolerance, request, on_line, environ, early, hint)
    if record:
        svc.registry.record_result(mv, "verify", check.to_record(__version__), check.summary())
    return mv, check


def _verify_current(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance) -> Check:
    import platform

    from shipyard.adapters.environments.child import as_inputs
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.capture import to_bytes
    from shipyard.core.environments.golden import FAIL, PASS, Check, compare
    from shipyard.errors import InvalidInputError, MissingExtraError

    env = Digest.of_bytes(to_bytes(current_environment(svc.settings)))
    where = str(env)
    try:
        model = svc.registry.load(mv.ref)  # trust-checked, re-hashed: an untrusted version raises here
    except (InvalidInputError, MissingExtraError) as exc:  # does not load here (a module missing): the verdict
        return Check("current", FAIL, where, platform.python_version(), reason=f"the model did not load: {exc}")
    flavor_ = svc.registry.flavors(mv.flavor)
    try:
        got = flavor_.to_json(flavor_.predict(model, as_inputs(examples["inputs"])))
    except Exception as exc:  # the model's own failure is the verdict, not a crash of verify
        from shipyard.adapters.flavors import first_line

        return Check("current", FAIL, where, platform.python_version(),
                     reason=f"the model failed to answer: {type(exc).__name__}: {first_line(exc)}")
    verdict = compare(examples["outputs"], got, tolerance)
    return Check("current", PASS if verdict.passed else FAIL, where, platform.python_version(), verdict=verdict)


def _verify_venv(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance,
                 request: VerifyRequest, on_line: Callable[[str], None], environ: Mapping[str, str] | None,
                 early: Child | None = None, hint: str | None = None) -> Check:
    import platform
    import tempfile
    from dataclasses import replace

    from shipyard.adapters.environments.venvs import Child, EnvCache, EnvSpec, NotInstalled, remember
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
        lock = model_lock(svc, mv).complete(f"verify {mv.ref}", request.overrides)
        python = check_python(request.python) or (".".join(lock.python.split(".")[:2]) if lock.python[:1].isdigit()
                                    else platform.python_version())
        spec = EnvSpec(python, tuple(lock.requirements(request.overrides)), request.overrides,
                       tuple(p.resolve() for p in request.find_links))
        root = verify_cache_dir(environ)
        env = EnvCache(root).ensure(spec, on_line)
        if isinstance(env, NotInstalled):
            return Check("venv", NOT_INSTALLED, env.key, python, request.overrides, reason=env.reason)
        if hint is not None:
            remember(root, hint, env.key, saved.flavor)
        warm = early is not None and early.key == env.key and early.flavor == saved.flavor
        with early if warm and early is not None else Child(env.python, env.key, saved.flavor) as child:
            result = child.answer(folder, saved.flavor_meta, granted.items(), examples["inputs"])
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


def image_environment(image: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The environment record inside a container image (`env check --target IMAGE`), captured there."""
    from shipyard.adapters.images.engine import engine_for
    from shipyard.core.environments.image import check_image_name
    from shipyard.errors import InvalidInputError

    try:
        check_image_name(image, "--target")
    except ValueError as exc:
        raise InvalidInputError(f"{exc}, nor `current` or an environment record file") from None
    return engine_for(environ).environment(image)


def verify_image(svc: Services, ref: str | ModelVersion, image: str, environ: Mapping[str, str],
                 ready_timeout: float | None = None, record: bool = True) -> tuple[ModelVersion, Check]:
    """``verify --image``: the golden examples posted to the image's ``/v2/models/NAME/infer`` in a throwaway
    container, the answers compared with the stored outputs; the outcome recorded with the version."""
    from shipyard._version import __version__
    from shipyard.adapters.images.probe import READY_TIMEOUT, ContainerFailed, run_in_image
    from shipyard.core.environments.golden import FAIL, PASS, Check, Tolerance, compare
    from shipyard.core.environments.image import answer_outputs, check_image_name, infer_request
    from shipyard.errors import InvalidInputError

    try:
        check_image_name(image, "--image")
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    mv = ref if not isinstance(ref, str) else svc.registry.resolve(ref)
    examples = golden_examples(svc, mv)
    try:
        request = infer_request(examples["inputs"], mv.signature)
    except (TypeError, ValueError) as exc:  # ragged rows, a table: not one tensor
        raise InvalidInputError(f"the golden inputs of {mv.ref} cannot be sent as one tensor ({exc}); "
                                "verify it without --image") from None
    try:
        answer = run_in_image(image, mv.model, request, environ, ready_timeout or READY_TIMEOUT)
        got = answer_outputs(answer.body)
    except ContainerFailed as exc:
        check = Check("image", FAIL, image, None, reason=exc.reason)
    except ValueError as exc:
        check = Check("image", FAIL, image, None, reason=f"the answer is not what the model returns: {exc}")
    else:
        served = f"{answer.body.get('model_name')}@{answer.body.get('model_version')}"
        if served != mv.ref:  # another version's image: its answers say nothing about this one
            raise InvalidInputError(f"the image {image} serves {served[:80]}, not {mv.ref}: verify {served[:80]} "
                                    f"--image {image}, or build {mv.ref} (`shipyard build {mv.ref}`)")
        verdict = compare(examples["outputs"], got, Tolerance.of(examples))
        check = Check("image", PASS if verdict.passed else FAIL, f"{image} {answer.image_id}", None, verdict=verdict)
    if record:
        svc.registry.record_result(mv, "verify", {**check.to_record(__version__), "image": image},
                                   check.summary())
    return mv, check
