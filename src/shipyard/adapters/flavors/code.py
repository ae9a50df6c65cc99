"""The project code a model needs, stored with its version (``log_model(..., code_paths=[...])``, as MLflow's).

Saving copies each named file or folder of the project into the model folder's ``code/`` (under its
own name: ``src/mypkg`` becomes ``code/mypkg``), so it is hashed into the version's manifest like any
other file. Only what lies inside the working folder is taken, named without ``..``, with no links,
no caches (``__pycache__``, ``*.pyc``), within ``MAX_FILES`` files and ``MAX_BYTES`` bytes.

Loading (only once the version's stored code is trusted: it runs on import) copies ``code/`` into a
fresh private folder of this process (``tempfile.mkdtemp``: mode 0700, a name nobody can guess, removed
when the process exits), checks the copy against the digest of what was copied, and puts that folder first
on ``sys.path``: a class defined in the project unpickles without PYTHONPATH, and a module it imports
later is still there after the version's temporary folder is gone. No folder is shared between processes
or kept between runs: a shared cache let whoever could write it (a CI cache restored from another branch,
a shared cache folder) plant a ``__pycache__/*.pyc`` that Python runs instead of the verified source, so
what is imported is exactly the version's files, and the only bytecode beside them is what this process
wrote.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import InvalidInputError

FOLDER = "code"
MAX_FILES = 2000
MAX_BYTES = 32 * 1024 * 1024
MAX_PATHS = 64
SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def check_paths(code_paths: Any) -> tuple[str, ...]:
    """``code_paths`` as given to ``log_model``: a list of relative paths (strings or path objects)."""
    if code_paths is None:
        return ()
    if isinstance(code_paths, str | os.PathLike):
        raise InvalidInputError(f"code_paths is a list of paths, not the single path {os.fspath(code_paths)!r}: "
                                "write code_paths=[...]")
    try:
        paths = tuple(os.fspath(p) for p in code_paths)
    except TypeError:
        raise InvalidInputError("code_paths is a list of project files or folders, e.g. [\"src/mypkg\"]") from None
    if len(paths) > MAX_PATHS:
        raise InvalidInputError(f"code_paths names {len(paths)} paths; at most {MAX_PATHS}: name the folders")
    return paths


Plan = dict[str, list[tuple[Path, PurePosixPath]]]
ROOT_OPTION = "code_root"  # the folder code_paths are relative to (a declared model's: the project's root)


def root_of(options: Any) -> Path | None:
    """The ``code_root`` flavor option (``shipyard run`` passes the project root), or None: the working folder."""
    given = options.get(ROOT_OPTION) if hasattr(options, "get") else None
    return Path(given) if isinstance(given, str | os.PathLike) else None


def plan(code_paths: Any, root: Path | None = None) -> Plan:
    """What ``log_model(code_paths=...)`` would store, each path checked (relative to ``root``, the working
    folder by default): by the name it gets under ``code/``, its files. Nothing is written."""
    base = (root or Path.cwd()).resolve()
    out: Plan = {}
    files = size = 0
    for given in check_paths(code_paths):
        source = _confined(given, base)
        name = source.name
        if name in out:
            raise InvalidInputError(f"code_paths: two paths are named {name!r}; each is stored under its own name, "
                                    "so name a folder above them instead")
        entries = list(_walk(source, given))
        for path, _ in entries:
            files += 1
            size += path.lstat().st_size
        if files > MAX_FILES or size > MAX_BYTES:
            raise InvalidInputError(f"code_paths: more than {MAX_FILES} files or {MAX_BYTES // (1024 * 1024)} MiB "
                                    "of code; name the model's own modules, not data or environments")
        out[name] = entries
    return out


def save(planned: Plan, folder: Path) -> list[str]:
    """Copy what ``plan`` found into ``folder/code``; the names the paths got there, in order."""
    target = folder / FOLDER
    for name, entries in planned.items():
        for path, rel in entries:
            dest = target / name / rel if rel.parts else target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    return list(planned)


def _confined(given: str, base: Path) -> Path:
    text = given.replace("\\", "/")
    if not text.strip() or "\0" in text or ".." in PurePosixPath(text).parts:
        raise InvalidInputError(f"code_paths: {given[:80]!r} is not a path inside the project (no '..')")
    path = Path(text) if Path(text).is_absolute() else base / text
    try:
        info = path.lstat()
    except OSError:
        raise InvalidInputError(f"code_paths: {given[:80]} does not exist (paths are relative to {base})") from None
    if stat.S_ISLNK(info.st_mode):
        raise InvalidInputError(f"code_paths: {given[:80]} is a link; name the file or folder it points to")
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidInputError(f"code_paths: {given[:80]} is outside the working folder {base}")
    if resolved == base:
        raise InvalidInputError("code_paths: name the model's modules or packages, not the whole working folder")
    return resolved


def _walk(source: Path, given: str) -> Iterable[tuple[Path, PurePosixPath]]:
    """Regular files under ``source`` (or ``source`` itself), with their path relative to it; a link refused."""
    if source.is_file():
        yield source, PurePosixPath()
        return
    if not source.is_dir():
        raise InvalidInputError(f"code_paths: {given[:80]} is neither a file nor a folder")
    for top, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        here = Path(top)
        for d in dirs:
            if (here / d).is_symlink():
                raise InvalidInputError(f"code_paths: {here / d} is a link; links are not stored with a model")
        for name in sorted(names):
            path = here / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise InvalidInputError(f"code_paths: {path} is a link; links are not stored with a model")
            if not stat.S_ISREG(info.st_mode) or name.endswith(SKIPPED_SUFFIXES):
                continue
            yield path, PurePosixPath(path.relative_to(source).as_posix())


def stored(folder: Path) -> Path | None:
    """The model folder's stored code, or None when it has none (a link there is refused: never followed)."""
    code = folder / FOLDER
    if code.is_symlink():
        raise InvalidInputError(f"the model folder's {FOLDER}/ is a link: not what Shipyard stores")
    return code if code.is_dir() else None


_ACTIVE: dict[str, Path] = {}  # digest of stored code -> this process's private copy of it


def activate(folder: Path) -> Path | None:
    """Put the model's stored code on ``sys.path`` (first), from a private copy made for this process."""
    code = stored(folder)
    if code is None:
        return None
    entries = list(_walk(code, f"{FOLDER}/"))
    if len(entries) > MAX_FILES or sum(p.lstat().st_size for p, _ in entries) > MAX_BYTES:
        raise InvalidInputError(f"the model's stored code is larger than {MAX_FILES} files or "
                                f"{MAX_BYTES // (1024 * 1024)} MiB: not what log_model stores")
    digest = _digest(code, entries)
    copy = _ACTIVE.get(digest)
    if copy is None or not copy.is_dir():
        copy = _private_copy(entries, digest)
        _ACTIVE[digest] = copy
    where = str(copy)
    if where not in sys.path:
        sys.path.insert(0, where)
        importlib.invalidate_caches()
    return copy


def _private_copy(entries: list[tuple[Path, PurePosixPath]], digest: str) -> Path:
    """A new folder only this process knows, holding exactly ``entries`` (checked against ``digest``)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"shipyard-code-{digest[:12]}-"))  # 0700, owned by this user
    atexit.register(_remove, tmp, os.getpid())
    try:
        for path, rel in entries:
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(path, dest)
        if _digest(tmp, list(_walk(tmp, str(tmp)))) != digest:
            raise InvalidInputError("the model's stored code changed while it was copied: load it again")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _remove(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked child exiting leaves its parent's copy alone
        shutil.rmtree(folder, ignore_errors=True)


def _digest(root: Path, entries: list[tuple[Path, PurePosixPath]]) -> str:
    h = hashlib.sha256()
    for path, rel in sorted(entries, key=lambda e: e[1].as_posix()):
        h.update(rel.as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()
