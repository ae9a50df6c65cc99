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
ACTOR_MAX = 255  # the audit log's actor column


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path  # Shipyard's data: by default the project's .shipyard folder
    db_url: str
    store_path: Path
    actor: str
    root: Path | None = None  # the project (shipyard.yaml, shipyard.lock); default: home's parent
    trusted_actors: tuple[str, ...] = ()  # reviewers whose trust decisions count as this actor's own

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
    """Read ``SHIPYARD_HOME``, ``SHIPYARD_DB_URL``, ``SHIPYARD_STORE``, ``SHIPYARD_ACTOR`` and
    ``SHIPYARD_TRUSTED_ACTORS`` (comma-separated actors whose trust decisions you accept)."""
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
    actor = _check_actor(environ.get("SHIPYARD_ACTOR") or f"{_user()}@{socket.gethostname()}")
    return Settings(home=home, db_url=db_url, store_path=store if store.is_absolute() else cwd / store, actor=actor,
                    root=root, trusted_actors=parse_actors(environ.get("SHIPYARD_TRUSTED_ACTORS", "")))


def parse_actors(text: str) -> tuple[str, ...]:
    """``"alice@laptop, ci@build"`` -> the actor names, in order, without blanks or repeats."""
    names = (n.strip() for n in text.split(","))
    actors = tuple(dict.fromkeys(n for n in names if n))
    for name in actors:
        if len(name) > 255 or not name.isprintable():
            raise ConfigError(f"SHIPYARD_TRUSTED_ACTORS: {name[:80]!r} is not an actor name (printable, "
                              "at most 255 characters, separated by commas)")
    return actors


def _check_actor(actor: str) -> str:
    """The actor goes into every audit event (a 255-character column): one printable line."""
    if len(actor) > ACTOR_MAX:
        raise ConfigError(f"SHIPYARD_ACTOR is {len(actor)} characters long; the limit is {ACTOR_MAX}: "
                          "use a short name such as alice@laptop")
    if not actor.isprintable():
        raise ConfigError(f"SHIPYARD_ACTOR {actor[:40]!r} holds a newline or another control character: "
                          "use one printable line such as alice@laptop")
    return actor


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
