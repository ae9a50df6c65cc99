"""Monitoring, wired: a version's reference profile, stored as an object and named by its ``profile`` record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shipyard.core.monitoring.config import MonitoringSpec
    from shipyard.core.monitoring.drift import Baseline, Window
    from shipyard.core.monitoring.profile import Profile
    from shipyard.core.monitoring.summary import MonitorReport
    from shipyard.core.registry.records import AuditEvent, ModelVersion
    from shipyard.wiring import Services

MAX_PROFILE_BYTES = 64 * 1024 * 1024  # 10,000 columns of ~5 KB sketches


def monitoring_spec(root: Path) -> MonitoringSpec:
    """shipyard.yaml's monitoring: section of the project at ``root`` (its defaults when there is none)."""
    from shipyard.core.monitoring.config import monitoring_config
    from shipyard.core.project.loader import load_config

    return monitoring_config(load_config(root).monitoring)


def profile_reference(inputs: Any, outputs: Any = None) -> Profile:
    """The profile of reference data ``inputs`` (and the model's ``outputs`` on them): raises MissingExtraError
    ("install shipyard[monitor]") or InvalidInputError before anything is recorded."""
    from shipyard.adapters.monitoring.sketches import build_profile

    return build_profile(inputs, outputs)


def record_profile(svc: Services, mv: ModelVersion, profile: Profile) -> AuditEvent:
    """Store ``profile`` and record it with ``mv`` (its newest profile wins)."""
    from shipyard.core.registry.records import PROFILE_ACTION

    with svc.registry.writing():
        digest = svc.store.put_bytes(json.dumps(profile.to_dict(), sort_keys=True, separators=(",", ":")).encode())
        return svc.registry.record_result(
            mv, PROFILE_ACTION, {"profile": str(digest), "rows": profile.rows, "inputs": len(profile.inputs),
                                 "outputs": len(profile.outputs)},
            f"reference profile of {mv.ref}: {profile.rows} rows, {len(profile.inputs)} input and "
            f"{len(profile.outputs)} output columns")


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


def monitor(svc: Services, mv: ModelVersion, since: str | float = "24h", logs: Sequence[Path] = (),
            now: float | None = None) -> MonitorReport:
    """``mv``'s drift, data quality and traffic over the last ``since`` (``30m``, ``24h``, ``7d``, or seconds),
    from its inference logs: its server runs' logs in the store, those not yet published on this machine, and
    the files or folders in ``logs``. Raises NotFoundError when ``mv`` has no reference profile."""
    import time

    from shipyard.core.monitoring.logs import LogReader, Period, parse_since
    from shipyard.core.monitoring.summary import MonitorReport
    from shipyard.errors import InvalidInputError, NotFoundError
    from shipyard.wiring.inference_logs import count_payloads, read_logs

    seconds = parse_since(since) if isinstance(since, str) else float(since)
    if not 0 < seconds < float("inf"):
        raise InvalidInputError(f"the period must be some seconds long, not {seconds:g}")
    thresholds = monitoring_spec(svc.settings.project_root).thresholds
    base = baseline(svc, mv)
    if base is None:
        raise NotFoundError(f"{mv.ref} has no reference profile to compare its traffic with: record one when you "
                            "register a version, log_model(..., reference=X_train)")
    end = time.time() if now is None else now
    reader = LogReader(base, mv.model, str(mv.version), Period(end - seconds, end),
                       count_payloads(base, mv.model, str(mv.version)))
    notes: list[str] = []
    read_logs(svc, reader, mv.model, logs, notes)
    return MonitorReport(mv.model, str(mv.version), base, thresholds, reader.period, reader.windows,
                         reader.requests, reader.skipped, reader.payload_rows, reader.files, reader.bytes, notes)


def check_report_path(path: Path) -> None:
    """Refuse, before any work, to write a report over a file that is not one (``adapters.monitoring.report``)."""
    from shipyard.adapters.monitoring.report import check_target

    check_target(path)


def write_report(report: MonitorReport, path: Path) -> Path:
    """The HTML report of ``report`` written (atomically) to ``path``, which must be absent or a Shipyard report;
    returns the path written."""
    from shipyard.adapters.monitoring.report import write_html

    return write_html(report, path)
