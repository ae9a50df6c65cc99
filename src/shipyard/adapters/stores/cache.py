"""The bounded local cache of a store that lives elsewhere: its bound, what it holds, and eviction.

The cache is a ``LocalObjectStore`` folder (``sha256/ab/cdef...``, ``tmp/``) with ``cache.json`` beside the
objects. An object's modification time is when it was last used (a read touches it), so the least recently
used go first when the cache is over its bound.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Collection
from pathlib import Path

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import OBJECTS, Digest
from shipyard.core.workspace.atomic import write_atomic
from shipyard.errors import ConfigError

DEFAULT_CACHE_BYTES = 20 * 1024**3
LIMITS_FILE = "cache.json"  # {"max_bytes": N} beside the cached objects, set by `shipyard store cache --max`
MAX_LIMITS_FILE = 4096
TEMP_GRACE = 60.0
MARKER = ".shipyard-cache"  # written when Shipyard first uses a folder as a cache: only such a folder is evicted from


def check_cache(root: Path) -> None:
    """Refuse a folder that holds objects but was never marked as a cache (``MARKER``): it may be a store (a
    project's ``.shipyard/objects``, a team's folder), whose objects clearing or eviction would destroy."""
    if os.path.lexists(root / MARKER):
        return
    holds = False
    with contextlib.suppress(OSError), os.scandir(root / OBJECTS) as fans:
        for fan in fans:
            if fan.is_dir(follow_symlinks=False) and _any(fan.path):
                holds = True
                break
    if holds:
        raise ConfigError(
            f"{root} holds objects but is not a Shipyard cache (no {MARKER} file in it): it may be a store, whose "
            "objects a cache would evict, so nothing was deleted; set SHIPYARD_STORE_CACHE to a new or empty folder "
            f"(or, if it is only a cache, create {root / MARKER})")


def _any(folder: str) -> bool:
    try:
        with os.scandir(folder) as inside:
            return next(inside, None) is not None
    except OSError:
        return False


def claim_cache(root: Path) -> None:
    """Mark ``root`` as a cache (creating it), after ``check_cache``: a folder of objects unmarked is refused."""
    check_cache(root)
    if not os.path.lexists(root / MARKER):
        root.mkdir(parents=True, exist_ok=True)
        with open(root / MARKER, "a") as f:
            f.write("This folder is a Shipyard cache: its objects may be deleted at any time.\n")


def cache_limit(cache_root: Path) -> int:
    """The cache's bound in bytes: ``cache.json`` in the cache folder, else ``DEFAULT_CACHE_BYTES``."""
    try:  # never through a link, never blocking on a FIFO: anything but a small regular file reads as no bound set
        fd = os.open(cache_root / LIMITS_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return DEFAULT_CACHE_BYTES
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return DEFAULT_CACHE_BYTES
        value = json.loads(os.read(fd, MAX_LIMITS_FILE)).get("max_bytes")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_CACHE_BYTES
    finally:
        os.close(fd)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else DEFAULT_CACHE_BYTES


def set_cache_limit(cache_root: Path, max_bytes: int) -> None:
    """Write the bound to ``cache.json`` (a temp file renamed into place: a reader sees the old or the new)."""
    path = cache_root / LIMITS_FILE
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file")
        write_atomic(path, json.dumps({"max_bytes": max_bytes}).encode() + b"\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the cache's bound to {path} ({exc.strerror or exc}): remove it (`rm -r "
                          f"{path}`) and run again") from exc


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
    check_cache(cache.root)
    entries = sorted(cache.iter_objects(), key=lambda e: e[2])
    used = sum(size for _, size, _ in entries)
    removed = 0
    for digest, size, _ in entries:
        if used <= max_bytes and max_bytes > 0:  # a bound of 0 empties the cache, empty objects too
            break
        if digest not in keep:
            cache.delete(digest)
            used -= size
            removed += 1
    return removed, used


def clear(cache: LocalObjectStore) -> tuple[int, int]:
    """Remove every cached object and temp file; (objects, bytes) removed. Only this folder is touched."""
    check_cache(cache.root)
    count = freed = 0
    for digest, size, _ in list(cache.iter_objects()):
        cache.delete(digest)
        count += 1
        freed += size
    cache.clean_temp(TEMP_GRACE)  # not the temp file of a download in progress
    return count, freed
