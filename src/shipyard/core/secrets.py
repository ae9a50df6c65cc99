"""Secrets by reference: ``env:NAME``, ``file:PATH`` or ``vault:MOUNT/PATH#KEY``, resolved at use, cached in memory.

A credential is never a value in Shipyard's configuration, records or manifests: only a reference to where the
value lives. ``Resolver`` reads a reference through the ``SecretStore`` of its scheme and keeps the value in
memory for ``ttl`` seconds (a key rotated in Vault is picked up after that). Values appear in no repr, str,
error message or log line; a text that is not a reference is never echoed either (it may be a pasted secret).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shipyard.errors import BackendUnavailableError, ConfigError
from shipyard.ports import SecretStore

ENV, FILE, VAULT = "env", "file", "vault"
SCHEMES = (ENV, FILE, VAULT)
FORMS = "env:NAME, file:PATH or vault:MOUNT/PATH#KEY"
MAX_SECRET_BYTES = 64 * 1024  # a token, a key, a URL: a file: larger than this is not a secret
MAX_REFERENCE = 1024
RETRY_STALE = 10.0  # seconds a value kept past its TTL (its backend down) is used before the backend is asked again
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
VAULT_SEGMENT = re.compile(r"[A-Za-z0-9_.@=+-][A-Za-z0-9_.@=+ -]{0,254}\Z")
VAULT_KEY = re.compile(r"[A-Za-z0-9_.@=+-]{1,255}\Z")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. ``path`` is the text after the scheme (what the scheme's ``SecretStore`` reads)."""

    scheme: str
    path: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.path}"

    @property
    def vault_parts(self) -> tuple[str, str, str]:
        """(mount, path, key) of a ``vault:`` reference: ``secret/shipyard/db#url`` -> (secret, shipyard/db, url)."""
        where, _, key = self.path.partition("#")
        mount, _, path = where.partition("/")
        return mount, path, key


def _refused(what: str, why: str) -> ConfigError:
    return ConfigError(f"{what} is not a secret reference ({why}; the value is not shown): give {FORMS}")


def parse_reference(text: str, what: str = "the secret reference") -> Reference:
    """``text`` as a ``Reference``; a one-line ConfigError naming the three forms otherwise. ``text`` itself is
    never repeated in the message (it may be a secret pasted where a reference belongs)."""
    if not isinstance(text, str) or not text:
        raise _refused(what, "it is empty")
    if len(text) > MAX_REFERENCE or not text.isprintable():
        raise _refused(what, "it is too long or holds a control character")
    scheme, colon, path = text.partition(":")
    if not colon or scheme not in SCHEMES:
        raise _refused(what, "it does not start with env:, file: or vault:")
    if scheme == ENV:
        if not ENV_NAME.match(path):
            raise _refused(what, "env: takes the name of an environment variable")
    elif scheme == FILE:
        if not path.strip() or "\0" in path:
            raise _refused(what, "file: takes a path")
    else:
        where, hash_, key = path.partition("#")
        parts = where.split("/")
        if not hash_ or not VAULT_KEY.match(key) or len(parts) < 2 or not all(VAULT_SEGMENT.match(p) for p in parts) \
                or any(p in (".", "..") for p in parts):
            raise _refused(what, "vault: takes MOUNT/PATH#KEY, e.g. vault:secret/shipyard#api_key")
    return Reference(scheme, path)


def is_reference(text: object) -> bool:
    """Whether ``text`` reads as a reference (``parse_reference`` accepts it)."""
    try:
        parse_reference(text)  # type: ignore[arg-type]
    except ConfigError:
        return False
    return True


def check_reference(text: str, what: str) -> str:
    """``text`` if it is a reference; a ValueError (for a pydantic validator) saying it is a literal value
    and naming the forms, without the value."""
    if not is_reference(text):
        raise ValueError(f"{what} must be a secret reference, never the value itself (the value is not shown): "
                         f"give {FORMS}")
    return text


class Resolver:
    """References to values, through one ``SecretStore`` per scheme, each value cached for ``ttl`` seconds.

    ``stores`` maps a scheme to a factory called on the first reference of that scheme (a Vault login happens
    only when a ``vault:`` reference is read). ``clock`` (monotonic seconds) is injectable so tests need no
    sleep. Thread-safe: a cached lookup takes no lock; a miss reads under the lock, so concurrent misses of
    one reference read the backend once. When the backend cannot be reached to refresh an expired value, the
    last value is kept (a server keeps serving while Vault restarts); a value never read fails as usual.
    """

    def __init__(self, stores: Mapping[str, Callable[[], SecretStore]], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl > 0:
            raise ConfigError(f"secrets.ttl must be more than 0 seconds, not {ttl:g}")
        self._factories = dict(stores)
        self._stores: dict[str, SecretStore] = {}
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}  # reference -> (expires at, value)
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the values
        return f"Resolver(schemes={sorted(self._factories)}, ttl={self.ttl:g}, cached={len(self._cache)})"

    def resolve(self, reference: str | Reference, what: str = "the secret reference") -> str:
        """The value ``reference`` names: from the cache while fresh, else read from its store."""
        key = str(reference)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        ref = reference if isinstance(reference, Reference) else parse_reference(reference, what)
        with self._lock:
            hit = self._cache.get(key)
            now = self._clock()
            if hit is not None and hit[0] > now:
                return hit[1]
            try:
                value = self._store(ref.scheme).read(ref.path)
            except BackendUnavailableError:
                if hit is not None:  # stale beats down: the backend is asked again a little later
                    self._cache[key] = (now + min(self.ttl, RETRY_STALE), hit[1])
                    return hit[1]
                raise
            self._cache[key] = (now + self.ttl, value)
            return value

    def _store(self, scheme: str) -> SecretStore:
        store = self._stores.get(scheme)
        if store is None:
            factory = self._factories.get(scheme)
            if factory is None:
                raise ConfigError(f"{scheme}: references cannot be read here: give {FORMS}")
            store = self._stores[scheme] = factory()
        return store

    def forget(self) -> None:
        """Drop every cached value (and the stores, so a Vault login is made again)."""
        with self._lock:
            self._cache.clear()
            self._stores.clear()


def clean_value(raw: bytes, where: str) -> str:
    """A file's bytes as a secret: UTF-8, one trailing newline removed (``echo``, editors); ConfigError naming
    ``where`` (never the bytes) when it is not text or is empty."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text: a secret file holds the value as text") from None
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text:
        raise ConfigError(f"{where} is empty: write the secret into it")
    return text


# --- what must never be recorded: credentials among environment variables and URLs ---------------------------

CREDENTIAL_NAME = re.compile(r"(?i)(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY"
                             r"|(^|_)KEY($|_)|(^|_)AUTH($|_)|SESSION|COOKIE|DSN|DATABASE_URL|DB_URL"
                             r"|(^|_)PWD($|_)|(^|_)PASS($|_)|CONNECTION_?STRING|CONN_?STR|(^|_)PAT($|_)|SAS($|_)"
                             r"|SIGNATURE|(^|_)CERT|WEBHOOK)")
URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s:@]*:[^/?#\s@]+@")
REDACTED = "***"


def looks_secret(name: str, value: str) -> bool:
    """Whether the variable ``name=value`` looks like a credential: a name with TOKEN, SECRET, PASSWORD, KEY,
    CREDENTIAL... in it, or a value holding a URL with a password (``postgresql://u:pw@host/db``). A value that
    is itself a reference (``vault:...``) is safe to keep."""
    if is_reference(value):
        return False
    return bool(CREDENTIAL_NAME.search(name)) or bool(URL_PASSWORD.search(value))


def redact_environ(environ: Mapping[str, str], keep_empty: bool = False) -> dict[str, str]:
    """``environ`` with every value that looks like a credential replaced by ``***`` (for a record or a log);
    ``keep_empty``: an empty value stays empty (set and unset still differ)."""
    return {k: (REDACTED if looks_secret(k, v) and (v or not keep_empty) else v) for k, v in environ.items()}
