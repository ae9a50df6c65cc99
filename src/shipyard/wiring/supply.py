"""SBOMs and vulnerability scans, wired: a version's SBOM, its scan against OSV, its waivers, and what a
version's newest scan found with its waivers applied (``scan_status``, the policy input's ``scan`` part)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.governance.config import ScanSpec
    from shipyard.core.registry.records import ModelVersion
    from shipyard.core.supply.osv import Finding, Package, Waiver
    from shipyard.wiring import Services

MAX_SBOM_BYTES = 256 * 1024 * 1024
SPEC = "1.6"


class Source(Protocol):
    """Where advisories come from: the OSV API or an offline database."""

    @property
    def label(self) -> str: ...

    def scan(self, packages: list[Package]) -> tuple[list[Finding], list[str]]: ...


# --- SBOM ------------------------------------------------------------------------------------------------------


@dataclass
class Sbom:
    model: ModelVersion | None
    image: str | None
    document: bytes
    digest: Digest
    packages: int
    recorded: bool
    reused: bool = False

    def record(self) -> dict[str, Any]:
        return {"document": str(self.digest), "image": self.image, "packages": self.packages, "spec": SPEC}


def today(now: float | None = None) -> date:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).date()


def make_sbom(svc: Services, mv: ModelVersion | None, image: str | None, environ: Mapping[str, str],
              progress: Callable[[str], None] = lambda _: None) -> Sbom:
    """Write, validate, store and record (when there is a version) the SBOM of ``mv``, with ``image``'s OS
    packages when given."""
    from shipyard._version import __version__
    from shipyard.adapters.supply.sbom import ImagePart, SbomInput, build_sbom
    from shipyard.core.registry.records import SBOM_ACTION

    part: ImagePart | None = None
    if image is not None:
        from shipyard.adapters.supply.image import read_image

        progress(f"reading the OS packages of {image} (dpkg status, without running it)")
        part = read_image(image, environ)
    if mv is None:
        spec = SbomInput(None, 0, "", "", {}, (), image=part, tool_version=__version__)
    else:
        spec = _model_input(svc, mv, part, __version__)
    document, count = build_sbom(spec)
    with svc.registry.writing():  # the stored document and its record, as one write gc on a shared store waits for
        digest = svc.store.put_bytes(document)
        sbom = Sbom(mv, image, document, digest, count, recorded=mv is not None)
        if mv is not None:
            where = f" in {image}" if image else ""
            svc.registry.record_result(mv, SBOM_ACTION, sbom.record(),
                                       f"SBOM {digest} (CycloneDX {SPEC}, {count} packages{where})")
    return sbom


def _model_input(svc: Services, mv: ModelVersion, part: Any, tool_version: str) -> Any:
    from shipyard.adapters.supply.sbom import SbomInput
    from shipyard.errors import NotFoundError
    from shipyard.wiring import model_lock

    lock = model_lock(svc, mv)
    notes = []
    if lock.missing:
        notes.append(f"not in the environment record, so not listed: {' '.join(lock.missing)}")
    datasets: list[tuple[str, str]] = []
    if mv.run_id is not None:
        try:
            run = svc.tracker.get_run(mv.run_id)
        except NotFoundError:
            notes.append(f"the producing run {mv.run_id} is not in this registry: no datasets listed")
        else:
            datasets, left = dataset_inputs(svc, run.inputs)
            if left:
                notes.append("inputs of the run not listed as datasets (code git tracks, or not tracked data): "
                             + " ".join(left[:20]) + (f" and {len(left) - 20} more" if len(left) > 20 else ""))
    return SbomInput(mv.model, mv.version, str(mv.manifest_digest), mv.flavor, dict(mv.metrics),
                     [(p.name, p.version, p.source) for p in lock.pins], datasets, mv.run_id, part, tool_version,
                     tuple(notes))


def dataset_inputs(svc: Services, inputs: Mapping[str, Digest]) -> tuple[list[tuple[str, str]], list[str]]:
    """Which of a run's ``inputs`` are datasets (core/supply/datasets.py says what counts: tracked data in the
    project's shipyard.lock, stage outputs, folders; never a file git tracks), as (path, digest) pairs, and the
    paths left out."""
    from shipyard.adapters.supply.gitfiles import git_tracked
    from shipyard.core.supply.datasets import datasets_of
    from shipyard.core.workspace.lockfile import Lock, load_lock
    from shipyard.errors import ShipyardError

    root = svc.settings.project_root
    try:
        lock = load_lock(root)
    except ShipyardError:  # an unreadable lock: only folders count
        lock = Lock()
    entries = dict(lock.data)
    for stage in lock.stages.values():
        entries.update(stage.outs)
    shown = {path: str(d) for path, d in inputs.items()}
    in_git = git_tracked(root, sorted(shown))
    folders = {path for path, d in inputs.items() if path not in in_git and _is_folder(svc, d)}
    return datasets_of(shown, tracked=set(entries), digests={str(e.digest) for e in entries.values()},
                       folders=folders, in_git=in_git)


def _is_folder(svc: Services, digest: Digest) -> bool:
    """``digest`` names a folder manifest in the store (its first bytes say so; a data file is not read)."""
    from shipyard.core.artifacts.manifest import Manifest

    try:
        if not svc.store.has(digest):
            return False
        with svc.store.open(digest) as f:
            return Manifest.looks_like(f.read(64))
    except (OSError, ValueError):
        return False


def stored_sbom(svc: Services, mv: ModelVersion) -> Sbom | None:
    """The newest SBOM recorded for ``mv`` without an image, re-hashed and validated, when it lists exactly the
    packages of the version's lock: a record anyone with the database can add is never what a scan trusts for the
    package list (one listing fewer packages would scan as clean). None otherwise: the scan builds a new one."""
    from shipyard.adapters.supply.sbom import check_document
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.tree import read_verified
    from shipyard.core.registry.records import SBOM_ACTION
    from shipyard.core.supply.osv import package_name
    from shipyard.core.supply.packages import packages_of
    from shipyard.errors import ShipyardError
    from shipyard.wiring import model_lock

    try:
        expected = {(package_name("PyPI", p.name), p.version) for p in model_lock(svc, mv).pins}
    except ShipyardError:
        return None
    for _, record in reversed(svc.registry.results(mv, SBOM_ACTION)):
        if record.get("image") is not None:
            continue
        try:
            digest = Digest.parse(str(record.get("document")))
            raw = read_verified(svc.store, digest, limit=MAX_SBOM_BYTES)
            check_document(raw)
            listed, _ = packages_of(json.loads(raw))
        except (ShipyardError, ValueError):
            continue
        if {(package_name("PyPI", p.name), p.version) for p in listed if p.ecosystem == "PyPI"} != expected:
            continue  # not the lock's packages: not ours to trust
        return Sbom(mv, None, raw, digest, int(record.get("packages") or 0), recorded=True, reused=True)
    return None


def version_for_image(svc: Services, image: str) -> ModelVersion | None:
    """The version ``image`` was built for, from the ``build`` records (its tag, id or pushed reference)."""
    from shipyard.core.registry.records import BUILD_ACTION

    for summary in svc.registry.models():
        for mv in reversed(svc.registry.versions(summary.name)):
            for _, record in svc.registry.results(mv, BUILD_ACTION):
                if image in (record.get("image"), record.get("image_id"), record.get("pushed")):
                    return mv
    return None


def is_image_ref(target: str) -> bool:
    """A model reference (``iris``, ``iris@3``, ``iris@production``) has neither ``/`` nor ``:``; an image
    reference (``shipyard/iris:3``, ``registry/team/iris@sha256:…``, an image id) has one."""
    return "/" in target or ":" in target


# --- scan ------------------------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    target: str
    model: ModelVersion | None
    image: str | None
    sbom: Sbom
    checked: bool
    source: str | None
    errors: list[str]
    packages: int
    findings: list[Finding]
    waivers: list[Waiver] = field(default_factory=list)
    when: float = 0.0
    recorded: bool = False

    def record(self) -> dict[str, Any]:
        return {"target": self.target, "image": self.image, "sbom": str(self.sbom.digest), "checked": self.checked,
                "source": self.source, "errors": list(self.errors), "packages": self.packages,
                "findings": [f.to_dict() for f in self.findings], "when": self.when}

    def rows(self) -> list[dict[str, Any]]:
        """Each finding with its waiver (``waived``, ``waiver``) as of the scan."""
        return _with_waivers(self.findings, self.waivers, today(self.when))

    def blocking(self) -> list[dict[str, Any]]:
        from shipyard.core.supply.osv import BLOCKING

        return [r for r in self.rows() if r["severity"] in BLOCKING and not r["waived"]]

    def summary(self) -> str:
        if not self.checked:
            why = self.errors[-1] if self.errors else "no source"
            return f"not checked: {why}"[:480]
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        told = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no known vulnerabilities"
        return f"scan of {self.packages} packages against {self.source}: {told}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.record(), "model": None if self.model is None else self.model.ref,
                "recorded": self.recorded, "findings": self.rows(), "blocking": len(self.blocking())}


def scan_config_of(svc: Services) -> ScanSpec:
    from shipyard.config import CONFIG_FILE
    from shipyard.core.governance.config import scan_config
    from shipyard.core.project.loader import load_config

    root = svc.settings.project_root
    if not (root / CONFIG_FILE).is_file():
        return scan_config(None)
    return scan_config(load_config(root).scan)


def sources_for(svc: Services, db: Path | None, osv_url: str | None) -> list[Source]:
    """Where to look, in order: ``--db`` alone (an InvalidInputError unless it is a folder holding an
    ecosystem's export); else the API (``--osv-url`` or ``scan.osv_url``), then
    ``scan.db`` when it is set."""
    from shipyard.adapters.supply.osv_api import OsvApi
    from shipyard.adapters.supply.osv_db import OfflineDb, check_database

    config = scan_config_of(svc)
    cache = svc.settings.home / "cache"
    if db is not None:
        folder = db.expanduser().absolute()
        check_database(folder)  # a mistyped --db is a usage error: nothing is scanned or recorded
        return [OfflineDb(folder, cache)]
    sources: list[Source] = [OsvApi(osv_url or config.osv_url, config.timeout)]
    if config.db:
        sources.append(OfflineDb((svc.settings.project_root / config.db).expanduser().absolute(), cache))
    return sources


def run_scan(svc: Services, target: str, *, image: str | None = None, db: Path | None = None,
             osv_url: str | None = None, environ: Mapping[str, str] | None = None, now: float | None = None,
             progress: Callable[[str], None] = lambda _: None) -> ScanResult:
    """Scan ``target`` (``NAME@V``, or an image: the version it was built for is found from the build records)
    against the first OSV source that answers, and record the result with the version. No source answering
    gives ``checked=False`` with each source's reason, never an empty "clean" list."""
    from shipyard.core.registry.records import SCAN_ACTION
    from shipyard.core.supply.packages import packages_of
    from shipyard.errors import BackendUnavailableError, InvalidInputError

    env = os.environ if environ is None else environ
    mv: ModelVersion | None
    if is_image_ref(target):
        if image is not None:
            raise InvalidInputError(f"{target} is an image already: drop --image")
        image, mv = target, version_for_image(svc, target)
    else:
        mv = svc.registry.resolve(target)
    sources = sources_for(svc, db, osv_url)  # a malformed --osv-url fails before anything is built
    sbom = stored_sbom(svc, mv) if mv is not None and image is None else None
    if sbom is None:
        sbom = make_sbom(svc, mv, image, env, progress)
    packages, _ = packages_of(json.loads(sbom.document))
    unique = sorted(set(packages), key=lambda p: (p.ecosystem, p.name, p.version))
    errors: list[str] = []
    findings: list[Finding] = []
    source: str | None = None
    for src in sources:
        progress(f"asking {src.label} about {len(unique)} packages")
        try:
            findings, notes = src.scan(unique)
        except BackendUnavailableError as exc:
            errors.append(str(exc) if src.label.removeprefix("offline:") in str(exc) else f"{src.label}: {exc}")
            continue
        source = src.label
        errors += [f"{src.label}: {n}" for n in notes]
        break
    when = time.time() if now is None else now
    result = ScanResult(target if mv is None or image is not None else mv.ref, mv, image, sbom,
                        source is not None, source, errors, len(unique), findings, when=when)
    if mv is not None:
        result.waivers = waivers_of(svc, mv)
        svc.registry.record_result(mv, SCAN_ACTION, result.record(), result.summary())
        result.recorded = True
    return result


# --- waivers and status --------------------------------------------------------------------------------------


def waivers_of(svc: Services, mv: ModelVersion) -> list[Waiver]:
    """``mv``'s recorded waivers, oldest first (each record's actor as ``by``); unreadable ones skipped."""
    from shipyard.core.registry.records import WAIVE_ACTION
    from shipyard.core.supply.osv import Waiver

    out = []
    for event, record in svc.registry.results(mv, WAIVE_ACTION):
        try:
            waiver = Waiver.from_dict({**record, "by": event.actor})
        except ValueError:
            continue
        out.append(waiver)
    return out


@dataclass
class Waived:
    """A recorded waiver, with what the scans knew of its advisory and the waiver it replaces."""

    model: ModelVersion
    waiver: Waiver
    found: bool  # a recorded scan of the version found the advisory (by its id or an alias)
    replaces: Waiver | None  # the newest earlier waiver of the same advisory, now superseded
    notes: list[str] = field(default_factory=list)  # one line each: what the caller should know

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.model.ref, **self.waiver.to_dict(), "found": self.found,
                "replaces": None if self.replaces is None else self.replaces.to_dict(), "notes": list(self.notes)}


def waive(svc: Services, ref: str, advisory: str, reason: str, expires: str, now: float | None = None) \
        -> tuple[ModelVersion, Waiver]:
    """Record a waiver of ``advisory`` for ``ref``: a reason, and an expiry in the future, at most a year ahead."""
    done = record_waiver(svc, ref, advisory, reason, expires, now)
    return done.model, done.waiver


def record_waiver(svc: Services, ref: str, advisory: str, reason: str, expires: str,
                  now: float | None = None) -> Waived:
    """``waive``, saying whether any recorded scan of the version found ``advisory`` (a waiver of an id no
    scan found is recorded, with a note: it may be a typo) and which earlier waiver it replaces."""
    from shipyard.core.registry.records import WAIVE_ACTION
    from shipyard.core.supply.osv import Waiver, check_expiry, check_id
    from shipyard.errors import InvalidInputError

    try:
        check_id(advisory)
        when = check_expiry(expires, today(now))
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    reason = reason.strip()
    if not reason or len(reason) > 500 or not reason.isprintable():
        raise InvalidInputError("--reason: say in one printable line (at most 500 characters) why the advisory "
                                "does not apply or can wait")
    mv = svc.registry.resolve(ref)
    names, scans = _names_found(svc, mv, advisory)
    earlier = [w for w in waivers_of(svc, mv) if w.id in names]
    waiver = Waiver(advisory, reason, when, svc.settings.actor)
    svc.registry.record_result(mv, WAIVE_ACTION, waiver.to_dict(),
                               f"waived {advisory} until {when.isoformat()}: {reason}")
    done = Waived(mv, waiver, found=scans.found, replaces=earlier[-1] if earlier else None)
    if not done.found:
        done.notes.append(f"warning: {advisory} is not among the findings of {mv.ref}'s scans "
                          f"({scans.count} recorded): the waiver covers nothing until a scan finds it (a typo?)"
                          if scans.count else
                          f"warning: {mv.ref} has no recorded scan, so none found {advisory}: the waiver covers "
                          f"nothing until one does (`shipyard scan {mv.ref}`)")
    if done.replaces is not None:
        old = done.replaces
        state = "expired" if old.expires < today(now) else "until"
        done.notes.append(f"replaces the earlier waiver of {old.id} ({state} {old.expires.isoformat()}, by "
                          f"{old.by or '?'}: {old.reason})")
    return done


@dataclass
class _Scans:
    count: int = 0
    found: bool = False


def _names_found(svc: Services, mv: ModelVersion, advisory: str) -> tuple[set[str], _Scans]:
    """``advisory`` and the ids and aliases of every finding of ``mv``'s recorded scans that it names."""
    from shipyard.core.registry.records import SCAN_ACTION
    from shipyard.core.supply.osv import Finding

    names = {advisory}
    scans = _Scans()
    for _, record in svc.registry.results(mv, SCAN_ACTION):
        scans.count += 1
        raw = record.get("findings")
        for item in raw if isinstance(raw, list) else ():
            try:
                finding = Finding.from_dict(item)
            except (ValueError, AttributeError):
                continue
            if advisory == finding.id or advisory in finding.aliases:
                scans.found = True
                names |= {finding.id, *finding.aliases}
    return names, scans


def _with_waivers(findings: list[Finding], waivers: list[Waiver], day: date) -> list[dict[str, Any]]:
    from shipyard.core.supply.osv import active_waiver

    rows = []
    for f in findings:
        w = active_waiver(f, waivers, day)
        rows.append({**f.to_dict(), "waived": w is not None,
                     "waiver": None if w is None else {"reason": w.reason, "expires": w.expires.isoformat(),
                                                       "by": w.by}})
    return rows


def scan_status(svc: Services, mv: ModelVersion, now: float | None = None) -> dict[str, Any]:
    """The policy input's ``scan`` part: ``{"checked": bool, "source": str | None, "when": float | None,
    "findings": [{"id", "package", "version", "ecosystem", "severity" (critical|high|medium|low|unknown),
    "fixed": [versions], "summary", "waived": bool, "waiver": {"reason", "expires", "by"} | None}]}``; with no
    scan recorded: ``{"checked": False, "source": None, "when": None, "findings": []}``.

    The newest scan record of ``mv`` decides; each finding is waived when an unexpired waiver (as of ``now``)
    names its id or one of its aliases. Also ``image`` (what was scanned, None for the version's lock alone)
    and ``errors``."""
    from shipyard.core.registry.records import SCAN_ACTION
    from shipyard.core.supply.osv import Finding

    records = svc.registry.results(mv, SCAN_ACTION)
    if not records:
        return {"checked": False, "source": None, "when": None, "findings": [], "image": None, "errors": []}
    _, record = records[-1]
    findings = []
    raw = record.get("findings")
    for item in raw if isinstance(raw, list) else ():
        try:
            findings.append(Finding.from_dict(item))
        except (ValueError, AttributeError):
            continue
    when = record.get("when")
    errors = record.get("errors")
    return {"checked": record.get("checked") is True, "source": record.get("source"),
            "when": float(when) if isinstance(when, (int, float)) else None,
            "findings": _with_waivers(findings, waivers_of(svc, mv), today(now)),
            "image": record.get("image"), "errors": [str(e) for e in errors] if isinstance(errors, list) else []}


def scan_summary(svc: Services, mv: ModelVersion, now: float | None = None) -> dict[str, Any] | None:
    """The newest scan of ``mv`` in short (``models show``): ``{"checked", "source", "when", "counts": {severity:
    n}, "waived": n, "blocking": n, "errors": [...]}``; None when it was never scanned."""
    from shipyard.core.registry.records import SCAN_ACTION
    from shipyard.core.supply.osv import BLOCKING

    if not svc.registry.results(mv, SCAN_ACTION):
        return None
    status = scan_status(svc, mv, now)
    counts: dict[str, int] = {}
    for f in status["findings"]:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    return {"checked": status["checked"], "source": status["source"], "when": status["when"],
            "image": status["image"], "counts": counts, "waived": sum(1 for f in status["findings"] if f["waived"]),
            "blocking": sum(1 for f in status["findings"] if f["severity"] in BLOCKING and not f["waived"]),
            "errors": status["errors"]}
