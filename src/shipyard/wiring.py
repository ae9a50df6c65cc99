"""The composition root: settings -> adapters -> core services. The only module that sees both sides."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings, load_settings
from shipyard.core.lineage.records import CodeVersion
from shipyard.core.lineage.tracking import Origin, Tracker
from shipyard.core.registry.service import Registry
from shipyard.core.workspace.data import Workspace
from shipyard.ports import MetadataStore, ObjectStore

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

    return SqlMetadataStore(settings.db_url)


def open_workspace(settings: Settings) -> Workspace:
    """Store, stat cache and project root: all the data commands need (no metadata database)."""
    from shipyard.adapters.state.sqlite import SqliteStateCache

    return Workspace(settings.project_root, open_store(settings), SqliteStateCache(settings.home / STATE_FILE))


def build(settings: Settings, cwd: Path | None = None) -> Services:
    from shipyard.adapters.flavors import get_flavor
    from shipyard.adapters.process import pid_alive
    from shipyard.adapters.vcs.git import code_version
    from shipyard.core.environments.capture import capture, to_bytes

    store = open_store(settings)
    meta = open_metadata(settings)
    here = cwd or Path.cwd()

    # Captured once per process: the interpreter and its packages do not change under a running program.
    @functools.cache
    def env_digest() -> str:
        return str(store.put_bytes(to_bytes(capture())))

    @functools.cache
    def code() -> CodeVersion:
        return code_version(here, store)

    origin = Origin(user=settings.actor, host=socket.gethostname(), pid=os.getpid())
    tracker = Tracker(meta, store, origin, code_version=code, env_digest=env_digest, pid_alive=pid_alive)
    registry = Registry(meta, store, get_flavor, settings.actor, env_digest=env_digest)
    return Services(settings, store, meta, tracker, registry)


def settings_from_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    return load_settings(os.environ if environ is None else environ, cwd or Path.cwd())


def from_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Services:
    here = cwd or Path.cwd()
    return build(settings_from_environment(environ, here), here)
