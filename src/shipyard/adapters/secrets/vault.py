"""``vault:MOUNT/PATH#KEY`` references: a KV v2 secret of Vault (or OpenBao) through hvac, imported on first use.

Login is token (a reference, by default ``env:VAULT_TOKEN``), AppRole (role id and secret id, references) or
Kubernetes (a role and the pod's service account token file). A login token that has expired is renewed by
logging in again once. Every hvac/requests error becomes one line naming the reference and what to check;
neither the value nor the token ever appears in one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shipyard.core.governance.config import VaultSpec
from shipyard.core.redact import mask_userinfo
from shipyard.errors import BackendUnavailableError, ConfigError, MissingExtraError

CONNECT_TIMEOUT = 3.0  # seconds: an unreachable Vault fails fast
READ_TIMEOUT = 10.0
DEFAULT_TOKEN = "env:VAULT_TOKEN"
SERVICE_ACCOUNT_TOKEN = "file:/var/run/secrets/kubernetes.io/serviceaccount/token"
MAX_ERROR = 160


class VaultSecrets:
    """Reads KV v2 secrets at ``address``; ``resolve`` reads the login's own references (env:, file:)."""

    scheme = "vault"

    def __init__(self, spec: VaultSpec, address: str | None, resolve: Callable[[str], str]) -> None:
        if not address:
            raise ConfigError("a vault: reference needs Vault's address: set VAULT_ADDR (e.g. http://127.0.0.1:8200) "
                              "or secrets.vault.address in shipyard.yaml")
        if not address.startswith(("http://", "https://")):
            raise ConfigError(f"Vault address {mask_userinfo(address)[:120]!r} is not an http:// or https:// URL: "
                              "fix VAULT_ADDR or secrets.vault.address")
        self.address = mask_userinfo(address)
        self._url = address
        self._spec = spec
        self._resolve = resolve
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultSecrets({self.address!r}, auth={self._spec.auth!r})"

    def read(self, path: str) -> str:
        where, _, key = path.partition("#")
        mount, _, sub = where.partition("/")
        ref = f"vault:{path}"
        with self._lock:
            try:
                data = self._read(mount, sub, ref, relogin=True)
            except _Expired:
                self._client = None  # a login token that expired (or lost its policy): log in once more
                data = self._read(mount, sub, ref, relogin=False)
        if key not in data:
            keys = ", ".join(sorted(str(k) for k in data)[:20]) or "none"
            raise ConfigError(f"{ref}: the secret {mount}/{sub} has no key {key!r} (its keys: {keys}): fix the "
                              "part after '#'")
        value = data[key]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{ref}: the value of {key!r} is {'empty' if value == '' else 'not a string'}: store "
                              "the secret as a non-empty string")
        return value

    def _read(self, mount: str, sub: str, ref: str, relogin: bool) -> dict[str, Any]:
        hvac = _hvac()
        with self._translated(ref, f"reading {mount}/{sub}"):
            client = self._login()
            try:
                answer = client.secrets.kv.v2.read_secret_version(path=sub, mount_point=mount,
                                                                  raise_on_deleted_version=True)
            except hvac.exceptions.Forbidden:
                if relogin and self._spec.auth != "token":
                    raise _Expired() from None
                if not _token_works(client, hvac):  # Vault answers a dead token with 403 too: say which it is
                    raise ConfigError(f"{ref}: the token was refused by {self.address} (unknown or expired): check "
                                      "VAULT_TOKEN (or secrets.vault.token)") from None
                raise
        data = (answer or {}).get("data", {}).get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ConfigError(f"{ref}: {mount}/{sub} is not a KV version 2 secret: check that the mount {mount!r} "
                              "is a kv-v2 secrets engine")
        return data

    def _login(self) -> Any:
        if self._client is not None:
            return self._client
        hvac = _hvac()
        spec = self._spec
        client = hvac.Client(url=self._url, token=None, namespace=spec.namespace,
                             timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        if spec.auth == "token":
            client.token = self._login_secret(spec.token or DEFAULT_TOKEN, "the token (secrets.vault.token, by "
                                                                           "default env:VAULT_TOKEN)")
        elif spec.auth == "approle":
            if not spec.role_id or not spec.secret_id:
                raise ConfigError("secrets.vault.auth is approle: set role_id and secret_id (references, e.g. "
                                  "env:VAULT_ROLE_ID and env:VAULT_SECRET_ID) in shipyard.yaml")
            role_id = self._login_secret(spec.role_id, "secrets.vault.role_id")
            secret_id = self._login_secret(spec.secret_id, "secrets.vault.secret_id")
            with self._translated("the AppRole login", "logging in with AppRole", login=True):
                client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=spec.mount or "approle")
        else:
            if not spec.role:
                raise ConfigError("secrets.vault.auth is kubernetes: set secrets.vault.role (the Vault role bound "
                                  "to this service account) in shipyard.yaml")
            jwt = self._login_secret(spec.jwt or SERVICE_ACCOUNT_TOKEN, "the service account token")
            with self._translated("the Kubernetes login", "logging in with Kubernetes auth", login=True):
                client.auth.kubernetes.login(role=spec.role, jwt=jwt, mount_point=spec.mount or "kubernetes")
        self._client = client
        return client

    def _login_secret(self, reference: str, what: str) -> str:
        if reference.startswith("vault:"):
            raise ConfigError(f"{what} cannot itself be a vault: reference: give env:NAME or file:PATH")
        try:
            return self._resolve(reference)
        except ConfigError as exc:
            raise ConfigError(f"logging in to Vault at {self.address}: {what}: {exc}") from None

    @contextmanager
    def _translated(self, ref: str, doing: str, login: bool = False) -> Iterator[None]:
        """hvac's and requests' errors as one line each, naming ``ref`` and what to check."""
        hvac = _hvac()
        import requests

        try:
            yield
        except (_Expired, ConfigError, BackendUnavailableError):
            raise
        except hvac.exceptions.InvalidPath:
            if login:
                raise ConfigError(f"{ref} failed at {self.address}: the auth method is not enabled at that mount: "
                                  "check secrets.vault.mount") from None
            raise ConfigError(f"{ref}: no secret at that path on {self.address}: check the mount and the path "
                              "(vault:MOUNT/PATH#KEY, KV version 2) and that the secret exists") from None
        except hvac.exceptions.Forbidden:
            raise ConfigError(f"{ref}: permission denied {doing} at {self.address}: check that the token's policy "
                              "may read it (read on MOUNT/data/PATH)" if not login else
                              f"{ref} was refused at {self.address}: check the role and its credentials") from None
        except (hvac.exceptions.Unauthorized, hvac.exceptions.InvalidRequest) as exc:
            what = "the login was refused" if login else "the token was refused"
            raise ConfigError(f"{ref}: {what} by {self.address} ({_short(exc)}): check VAULT_TOKEN or "
                              "secrets.vault's auth settings") from None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized, hvac.exceptions.BadGateway,
                hvac.exceptions.InternalServerError, hvac.exceptions.RateLimitExceeded) as exc:
            raise BackendUnavailableError(f"{ref}: Vault at {self.address} cannot answer now ({_short(exc)}): "
                                          "try again when it is up") from None
        except hvac.exceptions.VaultError as exc:
            raise ConfigError(f"{ref}: Vault at {self.address} refused {doing} ({_short(exc)})") from None
        except requests.exceptions.RequestException as exc:
            kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "cannot be reached"
            raise BackendUnavailableError(f"{ref}: Vault at {self.address} {kind}: check VAULT_ADDR (or "
                                          "secrets.vault.address) and that Vault is running") from None


class _Expired(Exception):
    """A login token that no longer works: log in again, once."""


def _token_works(client: Any, hvac: Any) -> bool:
    try:
        client.auth.token.lookup_self()
    except hvac.exceptions.VaultError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = " ".join(mask_userinfo(str(exc)).split()) or type(exc).__name__
    return text[:MAX_ERROR]


def _hvac() -> Any:
    try:
        import hvac  # type: ignore[import-untyped]
        import hvac.exceptions  # type: ignore[import-untyped]
    except ModuleNotFoundError as exc:
        raise MissingExtraError("vault: secret references", "vault") from exc
    return hvac
