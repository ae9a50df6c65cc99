"""The governance sections of shipyard.yaml: ``policy:``, ``secrets:``, ``signing:`` and ``scan:``.

Validated with the rest of the file when it loads (``ProjectConfig``); the rest of Shipyard reads them back with
``policy_config``, ``secrets_config``, ``signing_config`` and ``scan_config`` from the plain dicts ``Project`` keeps.
A credential is never a value here, only a reference (``env:NAME``, ``file:PATH``, ``vault:MOUNT/PATH#KEY``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_POLICY_FOLDER = "policies"
DEFAULT_OSV_URL = "https://api.osv.dev"
DEFAULT_SECRET_TTL = 300.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySpec(_Strict):
    """Policy as code: Rego files in ``folder``, evaluated at every gate."""

    folder: str = Field(DEFAULT_POLICY_FOLDER, description="the Rego bundle: a folder of .rego files (and their "
                                                           "_test.rego unit tests), relative to the project")
    protected_aliases: tuple[str, ...] = Field(("production",), description="`alias set` on these asks the policy")
    require_on_serve: bool = Field(False, description="`serve` asks the policy (action serve) before it loads")
    primary_metric: str | None = Field(None, description="the metric compared with the version in the environment")
    higher_is_better: bool = True
    margin: float = Field(0.0, ge=0, description="how much worse than production's primary metric is allowed")
    production: tuple[str, ...] = Field(("production",), description="the environments the default bundle's "
                                                                      "production rules apply to")


class VaultSpec(_Strict):
    """Where a ``vault:`` reference is read (KV v2), and how Shipyard logs in."""

    address: str | None = Field(None, description="http(s)://host:port; default: $VAULT_ADDR")
    auth: Literal["token", "approle", "kubernetes"] = "token"
    token: str | None = Field(None, description="a reference to the token (auth: token); default: $VAULT_TOKEN")
    role_id: str | None = Field(None, description="AppRole role id (or a reference to it)")
    secret_id: str | None = Field(None, description="a reference to the AppRole secret id")
    role: str | None = Field(None, description="the Kubernetes auth role")
    jwt: str | None = Field(None, description="a reference to the service account token (auth: kubernetes); "
                                              "default: file:/var/run/secrets/kubernetes.io/serviceaccount/token")
    mount: str | None = Field(None, description="the auth method's mount point, when not its default")
    namespace: str | None = None

    @field_validator("token", "secret_id", "jwt")
    @classmethod
    def _references(cls, v: str | None, info: ValidationInfo) -> str | None:
        from shipyard.core.secrets import check_reference

        return None if v is None else check_reference(v, f"secrets.vault.{info.field_name}")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("secrets.vault.address should be an http:// or https:// URL, e.g. http://127.0.0.1:8200")
        if v is not None and "@" in v.partition("://")[2].partition("/")[0]:
            raise ValueError("secrets.vault.address holds a user name or password: give it without them")
        return v


class SecretsSpec(_Strict):
    vault: VaultSpec = VaultSpec()
    ttl: float = Field(DEFAULT_SECRET_TTL, gt=0, description="seconds a resolved secret stays cached in memory")


class SigningSpec(_Strict):
    """Signing model versions (OpenSSF model-signing) and what loading one requires."""

    key: str | None = Field(None, description="the private key (PEM, EC) `shipyard sign` uses by default")
    certificate: str | None = Field(None, description="the signing certificate (PEM), with key:, for certificate "
                                                      "signing")
    trusted_keys: tuple[str, ...] = Field((), description="public keys (PEM) whose signatures are accepted")
    require_signed: bool = Field(False, description="load_model, serve, promote and deploy verify the signature "
                                                    "first and refuse an unsigned or tampered version")


class ScanSpec(_Strict):
    osv_url: str = Field(DEFAULT_OSV_URL, description="the OSV API (its /v1/querybatch)")
    db: str | None = Field(None, description="an offline OSV database: a folder of per-ecosystem exports")
    timeout: float = Field(5.0, gt=0, description="seconds each request to the OSV API may take, whole answer "
                                                  "included (the whole query: 10 times that, at most 5 minutes)")

    @field_validator("osv_url")
    @classmethod
    def _osv_url(cls, v: str) -> str:
        return check_osv_url(v, "scan.osv_url")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def check_osv_url(url: str, where: str) -> str:
    """``url`` when it is a URL Shipyard may ask about a project's packages: https://, or http:// to this machine
    (a test mirror), with no user name or password in it; a ValueError saying what to write otherwise."""
    from shipyard.core.redact import has_userinfo

    if has_userinfo(url) or "@" in url.partition("://")[2].partition("/")[0]:
        raise ValueError(f"{where} holds a user name or password: give the URL without them (it would be shown "
                         "and recorded with every scan)")
    if any(c.isspace() or not c.isprintable() for c in url) or len(url) > 2000:
        raise ValueError(f"{where} is not a URL: write https://HOST, e.g. https://api.osv.dev")
    scheme, _, rest = url.partition("://")
    host = rest.partition("/")[0]
    host = host if host.startswith("[") else host.partition(":")[0]
    host = host.split("]")[0] + "]" if host.startswith("[") else host
    if scheme.lower() == "https" and host:
        return url
    if scheme.lower() == "http" and host.lower() in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"{where} {url[:80]!r} is not https://: use https://HOST (http:// only to 127.0.0.1 or "
                     "localhost)")


def policy_config(raw: dict[str, Any] | None) -> PolicySpec:
    return PolicySpec.model_validate(raw or {}, strict=False)


def secrets_config(raw: dict[str, Any] | None) -> SecretsSpec:
    return SecretsSpec.model_validate(raw or {}, strict=False)


def signing_config(raw: dict[str, Any] | None) -> SigningSpec:
    return SigningSpec.model_validate(raw or {}, strict=False)


def scan_config(raw: dict[str, Any] | None) -> ScanSpec:
    return ScanSpec.model_validate(raw or {}, strict=False)
