"""Container image references by the grammar of distribution/reference (what Docker, containerd and every
registry parse): ``[DOMAIN[:PORT]/]PATH[:TAG][@sha256:HEX]``.

- DOMAIN: components of letters, digits and inner '-', joined by '.'; an optional port 1-65535.
- PATH: one or more components of lowercase letters and digits, joined inside by '.', '_', '__' or '-'
  runs, separated by '/'. So ``..``, ``a//b`` and uppercase repositories are not references.
- TAG: a word character, then up to 127 of word characters, '.' and '-'.
- the name (DOMAIN and PATH) at most 255 characters.

Each check raises ValueError with one line saying what is wrong; the text goes into manifests, workflows and
shell commands, so nothing outside the grammar gets through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::(?P<port>[0-9]+))?\Z")
PATH_COMPONENT = re.compile(rf"{_PATH_COMPONENT}\Z")
TAG = re.compile(r"\w[\w.-]{0,127}\Z", re.ASCII)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"  # 1-65535
# the whole grammar for a pinned reference in one expression (``parse`` says what is wrong with one)
PINNED = re.compile(rf"^(?P<repo>(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::{_PORT})?/)?"
                    rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::\w[\w.-]{{0,127}})?@sha256:[0-9a-f]{{64}}\Z",
                    re.ASCII)
MAX_NAME = 255
MAX_TEXT = 512  # a name, a tag and a digest fit well within this; anything longer is not looked at
_PATH_RULE = "lowercase letters and digits, joined by '.', '_', '__' or '-'"


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: ``name`` (DOMAIN/PATH, as given), ``tag`` and ``digest`` (``sha256:...``) or None."""

    name: str
    tag: str | None = None
    digest: str | None = None


def _show(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")


def check_repository(name: str, what: str = "image") -> str:
    """``name`` if it is a repository name (``[DOMAIN[:PORT]/]PATH``: no tag, no digest)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: empty image repository")
    if len(name) > MAX_NAME:
        raise ValueError(f"{what} {_show(name)}: a repository name is at most {MAX_NAME} characters")
    parts = name.split("/")
    first = parts[0]
    # the first component is the registry's domain when more follow and it reads as one (as Docker decides)
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        m = DOMAIN.match(first)
        if not m:
            raise ValueError(f"{what} {_show(name)}: {first[:80]!r} is not a registry host (letters, digits and "
                             "'-', joined by '.', with an optional :PORT)")
        if m["port"] is not None and not 1 <= int(m["port"][:6]) <= 65535:
            raise ValueError(f"{what} {_show(name)}: port {m['port'][:12]} is not between 1 and 65535")
        parts = parts[1:]
    for part in parts:
        if PATH_COMPONENT.match(part):
            continue
        if part.lower() != part and PATH_COMPONENT.match(part.lower()):
            raise ValueError(f"{what} {_show(name)}: the repository path must be lowercase ({part[:80]!r})")
        shown = repr(part[:80]) if part else "an empty component ('//' or a '/' at an end)"
        raise ValueError(f"{what} {_show(name)}: {shown} is not a repository path component ({_PATH_RULE})")
    return name


def parse(text: str, what: str = "image") -> ImageRef:
    """``text`` as ``ImageRef``; a ValueError in one line naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what}: empty image reference")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what} {_show(text)}: over {MAX_TEXT} characters, not an image reference")
    rest, at, digest = text.partition("@")
    if at and not DIGEST.match(digest):
        raise ValueError(f"{what} {_show(text)}: {('@' + digest)[:80]!r} is not a digest (write "
                         "@sha256: and 64 lowercase hex digits)")
    tag: str | None = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:  # a colon after the last '/' starts the tag (one before it is the registry's port)
        rest, _, tag = rest.rpartition(":")
        if not TAG.match(tag):
            raise ValueError(f"{what} {_show(text)}: {tag[:80]!r} is not a tag (a letter, digit or '_', then "
                             "up to 127 of those, '.' and '-')")
    check_repository(rest, what)
    return ImageRef(rest, tag, digest if at else None)
