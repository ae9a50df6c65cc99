"""SBOMs and vulnerability scans, wired: what a version's newest scan found, with its waivers applied.

(Skeleton: the SBOM/scan work fills this in; the policy gate calls ``scan_status``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services


def scan_status(svc: Services, mv: ModelVersion, now: float | None = None) -> dict[str, Any]:
    """The policy input's ``scan`` part: ``{"checked": bool, "source": str | None, "when": float | None,
    "findings": [{"id", "package", "version", "ecosystem", "severity" (critical|high|medium|low|unknown),
    "fixed": [versions], "summary", "waived": bool, "waiver": {"reason", "expires", "by"} | None}]}``; with no
    scan recorded: ``{"checked": False, "source": None, "when": None, "findings": []}``."""
    return {"checked": False, "source": None, "when": None, "findings": []}
