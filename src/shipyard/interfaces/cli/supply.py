"""``shipyard sbom``, ``shipyard scan`` and ``shipyard waive``: the supply chain of a version. (Skeleton.)"""

from __future__ import annotations


def sbom() -> None:
    """Write a CycloneDX 1.6 SBOM of a model version (not implemented yet)."""


def scan() -> None:
    """Check a version's packages against OSV advisories (not implemented yet)."""


def waive() -> None:
    """Waive one advisory for a version, with a reason and an expiry (not implemented yet)."""
