"""Where an MLflow store's artifacts are, confined to the artifact root the user gave (or the store's own).

Every location comes from the store (a database row, a meta.yaml) and is untrusted: it maps to a folder
inside the artifact root, or it is refused with the reason. A location that moved with the store
(the database copied to another machine with its ``mlruns``) is found again by its tail
(``<experiment id>/<run id>/artifacts``) under the root. A link is never followed out of the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOCAL_SCHEMES = ("", "file", "mlflow-artifacts")
MAX_LOCATION = 2000


@dataclass(frozen=True, slots=True)
class Located:
    folder: Path | None  # the real folder inside the root (None: refused, or nothing there)
    why: str = ""  # why it was refused ("" when found, or absent because nothing was ever logged)
    escape: bool = False  # it names a place outside the artifact root ('..', a link out): the store is suspect


class ArtifactRoot:
    def __init__(self, root: Path, base: Path) -> None:
        self.root = root
        self.real = os.path.realpath(root)
        self.base = base  # a relative location is relative to this folder (the database's, or the store's parent)

    def locate(self, uri: str, experiment_id: str) -> Located:
        """The local folder ``uri`` names, inside the root; ``Located(None, why)`` when it is refused."""
        if len(uri) > MAX_LOCATION or "\0" in uri:
            return Located(None, "the location is not a path Shipyard reads (too long, or a NUL in it)")
        if not uri:
            return Located(None)
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if len(scheme) == 1:  # a Windows drive letter: never this machine's path
            return Located(None, f"{uri[:120]} is a Windows path: pass --artifacts with the folder it was copied to")
        if scheme not in LOCAL_SCHEMES:
            return Located(None, f"artifacts at {scheme}:// are not carried over (only local folders are): copy "
                                 "them to a folder and pass it with --artifacts")
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            return Located(None, f"{uri[:120]} names another host")
        raw = unquote(parts.path) if scheme else uri
        if scheme == "mlflow-artifacts":  # relative to the tracking server's --artifacts-destination: our root
            raw = raw.lstrip("/")
            path = Path(self.root, raw)
        else:
            path = Path(raw) if os.path.isabs(raw) else self.base / raw
        if ".." in Path(raw).parts:
            return Located(None, f"the location {uri[:120]} holds '..'", escape=True)
        found = self._inside(path)
        if found is not None:
            return Located(found)
        # moved with the store: find its tail from the experiment's folder under the root
        pieces = path.parts
        for i in range(len(pieces) - 1, -1, -1):
            if pieces[i] == experiment_id:
                moved = self._inside(Path(self.root, *pieces[i:]))
                if moved is not None:
                    return Located(moved)
                break
        if os.path.lexists(path) and not self.within(os.path.realpath(path)):
            return Located(None, f"the location {uri[:120]} is outside the artifact root {self.root} (or a link "
                                 "out of it): pass --artifacts with the folder that holds it", escape=True)
        return Located(None)  # nothing there: nothing was logged (MLflow makes the folder on first use)

    def _inside(self, path: Path) -> Path | None:
        if not os.path.lexists(path):  # most runs log no artifact: MLflow made no folder for them
            return None
        real = os.path.realpath(path)
        if self.within(real) and os.path.isdir(real):
            return Path(real)
        return None

    def within(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)


@dataclass(frozen=True, slots=True)
class Scan:
    files: int
    links: list[str]  # relative paths of symbolic links (never followed, never stored)
    newest: tuple[float, str]  # the latest modification time of a file, and its relative path


def scan(folder: Path, max_files: int = 1_000_000, unwatched: frozenset[str] = frozenset()) -> Scan:
    """Count ``folder``'s files, list its links, and find the file modified last (without following links; the
    files named in ``unwatched``, relative paths, count but are not candidates)."""
    files, links, newest = 0, [], (0.0, "")
    stack = [(folder, "")]
    while stack and files <= max_files:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:  # unreadable, or a path too long (a crafted store nests thousands of folders): storing
            continue  # the folder then fails and is reported; nothing here is followed anyway
        with it:
            for entry in it:
                name = f"{rel}{entry.name}"
                if entry.is_symlink():
                    links.append(name)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{name}/"))
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    if mtime > newest[0] and name not in unwatched:
                        newest = (mtime, name)
    return Scan(files, links, newest)
