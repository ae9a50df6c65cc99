"""Check that every model version still points at the manifest it was registered with.

The database refuses SQL that rewrites a version, but tampering can happen below SQL: a file edited
with a hex editor, a restored backup mixed with another, a manifest object replaced in the store.
Each version is held against three things recorded independently of its row:

- its registration event in the append-only audit trail names the same manifest digest;
- the manifest object is in the store and its bytes hash to that digest;
- it parses as a manifest, and every file it lists is in the store.
"""

from __future__ import annotations

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest
from shipyard.errors import ShipyardError
from shipyard.ports import MetadataStore, ObjectStore

REGISTER_ACTION = "version.register"


def check_versions(meta: MetadataStore, store: ObjectStore) -> list[str]:
    """One line per problem, each naming the version (``iris@3: ...``); empty when all is well."""
    registered = {(e.model, e.name): e.new for e in meta.audit_events(None) if e.action == REGISTER_ACTION}
    problems: list[str] = []
    for summary in meta.list_models():
        for mv in meta.list_versions(summary.name):
            key = (mv.model, str(mv.version))
            problem = _check(store, mv.manifest_digest, registered.get(key), key in registered)
            if problem:
                problems.append(f"{mv.ref}: {problem}")
    return problems


def _check(store: ObjectStore, digest: Digest, at_registration: str | None, has_event: bool) -> str | None:
    recorded = str(digest)  # as the audit trail spells it
    if not has_event:
        return f"has no registration event in the audit trail (manifest {recorded})"
    if at_registration != recorded:
        return f"points to manifest {recorded}, but was registered with {at_registration}"
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
