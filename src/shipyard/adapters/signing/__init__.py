"""Signing adapters: key pairs (cryptography), OpenSSF model-signing bundles (``model-signing``) and signed
in-toto provenance (``in-toto-attestation`` + securesystemslib's DSSE). Each module imports its library lazily."""

from __future__ import annotations

import importlib


def need(module: str, feature: str) -> None:
    """A MissingExtraError naming ``shipyard[governance]`` when ``module`` (or what it imports: model-signing
    1.1 imports pyOpenSSL without declaring it) cannot be imported."""
    from shipyard.errors import MissingExtraError

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{feature} ({exc.name or module} is missing)", "governance") from exc
