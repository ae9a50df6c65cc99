"""Settings: where the project's store and metadata live, from an injected environment mapping."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ConfigError

HOME_DIR = ".shipyard"
PROJECT_MARKERS = ("shipyard.yaml", HOME_DIR)
DB_FILE = "shipyard.db"
STORE_DIR = "objects"


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path  # Shipyard's data: by default the project's .shipyard folder
    db_url: str
    store_path: Path
    actor: str
    root: Path | None = None  # the project (shipyard.yaml, shipyard.lock); default: home's parent

    @property
    def project_root(self) -> Path:
        return self.root if self.root is not None else self.home.parent


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding shipyard.yaml or .shipyard, else ``start``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return start


def load_settings(environ: Mapping[str, str], cwd: Path) -> Settings:
    """Read ``SHIPYARD_HOME``, ``SHIPYARD_DB_URL``, ``SHIPYARD_STORE`` and ``SHIPYARD_ACTOR``."""
    root = find_project_root(cwd)
    home = Path(environ["SHIPYARD_HOME"]) if environ.get("SHIPYARD_HOME") else root / HOME_DIR
    home = home if home.is_absolute() else cwd / home
    if not environ.get("SHIPYARD_HOME") and home.is_symlink():
        # a cloned repo could commit .shipyard as a link and redirect the store, the database and the lock
        raise ConfigError(f"{home} is a symbolic link (to {_target(home)}); Shipyard does not follow it: replace it "
                          "with a real folder, or set SHIPYARD_HOME to the folder you mean to use")
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home} is a file, not a folder; set SHIPYARD_HOME to a folder for Shipyard's data")
    db_url = environ.get("SHIPYARD_DB_URL") or f"sqlite:///{home / DB_FILE}"
    store = Path(environ["SHIPYARD_STORE"]) if environ.get("SHIPYARD_STORE") else home / STORE_DIR
    actor = environ.get("SHIPYARD_ACTOR") or f"{_user()}@{socket.gethostname()}"
    return Settings(home=home, db_url=db_url, store_path=store if store.is_absolute() else cwd / store, actor=actor,
                    root=root)


def _target(link: Path) -> str:
    try:
        return str(link.readlink())
    except OSError:
        return "?"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
