"""``verify`` re-hashes every object; ``gc`` removes unreferenced objects past a grace period."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest, hash_stream
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.environments.capture import SCHEMAS
from shipyard.errors import ConfigError, IntegrityError, NotFoundError, ShipyardError
from shipyard.ports import ObjectStore, Progress, Remote, no_progress

DEFAULT_GRACE_SECONDS = 24 * 3600.0
MTIME_SLACK = 1.0  # a listing's times may carry milliseconds where a HEAD request's are whole seconds (S3): a
# candidate counts as written again since it was listed only when its time moved on by more than this
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
    store: str | None = None  # a shared store's URL (others write to it); None: this project's own
    database: str | None = None  # the shared database searched (its URL without a password)
    locked: bool = False  # the database-wide gc lock was held, and the writers lock while deleting

    def to_dict(self) -> dict[str, object]:
        return {"kept": self.kept, "removed": self.removed, "removed_bytes": self.removed_bytes,
                "young_unreferenced": self.young_unreferenced, "temp_removed": self.temp_removed,
                "dry_run": self.dry_run, "searched": {"runs": self.runs, "model_versions": self.versions,
                                                      "history": self.history, "commits": self.commits,
                                                      "lock_versions": self.locks},
                "warnings": self.warnings, "remote": self.remote, "not_on_remote": self.not_on_remote,
                "remote_problem": self.remote_problem, "shared_store": self.store, "shared_database": self.database,
                "locked": self.locked}


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


References = Callable[[], tuple[Iterable[Digest], Iterable[Digest]]]
"""Reads the references again, as ``(roots, manifests)``: what the metadata database (and the workspace)
reference now, for gc's second look under the writers lock."""
Stats = Callable[[Sequence[Digest]], Mapping[Digest, tuple[int, float]]]
"""``(size, last modified)`` of each of the digests the store still holds (absent ones left out)."""


@contextlib.contextmanager
def no_lock() -> Iterator[None]:
    """The null lock: one process, one store, nobody to wait for."""
    yield


@contextlib.contextmanager
def no_writers_lock(exclusive: bool = False) -> Iterator[None]:
    yield


def gc(store: ObjectStore, roots: Iterable[Digest], grace_seconds: float = DEFAULT_GRACE_SECONDS,
       dry_run: bool = False, now: float | None = None, manifests: Iterable[Digest] = (),
       records: int | None = None, metadata: str = "the metadata database", remote: Remote | None = None,
       report: GcReport | None = None, *, gc_lock: Callable[[], AbstractContextManager[None]] = no_lock,
       writers_lock: Callable[[bool], AbstractContextManager[None]] = no_writers_lock,
       references: References | None = None, stats: Stats | None = None) -> GcReport:
    """Delete objects nothing references that are older than ``grace_seconds``.

    ``roots``/``manifests``: everything to keep (the caller gathers the workspace's lock, every lock in
    version control, every run and model version). The grace period protects objects a writer has
    stored but not yet recorded anywhere. ``remote``: the doomed objects are looked up there, so the
    report can say whether this store held their only copy (a remote that cannot be reached is noted,
    never fatal). ``report``: pre-filled with what was searched (counts, warnings).

    A store shared by many machines is collected in two phases. Phase 1, under ``gc_lock()`` (one gc at
    a time; it raises ConflictError when another holds it) and without blocking anyone: list the
    objects and pick the candidates, unreferenced and older than the grace period. Phase 2, under
    ``writers_lock(True)``, which waits for every writer holding it shared (from storing objects to
    recording them) and holds off new ones: ``references()`` is read again, ``stats`` looks at each
    candidate again, and only those still unreferenced, still old and unchanged since phase 1 are
    deleted. A dry run changes nothing, so it reads again without blocking writers.

    ``records``: how many runs and model versions the metadata database holds. A database that holds
    none while the store holds environment captures, which only runs and model versions write, is most
    likely not the one the store belongs to (deleted and re-created empty, or a mistyped URL): gc stops
    with a ConfigError naming ``metadata`` and removes nothing, dry run or not. A project that only
    versions data has no runs and writes no capture, so it collects without a flag. None skips the
    check (``--allow-empty-db``).
    """
    now = time.time() if now is None else now
    report = report if report is not None else GcReport()
    report.dry_run = dry_run
    with gc_lock():
        live, _ = reachable(store, roots, manifests=manifests)
        candidates: dict[Digest, tuple[int, float]] = {}
        young: list[Digest] = []
        listed = 0
        for digest, size, mtime in store.iter_objects():
            listed += 1
            if digest in live:
                continue
            if now - mtime < grace_seconds:
                young.append(digest)
            else:
                candidates[digest] = (size, mtime)
        if records == 0 and candidates:
            # young ones too: a capture re-used by a recent process is young while the objects of its runs are old
            captures = sum(1 for d in [*candidates, *young] if _environment_capture(store, d))
            if captures:
                raise ConfigError(
                    f"{metadata} records no runs or model versions, but the store holds {captures} environment "
                    f"capture(s) that only runs and model versions write, and gc would remove {len(candidates)} of "
                    f"its {listed} objects: check SHIPYARD_DB_URL (a deleted or mistyped database is created "
                    "empty); nothing was removed; pass --allow-empty-db to collect anyway"
                )
        with contextlib.nullcontext() if dry_run else writers_lock(True):
            doomed, refreshed, vanished = _second_look(store, candidates, live, grace_seconds, now, references,
                                                       stats)
            if not dry_run:
                for digest in doomed:
                    store.delete(digest)
                report.temp_removed = store.clean_temp(grace_seconds)
    report.kept = listed - len(doomed) - vanished
    report.young_unreferenced = len(young) + refreshed
    report.removed = [str(d) for d in doomed]
    report.removed_bytes = sum(candidates[d][0] for d in doomed)
    if remote is not None and doomed:
        report.remote = remote.url
        try:
            report.not_on_remote = len(remote.missing(doomed))
        except ShipyardError as exc:
            report.remote_problem = " ".join(str(exc).split())[:300]
    return report


def _second_look(store: ObjectStore, candidates: Mapping[Digest, tuple[int, float]], live: set[Digest],
                 grace_seconds: float, now: float, references: References | None,
                 stats: Stats | None) -> tuple[list[Digest], int, int]:
    """Of phase 1's ``candidates``, those still to delete: not referenced by what ``references()`` reads now
    (only new roots are followed: a manifest never changes, so what ``live`` holds was followed already),
    and, where ``stats`` can tell, still present, still old and not written again since they were listed.
    Also how many became young again (a writer re-used them) and how many are gone already."""
    doomed = list(candidates)
    if references is not None and doomed:
        roots, manifests = references()
        new_manifests = set(manifests) - live
        new_roots = set(roots) - live
        if new_roots or new_manifests:
            now_live, _ = reachable(store, new_roots, manifests=new_manifests)
            doomed = [d for d in doomed if d not in now_live]
    refreshed = vanished = 0
    if stats is not None and doomed:
        current = stats(doomed)
        still = []
        for d in doomed:
            st = current.get(d)
            if st is None:
                vanished += 1
            elif st[1] > candidates[d][1] + MTIME_SLACK or now - st[1] < grace_seconds:
                refreshed += 1
            else:
                still.append(d)
        doomed = still
    return doomed, refreshed, vanished


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
