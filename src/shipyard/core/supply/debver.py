"""Debian package versions compared as dpkg compares them (``[epoch:]upstream[-revision]``), no I/O.

Written here from dpkg's algorithm (``lib/dpkg/version.c``: ``verrevcmp``) rather than pulled in with
python-debian, which is not installed and would be a dependency for forty lines: letters sort before
non-letters, ``~`` before everything (even the end of the string), digit runs compare as numbers.
"""

from __future__ import annotations

import functools
import re

_VERSION = re.compile(r"(?:(\d{1,9}):)?([A-Za-z0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?")
MAX_VERSION_CHARS = 200


@functools.lru_cache(maxsize=65536)
def parse(text: str) -> tuple[int, str, str]:
    """``(epoch, upstream, revision)``; a ValueError for what is not a Debian version."""
    if len(text) > MAX_VERSION_CHARS:
        raise ValueError(f"a Debian version of {len(text)} characters")
    m = _VERSION.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a Debian version: {text[:60]!r}")
    epoch, upstream, revision = m.groups()
    return int(epoch or 0), upstream, revision or "0"


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b`` (a ValueError for a malformed version)."""
    ea, ua, ra = parse(a)
    eb, ub, rb = parse(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _part(ua, ub) or _part(ra, rb)


class DebianVersion:
    """A Debian version as a sortable value (``sorted``, ``<``, ``>=``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        parse(text)
        self.text = text

    def _cmp(self, other: object) -> int:
        if not isinstance(other, DebianVersion):
            raise TypeError(f"cannot compare a Debian version with {type(other).__name__}")
        return compare(self.text, other.text)

    def __lt__(self, other: DebianVersion) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: DebianVersion) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: DebianVersion) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: DebianVersion) -> bool:
        return self._cmp(other) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and compare(self.text, other.text) == 0

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"
