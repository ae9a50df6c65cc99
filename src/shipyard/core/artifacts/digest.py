"""``Digest``: the only identity of stored content (``sha256:<hex>``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from shipyard.errors import InvalidInputError

ALGORITHM = "sha256"
CHUNK_SIZE = 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{64}$")
OBJECTS = ALGORITHM  # the folder (or key prefix) every object database keeps its objects under


def object_key(digest: Digest) -> str:
    """Where an object lives in every object database (local store, folder and S3 remotes):
    ``sha256/ab/cdef...``, two-character fan-out."""
    h = digest.hex
    return f"{OBJECTS}/{h[:2]}/{h[2:]}"


@dataclass(frozen=True, slots=True)
class Digest:
    """The SHA-256 of an object's bytes."""

    hex: str

    def __post_init__(self) -> None:
        if not _HEX.match(self.hex):
            raise InvalidInputError(f"not a sha256 digest: {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Read ``sha256:<hex>`` (or a bare 64-character hex string)."""
        algo, sep, hexpart = text.partition(":")
        if not sep:
            algo, hexpart = ALGORITHM, text
        if algo != ALGORITHM:
            raise InvalidInputError(f"unsupported digest algorithm {algo!r} in {text!r}; expected sha256:<hex>")
        return cls(hexpart.lower())

    @classmethod
    def trusted(cls, hexdigest: str) -> Digest:
        """A digest read from bytes already verified by hash (a manifest): skips re-validation."""
        d = object.__new__(cls)
        object.__setattr__(d, "hex", hexdigest)
        return d

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{ALGORITHM}:{self.hex}"


# -- the one place content is hashed -------------------------------------------------------------

def hash_stream(f: BinaryIO) -> Digest:
    """The digest of everything left in ``f`` (``hashlib.file_digest``: large reads, no GIL)."""
    if not hasattr(f, "readinto"):
        return hash_chunks(read_chunks(f))
    return Digest(hashlib.file_digest(cast(Any, f), ALGORITHM).hexdigest())


def hash_chunks(chunks: Iterable[bytes]) -> Digest:
    """The digest of a stream of chunks."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return Digest(h.hexdigest())


def verified(chunks: Iterable[bytes], digest: Digest, error: Callable[[], Exception]) -> Iterator[bytes]:
    """Pass ``chunks`` through, hashing them; after the last one raise ``error()`` if they do not hash to
    ``digest``. A writer consuming them has not committed yet, so it throws its copy away."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
        yield chunk
    if h.hexdigest() != digest.hex:
        raise error()


def read_chunks(f: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
