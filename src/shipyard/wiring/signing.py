"""Signing and provenance, wired: signature status and the ``require_signed`` check every loading path calls.

(Skeleton: the signing work fills this in; the policy gate calls ``signature_status`` and ``require_signature``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services


@dataclass(frozen=True)
class SignatureStatus:
    """What the policy input says of a version's signature."""

    signed: bool  # a signature is recorded for the version
    verified: bool  # it verifies against the version's files, by a trusted key
    key: str | None = None  # the signer's key fingerprint (sha256 of the public key), or its identity
    reason: str = ""  # one line: why not verified, or what verified it

    def to_dict(self) -> dict[str, object]:
        return {"signed": self.signed, "verified": self.verified, "key": self.key, "reason": self.reason}


def signature_status(svc: Services, mv: ModelVersion) -> SignatureStatus:
    """Whether ``mv`` is signed, and whether that signature verifies now with the trusted keys."""
    return SignatureStatus(False, False, None, "signing is not wired yet")


def require_signature(svc: Services, mv: ModelVersion, action: str) -> None:
    """With ``signing.require_signed``: raise SignatureError unless ``mv`` verifies (``action``: load, serve,
    promote, deploy, for the message). Without it: nothing."""
    return None
