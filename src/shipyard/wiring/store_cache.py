"""The local cache of a store that lives in S3, for ``shipyard store cache``, and the store as verify reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shipyard.config import Settings
    from shipyard.core.artifacts.digest import Digest
    from shipyard.ports import ObjectStore


@dataclass(frozen=True)
class CacheState:
    folder: Path
    objects: int
    bytes: int
    max_bytes: int
    store: str  # the primary store's URL
    endpoint: str | None

    def to_dict(self) -> dict[str, object]:
        return {"folder": str(self.folder), "objects": self.objects, "bytes": self.bytes,
                "max_bytes": self.max_bytes, "store": self.store, "endpoint": self.endpoint}


def cache_state(settings: Settings) -> CacheState | None:
    """What the cache holds and its bound; None when the store is local (it has no cache). Nothing is created."""
    from shipyard.adapters.remotes import redact
    from shipyard.adapters.stores.cache import check_cache, usage
    from shipyard.adapters.stores.local import LocalObjectStore

    spec = settings.store_remote
    if spec is None:
        return None
    folder = settings.store_path
    objects = used = 0
    if folder.is_dir():
        check_cache(folder)
        objects, used = usage(LocalObjectStore(folder))
    endpoint = None if spec.endpoint_url is None else redact(spec.endpoint_url)
    from shipyard.wiring import cache_bound

    return CacheState(folder, objects, used, cache_bound(settings), redact(spec.url), endpoint)


def limit_cache(settings: Settings, max_bytes: int) -> int:
    """Set the cache's bound (``cache.json``) and evict least recently used objects down to it at once;
    returns how many were evicted. The store must live in S3 (``cache_state`` is not None)."""
    from shipyard.adapters.stores.cache import claim_cache, evict, set_cache_limit
    from shipyard.adapters.stores.local import LocalObjectStore

    claim_cache(settings.store_path)
    set_cache_limit(settings.store_path, max_bytes)
    return evict(LocalObjectStore(settings.store_path), max_bytes)[0]


def clear_cache(settings: Settings) -> tuple[int, int]:
    """Remove every cached object (never one of the primary store's); (objects, bytes) removed."""
    from shipyard.adapters.stores.cache import clear
    from shipyard.adapters.stores.local import LocalObjectStore

    if not settings.store_path.is_dir():
        return 0, 0
    return clear(LocalObjectStore(settings.store_path))


def verifiable(store: ObjectStore) -> ObjectStore:
    """``store`` as ``store verify`` reads it: a store in S3 re-hashes the bytes there, not its local cache's,
    and leaves the cache as it was."""
    from shipyard.adapters.stores.shared import ReadThroughStore

    return store.verifying() if isinstance(store, ReadThroughStore) else store


def repair_from_cache(store: ObjectStore, digests: Sequence[Digest]) -> list[Digest]:
    """Upload to a store in S3 the intact copies this machine's cache holds of ``digests`` (missing or corrupt
    there): each cached copy is re-hashed first, and again as it streams. Returns the ones repaired; none for
    a store that is not in S3 (it has no other copy here)."""
    from shipyard.adapters.stores.shared import ReadThroughStore
    from shipyard.core.artifacts.digest import hash_stream

    if not isinstance(store, ReadThroughStore) or not store.primary:
        return []
    good = []
    for digest in dict.fromkeys(digests):
        if not store.cache.has(digest):
            continue
        with store.cache.open(digest) as f:
            if hash_stream(f) == digest:
                good.append(digest)
    if good:
        store.upstream.upload(store.cache, good)  # replaces a corrupt copy there
    return good
