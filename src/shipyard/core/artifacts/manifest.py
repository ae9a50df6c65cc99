"""A folder as one digest: the manifest lists (path, digest, size, mode) of every file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.errors import IntegrityError

KIND = "shipyard.manifest/v1"
_PREFIX = b'{"entries":'


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
        digest = d["digest"]
        if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
            raise ValueError(f"bad digest {digest!r}")
        return cls(d["path"], Digest.trusted(digest[7:]), int(d["size"]), int(d["mode"]))


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
        """Parse a stored manifest; its entries were written sorted and unique by ``to_bytes``."""
        try:
            body = json.loads(data)
            if body.get("kind") != KIND:
                raise ValueError(body.get("kind"))
            entries = tuple(ManifestEntry.from_dict(e) for e in body["entries"])
            if any(entries[i].path >= entries[i + 1].path for i in range(len(entries) - 1)):
                raise ValueError("entries are not sorted and unique")
            return cls(entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"object is not a Shipyard manifest: {exc}") from exc

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
