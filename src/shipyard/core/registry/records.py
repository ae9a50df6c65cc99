"""Immutable records of the registry: model versions, aliases and the audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest

REGISTER_ACTION = "version.register"
VERIFY_ACTION = "verify"  # a check of a version's golden examples somewhere (a venv, an image)
BUILD_ACTION = "build"  # an image built for a version
ROLLOUT_ACTION = "rollout"  # a local progressive rollout of a version: promoted or rolled back, and why
PROMOTE_ACTION = "promote"  # a promotion pushed to a GitOps repository: environment, image, commit
POLICY_ACTION = "policy"  # a policy decision at a gate: action, env, allowed, reasons, bundle and input digests
SCAN_ACTION = "scan"  # a vulnerability scan of the version (or of an image of it): findings, or "not checked"
WAIVE_ACTION = "waive"  # a waiver of one advisory for the version: reason and expiry
SBOM_ACTION = "sbom"  # a CycloneDX SBOM written for the version (or an image of it): the document's digest
SIGN_ACTION = "sign"  # a signature of the version's files (OpenSSF model-signing bundle): bundle digest, key
PROVENANCE_ACTION = "provenance"  # an in-toto SLSA v1 provenance statement for the version or an image built for it
PROFILE_ACTION = "profile"  # the reference profile of the version's training data and outputs (monitoring)
RESULT_ACTIONS = (VERIFY_ACTION, BUILD_ACTION, ROLLOUT_ACTION, PROMOTE_ACTION, POLICY_ACTION, SCAN_ACTION,
                  WAIVE_ACTION, SBOM_ACTION, SIGN_ACTION, PROVENANCE_ACTION,
                  PROFILE_ACTION)  # audit events naming a record object


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What a registration asks for; the store assigns the number."""

    model: str
    manifest_digest: Digest
    flavor: str
    size: int
    run_id: str | None
    env_digest: Digest | None
    signature: dict[str, object] = field(default_factory=dict)
    examples_digest: Digest | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created_by: str = ""
    requested_version: int | None = None  # only to detect an attempt to re-use a number
    trusted: tuple[str, ...] = ()  # log_model: what the registrant trusts, audited with the registration
    trust_reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: int
    manifest_digest: Digest
    flavor: str
    size: int
    run_id: str | None
    env_digest: Digest | None
    signature: dict[str, object]
    examples_digest: Digest | None
    metrics: dict[str, float]
    params: dict[str, str]
    description: str
    created_at: float
    created_by: str
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    # MLflow's names for the same fields, read-only (``version`` stays an int: ``int(mv.version)`` and
    # f-strings work as with MLflow's string, ``mv.version == "1"`` does not)

    @property
    def name(self) -> str:
        return self.model

    @property
    def source(self) -> str:
        """Where the version's files load from: ``models:/NAME/VERSION``, which ``load_model`` accepts."""
        return f"models:/{self.model}/{self.version}"

    @property
    def creation_timestamp(self) -> int:
        """``created_at`` in milliseconds since the epoch, as MLflow's."""
        return round(self.created_at * 1000)

    @property
    def user_id(self) -> str:
        return self.created_by

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "version": self.version, "manifest_digest": str(self.manifest_digest),
            "flavor": self.flavor, "size": self.size, "run_id": self.run_id, "env_digest": _text(self.env_digest),
            "signature": self.signature, "examples_digest": _text(self.examples_digest), "metrics": self.metrics,
            "params": self.params, "description": self.description, "created_at": self.created_at,
            "created_by": self.created_by, "aliases": list(self.aliases),
        }

    def record_digest(self) -> str:
        """The digest of everything the immutable row holds (aliases move, so they are left out).

        Written into the version's registration event, so ``store verify`` can tell whether any
        field of the row (metrics, params, signature, lineage ...) changed after registration.
        """
        body = self.to_dict()
        del body["aliases"]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return str(Digest.of_bytes(canonical.encode()))


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    latest_version: int
    created_at: float
    aliases: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "latest_version": self.latest_version, "created_at": self.created_at,
                "aliases": dict(self.aliases)}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Append-only: who did what, when, from which target to which, and why."""

    id: int
    at: float
    actor: str
    action: str  # "alias.set", "alias.remove", "version.register", "trust"
    model: str
    name: str  # the alias name, or the version number as text
    old: str | None
    new: str | None
    reason: str
    trusted: tuple[str, ...] = ()  # a "trust" event: every item trusted for the version (see registry.trust)
    record: str | None = None  # a "version.register" event: the version's record_digest (None before it existed)

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                                   "model": self.model, "name": self.name, "old": self.old, "new": self.new,
                                   "reason": self.reason}
        if self.action == "trust":
            body["trusted"] = list(self.trusted)
        if self.record is not None:
            body["record"] = self.record
        return body


def _text(digest: Digest | None) -> str | None:
    return None if digest is None else str(digest)
