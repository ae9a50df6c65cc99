"""``shipyard.lock``: the digests that pin a commit's data and its stages' results (diff-friendly YAML)."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.artifacts.digest import Digest
from shipyard.core.boundedyaml import load_yaml, read_bounded
from shipyard.core.workspace.atomic import write_atomic
from shipyard.core.workspace.projectlock import project_lock
from shipyard.errors import ConfigError

LOCK_FILE = "shipyard.lock"
RESTORE = "restore it from git"
STAGE_CACHE_PREFIX = "stage-cache/"
HEADER = ("# shipyard.lock: written by shipyard, commit it with your code.\n"
          "# It pins each tracked path and each stage's inputs and outputs by digest.\n")


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes every value in full: no ``&id001`` anchors when two stages share a params mapping (diff-friendly)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One tracked path: a file's digest, or a folder's manifest digest."""

    digest: Digest
    size: int
    files: int | None = None  # None for a single file

    @property
    def is_dir(self) -> bool:
        return self.files is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"digest": str(self.digest), "size": self.size}
        if self.files is not None:
            d["files"] = self.files
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathEntry:
        return cls(Digest.parse(d["digest"]), int(d["size"]), None if d.get("files") is None else int(d["files"]))


def deps_to_dict(deps: dict[str, Digest | None]) -> dict[str, str]:
    """Dependency digests as the lock (and the fingerprint) spell them: "" for one not produced yet."""
    return {k: "" if d is None else str(d) for k, d in deps.items()}


def _deps_from_dict(d: dict[str, Any]) -> dict[str, Digest | None]:
    return {str(k): Digest.parse(v) if v else None for k, v in d.items()}


def cache_key(fingerprint: Digest) -> str:
    """Where the stage cache keeps a stage's result: one named ref per fingerprint."""
    return STAGE_CACHE_PREFIX + fingerprint.hex


@dataclass(frozen=True, slots=True)
class StageEntry:
    fingerprint: Digest
    run: str | None
    cmd: str
    deps: dict[str, Digest | None]  # None while an upstream stage has yet to produce it
    params: dict[str, Any]
    outs: dict[str, PathEntry]

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": str(self.fingerprint), "run": self.run, "cmd": self.cmd,
                "deps": deps_to_dict(self.deps), "params": dict(self.params),
                "outs": {k: v.to_dict() for k, v in self.outs.items()}}

    def cache_key(self) -> str:
        """Where the stage cache keeps this result: one named ref per fingerprint."""
        return cache_key(self.fingerprint)

    def cache_bytes(self, stage: str) -> bytes:
        return json.dumps({"stage": stage, "run": self.run, "outs": {k: v.to_dict() for k, v in self.outs.items()}},
                          sort_keys=True).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageEntry:
        return cls(Digest.parse(d["fingerprint"]), d.get("run"), str(d.get("cmd", "")),
                   _deps_from_dict(d.get("deps") or {}),
                   dict(d.get("params") or {}),
                   {k: PathEntry.from_dict(v) for k, v in (d.get("outs") or {}).items()})


@dataclass
class Lock:
    data: dict[str, PathEntry] = field(default_factory=dict)
    stages: dict[str, StageEntry] = field(default_factory=dict)

    def to_yaml(self) -> str:
        body = {
            "version": 1,
            "data": {k: self.data[k].to_dict() for k in sorted(self.data)},
            "stages": {k: self.stages[k].to_dict() for k in sorted(self.stages)},
        }
        return HEADER + str(yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False))

    def digests(self) -> set[Digest]:
        """Every digest the lock references: what gc must keep and push must send."""
        out = {e.digest for e in self.data.values()}
        for stage in self.stages.values():
            out.update(e.digest for e in stage.outs.values())
            out.update(d for d in stage.deps.values() if d is not None)
        return out


def load_lock(root: Path) -> Lock:
    try:
        body = load_yaml(read_bounded(root / LOCK_FILE, LOCK_FILE, RESTORE), LOCK_FILE, RESTORE) or {}
    except FileNotFoundError:
        return Lock()
    if not isinstance(body, dict):
        raise ConfigError(f"{LOCK_FILE} is damaged (not a mapping); {RESTORE}")
    try:
        lock = Lock(
            data={k: PathEntry.from_dict(v) for k, v in (body.get("data") or {}).items()},
            stages={k: StageEntry.from_dict(v) for k, v in (body.get("stages") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{LOCK_FILE} is damaged ({' '.join(repr(exc).split())[:200]}); {RESTORE}") from exc
    clash = overlapping(lock.data)
    if clash is not None:
        raise ConfigError(f"{LOCK_FILE} tracks {clash[1]!r} inside the tracked {clash[0]!r}: a checkout could restore "
                          f"either copy; remove one of the two entries (e.g. by hand, or {RESTORE})")
    return lock


def overlapping(paths: Iterable[object]) -> tuple[str, str] | None:
    """Two of ``paths`` where the second is the first or inside it, or None (one sort, adjacent pairs)."""
    keys = sorted((p for p in paths if isinstance(p, str)), key=lambda p: p.split("/"))
    for a, b in itertools.pairwise(keys):
        if b == a or b.startswith(a + "/"):
            return a, b
    return None


def save_lock(root: Path, lock: Lock) -> None:
    """Write ``lock`` over shipyard.lock; only under the project lock, after re-reading it (see ``editing_lock``)."""
    write_atomic(root / LOCK_FILE, lock.to_yaml().encode())


@contextlib.contextmanager
def editing_lock(root: Path) -> Iterator[Lock]:
    """Hold the project lock; yield shipyard.lock as it is now; save it if the block ends without an error.

    The one way to change shipyard.lock: re-reading under the lock keeps what other commands
    recorded meanwhile. Keep the block short (no hashing, no stage commands): others wait on it.
    """
    with project_lock(root):
        lock = load_lock(root)
        yield lock
        save_lock(root, lock)
