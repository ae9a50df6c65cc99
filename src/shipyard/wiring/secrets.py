"""The process's secret resolver: references (env:, file:, vault:) read through one TTL cache per project.

``secret(where, reference)`` is what the rest of Shipyard calls wherever a credential is configured; ``where``
is the services, the settings or the project folder (its shipyard.yaml's ``secrets:`` section says how Vault is
reached and how long a value stays cached).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import CONFIG_FILE, Settings
from shipyard.core.secrets import Resolver

if TYPE_CHECKING:
    from shipyard.core.governance.config import SecretsSpec
    from shipyard.ports import SecretStore
    from shipyard.wiring import Services

_RESOLVERS: dict[tuple[str, str], Resolver] = {}
_LOCK = threading.Lock()


def _root(where: Services | Settings | Path) -> Path:
    if isinstance(where, Path):
        return where
    if isinstance(where, Settings):
        return where.project_root
    return where.settings.project_root


def secrets_spec(root: Path) -> SecretsSpec:
    """The project's ``secrets:`` section (defaults when it has no shipyard.yaml)."""
    from shipyard.core.governance.config import secrets_config

    if not (root / CONFIG_FILE).is_file():
        return secrets_config(None)
    from shipyard.core.project.loader import load_config

    return secrets_config(load_config(root).secrets)


def make_resolver(root: Path, spec: SecretsSpec, clock: Callable[[], float] | None = None) -> Resolver:
    """A new resolver for the project at ``root``: env: from this process's environment, file: relative to
    ``root``, vault: at ``spec.vault.address`` or ``$VAULT_ADDR`` (logged in on the first vault: reference)."""
    import time

    from shipyard.adapters.secrets.local import EnvSecrets, FileSecrets

    def vault() -> SecretStore:
        from shipyard.adapters.secrets.vault import VaultSecrets

        return VaultSecrets(spec.vault, spec.vault.address or os.environ.get("VAULT_ADDR"), local)

    env, files = EnvSecrets(), FileSecrets(root)

    def local(reference: str) -> str:  # the Vault login's own references: never cached beyond the login
        from shipyard.core.secrets import parse_reference

        ref = parse_reference(reference, "a Vault login reference")
        return (env if ref.scheme == "env" else files).read(ref.path)

    return Resolver({"env": lambda: env, "file": lambda: files, "vault": vault}, spec.ttl,
                    clock=clock or time.monotonic)


def resolver(where: Services | Settings | Path) -> Resolver:
    """The process-wide resolver of the project ``where`` names (one per project and ``secrets:`` section, so a
    cached value outlives the command objects that asked for it)."""
    root = _root(where).resolve()
    spec = secrets_spec(root)
    key = (str(root), spec.model_dump_json())
    found = _RESOLVERS.get(key)
    if found is not None:
        return found
    with _LOCK:
        found = _RESOLVERS.get(key)
        if found is None:
            found = _RESOLVERS[key] = make_resolver(root, spec)
        return found


def secret(where: Services | Settings | Path, reference: str, what: str = "the secret reference") -> str:
    """The value ``reference`` names, resolved at use (cached for ``secrets.ttl`` seconds); ``what`` names the
    setting in messages (``--api-key``, ``remote origin's secret_access_key``)."""
    return resolver(where).resolve(reference, what)


def secret_source(where: Services | Settings | Path, reference: str, what: str) -> Callable[[], str]:
    """A callable giving the value of ``reference`` each time it is asked, through the TTL cache: for a
    long-running process (the model server's API key), so a value rotated in Vault is used after the TTL.
    The reference is checked, and read once, here."""
    from shipyard.core.secrets import parse_reference

    ref = parse_reference(reference, what)
    chosen = resolver(where)
    chosen.resolve(ref, what)
    return lambda: chosen.resolve(ref, what)


def reference_getter(where: Services | Settings | Path) -> Callable[[str, str], str]:
    """``secret`` bound to the project ``where`` names, for an adapter that resolves its own references."""
    chosen = resolver(where)
    return chosen.resolve


def database_url(settings: Settings) -> str:
    """``SHIPYARD_DB_URL`` as the database driver needs it: a reference (env:, file:, vault:) is resolved."""
    from shipyard.core.secrets import SCHEMES

    url = settings.db_url
    if url.partition(":")[0] in SCHEMES:
        return secret(settings, url, "SHIPYARD_DB_URL")
    return url
