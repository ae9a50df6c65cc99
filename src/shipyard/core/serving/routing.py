"""Traffic between versions: a sticky canary split and shadow comparison (pure logic)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from shipyard.errors import InvalidInputError

_CANARY = re.compile(r"^(?P<ref>[^=]+)=(?P<weight>\d+(\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class CanarySpec:
    ref: str
    percent: float


def parse_canary(text: str) -> CanarySpec:
    """``iris@4=10``: send 10% of requests to iris@4."""
    m = _CANARY.match(text.strip())
    if not m:
        raise InvalidInputError(f"cannot read --canary {text!r}: write REF=PERCENT, e.g. iris@4=10")
    percent = float(m["weight"])
    if not 0 <= percent <= 100:
        raise InvalidInputError(f"--canary percent must be between 0 and 100, not {percent:g}")
    return CanarySpec(m["ref"], percent)


def in_canary(key: str, percent: float) -> bool:
    """Whether the request with sticky ``key`` goes to the canary: the same key always lands the same way."""
    if percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000
    return bucket < percent * 100


def agree(a: Any, b: Any, tolerance: float = 1e-9) -> bool:
    """Whether two predictions agree (numbers within ``tolerance``, everything else exactly)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
    return bool(a == b)
