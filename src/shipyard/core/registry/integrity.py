"""Check that every model version is still the record it was registered as.

The database refuses SQL that rewrites a version, but whoever owns the tables can drop those
guards, and tampering can happen below SQL: a file edited with a hex editor, a restored backup mixed
with another, a manifest object replaced in the store. ``check_versions`` names:

- guards of the database that are gone: a trigger dropped or disabled, or a table renamed away and
  replaced by an unguarded copy (the adapter looks at the triggers it created);
- per version, against its FIRST registration event in the append-only audit trail (audit ids only
  grow and audit rows can never be changed, so an event appended later cannot speak for a version):
  a second registration event (forged), a different manifest digest, and a row whose record digest
  (every field: manifest, flavor, size, signature, examples, run, environment, metrics, params,
  description, time, actor) differs from the one the event recorded;
- the manifest object is in the store and its bytes hash to that digest;
- it parses as a manifest, and every file it lists is in the store.

Versions registered before events carried a record digest are checked on their manifest only;
``legacy_versions`` counts them so the report can say so.
"""

from __future__ import annotations

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.registry.records import REGISTER_ACTION, AuditEvent, ModelVersion
from shipyard.errors import ShipyardError
from shipyard.ports import MetadataStore, ObjectStore

DATABASE = "database"


def check_versions(meta: MetadataStore, store: ObjectStore) -> list[str]:
    """One line per problem, each naming the version (``iris@3: ...``) or ``database:``; empty when all is well."""
    problems = [f"{DATABASE}: {p}" for p in meta.immutability_problems()]
    try:
        events = _register_events(meta)
        versions = _versions(meta)
    except ShipyardError as e:  # e.g. a column dropped: the rows themselves can no longer be read
        return [*problems, f"{DATABASE}: the registry's tables cannot be read (altered?): {e}"]
    for mv in versions:
        problem = _check_record(mv, events.get((mv.model, str(mv.version)), [])) or _check_files(
            store, mv.manifest_digest)
        if problem:
            problems.append(f"{mv.ref}: {problem}")
    return problems


def legacy_versions(meta: MetadataStore) -> list[str]:
    """Versions whose registration event has no record digest (registered by an older Shipyard)."""
    events = _register_events(meta)
    return [mv.ref for mv in _versions(meta)
            if (found := events.get((mv.model, str(mv.version)))) and found[0].record is None]


def _versions(meta: MetadataStore) -> list[ModelVersion]:
    return [mv for summary in meta.list_models() for mv in meta.list_versions(summary.name)]


def _register_events(meta: MetadataStore) -> dict[tuple[str, str], list[AuditEvent]]:
    by_version: dict[tuple[str, str], list[AuditEvent]] = {}
    for e in sorted((e for e in meta.audit_events(None) if e.action == REGISTER_ACTION), key=lambda e: e.id):
        by_version.setdefault((e.model, e.name), []).append(e)
    return by_version


def _check_record(mv: ModelVersion, events: list[AuditEvent]) -> str | None:
    if not events:
        return f"has no registration event in the audit trail (manifest {mv.manifest_digest})"
    first = events[0]
    if len(events) > 1:
        return (f"has {len(events)} registration events in the audit trail (ids "
                f"{', '.join(str(e.id) for e in events)}): every one after the first was added by hand")
    if first.new != str(mv.manifest_digest):  # as the audit trail spells it
        return f"points to manifest {mv.manifest_digest}, but was registered with {first.new}"
    if first.record is not None and first.record != mv.record_digest():
        return (f"its record (flavor, metrics, params, signature, lineage ...) is not the one registered: "
                f"digest {mv.record_digest()}, registered {first.record}")
    return None


def _check_files(store: ObjectStore, digest: Digest) -> str | None:
    recorded = str(digest)
    try:
        if not store.has(digest):
            return f"manifest {recorded} is missing from the store"
        with store.open(digest) as f:
            data = f.read()
        if Digest.of_bytes(data) != digest:
            return f"manifest {recorded} does not match its content (the object was altered)"
        manifest = Manifest.from_bytes(data)
    except ShipyardError as e:
        return f"manifest {recorded} cannot be read: {e}"
    absent = [e.path for e in manifest if not store.has(e.digest)]
    if absent:
        return f"{len(absent)} file(s) of manifest {recorded} are missing from the store, e.g. {absent[0]}"
    return None
