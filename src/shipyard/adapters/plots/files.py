"""The workspace's plot files, read as ``core.plots.data.FileSource`` wants: confined to the project, bounded.

A plot path is project-relative (``safe_relpath``); a file reached through a link that leaves the project, or
one inside ``.git``/``.shipyard``, is refused; a read stops at its limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shipyard.core.plots.data import MAX_FILES, WORKSPACE
from shipyard.core.workspace.paths import reserved_reason, safe_relpath
from shipyard.errors import InvalidInputError

SKIPPED_DIRS = frozenset({".git", ".shipyard", ".hg", ".svn", "__pycache__", "node_modules"})


class WorkspaceFiles:
    """The project's files as they are on disk now."""

    def __init__(self, root: Path, name: str = WORKSPACE) -> None:
        self.root = Path(os.path.realpath(root))
        self.name = name

    def _path(self, rel: str) -> Path:
        rel = safe_relpath(rel, "plot file")
        why = reserved_reason(rel)
        if why is not None:
            raise InvalidInputError(f"refused: {why}")
        path = self.root / rel
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise InvalidInputError("refused: a link to outside the project")
        return real

    def read(self, rel: str, limit: int) -> bytes:
        path = self._path(rel)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise InvalidInputError(f"cannot be read: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InvalidInputError("not a file")
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise InvalidInputError(f"larger than the {limit // (1024 * 1024)} MiB a plot file may hold")
        return raw

    def files_under(self, rel: str) -> list[str] | None:
        path = self._path(rel)
        if not path.is_dir():
            return None
        found: list[str] = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not os.path.islink(os.path.join(folder, d)))
            base = Path(folder).relative_to(self.root).as_posix()
            for name in sorted(files):
                found.append(f"{base}/{name}")
                if len(found) > MAX_FILES * 4:
                    return found
        return found
