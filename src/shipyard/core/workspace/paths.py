"""Project-relative paths: every tracked or declared path lives inside the project."""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from pathlib import Path

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
    out = rel.as_posix()
    refuse_reserved(out, what)
    why = _venv_reason(str(root), out + "/")
    if why is not None:
        raise InvalidInputError(f"{what} {out!r} is refused: {why}; Shipyard never tracks or writes there")
    return out


def declared_path(path: str, what: str) -> str:
    """A path written in shipyard.yaml: relative, inside the project, normalized."""
    norm = posixpath.normpath(path)  # plain strings: a stage graph holds tens of thousands of paths
    if path.startswith("/") or norm == ".." or norm.startswith("../") or norm in (".", ""):
        raise InvalidInputError(f"{what} {path!r} is outside the project: use a path relative to shipyard.yaml")
    return norm


def overlaps(a: str, b: str) -> bool:
    """True if one path is the other or inside it."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# -- confinement: the one check every place that writes a path from a file goes through ----------

NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096
RESERVED_TOP = frozenset({".git", ".shipyard", ".hg", ".svn"})  # a tool's own state: never data
PACKAGE_DIRS = frozenset({"site-packages", "dist-packages"})  # what Python imports (a .pth there runs at start)
VENV_MARK = "pyvenv.cfg"


def reserved_reason(rel: str, project: bool = True) -> str | None:
    """Why a project-relative path must never be tracked, written or deleted, or None.

    One of its components is a version-control or Shipyard folder (``.git``, ``.shipyard``, ``.hg``,
    ``.svn``: writing there can run code, e.g. git's ``core.fsmonitor``; at any depth, since a nested
    repository or another project's store is no data either, and a folder scan skips them), or one of
    its folders is a Python package folder (``site-packages``/``dist-packages``: a ``.pth`` file there
    runs on the next interpreter start). A virtualenv (a folder holding ``pyvenv.cfg``) is checked on
    disk by ``Confined`` and ``project_path``.
    """
    parts = rel.split("/")
    if project:
        for i, part in enumerate(parts):
            if part in RESERVED_TOP:
                owner = "Shipyard" if part == ".shipyard" else "version control"
                return f"it is inside {'/'.join(parts[:i + 1])}/, which belongs to {owner}"
    for part in parts:
        if part in PACKAGE_DIRS:
            return f"it is inside a Python package folder ({part}/), where a file can run code at interpreter start"
    return None


def refuse_reserved(rel: str, what: str = "path", project: bool = True) -> None:
    """InvalidInputError if ``rel`` names a path Shipyard never touches (see ``reserved_reason``)."""
    why = reserved_reason(rel, project)
    if why is not None:
        raise InvalidInputError(f"{what} {rel!r} is refused: {why}; Shipyard never tracks or writes such paths "
                                "(track your data elsewhere, or fix the entry)")


def _venv_reason(root: str, rel: str) -> str | None:
    """Why ``rel`` (under ``root``) passes through a Python virtualenv, checking the folders on disk."""
    done = ""
    for part in rel.split("/")[:-1] if "/" in rel else []:
        done = f"{done}/{part}" if done else part
        if os.path.lexists(f"{root}/{done}/{VENV_MARK}"):
            return f"{done}/ is a Python virtualenv (it holds {VENV_MARK}), where a file can run code"
    return None


def safe_relpath(path: object, what: str = "path") -> str:
    """``path`` if it is a clean relative POSIX path that stays inside its folder, else InvalidInputError.

    Paths from locks, manifests, remotes and refs are untrusted. Refused: a non-string, an empty
    path, an absolute one, a ``..``, ``.`` or empty component, a NUL, a name that is not UTF-8,
    a component over 255 bytes or a path over 4096.
    """
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"{what} {path!r} is not a relative path")
    if path[0] == "/" or "\0" in path:
        raise InvalidInputError(f"{what} {path!r} is outside its folder: only relative paths are allowed")
    try:
        size = len(path.encode())
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} {path!r} is not valid UTF-8; rename it") from None
    if size > PATH_MAX:
        raise InvalidInputError(f"{what} {path[:60]!r}... is longer than {PATH_MAX} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInputError(f"{what} {path!r} is outside its folder or not normalized: "
                                    "a '..', '.' or empty component is not allowed")
        if len(part) > NAME_MAX // 4 and len(part.encode()) > NAME_MAX:
            raise InvalidInputError(f"{what} {path[:60]!r}... has a name longer than {NAME_MAX} bytes")
    return path


MAX_OPEN_FOLDERS = 256  # descriptors ``Confined`` keeps open before it starts over
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class Confined:
    """Writes below ``root`` that can never land outside it.

    ``target(rel)`` checks ``rel`` with ``safe_relpath``, then makes sure no folder between
    ``root`` and the file is a symbolic link (a link is never followed out of the tree: the
    command stops and names it), creating missing folders as real folders. The file itself
    may be a link: it is replaced by a rename, which never writes through it. Folders already
    checked are remembered, so many files cost one ``lstat`` per folder.

    Never written either (``reserved_reason``): a Python package folder or a virtualenv on the
    way, and with ``project`` (``root`` is the project) the ``.git``/``.shipyard``/``.hg``/``.svn``
    folders.
    """

    def __init__(self, root: Path, project: bool = False) -> None:
        self.root = str(root)
        self.project = project
        self._real: set[str] = {""}
        self._fds: dict[str, int] = {}

    # -- race-free writes: folders held open, each opened from its parent without following a link ----
    def parent_fd(self, rel: str, what: str = "path") -> tuple[int, str]:
        """An open descriptor of ``rel``'s folder (created if missing) and ``rel``'s own name in it.

        Every folder from ``root`` down is opened relative to its parent with ``O_NOFOLLOW``, so a link
        swapped in after a check (finding 8 of the attack report) is refused, never followed; writes and
        renames relative to the descriptor land in that very folder whatever happens to its path later.
        The descriptor belongs to this object: ``close()`` releases them all.
        """
        self._safe(rel, what)
        folder, _, name = rel.rpartition("/")
        return self._dir_fd(folder, what), name

    def _dir_fd(self, folder: str, what: str) -> int:
        fd = self._fds.get(folder)
        if fd is not None:
            return fd
        if len(self._fds) >= MAX_OPEN_FOLDERS:
            self.close()
        if not folder:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        else:
            up, _, part = folder.rpartition("/")
            parent = self._dir_fd(up, what)
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=parent)
                fd = self._open_below(parent, part, folder, what)
            except OSError:
                fd = self._open_below(parent, part, folder, what)
            try:
                os.stat(VENV_MARK, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                os.close(fd)
                raise _in_venv(folder, what)
        self._fds[folder] = fd
        return fd

    def _open_below(self, parent: int, part: str, folder: str, what: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=parent)
        except OSError:
            self._refuse(os.stat(part, dir_fd=parent, follow_symlinks=False), folder, what)
            raise

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> Confined:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _safe(self, rel: str, what: str) -> None:
        safe_relpath(rel, what)
        refuse_reserved(rel, what, self.project)

    def target(self, rel: str, what: str = "path") -> Path:
        self._safe(rel, what)
        folder, _, _ = rel.rpartition("/")
        if folder not in self._real:
            self._folder(folder, what)
        return Path(f"{self.root}/{rel}")

    def folder(self, rel: str, what: str = "path") -> Path:
        """``rel`` as a real folder below ``root`` (created if missing), with no link on the way."""
        self._safe(rel, what)
        if rel not in self._real:
            self._folder(rel, what)
        return Path(f"{self.root}/{rel}")

    def check(self, rel: str, what: str = "path") -> Path:
        """Like ``target`` but creates nothing: raises if a link or a file sits where a folder must be."""
        self._safe(rel, what)
        done = ""
        for part in rel.split("/")[:-1]:
            done = f"{done}/{part}" if done else part
            if done in self._real:
                continue
            try:
                st = os.lstat(f"{self.root}/{done}")
            except FileNotFoundError:
                break
            self._refuse(st, done, what)
            self._real.add(done)
        return Path(f"{self.root}/{rel}")

    def _folder(self, rel: str, what: str) -> None:
        done = ""
        for part in rel.split("/"):
            done = f"{done}/{part}" if done else part
            if done in self._real:
                continue
            path = f"{self.root}/{done}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path)
                st = os.lstat(path)
            self._refuse(st, done, what)
            self._real.add(done)

    def _refuse(self, st: os.stat_result, done: str, what: str) -> None:
        if stat.S_ISDIR(st.st_mode) and os.path.lexists(f"{self.root}/{done}/{VENV_MARK}"):
            raise _in_venv(done, what)
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInputError(f"{done} is a symbolic link where {what} needs a folder; Shipyard never "
                                    "writes through links (one could lead outside the project): replace it with "
                                    "a real folder (links are not part of any version) and run again")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{done} is a file where {what} needs a folder; move it away and run again")


def _in_venv(folder: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"{what} under {folder}/ is refused: {folder}/ is a Python virtualenv (it holds "
                             f"{VENV_MARK}), where a file can run code; Shipyard never writes there (fix the entry)")
