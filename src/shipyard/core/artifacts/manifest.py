"""A folder as one digest: the manifest lists (path, digest, size, mode) of every file."""

from __future__ import annotations

import bisect
import contextlib
import json
import operator
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from shipyard.core.artifacts.digest import PREFIX, TEXT_LEN, Digest
from shipyard.core.workspace.paths import safe_relpath
from shipyard.errors import IntegrityError, InvalidInputError, ShipyardError

KIND = "shipyard.manifest/v1"
_MODES = (0o644, 0o755)
_PREFIX = b'{"entries":'
_HEX_DIGITS = frozenset("0123456789abcdef")
_HEX_PART = operator.itemgetter(slice(len(PREFIX), None))  # "sha256:<hex>" -> "<hex>"


def _folder(path: str) -> str:
    head, sep, _ = path.rpartition("/")
    return head + sep


def _in_folders(entries: list[Any], folders: Collection[str]) -> list[Any]:
    """The entries directly in ``folders``: found by bisection where the paths are sorted (as ``to_bytes`` writes
    them; a list that is not is filtered whole), so a few changed folders of 20,000 files cost microseconds."""
    paths = [e["path"] for e in entries]
    if not all(map(str.__lt__, paths, paths[1:])):  # also refuses a path that is not text (TypeError)
        return [e for e in entries if _folder(e["path"]) in folders]
    out = []
    for prefix in folders:
        if not prefix:  # the top folder's files lie among all the others
            out += [e for e, p in zip(entries, paths, strict=True) if "/" not in p]
            continue
        i = bisect.bisect_left(paths, prefix)
        while i < len(paths) and paths[i].startswith(prefix):
            if "/" not in paths[i][len(prefix):]:
                out.append(entries[i])
            i += 1
    return out


MAX_MANIFEST_BYTES = 512 * 1024 * 1024  # about 3 million files; a larger "manifest" is refused as it downloads

@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # POSIX, relative to the folder
    digest: Digest
    size: int
    mode: int  # 0o644 or 0o755: only the executable bit is kept

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "digest": str(self.digest), "size": self.size, "mode": self.mode}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ManifestEntry:
        digest, size, mode = d["digest"], d["size"], d["mode"]
        if type(size) is not int or size < 0:
            raise ValueError(f"bad size {size!r}")
        if mode not in _MODES:
            raise ValueError(f"bad mode {mode!r}: only 0o644 and 0o755 are recorded")
        return cls(safe_relpath(d["path"], "manifest entry"), Digest.from_text(digest), size, mode)


def _no_file_is_a_folder(entries: tuple[ManifestEntry, ...]) -> None:
    clash = file_and_folder([e.path for e in entries])
    if clash is not None:
        raise ValueError(f"{clash!r} is listed as a file and as a folder")


def file_and_folder(paths: list[str]) -> str | None:
    """The first of the files ``paths`` (relative, '/'-separated) that another one's path says is a folder."""
    files = set(paths)
    folders: set[str] = set()
    for path in paths:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            if folder in files:
                return folder
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return None


@dataclass(frozen=True, slots=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]

    @classmethod
    def of(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        ordered = tuple(sorted(entries, key=lambda e: e.path))
        paths = [e.path for e in ordered]
        if len(set(paths)) != len(paths):
            raise IntegrityError("a manifest lists one path twice")
        return cls(ordered)

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same folder always gives the same bytes and so the same digest."""
        body = {"entries": [e.to_dict() for e in self.entries], "kind": KIND}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest, which may come from anywhere (a remote, a registered folder).

        Refused with IntegrityError: a path that is absolute, has a ``..``, ``.`` or empty
        component, a NUL, non-UTF-8 text or an overlong name; a path listed twice; a path that
        is both a file and a folder; entries not in the order ``to_bytes`` writes.
        """
        try:
            body = json.loads(data)
            if body.get("kind") != KIND:
                raise ValueError(body.get("kind"))
            entries = tuple(ManifestEntry.from_dict(e) for e in body["entries"])
            if any(entries[i].path >= entries[i + 1].path for i in range(len(entries) - 1)):
                raise ValueError("entries are not sorted and unique")
            _no_file_is_a_folder(entries)
            return cls(entries)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            if isinstance(exc, InvalidInputError):
                raise IntegrityError(f"manifest refused: {exc}") from None
            raise IntegrityError(f"object is not a Shipyard manifest: {str(exc)[:200]}") from exc

    @staticmethod
    def referenced(data: bytes) -> list[Digest]:
        """The digests a manifest lists, read leniently (paths unchecked): what gc must keep.
        Empty for bytes that are not a Shipyard manifest."""
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("kind") != KIND:
                return []
            out = []
            for e in body["entries"]:
                with contextlib.suppress(ShipyardError, TypeError, KeyError, AttributeError):
                    out.append(Digest.parse(e["digest"]))
            return out
        except (ValueError, KeyError, TypeError, RecursionError):
            return []

    @staticmethod
    def index(data: bytes, folders: Collection[str] | None = None) -> dict[str, Digest]:
        """``{path: digest}`` of a manifest's entries, read fast and leniently: for comparing a folder
        with a recorded version (``data status``, 20,000 files), never for writing files.

        Each digest's shape is checked, not each hex digit (``Digest.trusted_many``: a full check
        per entry costs more than the rest of the comparison); one of another shape is an
        IntegrityError. The checks run as C loops (``map``), not per entry in Python.
        A caller that writes files uses ``from_bytes``, which checks everything.
        ``folders``: only the entries directly in these folders (``'sub/'``; ``''`` for the top).
        """
        try:
            entries = json.loads(data)["entries"]
            if folders is not None:
                entries = _in_folders(entries, folders)
            paths = [e["path"] for e in entries]
            texts = [e["digest"] for e in entries]
            # str.startswith refuses a digest that is not text (TypeError)
            if not all(map(str.startswith, texts, repeat(PREFIX))) or set(map(len, texts)) - {TEXT_LEN}:
                raise ValueError("a digest is not sha256:<64 hex digits>")
            return dict(zip(paths, Digest.trusted_many(map(_HEX_PART, texts)), strict=True))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise IntegrityError(f"object is not a Shipyard manifest: {str(exc)[:200]}") from exc

    @staticmethod
    def objects(data: bytes) -> list[tuple[str, Digest, int]]:
        """``(path, digest, size)`` of each entry, for moving objects (``data push``), never for writing files:
        every digest is checked in full (shape and hex digits, in C over all of them at once) and every size
        is a non-negative int; paths are not checked (they only name objects in messages)."""
        try:
            body = json.loads(data)
            if body.get("kind") != KIND:
                raise ValueError(body.get("kind"))
            entries = body["entries"]
            paths = [str(e["path"]) for e in entries]
            texts = [e["digest"] for e in entries]
            sizes = [e["size"] for e in entries]
            if not all(map(str.startswith, texts, repeat(PREFIX))) or set(map(len, texts)) - {TEXT_LEN}:
                raise ValueError("a digest is not sha256:<64 hex digits>")
            hexes = list(map(_HEX_PART, texts))
            if set("".join(hexes)) - _HEX_DIGITS:
                raise ValueError("a digest is not sha256:<64 lowercase hex digits>")
            if set(map(type, sizes)) - {int} or any(n < 0 for n in sizes):
                raise ValueError("a size is not a non-negative integer")
            return list(zip(paths, Digest.trusted_many(hexes), sizes, strict=True))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise IntegrityError(f"object is not a Shipyard manifest: {str(exc)[:200]}") from exc

    @staticmethod
    def looks_like(head: bytes) -> bool:
        """Cheap test on an object's first bytes, used by gc to follow folder references."""
        return head.startswith(_PREFIX)

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.to_bytes())

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)
