"""The policy's input document: a version's whole record at one gate, built from facts the wiring gathers.

Pure: every part is a plain function of records already read (the version, its producing run, its ``verify``
records, the scan and signature status, the version the environment's alias points at). ``canonical`` gives the
bytes stored as the decision's input object.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ACTIONS = ("promote", "deploy", "alias", "serve")
POLICY_BUNDLE_FILES = ("shipyard.rego", "shipyard_test.rego")  # the default bundle, in core/policy/bundle/


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a metric is null in the document."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def version_part(mv: Any) -> dict[str, Any]:
    return {"name": mv.model, "version": mv.version, "ref": mv.ref, "flavor": mv.flavor,
            "created_by": mv.created_by, "created_at": mv.created_at, "run_id": mv.run_id,
            "manifest": str(mv.manifest_digest), "aliases": list(mv.aliases),
            "metrics": {k: finite(v) for k, v in sorted(mv.metrics.items())},
            "params": dict(sorted(mv.params.items()))}


def lineage_part(run_id: str | None, run: Any | None) -> dict[str, Any]:
    """Lineage: the producing run (``recorded``: its record is in this registry), its inputs' data digests, its
    code commit and, when the tree was dirty, the digest of the uncommitted diff it stored. Complete when all
    of these are recorded: a dirty tree whose diff is stored is as reproducible as a commit (``clean`` says
    which, for a team that wants a clean tree in its own Rego). ``missing`` names what is absent, in words."""
    missing: list[str] = []
    data: dict[str, str] = {}
    commit = diff = None
    dirty = False
    if run_id is None:
        missing.append("producing run")
    elif run is None:
        missing.append(f"the run {run_id} (not in this registry)")
    if run is not None:
        data = {path: str(d) for path, d in sorted(run.inputs.items())}
        commit = run.code.commit
        dirty = bool(run.code.dirty)
        diff = str(run.code.diff_digest) if run.code.diff_digest is not None else None
        if not data:
            missing.append("data digests")
        if commit is None:
            missing.append("code commit")
        elif dirty and diff is None:
            missing.append("the uncommitted diff")
    return {"complete": not missing, "run": run_id, "recorded": run is not None, "data": data, "code": commit,
            "dirty": dirty, "diff": diff, "clean": commit is not None and not dirty, "missing": missing}


def verify_part(records: Iterable[tuple[Any, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The version's ``verify`` records (oldest first), each as where it ran and whether it passed."""
    found = []
    for event, record in records:
        image = record.get("image")
        found.append({"image": image if isinstance(image, str) and image else None,
                      "environment": str(record.get("environment") or "")[:300],
                      "passed": record.get("passed") is True, "when": getattr(event, "at", None),
                      "summary": str(getattr(event, "reason", "") or "")[:300]})
    return found


def image_part(image: str | None, known_as: Iterable[str], verified: Sequence[Any]) -> dict[str, Any]:
    """The image being deployed and whether it passed verify: the newest ``verify --image`` of it (by any of its
    names: the pinned reference, its tag, its local id) passed."""
    if image is None:
        return {"ref": None, "verified": False, "names": []}
    names = {image, *known_as}
    mine = [v for v in verified if v.image in names or (v.image_id is not None and v.image_id in names)]
    return {"ref": image, "verified": bool(mine) and bool(mine[-1].passed), "names": sorted(names),
            "verify": None if not mine else {"image": mine[-1].image, "passed": mine[-1].passed}}


def metrics_part(candidate: Mapping[str, float], current_version: int | None,
                 current: Mapping[str, float] | None, primary: str | None, higher_is_better: bool,
                 margin: float) -> dict[str, Any]:
    """The primary metric of the candidate and of the version the environment's alias points at now:
    both values, the delta (candidate - current) and how much worse the candidate is (positive: worse).
    A value that is not a finite number (NaN, infinity), or a difference that overflows, is null, and ``note``
    says why the two cannot be compared (the bundle's metric check quotes it)."""
    raw_cand = candidate.get(primary) if primary else None
    raw_cur = current.get(primary) if primary and current is not None else None
    cand, cur = finite(raw_cand), finite(raw_cur)
    delta = worse = None
    note = None
    if raw_cand is not None and cand is None:
        note = f"the candidate's {primary} is {raw_cand!r}, not a finite number"
    elif raw_cur is not None and cur is None:
        note = f"version {current_version}'s {primary} is {raw_cur!r}, not a finite number"
    if cand is not None and cur is not None:
        try:
            delta = finite(float(cand - cur))
        except (TypeError, ValueError, OverflowError):
            delta = None
        if delta is None:
            note = f"{cand!r} - {cur!r} is not a finite number"
        else:
            worse = -delta if higher_is_better else delta
    return {"primary": primary, "higher_is_better": higher_is_better, "margin": margin,
            "candidate": cand, "current": cur, "current_version": current_version, "delta": delta,
            "worse_by": worse, "note": note, "all": {k: finite(v) for k, v in sorted(candidate.items())}}


def input_document(*, action: str, env: str | None, actor: str, version: Mapping[str, Any],
                   lineage: Mapping[str, Any], verify: Sequence[Mapping[str, Any]], image: Mapping[str, Any],
                   scan: Mapping[str, Any], signature: Mapping[str, Any], metrics: Mapping[str, Any],
                   settings: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The whole input of one decision. ``now``: the time (waivers' expiry compares with ``today``)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown policy action {action!r}: one of {', '.join(ACTIONS)}")
    when = time.time() if now is None else now
    return {"action": action, "env": env, "actor": actor, "version": dict(version), "lineage": dict(lineage),
            "verify": list(verify), "image": dict(image), "scan": dict(scan), "signature": dict(signature),
            "metrics": dict(metrics), "settings": dict(settings), "now": when,
            "today": time.strftime("%Y-%m-%d", time.gmtime(when))}


def canonical(document: Mapping[str, Any]) -> bytes:
    """The document as stored: JSON with sorted keys, no spaces, no NaN."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str).encode()
