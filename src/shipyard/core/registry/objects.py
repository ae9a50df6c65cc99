"""Every object a model version needs, and moving them between a store and a remote (``models push/pull``).

A version is its files (a manifest and each entry), its golden examples (one of the entries), the
environment record it was registered from, its run's environment and uncommitted git diff, and the
records of its checks (verify, build, rollout, promote: the audit events of ``RESULT_ACTIONS`` that
name an object). The metadata names all of them, the manifest its entries; nothing else is needed
to load, serve or check the version on another machine sharing the database.

What comes from a remote is untrusted: each object is re-hashed as it enters the store, and none may
be larger than the manifest says (a file) or than Shipyard ever writes (a record), so a hostile
remote can neither swap bytes nor fill the disk. A pull checks that the remote holds every object
before it writes any, and stores the manifest last: an interrupted pull leaves loose objects (gc's),
never a version that looks complete.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import MAX_MANIFEST_BYTES, Manifest
from shipyard.core.artifacts.tree import read_verified
from shipyard.core.registry.records import (
    POLICY_ACTION,
    PROFILE_ACTION,
    PROVENANCE_ACTION,
    RESULT_ACTIONS,
    SBOM_ACTION,
    SCAN_ACTION,
    SIGN_ACTION,
    AuditEvent,
    ModelVersion,
)
from shipyard.errors import IntegrityError, NotFoundError
from shipyard.ports import MetadataStore, ObjectStore, Progress, Remote, no_progress

MAX_ENV_RECORD_BYTES = 16 * 1024 * 1024  # as the environment probe's cache and the record's readers
MAX_CHECK_RECORD_BYTES = 64 * 1024 * 1024  # a verify/build/rollout/promote record: JSON, kilobytes in practice
MAX_DIFF_BYTES = 1024 * 1024 * 1024  # a run's uncommitted diff (binary files included); larger is not source


@dataclass(frozen=True, slots=True)
class VersionObject:
    """One object of a version: its digest, what it is (for messages), and the most bytes it may have."""

    digest: Digest
    what: str
    most: int
    exact: bool = False  # ``most`` is its size (a file of the manifest, the manifest read here): else a bound
    manifest: bool = False  # the version's manifest: read first, stored last


def records(meta: MetadataStore, mv: ModelVersion) -> list[VersionObject]:
    """The objects the metadata names for ``mv``: its manifest, its environment record, its run's
    environment and git diff, and the records of its checks (no store is read)."""
    out = [VersionObject(mv.manifest_digest, f"the manifest of {mv.ref}", MAX_MANIFEST_BYTES, manifest=True)]
    if mv.env_digest is not None:
        out.append(VersionObject(mv.env_digest, f"the environment record of {mv.ref}", MAX_ENV_RECORD_BYTES))
    if mv.run_id is not None:
        with contextlib.suppress(NotFoundError):  # a version may name a run of a database since restored
            run = meta.get_run(mv.run_id)
            if run.env_digest is not None:
                out.append(VersionObject(run.env_digest, f"the environment record of run {run.id[:8]}",
                                         MAX_ENV_RECORD_BYTES))
            if run.code.diff_digest is not None:
                out.append(VersionObject(run.code.diff_digest, f"the git diff of run {run.id[:8]}", MAX_DIFF_BYTES))
    for event in meta.audit_events(mv.model):
        if event.action in RESULT_ACTIONS and event.name == str(mv.version) and (event.new or "").startswith("sha256:"):
            with contextlib.suppress(ValueError):  # not a digest Shipyard wrote: nothing to copy
                out.append(VersionObject(Digest.parse(event.new or ""), f"the {event.action} record of {mv.ref} "
                                         f"(event {event.id})", MAX_CHECK_RECORD_BYTES))
    return _unique(out)


# the objects a check's record names, by action: a signature bundle, a provenance statement and its envelope,
# an SBOM document, a policy decision's input document (gc keeps them, push sends them with the record)
RECORD_OBJECTS = {SIGN_ACTION: ("bundle",), PROVENANCE_ACTION: ("statement", "envelope"),
                  SBOM_ACTION: ("document",), SCAN_ACTION: ("sbom",), POLICY_ACTION: ("input",),
                  PROFILE_ACTION: ("profile",)}
MAX_RECORD_OBJECT_BYTES = 256 * 1024 * 1024  # a signature bundle lists every file of a model: the largest


def record_objects(store: ObjectStore, action: str, digest: Digest) -> list[Digest]:
    """The objects the ``action`` record ``digest`` names (see ``RECORD_OBJECTS``); none for a record that is
    not in ``store``, damaged or not Shipyard's."""
    keys = RECORD_OBJECTS.get(action, ())
    if not keys:
        return []
    try:
        body = json.loads(read_verified(store, digest, limit=MAX_CHECK_RECORD_BYTES))
    except (IntegrityError, NotFoundError, ValueError, RecursionError):
        return []
    out = []
    for key in keys:
        value = body.get(key) if isinstance(body, dict) else None
        if isinstance(value, str) and value.startswith("sha256:"):
            with contextlib.suppress(ValueError):
                out.append(Digest.parse(value))
    return out


def referenced_by_records(store: ObjectStore, events: Iterable[AuditEvent]) -> set[Digest]:
    """Every object the records of ``events`` name (what gc keeps beside the records themselves)."""
    found: set[Digest] = set()
    for event in events:
        if event.action in RECORD_OBJECTS and (event.new or "").startswith("sha256:"):
            with contextlib.suppress(ValueError):
                found.update(record_objects(store, event.action, Digest.parse(event.new or "")))
    return found


def entries(manifest: Manifest, mv: ModelVersion) -> list[VersionObject]:
    """The files of ``mv``'s manifest (its golden examples among them), each bounded by its recorded size."""
    return [VersionObject(e.digest, f"{e.path} of {mv.ref}", e.size, exact=True) for e in manifest]


def version_objects(store: ObjectStore, meta: MetadataStore, mv: ModelVersion) -> list[VersionObject]:
    """Every object ``mv`` needs: ``records`` and the entries of its manifest (read from ``store``,
    re-hashed). The manifest's size is its exact length here."""
    raw = read_verified(store, mv.manifest_digest, limit=MAX_MANIFEST_BYTES, what=f"the manifest of {mv.ref}")
    tops = records(meta, mv)
    named = [VersionObject(o.digest, o.what, len(raw), exact=True, manifest=True) if o.manifest else o
             for o in tops]
    events = [e for e in meta.audit_events(mv.model) if e.name == str(mv.version)]
    inner = [VersionObject(d, f"an object a record of {mv.ref} names", MAX_RECORD_OBJECT_BYTES)
             for d in sorted(referenced_by_records(store, events), key=str)]
    return _unique([*named, *inner, *entries(Manifest.from_bytes(raw), mv)])


def run_inputs(meta: MetadataStore, mv: ModelVersion) -> list[VersionObject]:
    """The inputs of the runs behind ``mv`` (its run, and the stage runs that made that run's inputs, back to
    raw data and code) that none of those runs made: what ``shipyard reproduce`` restores. Their sizes are
    not in the metadata (``most`` is 0: a remote's answer bounds them); a folder's files are listed from
    its manifest once it is in a store (``folder_entries``)."""
    out: list[VersionObject] = []
    produced: set[Digest] = set()
    seen: set[str] = set()
    queue = [mv.run_id] if mv.run_id is not None else []
    while queue:
        run_id = queue.pop()
        if run_id in seen:
            continue
        seen.add(run_id)
        try:
            run = meta.get_run(run_id)
        except NotFoundError:
            continue
        produced.update(a.digest for a in run.artifacts)
        for path, digest in sorted(run.inputs.items()):
            out.append(VersionObject(digest, f"input {path} of run {run.id[:8]} ({run.name})", 0))
            stages = [p for p in meta.producers(digest) if p.id != run.id and "shipyard.cmd" in p.tags]
            queue.extend(p.id for p in stages[:1])  # the newest, the one reproduce follows (``stage_runs``)
    return _unique(o for o in out if o.digest not in produced)


def folder_entries(store: ObjectStore, tops: Iterable[VersionObject]) -> list[VersionObject]:
    """The files of those of ``tops`` (held by ``store``) that are folders' manifests, each bounded by its size."""
    out: list[VersionObject] = []
    for top in tops:
        with store.open(top.digest) as f:
            head = f.read(64)
        if Manifest.looks_like(head):
            raw = read_verified(store, top.digest, limit=MAX_MANIFEST_BYTES, what=top.what)
            out.extend(VersionObject(e.digest, f"{e.path} of {top.what}", e.size, exact=True)
                       for e in Manifest.from_bytes(raw))
    return _unique(out)


def _unique(objects: Iterable[VersionObject]) -> list[VersionObject]:
    seen: dict[Digest, VersionObject] = {}
    for o in objects:
        first = seen.get(o.digest)
        if first is None:
            seen[o.digest] = o
        elif o.exact and not first.exact:  # a record with the bytes of a file: the file's size is exact
            seen[o.digest] = VersionObject(o.digest, first.what, o.most, True, first.manifest)
    return list(seen.values())


@dataclass
class Transfer:
    """What a push or a pull did: objects the version needs, how many moved and their bytes."""

    ref: str
    remote: str
    objects: int
    transferred: int
    bytes: int
    replaced: int = 0  # push: the remote held a copy of the wrong size, sent again
    unavailable: list[str] = field(default_factory=list)  # push: run inputs neither here nor on the remote

    @property
    def already(self) -> int:
        return self.objects - self.transferred - len(self.unavailable)

    def to_dict(self) -> dict[str, object]:
        return {"ref": self.ref, "remote": self.remote, "objects": self.objects, "transferred": self.transferred,
                "bytes": self.bytes, "already_there": self.already, "replaced": self.replaced,
                "unavailable_inputs": self.unavailable}


def push(store: ObjectStore, meta: MetadataStore, mv: ModelVersion, remote: Remote,
         progress: Progress = no_progress) -> Transfer:
    """Upload every object of ``mv`` that ``remote`` lacks or holds at a wrong size, re-hashed as it streams
    (a corrupt local object is refused, never uploaded), and the inputs of the runs behind it that this
    store holds (what reproduce restores elsewhere).

    Checked before anything is sent: the version's own objects to send are all in ``store`` (else
    NotFoundError naming one). A run input in neither place is listed in ``unavailable``, not an error: the
    version loads without it. The manifest goes last, so a reader elsewhere never finds it before its files.
    """
    own = version_objects(store, meta, mv)
    tops = [o for o in run_inputs(meta, mv) if o.digest not in {x.digest for x in own}]
    here = [o for o in tops if store.has(o.digest)]
    inputs = _unique([*here, *folder_entries(store, here), *(o for o in tops if o not in here)])
    objects = _unique([*own, *inputs])
    there = remote.sizes([o.digest for o in objects])
    damaged = [o for o in objects if o.exact and o.digest in there and there[o.digest] != o.most]
    send = [o for o in objects if o.digest not in there or o in damaged]
    absent = {o.digest for o in send if not store.has(o.digest)}
    missing = [o for o in own if o.digest in absent]
    if missing:
        first = missing[0]
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise NotFoundError(f"{first.what} ({first.digest}){more} is in neither the local store nor remote "
                            f"{remote.url}; nothing was pushed: push {mv.ref} from the machine that registered it")
    count = _Counter(progress)
    files = [o.digest for o in send if not o.manifest and o.digest not in absent]
    manifests = [o.digest for o in send if o.manifest]
    for batch in (files, manifests):
        if batch:
            remote.upload(store, batch, count)
    return Transfer(mv.ref, remote.url, len(objects), len(files) + len(manifests), count.total, len(damaged),
                    [o.what for o in send if o.digest in absent])


def pull(store: ObjectStore, meta: MetadataStore, mv: ModelVersion, remote: Remote,
         progress: Progress = no_progress, inputs: bool = False) -> Transfer:
    """Download every object of ``mv`` that ``store`` lacks, re-hashed as each enters it, none larger than
    the verified manifest (a file) or its bound (a record) allows; with ``inputs``, the inputs of the runs
    behind it too (what reproduce restores), none larger than the remote says.

    The manifest is read first (from the store, or from the remote into memory, re-hashed); then every
    missing object must be on the remote, else NotFoundError naming one, and nothing is written (a folder
    input's files are known, and checked, once its manifest is in); the manifest is stored last.
    """
    tops = records(meta, mv)
    what = tops[0].what
    stored = store.has(mv.manifest_digest)
    if stored:
        raw = read_verified(store, mv.manifest_digest, limit=MAX_MANIFEST_BYTES, what=what)
    else:
        _require(remote, mv, tops[:1])
        raw = _read_remote(remote, mv.manifest_digest, MAX_MANIFEST_BYTES, what)
    objects = _unique([*tops[1:], *entries(Manifest.from_bytes(raw), mv)])
    need = [o for o in objects if o.digest != mv.manifest_digest and not store.has(o.digest)]
    given = run_inputs(meta, mv) if inputs else []
    wanted = [o for o in given if not store.has(o.digest) and o.digest not in {x.digest for x in need}]
    _require(remote, mv, [*need, *wanted])
    announced = remote.sizes([o.digest for o in wanted])
    need += [VersionObject(o.digest, o.what, announced[o.digest]) for o in wanted if o.digest in announced]
    count = _Counter(progress)
    if need:
        remote.download([o.digest for o in need], store, count, {o.digest: o.most for o in need})
    files = [o for o in folder_entries(store, given) if o.digest not in {x.digest for x in objects}]
    later = [o for o in files if not store.has(o.digest)]
    _require(remote, mv, later)
    if later:
        remote.download([o.digest for o in later], store, count, {o.digest: o.most for o in later})
    if not stored:
        if store.put_bytes(raw) != mv.manifest_digest:  # re-hashed on the way in: it cannot differ
            raise IntegrityError(f"{what} changed while it was stored; pull it again")
        count(len(raw))
    total = len(_unique([*objects, *given, *files])) + 1
    return Transfer(mv.ref, remote.url, total, len(need) + len(later) + (0 if stored else 1), count.total)


class _Counter:
    """A progress callback that also adds up the bytes it is told of."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n
        self.progress(n)


def _require(remote: Remote, mv: ModelVersion, objects: list[VersionObject]) -> None:
    if not objects:
        return
    gone = set(remote.missing([o.digest for o in objects]))
    absent = [o for o in objects if o.digest in gone]
    if absent:
        first = absent[0]
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        raise NotFoundError(f"{first.what} ({first.digest}){more} is not on remote {remote.url}; nothing was "
                            f"pulled: push it from the machine that registered {mv.ref} "
                            f"(`shipyard models push {mv.ref}` there)")


def _read_remote(remote: Remote, digest: Digest, most: int, what: str) -> bytes:
    """``digest``'s bytes from ``remote``, at most ``most`` of them, re-hashed."""
    data = bytearray()
    for chunk in remote.read(digest):
        data += chunk
        if len(data) > most:
            raise IntegrityError(f"{what} ({digest}) on remote {remote.url} is larger than {most // 2**20} MiB: it "
                                 "is damaged or hostile, nothing was pulled; push it again from a good copy")
    if Digest.of_bytes(bytes(data)) != digest:
        raise IntegrityError(f"{what} ({digest}) on remote {remote.url} is corrupt (its bytes do not hash to its "
                             "name); nothing was pulled: push it again from the machine that registered it")
    return bytes(data)
