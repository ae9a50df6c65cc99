"""The composition root: settings -> adapters -> core services. The only module that sees both sides."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config import CONFIG_FILE, Settings, default_db_url, load_settings, working_folder

if TYPE_CHECKING:  # the data commands import this module: keep what they don't use out of their way
    from shipyard.core.artifacts.digest import Digest
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
    from shipyard.core.workspace.lockfile import PathEntry
    from shipyard.ports import Executor, Flavor, MetadataStore, ObjectStore, Remote
    from shipyard.wiring.environments import (
        VerifyRequest as VerifyRequest,
    )
    from shipyard.wiring.environments import (
        build_image as build_image,
    )
    from shipyard.wiring.environments import (
        check_overrides as check_overrides,
    )
    from shipyard.wiring.environments import (
        check_python as check_python,
    )
    from shipyard.wiring.environments import (
        golden_examples as golden_examples,
    )
    from shipyard.wiring.environments import (
        image_environment as image_environment,
    )
    from shipyard.wiring.environments import (
        image_lock as image_lock,
    )
    from shipyard.wiring.environments import (
        verify_cache_dir as verify_cache_dir,
    )
    from shipyard.wiring.environments import (
        verify_early as verify_early,
    )
    from shipyard.wiring.environments import (
        verify_image as verify_image,
    )
    from shipyard.wiring.environments import (
        verify_version as verify_version,
    )

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
    """The project's object store: the local folder; or, when the store lives in S3, that bucket read through
    the local folder as a bounded cache; or, with a default remote in shipyard.yaml, the local folder with
    the remote filling what it lacks on a read (a version registered on another machine, data not pulled)."""
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.adapters.stores.shared import ReadThroughStore

    local = LocalObjectStore(settings.store_path)
    spec = settings.store_remote
    if spec is not None:
        from shipyard.adapters.remotes import open_remote

        return ReadThroughStore(local, lambda: open_remote(spec, settings.project_root,
                                                           secret=secret_of(settings.project_root)), primary=True,
                                max_bytes=cache_bound(settings))
    return ReadThroughStore(local, lambda: default_remote(settings.project_root), primary=False)


def store_is_shared(settings: Settings) -> bool:
    """Whether other machines or projects may write to this store while gc runs: one in S3, or a folder
    that is not this project's own ``.shipyard/objects`` (a shared mount). Writers then hold the database's
    writers lock from storing objects to recording them; a project's own store needs no lock."""
    from shipyard.config import STORE_DIR

    return settings.store_remote is not None or settings.store_path != settings.home / STORE_DIR


def object_stats(store: ObjectStore) -> Callable[[Sequence[Digest]], dict[Digest, tuple[int, float]]] | None:
    """How gc looks at its candidates again before deleting them: (size, last modified) from where the
    objects live (S3 for a store there, the folder otherwise); None for a store that cannot say."""
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.adapters.stores.shared import ReadThroughStore

    if isinstance(store, ReadThroughStore):
        if store.primary:
            return store.upstream.stats
        store = store.cache
    if isinstance(store, LocalObjectStore):
        from shipyard.adapters.remotes.folder import FolderRemote

        return FolderRemote(store.root).stats  # the same look a folder remote takes at its objects
    return None


def cache_bound(settings: Settings) -> int:
    """The bound of a store's cache: ``SHIPYARD_STORE_CACHE_MAX`` (a pod's disk), else ``cache.json``'s."""
    from shipyard.adapters.stores.cache import cache_limit

    return settings.cache_max if settings.cache_max is not None else cache_limit(settings.store_path)


def default_remote(root: Path) -> Remote | None:
    """The remote a read-through store falls back on: shipyard.yaml's default remote, or its only one; None
    when there is none (or no shipyard.yaml)."""
    from shipyard.core.project.loader import load_config

    config = load_config(root)
    if not config.remotes or (config.default_remote is None and len(config.remotes) > 1):
        return None
    return open_named_remote(config, root, None)


def store_source(settings: Settings) -> tuple[Workspace, Remote] | None:
    """When the store lives in S3: the workspace over its local cache alone, and the store read as a remote, so
    `data pull` fills the cache straight from it (each object's size bounded, re-hashed) and checks out from
    the cache; None for a local store (it pulls from a remote)."""
    spec = settings.store_remote
    if spec is None:
        return None
    from shipyard.adapters.remotes import open_remote
    from shipyard.adapters.state.sqlite import SqliteStateCache
    from shipyard.adapters.stores.cache import claim_cache
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.core.workspace.data import Workspace

    claim_cache(settings.store_path)
    cache = LocalObjectStore(settings.store_path)
    ws = Workspace(settings.project_root, cache, SqliteStateCache(settings.home / STATE_FILE))
    return ws, open_remote(spec, settings.project_root, secret=secret_of(settings.project_root))


def open_metadata(settings: Settings) -> MetadataStore:
    from shipyard.adapters.db.store import SqlMetadataStore

    if settings.db_url == default_db_url(settings.home):
        make_home(settings)  # the database folder is Shipyard's own; any other must exist already
    from shipyard.errors import ConfigError
    from shipyard.wiring.secrets import database_url

    url = database_url(settings)  # SHIPYARD_DB_URL=vault:...: resolved here, at use
    try:
        return SqlMetadataStore(url)
    except ConfigError as exc:
        userinfo = url.split("//", 1)[-1].split("@", 1)[0] if "@" in url else ""
        if url == settings.db_url or not any(part and part in str(exc) for part in (url, userinfo)):
            raise
        # the value came from a secret reference: never echo it, even masked (a malformed URL may not mask)
        raise ConfigError(f"the database URL that SHIPYARD_DB_URL={settings.db_url} names cannot be read (its "
                          "value is not shown): it must read sqlite:///PATH or postgresql://USER@HOST:PORT/DB") \
            from None


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
    from shipyard.adapters.vcs.git import first_tracked

    lock = load_lock(root)
    dag.refuse_tracked_outputs(pipeline, lock.data, lambda paths: first_tracked(root, paths))
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
                 **settings.store_environ(), "SHIPYARD_ACTOR": settings.actor}
    return PipelineRunner(pipeline, ws, lock, ParamFiles(root, config.params), environ,
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
    spec = config.remotes[chosen]
    return open_remote(spec, root, chosen, secret=secret_of(root),
                       dvc=_dvc_index(root) if spec.layout == "dvc" else None)


def _dvc_index(root: Path) -> tuple[Callable[[], Mapping[Digest, PathEntry]], Callable[[], ObjectStore | None]]:
    """What a DVC HTTP remote needs, read on first use: shipyard.lock's entries that carry DVC's md5, and the
    local store (where folders' manifests are)."""
    def entries() -> Mapping[Digest, PathEntry]:
        from shipyard.adapters.remotes.dvc_http import lock_entries
        from shipyard.core.workspace.lockfile import load_lock

        return lock_entries(load_lock(root))

    def local() -> ObjectStore | None:
        from shipyard.adapters.stores.local import LocalObjectStore

        settings = load_settings(os.environ, root)
        if settings.store_remote is not None:
            return open_store(settings)
        return LocalObjectStore(settings.store_path)

    return entries, local


def secret_of(root: Path) -> Callable[[str, str], str]:
    """Resolves a secret reference (and what it is, for messages) of the project at ``root``, at use."""
    def resolve(reference: str, what: str) -> str:
        from shipyard.wiring.secrets import secret

        return secret(root, reference, what)

    return resolve


def lock_history(root: Path) -> LockHistory:
    """Every version of the project's shipyard.lock that git holds (for gc); none outside a repository."""
    from shipyard.adapters.vcs.history import lock_history as read

    return read(root)


def flavor(name: str) -> Flavor:
    """The flavor adapter called ``name`` (sklearn, torch, onnx, python), imported on first use."""
    from shipyard.adapters.flavors import get_flavor

    return get_flavor(name)


def data_schema(data: Any) -> dict[str, Any]:
    """The signature entry of ``data`` (an array, a DataFrame, a sparse matrix, text), as every flavor writes it."""
    from shipyard.adapters.flavors.tensors import schema

    return schema(data)


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

    import socket  # here: the data commands import this module, and open no metadata

    origin = Origin(user=settings.actor, host=socket.gethostname(), pid=os.getpid())
    writing = meta.writers_lock if store_is_shared(settings) else contextlib.nullcontext
    tracker = Tracker(meta, store, origin, code_version=code, env_digest=env_digest, pid_alive=pid_alive,
                      writing=writing)
    registry = Registry(meta, store, flavor, settings.actor, env_digest=env_digest,
                        reviewers=settings.trusted_actors, where=registry_of(settings.db_url), writing=writing)
    return Services(settings, store, meta, tracker, registry)


def current_environment(settings: Settings) -> dict[str, Any]:
    """This process's environment record, its slow part cached in the project's data folder."""
    from shipyard.adapters.environments.probe import capture

    return capture(settings.home if settings.home.is_dir() else None)


ENV_RECHECK_SECONDS = 1.0  # how long a process trusts its last look at its own environment (see build)
MAX_ENV_RECORD_BYTES = 16 * 1024 * 1024  # as the probe's cache: thousands of distributions fit


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

    from shipyard.core.artifacts.tree import read_verified
    from shipyard.core.environments.capture import record_problem
    from shipyard.errors import IntegrityError

    raw = read_verified(store, digest, limit=MAX_ENV_RECORD_BYTES, what=f"the environment record {digest} of {label}",
                        too_large=f": Shipyard never writes one that large; {_record_again(label)}")
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


# verify and build: shipyard.wiring.environments, loaded on first use (the data commands never pay for it)
_ENVIRONMENTS = frozenset({
    "image_lock",
    "build_image",
    "verify_cache_dir",
    "check_overrides",
    "check_python",
    "VerifyRequest",
    "verify_early",
    "golden_examples",
    "verify_version",
    "image_environment",
    "verify_image",
})


def __getattr__(name: str) -> Any:
    if name in _ENVIRONMENTS:
        from shipyard.wiring import environments

        return getattr(environments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
