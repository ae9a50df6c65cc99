"""Project-relative paths: every tracked or declared path lives inside the project."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from shipyard.errors import InvalidInputError


def project_path(root: Path, path: str | Path, what: str = "path") -> str:
    """``path`` as a POSIX path relative to ``root``; refuses anything outside the project."""
    p = Path(path)
    absolute = Path(os.path.normpath(p if p.is_absolute() else Path.cwd() / p))
    root = Path(os.path.normpath(root.resolve()))
    try:
        rel = absolute.relative_to(root)
    except ValueError:
        raise InvalidInputError(f"{what} {path} is outside the project {root}") from None
    if not rel.parts:
        raise InvalidInputError(f"{what} {path} is the project folder itself; name a file or folder inside it")
    return rel.as_posix()


def declared_path(path: str, what: str) -> str:
    """A path written in shipyard.yaml: relative, inside the project, normalized."""
    p = PurePosixPath(path)
    norm = os.path.normpath(path)
    if p.is_absolute() or norm == ".." or norm.startswith("../") or norm in (".", ""):
        raise InvalidInputError(f"{what} {path!r} is outside the project: use a path relative to shipyard.yaml")
    return PurePosixPath(norm).as_posix()


def overlaps(a: str, b: str) -> bool:
    """True if one path is the other or inside it."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
