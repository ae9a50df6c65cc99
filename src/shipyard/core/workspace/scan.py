"""Walk a workspace path and learn each file's digest, re-hashing only what the stat cache can't vouch for."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.artifacts.digest import Digest, hash_stream
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.errors import InvalidInputError
from shipyard.ports import Progress, StateCache, no_progress

LOOKUP_MOST = 2000  # files looked up one by one in the stat cache; more: the folder's whole range at once
IGNORED_NAMES = frozenset({".git", ".shipyard", "__pycache__", ".DS_Store"})


@dataclass(frozen=True, slots=True)
class FileStat:
    rel: str  # POSIX path relative to the scanned root (the file's own name for a single file)
    path: str  # absolute path
    inode: int
    size: int
    mtime_ns: int
    executable: bool


def _stat(rel: str, path: str, st: os.stat_result) -> FileStat:
    return FileStat(rel, path, st.st_ino, st.st_size, st.st_mtime_ns, bool(st.st_mode & stat.S_IXUSR))


def _folders(root: Path) -> Iterator[tuple[str, list[tuple[str, str, os.stat_result]]]]:
    """(prefix, [(relative path, absolute path, stat), ...]) of each folder under ``root`` that holds files,
    its own files only, in directory order: `walk`, `walk_signature` and `walk_tree` must see files in the
    same order. ``prefix`` is the folder's path relative to ``root`` with a trailing ``/`` ('' for ``root``).

    Symbolic links inside a tracked folder (to files or folders) are skipped: never followed,
    never stored, never restored; checkout refuses to write through one. Ignored names are
    skipped too. A name that is not UTF-8 stops the walk with an error naming it."""
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        found = []
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if not name.isascii():
                    _utf8(entry.path)
                if entry.is_file(follow_symlinks=False):
                    if name not in IGNORED_NAMES:
                        found.append((prefix + name, entry.path, entry.stat(follow_symlinks=False)))
                elif entry.is_dir(follow_symlinks=False):
                    if name not in IGNORED_NAMES:
                        stack.append((entry.path, f"{prefix}{name}/"))
                elif not entry.is_symlink():
                    raise not_regular(entry.path, entry.stat(follow_symlinks=False).st_mode)
        if found:
            yield prefix, found


def _files(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, stat) of every regular file under ``root`` (see ``_folders``)."""
    for _, found in _folders(root):
        yield from found


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def not_regular(path: str, mode: int) -> InvalidInputError:
    """The error for a FIFO, socket or device where data must be a regular file or a folder."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a file or folder")
    return InvalidInputError(f"{path} is not a regular file ({kind}): remove it or move it out of the tracked "
                             "folder, then run the command again")


def _utf8(path: str) -> None:
    """Refuse a name that is not UTF-8: paths are recorded as UTF-8 text in locks and manifests."""
    try:
        path.encode()
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InvalidInputError(f"{shown}: the file name is not valid UTF-8; rename it (Shipyard records "
                                "paths as UTF-8 text), then run the command again") from None


def walk(root: Path) -> Iterator[FileStat]:
    """Every regular file under ``root`` (symlinks and ignored names skipped), in no set order."""
    make = FileStat
    for rel, path, st in _files(root):
        yield make(rel, path, st.st_ino, st.st_size, st.st_mtime_ns, bool(st.st_mode & stat.S_IXUSR))


def stat_path(path: Path) -> list[FileStat]:
    """The files of ``path``: itself if a file, its tree if a folder."""
    _utf8(str(path))
    if path.is_symlink():
        raise InvalidInputError(f"{path} is a symbolic link; track the file or folder it points to")
    if path.is_file():
        return [_stat(path.name, str(path), path.stat())]
    if path.is_dir():
        return list(walk(path))
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise InvalidInputError(f"{path} does not exist") from None
    raise not_regular(str(path), mode)


def hash_file(path: str) -> Digest:
    with open(path, "rb") as f:
        return hash_stream(f)


def known_digests(files: list[FileStat], state: StateCache) -> dict[str, Digest]:
    """Digests the stat cache still vouches for: same inode, size and mtime."""
    if len(files) > LOOKUP_MOST:  # a folder: one range scan of the cache beats many lookups
        first = files[0]
        cached = state.under(first.path[: len(first.path) - len(first.rel)])
    else:
        cached = state.lookup(f.path for f in files)
    out: dict[str, Digest] = {}
    for f in files:
        hit = cached.get(f.path)
        if hit is not None and hit[:3] == (f.inode, f.size, f.mtime_ns):
            out[f.path] = hit[3]
    return out


def digests_of(files: list[FileStat], state: StateCache, progress: Progress = no_progress) -> dict[str, Digest]:
    """Digest of every file, hashing only those the cache doesn't know, and teaching it those."""
    known = known_digests(files, state)
    fresh = []
    for f in files:
        if f.path not in known:
            known[f.path] = hash_file(f.path)
            fresh.append((f.path, f.inode, f.size, f.mtime_ns, known[f.path]))
            progress(f.size)
    state.remember(fresh)
    return known


def signature(files: list[FileStat]) -> str:
    """A digest of every file's (path, inode, size, mtime, mode): equal signatures mean nothing was touched."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.rel}\0{f.inode}\0{f.size}\0{f.mtime_ns}\0{int(f.executable)}\n".encode())
    return h.hexdigest()


def signatures(files: list[FileStat]) -> tuple[str, dict[str, str]]:
    """``signature(files)`` and a signature per folder of its own files (``Tree.parts``), for files listed in
    walk order (``walk``, ``stat_path``)."""
    lines: dict[str, list[str]] = {}
    for f in files:
        head, sep, _ = f.rel.rpartition("/")
        lines.setdefault(head + sep, []).append(
            f"{f.rel}\0{f.inode}\0{f.size}\0{f.mtime_ns}\0{int(f.executable)}\n")
    return _sign((prefix, "".join(group).encode()) for prefix, group in lines.items())


def _sign(groups: Iterable[tuple[str, bytes]]) -> tuple[str, dict[str, str]]:
    h = hashlib.sha256()
    parts = {}
    for prefix, data in groups:
        h.update(data)
        parts[prefix] = hashlib.blake2b(data, digest_size=16).hexdigest()
    return h.hexdigest(), parts


def walk_signature(root: Path) -> str:
    """``signature(stat_path(root))`` without building the file list: the fast "did anything change?"."""
    h = hashlib.sha256()
    update = h.update
    for rel, _, st in _files(root):
        update(f"{rel}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{int(bool(st.st_mode & stat.S_IXUSR))}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Tree:
    """One walk of a folder: its ``signature`` (as ``signature`` computes it), a signature per folder of its
    own files (``parts``, by prefix: ``''`` for the top, ``'sub/'`` ...), and the files, kept raw until asked.

    Comparing ``parts`` with those recorded when the folder was a known version tells which folders changed:
    a file in a folder whose part is unchanged has the same path, inode, size and mtime as then."""

    signature: str
    parts: dict[str, str]
    _found: dict[str, list[tuple[str, str, os.stat_result]]]

    def files(self, prefixes: Iterable[str] | None = None) -> list[FileStat]:
        """The files (all, or only those directly in the folders ``prefixes``), in walk order."""
        groups = self._found.values() if prefixes is None else [self._found[p] for p in prefixes if p in self._found]
        make = FileStat
        return [make(rel, path, st.st_ino, st.st_size, st.st_mtime_ns, bool(st.st_mode & stat.S_IXUSR))
                for found in groups for rel, path, st in found]


def walk_tree(root: Path) -> Tree:
    """Walk ``root`` once: its signature, its folders' signatures, and its files (``Tree``)."""
    found = dict(_folders(root))
    ixusr = stat.S_IXUSR
    signature, parts = _sign(
        (prefix, "".join([f"{rel}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{int(bool(st.st_mode & ixusr))}\n"
                          for rel, _, st in group]).encode())
        for prefix, group in found.items())
    return Tree(signature, parts, found)


def folder_digest(root: Path, files: list[FileStat], state: StateCache, progress: Progress = no_progress) -> Digest:
    """The manifest digest of a folder, from the tree cache when no file's stat changed."""
    sig = signature(files)
    known = state.tree(str(root))
    if known is not None and known[0] == sig:
        return known[1]
    digest = manifest_of(files, digests_of(files, state, progress)).digest
    state.remember_tree(str(root), sig, digest)
    return digest


def manifest_of(files: list[FileStat], digests: dict[str, Digest]) -> Manifest:
    return Manifest.of(
        ManifestEntry(f.rel, digests[f.path], f.size, 0o755 if f.executable else 0o644) for f in files
    )
