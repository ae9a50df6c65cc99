"""``Digest``: the only identity of stored content, and the one place content is hashed.

Inside the code a digest is always a ``Digest``. Text spellings exist only at the edges:
``str(d)`` / ``Digest.parse`` for ``sha256:<hex>`` (lock files, manifests, database rows,
CLI and HTTP output), ``d.hex`` / ``Digest(hex)`` for bare hex (object names, the stat cache).
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any, BinaryIO, cast

from shipyard.errors import InvalidInputError

ALGORITHM = "sha256"
CHUNK_SIZE = 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{64}\Z")  # \Z: "$" would let a final newline through
PREFIX = f"{ALGORITHM}:"  # how files and rows spell a digest: ``sha256:<64 lowercase hex digits>``
TEXT_LEN = len(PREFIX) + 64
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
    def from_text(cls, text: str) -> Digest:
        """Read ``sha256:<hex>`` exactly as Shipyard writes it (manifests), nothing looser."""
        if not (isinstance(text, str) and text.startswith(PREFIX)):
            raise InvalidInputError(f"not a sha256:<hex> digest: {text!r}")
        return cls(text[len(PREFIX):])

    @classmethod
    def trusted(cls, hexdigest: str) -> Digest:
        """A digest from hex that is known good (hashlib's output, a stat cache row checked by its
        query): no re-validation, a quarter of the cost, for loops over thousands of files."""
        d = _new(cls)
        _set_hex(d, hexdigest)
        return d

    @classmethod
    def trusted_many(cls, hexdigests: Iterable[str]) -> list[Digest]:
        """``trusted`` for many at once, the loop run in C (``data status`` reads 20,000 at a time)."""
        hexes = list(hexdigests)
        out = list(map(_new, repeat(cls, len(hexes))))
        deque(map(_set_hex, out, hexes), maxlen=0)
        return out

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls.trusted(hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return PREFIX + self.hex

    def short(self) -> str:
        """The first 12 hex digits, for tables meant for people."""
        return self.hex[:12]


_new = object.__new__
_set_hex: Callable[[Digest, str], None] = vars(Digest)["hex"].__set__  # the slot's setter (frozen guards setattr)


# -- the one place content is hashed -------------------------------------------------------------

def hash_stream(f: BinaryIO) -> Digest:
    """The digest of everything left in ``f`` (``hashlib.file_digest``: large reads, no GIL)."""
    if not hasattr(f, "readinto"):
        return hash_chunks(read_chunks(f))
    return Digest.trusted(hashlib.file_digest(cast(Any, f), ALGORITHM).hexdigest())


def hash_chunks(chunks: Iterable[bytes]) -> Digest:
    """The digest of a stream of chunks."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return Digest.trusted(h.hexdigest())


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
