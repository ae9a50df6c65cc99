"""``shipyard.lock``: the digests that pin a commit's data and its stages' results (diff-friendly YAML)."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.artifacts.digest import Digest
from shipyard.core.boundedyaml import load_yaml, read_bounded
from shipyard.core.workspace.atomic import write_atomic
from shipyard.core.workspace.paths import safe_relpath
from shipyard.core.workspace.projectlock import project_lock
from shipyard.errors import ConfigError, InvalidInputError

LOCK_FILE = "shipyard.lock"
RESTORE = "restore it from git"
STAGE_CACHE_PREFIX = "stage-cache/"
MAX_REF_BYTES = 1024 * 1024  # a stage-cache ref lists a stage's outputs: kilobytes; larger is not one Shipyard wrote
RUN_ID = re.compile(r"[0-9a-f]{32}")  # what the tracker generates (uuid4().hex)
DVC_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")  # DVC's name of a file's or a folder's (.dir) object
HEADER = ("# shipyard.lock: written by shipyard, commit it with your code.\n"
          "# It pins each tracked path and each stage's inputs and outputs by digest.\n")


class BadEntry(ValueError):
    """One field of a lock entry or stage-cache ref that is not what Shipyard writes; the message says which."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def check_digest(value: object, what: str) -> Digest:
    """``value`` read as a digest if it is a ``sha256:<hex>`` string."""
    if not isinstance(value, str):
        raise BadEntry(f"{what} {_shown(value)} is not a digest")
    try:
        return Digest.parse(value)
    except InvalidInputError:
        raise BadEntry(f"{what} {_shown(value)} is not a sha256 digest") from None


def check_run_id(value: object, what: str = "run") -> str | None:
    """``value`` if it is None or a run id as the tracker makes them (32 lowercase hex characters)."""
    if value is not None and not (isinstance(value, str) and RUN_ID.fullmatch(value)):
        raise BadEntry(f"{what} {_shown(value)} is not a run id")
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadEntry(f"{what} {_shown(value)} is not a whole number >= 0")
    return value


def _mapping(value: object, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise BadEntry(f"{what} is not a mapping")
    return value


def _relpath(value: object, what: str) -> str:
    try:
        return safe_relpath(value, what)
    except InvalidInputError as exc:
        raise BadEntry(str(exc)[:200]) from None


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes every value in full: no ``&id001`` anchors when two stages share a params mapping (diff-friendly)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One tracked path: a file's digest, or a folder's manifest digest.

    ``dvc_md5``: for an entry ``shipyard init --from-dvc`` converted, the md5 DVC recorded for the same bytes
    (a folder's ends in ``.dir``: its file list), so a DVC HTTP remote (laid out by md5) can serve them. New
    bytes (a re-run, a re-add that changed them) have none: they are not on DVC's remote.
    """

    digest: Digest
    size: int
    files: int | None = None  # None for a single file
    dvc_md5: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.files is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"digest": str(self.digest), "size": self.size}
        if self.files is not None:
            d["files"] = self.files
        if self.dvc_md5 is not None:
            d["dvc_md5"] = self.dvc_md5
        return d

    def carried(self, before: PathEntry | None) -> PathEntry:
        """This entry, keeping ``before``'s ``dvc_md5`` when it records the same bytes (a re-add or a re-run that
        changed nothing); bytes that changed are not on DVC's remote."""
        if before is None or before.dvc_md5 is None or self.dvc_md5 is not None or before.digest != self.digest \
                or before.is_dir != self.is_dir:
            return self
        return PathEntry(self.digest, self.size, self.files, before.dvc_md5)

    @classmethod
    def from_dict(cls, d: object, what: str = "") -> PathEntry:
        """Every field checked: a digest that parses, whole-number sizes, DVC's md5 as DVC names its objects
        (``BadEntry`` names the bad one)."""
        d = _mapping(d, what or "the entry")
        files = d.get("files")
        of = f"{what} " if what else ""
        md5 = d.get("dvc_md5")
        if md5 is not None:
            if not isinstance(md5, str) or not DVC_MD5.fullmatch(md5):
                raise BadEntry(f"{of}dvc_md5 {_shown(md5)} is not DVC's md5 (32 lowercase hex digits, "
                               "then .dir for a folder)")
            if md5.endswith(".dir") != (files is not None):
                raise BadEntry(f"{of}dvc_md5 {_shown(md5)}: a folder's ends in .dir, a file's does not")
        return cls(check_digest(d.get("digest"), f"{of}digest"), _count(d.get("size"), f"{of}size"),
                   None if files is None else _count(files, f"{of}file count"), md5)

    @property
    def dvc_object(self) -> str | None:
        """Where a DVC 3 remote keeps these bytes (``files/md5/ab/cdef...[.dir]``), or None."""
        md5 = self.dvc_md5
        return None if md5 is None else f"files/md5/{md5[:2]}/{md5[2:]}"


def deps_to_dict(deps: dict[str, Digest | None]) -> dict[str, str]:
    """Dependency digests as the lock (and the fingerprint) spell them: "" for one not produced yet."""
    return {k: "" if d is None else str(d) for k, d in deps.items()}


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
    def from_dict(cls, d: object) -> StageEntry:
        """Every field checked like a stage-cache ref's: digests parse, the run id is one, output paths are clean."""
        d = _mapping(d, "the entry")
        cmd = d.get("cmd", "")
        if not isinstance(cmd, str):
            raise BadEntry("cmd is not a string")
        deps: dict[str, Digest | None] = {}
        for path, digest in _mapping(d.get("deps") or {}, "deps").items():
            deps[str(path)] = None if digest == "" else check_digest(digest, f"dependency {_shown(path)} digest")
        return cls(check_digest(d.get("fingerprint"), "fingerprint"), check_run_id(d.get("run")), cmd, deps,
                   dict(_mapping(d.get("params") or {}, "params")), outs_from_dict(d.get("outs") or {}))


def outs_from_dict(body: object) -> dict[str, PathEntry]:
    """A stage's outputs (in the lock or a stage-cache ref): clean relative paths to checked entries."""
    return {_relpath(path, "output"): PathEntry.from_dict(entry, f"output {_shown(path)}")
            for path, entry in _mapping(body, "outs").items()}


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
        raw = read_bounded(root / LOCK_FILE, LOCK_FILE, RESTORE)
    except FileNotFoundError:
        return Lock()
    return parse_lock(raw)


def parse_lock(raw: bytes, source: str = LOCK_FILE, hint: str = RESTORE) -> Lock:
    """A lock from its bytes (bounded parsing, every entry checked): one ConfigError naming ``source`` if it is
    not one Shipyard could have written. Used for the file on disk and for the versions in git history."""
    body = load_yaml(raw, source, hint) or {}
    if not isinstance(body, dict):
        raise ConfigError(f"{source} is damaged (not a mapping); {hint}")
    lock = Lock()
    for section, kind in (("data", "path"), ("stages", "stage")):
        entries = body.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{source} is damaged: {section} is not a mapping; {hint}")
        for name, entry in entries.items():
            try:
                if section == "data":
                    lock.data[name] = PathEntry.from_dict(entry)
                else:
                    lock.stages[name] = StageEntry.from_dict(entry)
            except (BadEntry, TypeError, AttributeError) as exc:
                raise ConfigError(f"{source} is damaged: {kind} {_shown(name)}: "
                                  f"{' '.join(str(exc).split())[:300]}; {hint}") from None
    clash = overlapping(lock.data)
    if clash is not None:
        raise ConfigError(f"{source} tracks {clash[1]!r} inside the tracked {clash[0]!r}: a checkout could restore "
                          f"either copy; remove one of the two entries (e.g. by hand, or {hint})")
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
