"""Signing adapters: key pairs (cryptography), OpenSSF model-signing bundles (``model-signing``) and signed
in-toto provenance (``in-toto-attestation`` + securesystemslib's DSSE). Each module imports its library lazily."""

from __future__ import annotations

import importlib.util


def need(module: str, feature: str) -> None:
    """A MissingExtraError naming ``shipyard[governance]`` when ``module`` is not installed."""
    from shipyard.errors import MissingExtraError

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(feature, "governance")
