"""Settings: where the project's store and metadata live, from an injected environment mapping."""

from __future__ import annotations

import getpass
import os
import re
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.project.model import Remote

HOME_DIR = ".shipyard"
CONFIG_FILE = "shipyard.yaml"
PROJECT_MARKERS = (CONFIG_FILE, HOME_DIR)
DB_FILE = "shipyard.db"
STORE_DIR = "objects"
CACHE_DIR = "cache"  # the local read-through cache of a store that lives in S3
ACTOR_MAX = 255  # the audit log's actor column
# a store's S3 keys, as secret references (never values), handed to child processes with SHIPYARD_STORE
STORE_KEY_VARIABLES = (("access_key_id", "SHIPYARD_STORE_ACCESS_KEY_ID"),
                       ("secret_access_key", "SHIPYARD_STORE_SECRET_ACCESS_KEY"),
                       ("session_token", "SHIPYARD_STORE_SESSION_TOKEN"))


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path  # Shipyard's data: by default the project's .shipyard folder
    db_url: str
    store_path: Path
    actor: str
    root: Path | None = None  # the project (shipyard.yaml, shipyard.lock); default: home's parent
    trusted_actors: tuple[str, ...] = ()  # reviewers whose trust decisions count as this actor's own
    store_remote: Remote | None = None  # the primary store when it lives in S3; store_path is then its cache
    cache_max: int | None = None  # SHIPYARD_STORE_CACHE_MAX: the cache's bound, above cache.json's (a pod's disk)

    def store_environ(self) -> dict[str, str]:
        """The variables that give a child process (a stage, a verify run) this same store."""
        spec = self.store_remote
        if spec is None:
            return {"SHIPYARD_STORE": str(self.store_path)}
        env = {"SHIPYARD_STORE": spec.url, "SHIPYARD_STORE_CACHE": str(self.store_path)}
        if self.cache_max is not None:
            env["SHIPYARD_STORE_CACHE_MAX"] = str(self.cache_max)
        for key, value in (("AWS_ENDPOINT_URL", spec.endpoint_url), ("AWS_REGION", spec.region),
                           ("AWS_PROFILE", spec.profile), *((v, getattr(spec, f)) for f, v in STORE_KEY_VARIABLES)):
            if value:
                env[key] = value
        return env

    @property
    def project_root(self) -> Path:
        return self.root if self.root is not None else self.home.parent


def find_project_root(start: Path) -> Path | None:
    """The project ``start`` is in: ``start`` itself if it holds ``shipyard.yaml`` or ``.shipyard``, else
    the nearest folder above it holding ``shipyard.yaml``; None if there is none. Nothing is created.

    A ``.shipyard`` with no ``shipyard.yaml`` beside it (the Python API makes one wherever a script
    runs, as MLflow makes ``./mlruns``) marks a project only for its own folder: a script run once in
    your home folder must not make every folder below it part of one project.

    As git does with ``.git``, the search stops at the first marker, whatever it is: a ``.shipyard``
    that is a file or a link is found here and refused by ``load_settings`` with a message, never
    skipped for a project further up. Unlike git, the search crosses mount points up to the
    filesystem root: a project's data folder is often a mounted disk, and Shipyard does not run in
    shell prompts, where git avoids touching slow automounted folders.

    A marker in a folder *above* ``start`` that belongs to another user (not you, not root) is
    refused (ConfigError), as git refuses a repository of another owner since CVE-2022-24765:
    anyone can write ``/tmp/shipyard.yaml``, and its stages would run as you in any folder under
    /tmp. Running from that folder itself is the explicit way to use it.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        for marker in PROJECT_MARKERS if folder == start else (CONFIG_FILE,):
            try:
                st = (folder / marker).lstat()
            except OSError:  # absent, or a folder we may not read: not a project we can use
                continue
            if folder != start and st.st_uid not in (os.geteuid(), 0):
                raise ConfigError(
                    f"{folder / marker} belongs to another user (uid {st.st_uid}), so Shipyard does not treat "
                    f"{folder} as your project: run from {folder} itself if you trust it, or `shipyard init` "
                    "to make this folder a project")
            return folder
    return None


def working_folder() -> Path:
    """The current folder; a ConfigError if it no longer exists (deleted or moved away under this process)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise ConfigError("the current folder no longer exists (it was deleted or moved): cd into a folder that "
                          "exists, then run the command again") from None


def not_a_project(cwd: Path) -> ConfigError:
    """The one-line error of a command that needs a project, run outside any. A ``.shipyard`` above ``cwd``
    with no ``shipyard.yaml`` beside it marks only its own folder (``find_project_root``): it is named, so
    that "no .shipyard/ in any folder above" is never said of a folder that has one."""
    lone = next((f for f in cwd.resolve().parents if _own_folder(f / HOME_DIR)), None)
    if lone is not None:
        return ConfigError(f"not in a Shipyard project: {lone} has a {HOME_DIR}/ but no {CONFIG_FILE}, so it is a "
                           f"project only when you run from there: cd {lone}, or run `shipyard init {lone}` to make "
                           "its subfolders part of it, or `shipyard init` to make this folder a project")
    return ConfigError(f"not in a Shipyard project: no {CONFIG_FILE} in {cwd} or any folder above it (nor a "
                       f"{HOME_DIR}/ here); run `shipyard init` to make this folder one, or cd into a project")


def _own_folder(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def load_settings(environ: Mapping[str, str], cwd: Path, *, anywhere: bool = False) -> Settings:
    """Read ``SHIPYARD_HOME``, ``SHIPYARD_DB_URL``, ``SHIPYARD_STORE``, ``SHIPYARD_ACTOR`` and
    ``SHIPYARD_TRUSTED_ACTORS`` (comma-separated actors whose trust decisions you accept).

    The project is found with ``find_project_root``. Outside any project, and with no
    ``SHIPYARD_HOME``, this raises ``not_a_project`` unless ``anywhere`` (the tracking API,
    which records in ``cwd/.shipyard`` as MLflow records in ``./mlruns``). Nothing is created
    here; a folder named by the environment must already exist, or at least its parent (Shipyard
    makes its own home and store folders, never the folders above them).
    """
    found = find_project_root(cwd)
    explicit_home = bool(environ.get("SHIPYARD_HOME"))
    if found is None and not explicit_home and not anywhere:
        raise not_a_project(cwd)
    root = found if found is not None else cwd.resolve()
    home = Path(environ["SHIPYARD_HOME"]) if explicit_home else root / HOME_DIR
    home = home if home.is_absolute() else cwd / home
    if not explicit_home and home.is_symlink():
        # a cloned repo could commit .shipyard as a link and redirect the store, the database and the lock
        raise ConfigError(f"{home} is a symbolic link (to {_target(home)}); Shipyard does not follow it: replace it "
                          "with a real folder, or set SHIPYARD_HOME to the folder you mean to use")
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home} is a file, not a folder; set SHIPYARD_HOME to a folder for Shipyard's data")
    if explicit_home:
        _parent_exists(home, "SHIPYARD_HOME")
    db_url = environ.get("SHIPYARD_DB_URL") or default_db_url(home)
    store, remote = _store_location(environ, root, home, cwd)
    actor = _check_actor(environ.get("SHIPYARD_ACTOR") or f"{_user()}@{socket.gethostname()}")
    return Settings(home=home, db_url=db_url, store_path=store, actor=actor, root=root,
                    trusted_actors=parse_actors(environ.get("SHIPYARD_TRUSTED_ACTORS", "")), store_remote=remote,
                    cache_max=_cache_max(environ.get("SHIPYARD_STORE_CACHE_MAX", "")))


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:I?B)?|B)?\s*", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
MAX_CACHE_BYTES = 1024**5  # 1 PiB: a larger bound is a typo


def parse_size(text: str) -> int:
    """``20G`` -> 21474836480: bytes, or a number with a unit K, M, G or T (powers of 1024; ``KiB``, ``GB`` and a
    lower-case unit read the same), at most 1 PiB; ValueError naming what to give otherwise."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"{text[:40]!r}: give a size in bytes or with a unit K, M, G or T (e.g. 20G or 512M)")
    size = int(float(m[1]) * 1024 ** _POWERS[(m[2] or "").upper()])
    if size > MAX_CACHE_BYTES:
        raise ValueError(f"{text[:40]!r} is more than 1 PiB: give a bound the disk can hold (e.g. 20G)")
    return size


def _cache_max(text: str) -> int | None:
    """``SHIPYARD_STORE_CACHE_MAX`` (``parse_size``); unset: None."""
    if not text.strip():
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"SHIPYARD_STORE_CACHE_MAX={exc}") from None


_STORE_KEY = re.compile(rb"(?m)^store[ \t]*:")


def _store_location(environ: Mapping[str, str], root: Path, home: Path, cwd: Path) -> tuple[Path, Remote | None]:
    """The local store folder, and the S3 store it caches if the store lives there.

    ``SHIPYARD_STORE`` (a folder, or ``s3://bucket/prefix`` with ``AWS_ENDPOINT_URL`` for a non-AWS
    endpoint) beats ``store:`` in shipyard.yaml; neither: the project's ``.shipyard/objects``. An S3
    store's cache is ``SHIPYARD_STORE_CACHE``, else ``.shipyard/cache``.
    """
    from shipyard.core.redact import mask_userinfo

    text = environ.get("SHIPYARD_STORE") or ""
    spec: Remote | None = None
    if text:
        from shipyard.core.project.model import Remote  # only for a store named here: every command reads this

        spec = Remote(url=text, endpoint_url=environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
                      or None, **_store_key_references(environ))  # type: ignore[arg-type]
        where = "SHIPYARD_STORE"
    else:
        spec = _configured_store(root)
        where = "store: in shipyard.yaml"
    if spec is not None and "://" in spec.url and not spec.url.startswith("file://"):
        if not spec.url.startswith("s3://") or not spec.url.removeprefix("s3://").strip("/"):
            raise ConfigError(f"{where}: {mask_userinfo(spec.url)!r} is not a store location: give s3://bucket/prefix "
                              "or a folder")
        _check_s3_store(spec, where, "AWS_ENDPOINT_URL" if text else where)
        cache = Path(environ["SHIPYARD_STORE_CACHE"]) if environ.get("SHIPYARD_STORE_CACHE") else home / CACHE_DIR
        cache = cache if cache.is_absolute() else cwd / cache
        if environ.get("SHIPYARD_STORE_CACHE") and cache.parent != home:
            _parent_exists(cache, "SHIPYARD_STORE_CACHE")
        return cache, spec
    if spec is None:
        return home / STORE_DIR, None
    store = Path(spec.url.removeprefix("file://"))
    store = store if store.is_absolute() else (cwd if text else root) / store
    if store.parent != home:  # inside the home, it is Shipyard's to make
        _parent_exists(store, "SHIPYARD_STORE" if text else "store (shipyard.yaml)")
    return store, None


def _store_key_references(environ: Mapping[str, str]) -> dict[str, str]:
    """``SHIPYARD_STORE_ACCESS_KEY_ID`` and its siblings: references to the store's keys (a value is refused)."""
    from shipyard.core.secrets import is_reference

    found = {field: environ[variable] for field, variable in STORE_KEY_VARIABLES if environ.get(variable)}
    for field, variable in STORE_KEY_VARIABLES:
        if field in found and not is_reference(found[field]):
            raise ConfigError(f"{variable} must be a secret reference, never the value itself (the value is not "
                              "shown): give env:NAME, file:PATH or vault:MOUNT/PATH#KEY")
    if ("access_key_id" in found) != ("secret_access_key" in found):
        raise ConfigError("set both SHIPYARD_STORE_ACCESS_KEY_ID and SHIPYARD_STORE_SECRET_ACCESS_KEY "
                          "(references), or neither")
    return found


def _check_s3_store(spec: Remote, where: str, endpoint_where: str) -> None:
    """A store URL or endpoint with a user name or password in it is refused (it would be printed, and handed to
    child processes and deploy manifests): credentials come from the environment or a profile, as for remotes.
    The endpoint must be an http(s) URL."""
    from shipyard.core.redact import has_userinfo, mask_userinfo

    how = ("pass credentials as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile (profile: under "
           "store: in shipyard.yaml)")
    if has_userinfo(spec.url):
        raise ConfigError(f"{where}: the store URL {mask_userinfo(spec.url)} holds a user name or password: give "
                          f"s3://bucket/prefix and {how}")
    endpoint = spec.endpoint_url
    if endpoint is None:
        return
    parts = urlsplit(endpoint)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{endpoint_where}: the store's endpoint {mask_userinfo(endpoint)!r} is not an http:// or "
                          "https:// URL: give one such as http://127.0.0.1:9000")
    if "@" in parts.netloc:
        raise ConfigError(f"{endpoint_where}: the store's endpoint {mask_userinfo(endpoint)} holds a user name or "
                          f"password: give it without them and {how}")


def _configured_store(root: Path) -> Remote | None:
    """``store:`` of the project's shipyard.yaml; the file is validated only when it has that key, so a
    project without one pays nothing here (and a broken file is left to the commands that read it)."""
    try:
        with open(root / CONFIG_FILE, "rb") as f:
            head = f.read(1024 * 1024)
    except OSError:
        return None
    if not _STORE_KEY.search(head):
        return None
    from shipyard.core.project.loader import load_config

    return load_config(root).store


def default_db_url(home: Path) -> str:
    """The project's own SQLite database, inside its home folder."""
    return f"sqlite:///{home / DB_FILE}"


def _parent_exists(folder: Path, variable: str) -> None:
    """A mistyped path in the environment must not become a new tree of folders: only its last part is made."""
    parent = folder.parent
    if not os.path.lexists(parent):  # a file there is left to the store's own message (not writable)
        raise ConfigError(f"{variable}={folder}: folder {parent} does not exist; create it (mkdir -p {parent}) "
                          f"or fix {variable}")


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
