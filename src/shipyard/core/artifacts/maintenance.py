"""``verify`` re-hashes every object; ``gc`` removes unreferenced objects past a grace period."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest, hash_stream
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.environments.capture import SCHEMAS
from shipyard.errors import ConfigError, IntegrityError, NotFoundError, ShipyardError
from shipyard.ports import ObjectStore, Progress, Remote, no_progress

DEFAULT_GRACE_SECONDS = 24 * 3600.0
_HEAD = 64


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # referenced but absent
    tampered: list[str] = field(default_factory=list)  # model versions that no longer match their record

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing and not self.tampered

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checked": self.checked, "bytes": self.bytes,
                "corrupt": self.corrupt, "missing": self.missing, "tampered": self.tampered}


@dataclass
class GcReport:
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    young_unreferenced: int = 0
    temp_removed: int = 0
    dry_run: bool = False
    # why removing is safe: what was searched for references
    runs: int = 0
    versions: int = 0
    history: str = "not searched"  # "git", "no git repository", "not searched (--workspace-only)"
    commits: int = 0
    locks: int = 0  # distinct lock versions read from history
    warnings: list[str] = field(default_factory=list)
    remote: str | None = None  # the remote the removed objects were looked up on
    not_on_remote: int | None = None  # how many removed objects it lacks (None: not checked)
    remote_problem: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"kept": self.kept, "removed": self.removed, "removed_bytes": self.removed_bytes,
                "young_unreferenced": self.young_unreferenced, "temp_removed": self.temp_removed,
                "dry_run": self.dry_run, "searched": {"runs": self.runs, "model_versions": self.versions,
                                                      "history": self.history, "commits": self.commits,
                                                      "lock_versions": self.locks},
                "warnings": self.warnings, "remote": self.remote, "not_on_remote": self.not_on_remote,
                "remote_problem": self.remote_problem}


def _rehash(store: ObjectStore, digest: Digest) -> bool:
    with store.open(digest) as f:
        return hash_stream(f) == digest


def reachable(store: ObjectStore, roots: Iterable[Digest], strict: bool = True,
              manifests: Iterable[Digest] = ()) -> tuple[set[Digest], set[Digest]]:
    """Every digest reachable from ``roots`` and ``manifests`` through manifests, and those that are missing.

    ``manifests`` are roots known to be manifests (a model version's, a tracked folder's): each is
    read whole and re-hashed, whatever its first bytes say. Any other object that starts like a
    manifest is re-hashed before it is followed. If a manifest's bytes no longer match its name,
    what it references cannot be known: with ``strict`` (gc) that is an IntegrityError naming it,
    so nothing is deleted on a guess; without (verify, which reports the corruption itself) it is
    skipped. An intact object that merely starts like a manifest (a data file) references nothing.
    """
    seen: set[Digest] = set()
    missing: set[Digest] = set()
    known = set(manifests)
    stack = [*known, *roots]
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        if not store.has(d):
            missing.add(d)
            continue
        with store.open(d) as f:
            head = f.read(_HEAD)
            if d not in known and not Manifest.looks_like(head):
                continue
            raw = head + f.read()
        if Digest.of_bytes(raw) != d:
            if strict:
                raise IntegrityError(
                    f"manifest {d} is corrupt, so what it references is unknown; nothing was removed: restore it "
                    "(`shipyard data pull`, or add the data again) and run gc again"
                )
            continue
        stack.extend(Manifest.referenced(raw))
    return seen, missing


def verify(store: ObjectStore, roots: Iterable[Digest], progress: Progress = no_progress,
           workers: int = 4, manifests: Iterable[Digest] = ()) -> VerifyReport:
    report = VerifyReport()
    objects = list(store.iter_objects())

    def check(item: tuple[Digest, int, float]) -> tuple[Digest, int, bool]:
        digest, size, _ = item
        try:
            return digest, size, _rehash(store, digest)
        except NotFoundError:
            return digest, size, True  # removed while we looked: not corruption

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for digest, size, good in pool.map(check, objects):
            report.checked += 1
            report.bytes += size
            if not good:
                report.corrupt.append(str(digest))
            progress(size)
    _, missing = reachable(store, roots, strict=False, manifests=manifests)
    report.missing = sorted(str(d) for d in missing)
    report.corrupt.sort()
    return report


def gc(store: ObjectStore, roots: Iterable[Digest], grace_seconds: float = DEFAULT_GRACE_SECONDS,
       dry_run: bool = False, now: float | None = None, manifests: Iterable[Digest] = (),
       records: int | None = None, metadata: str = "the metadata database", remote: Remote | None = None,
       report: GcReport | None = None) -> GcReport:
    """Delete objects nothing references that are older than ``grace_seconds``.

    ``roots``/``manifests``: everything to keep (the caller gathers the workspace's lock, every lock in
    version control, every run and model version). The grace period protects objects a writer has
    stored but not yet recorded anywhere. ``remote``: the doomed objects are looked up there, so the
    report can say whether this store held their only copy (a remote that cannot be reached is noted,
    never fatal). ``report``: pre-filled with what was searched (counts, warnings).

    ``records``: how many runs and model versions the metadata database holds. A database that holds
    none while the store holds environment captures, which only runs and model versions write, is most
    likely not the one the store belongs to (deleted and re-created empty, or a mistyped URL): gc stops
    with a ConfigError naming ``metadata`` and removes nothing, dry run or not. A project that only
    versions data has no runs and writes no capture, so it collects without a flag. None skips the
    check (``--allow-empty-db``).
    """
    now = time.time() if now is None else now
    live, _ = reachable(store, roots, manifests=manifests)
    report = report if report is not None else GcReport()
    report.dry_run = dry_run
    doomed: list[Digest] = []
    young: list[Digest] = []
    for digest, size, mtime in store.iter_objects():
        if digest in live:
            report.kept += 1
        elif now - mtime < grace_seconds:
            young.append(digest)
            report.young_unreferenced += 1
            report.kept += 1
        else:
            doomed.append(digest)
            report.removed.append(str(digest))
            report.removed_bytes += size
    if records == 0 and doomed:
        # young ones too: a capture re-used by a recent process is young while the objects of its runs are old
        captures = sum(1 for d in [*doomed, *young] if _environment_capture(store, d))
        if captures:
            raise ConfigError(
                f"{metadata} records no runs or model versions, but the store holds {captures} environment "
                f"capture(s) that only runs and model versions write, and gc would remove {len(doomed)} of its "
                f"{report.kept + len(doomed)} objects: check SHIPYARD_DB_URL (a deleted or mistyped database is "
                "created empty); nothing was removed; pass --allow-empty-db to collect anyway"
            )
    if remote is not None and doomed:
        report.remote = remote.url
        try:
            report.not_on_remote = len(remote.missing(doomed))
        except ShipyardError as exc:
            report.remote_problem = " ".join(str(exc).split())[:300]
    if not dry_run:
        for digest in doomed:
            store.delete(digest)
        report.temp_removed = store.clean_temp(grace_seconds)
    return report


MAX_CAPTURE = 4 * 1024 * 1024  # an environment capture lists packages: kilobytes


def _environment_capture(store: ObjectStore, digest: Digest) -> bool:
    """Whether ``digest`` is an environment capture (``core.environments.capture``: canonical JSON, keys sorted)."""
    try:
        with store.open(digest) as f:
            if f.read(len(_CAPTURE_HEAD)) != _CAPTURE_HEAD:
                return False
            raw = f.read(MAX_CAPTURE)
    except NotFoundError:
        return False
    return any(schema in raw for schema in _CAPTURE_SCHEMAS)


_CAPTURE_HEAD = b'{"cpu":'
_CAPTURE_SCHEMAS = tuple(json.dumps({"schema": s}, separators=(",", ":"))[1:-1].encode() for s in SCHEMAS)
