"""The image's one-version registry: the version's objects by digest, its row and the trust it needs.

The server in the image resolves and loads the version as any other: it re-hashes every file against
the registered manifest before loading it. The version keeps its number and every field (its record
digest is the one registered), and the trust decision in force where it was built is imported as the
image's actor's, its reason naming whose decision it was.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from shipyard.core.artifacts.tree import materialize, put_path, read_verified
from shipyard.core.environments.image import IMAGE_ACTOR
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.service import Registry
from shipyard.core.registry.trust import untrusted_error
from shipyard.errors import IntegrityError

HOME_DIR = ".shipyard"


def write_registry(folder: Path, source: Registry, mv: ModelVersion) -> None:
    """A ``.shipyard`` folder in ``folder`` holding only ``mv`` (SQLite + local store)."""
    from shipyard.adapters.db.store import SqlMetadataStore
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.config import DB_FILE, STORE_DIR

    home = folder / HOME_DIR
    home.mkdir(parents=True)
    store = LocalObjectStore(home / STORE_DIR)
    with tempfile.TemporaryDirectory(prefix="shipyard-image-") as tmp:
        files = Path(tmp) / "model"
        materialize(source.store, mv.manifest_digest, files)  # re-hashed as it is read
        needed = source.requirements(files)
        granted = source.trusted(mv)
        if needed - granted:  # the server in the image would refuse to load it: say so now
            raise untrusted_error(mv.ref, needed, granted)
        stored = put_path(store, files)
    if stored.digest != mv.manifest_digest:
        raise IntegrityError(f"{mv.ref}: its files copied into the image hash to {stored.digest}, not the "
                             f"registered {mv.manifest_digest}; run `shipyard store verify`")
    if mv.env_digest is not None:
        store.put_bytes(read_verified(source.store, mv.env_digest))
    event = source.trust_event(mv)
    reason = "" if event is None else f"imported into the image: trusted by {event.actor} ({event.reason})"[:500]
    meta = SqlMetadataStore(f"sqlite:///{home / DB_FILE}")
    try:
        if mv.run_id is not None:  # the producing run's record (its lineage) comes along: the version names it
            meta.create_run(source.meta.get_run(mv.run_id))
        meta.import_version(mv, needed.items() if needed else [], IMAGE_ACTOR, reason)
    finally:
        meta.close()
