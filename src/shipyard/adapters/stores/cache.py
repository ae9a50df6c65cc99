"""The bounded local cache of a store that lives elsewhere: its bound, what it holds, and eviction.

The cache is a ``LocalObjectStore`` folder (``sha256/ab/cdef...``, ``tmp/``) with ``cache.json`` beside the
objects. An object's modification time is when it was last used (a read touches it), so the least recently
used go first when the cache is over its bound.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.atomic import write_atomic

DEFAULT_CACHE_BYTES = 20 * 1024**3
LIMITS_FILE = "cache.json"  # {"max_bytes": N} beside the cached objects, set by `shipyard store cache --max`
MAX_LIMITS_FILE = 4096
TEMP_GRACE = 60.0


def cache_limit(cache_root: Path) -> int:
    """The cache's bound in bytes: ``cache.json`` in the cache folder, else ``DEFAULT_CACHE_BYTES``."""
    try:
        with open(cache_root / LIMITS_FILE, "rb") as f:
            value = json.loads(f.read(MAX_LIMITS_FILE)).get("max_bytes")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_CACHE_BYTES
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else DEFAULT_CACHE_BYTES


def set_cache_limit(cache_root: Path, max_bytes: int) -> None:
    """Write the bound to ``cache.json`` (a temp file renamed into place: a reader sees the old or the new)."""
    cache_root.mkdir(parents=True, exist_ok=True)
    write_atomic(cache_root / LIMITS_FILE, json.dumps({"max_bytes": max_bytes}).encode() + b"\n")


def usage(cache: LocalObjectStore) -> tuple[int, int]:
    """How many objects the cache holds, and their bytes."""
    count = used = 0
    for _, size, _ in cache.iter_objects():
        count += 1
        used += size
    return count, used


def evict(cache: LocalObjectStore, max_bytes: int, keep: Collection[Digest] = ()) -> tuple[int, int]:
    """Remove least recently used objects until the cache holds at most ``max_bytes``, never one of ``keep``
    (the objects of a read in progress). Returns (objects removed, bytes now used)."""
    entries = sorted(cache.iter_objects(), key=lambda e: e[2])
    used = sum(size for _, size, _ in entries)
    removed = 0
    for digest, size, _ in entries:
        if used <= max_bytes:
            break
        if digest not in keep:
            cache.delete(digest)
            used -= size
            removed += 1
    return removed, used


def clear(cache: LocalObjectStore) -> tuple[int, int]:
    """Remove every cached object and temp file; (objects, bytes) removed. Only this folder is touched."""
    count = freed = 0
    for digest, size, _ in list(cache.iter_objects()):
        cache.delete(digest)
        count += 1
        freed += size
    cache.clean_temp(TEMP_GRACE)  # not the temp file of a download in progress
    return count, freed
