"""Monitoring, wired: a version's reference profile, stored as an object and named by its ``profile`` record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.core.monitoring.drift import Baseline, Window
    from shipyard.core.monitoring.profile import Profile
    from shipyard.core.registry.records import AuditEvent, ModelVersion
    from shipyard.wiring import Services

MAX_PROFILE_BYTES = 64 * 1024 * 1024  # 10,000 columns of ~5 KB sketches


def record_profile(svc: Services, mv: ModelVersion, inputs: Any, outputs: Any = None) -> tuple[AuditEvent, Profile]:
    """Profile ``inputs`` (and the model's ``outputs`` on them), store the profile and record it with ``mv``."""
    from shipyard.adapters.monitoring.sketches import build_profile
    from shipyard.core.registry.records import PROFILE_ACTION

    profile = build_profile(inputs, outputs)
    with svc.registry.writing():
        digest = svc.store.put_bytes(json.dumps(profile.to_dict(), sort_keys=True, separators=(",", ":")).encode())
        event = svc.registry.record_result(
            mv, PROFILE_ACTION, {"profile": str(digest), "rows": profile.rows, "inputs": len(profile.inputs),
                                 "outputs": len(profile.outputs)},
            f"reference profile of {mv.ref}: {profile.rows} rows, {len(profile.inputs)} input and "
            f"{len(profile.outputs)} output columns")
    return event, profile


def reference_profile(svc: Services, mv: ModelVersion) -> Profile | None:
    """The newest profile recorded with ``mv``, re-hashed and bounded as it is read; None when there is none."""
    found = _stored_profile(svc, mv)
    return None if found is None else found[1]


def baseline(svc: Services, mv: ModelVersion) -> Baseline | None:
    """The drift bins of ``mv``'s reference profile (``core.monitoring.drift``); None when it has no profile."""
    from shipyard.adapters.monitoring.bins import baseline_of

    found = _stored_profile(svc, mv)
    return None if found is None else baseline_of(found[1], found[0])


def count_rows(baseline: Baseline, model: str, version: str, rows: Any, predictions: Any, start: float,
               end: float | None = None) -> Window:
    """``rows`` (inputs, by position) and ``predictions`` counted into ``baseline``'s bins: the server's drift
    monitor counts a batch of requests with it."""
    from shipyard.adapters.monitoring.bins import count_rows as count

    return count(baseline, model, version, rows, predictions, start, end)


def _stored_profile(svc: Services, mv: ModelVersion) -> tuple[str, Profile] | None:
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.tree import read_verified
    from shipyard.core.monitoring.profile import Profile
    from shipyard.core.registry.records import PROFILE_ACTION

    recorded = svc.registry.results(mv, PROFILE_ACTION)
    if not recorded:
        return None
    digest = Digest.parse(str(recorded[-1][1].get("profile")))
    raw = read_verified(svc.store, digest, limit=MAX_PROFILE_BYTES)
    return str(digest), Profile.from_dict(json.loads(raw), f"the profile of {mv.ref} ({digest})")
