"""Versioned data: add paths to the store and the lock, tell what changed, restore recorded versions."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.artifacts.tree import copy_verified_at, load_manifest, put_path, read_verified
from shipyard.core.workspace.lockfile import LOCK_FILE, Lock, PathEntry
from shipyard.core.workspace.paths import Confined, project_path, refuse_reserved, safe_relpath
from shipyard.core.workspace.scan import (
    FileStat,
    Tree,
    digests_of,
    folder_digest,
    stat_path,
    walk_tree,
)
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError, ShipyardError
from shipyard.ports import ObjectStore, Progress, StateCache, no_progress

MAX_LISTED = 10


@dataclass
class Workspace:
    root: Path
    store: ObjectStore
    state: StateCache

    def abs(self, rel: str) -> Path:
        return self.root / rel


@dataclass
class PathStatus:
    path: str
    state: str  # "unchanged", "modified", "missing", "not-in-store"
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    in_store: bool = True  # whether the local store holds the recorded version (else `data pull` restores it)

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "state": self.state, "added": self.added, "modified": self.modified,
                "deleted": self.deleted, "in_store": self.in_store}


def tracked_path(root: Path, path: str | Path) -> str:
    """``path`` as a project-relative data path (``project_path``), with no symbolic link among its folders.

    A linked folder on the way could lead anywhere: into ``.shipyard/`` (``ln -s .shipyard s; data add
    s/objects``) or out of the project (``ln -s /etc e; data add e/passwd``); the name recorded would
    then not be where the data lives. The path itself being a link is refused when it is stored.
    """
    rel = project_path(root, path, "data path")
    done = ""
    for part in rel.split("/")[:-1]:
        done = f"{done}/{part}" if done else part
        if os.path.islink(root / done):
            raise InvalidInputError(f"data path {rel} is refused: {done} is a symbolic link (it could lead into "
                                    ".shipyard/ or out of the project); name the real path of the data")
    return rel


def store_path(ws: Workspace, path: str | Path, hardlink: bool = False,
               progress: Progress = no_progress) -> tuple[str, PathEntry]:
    """Store ``path``'s content; return its project-relative name and the entry to record (nothing recorded).

    ``shipyard.core.workspace.add.add`` is the use case that also records it in the lock.
    """
    rel = tracked_path(ws.root, path)
    stored = put_path(ws.store, ws.abs(rel), progress, state=ws.state, hardlink=hardlink)
    # an empty folder has an empty manifest (falsy), and is still a folder
    return rel, PathEntry(stored.digest, stored.size, len(stored.manifest) if stored.manifest is not None else None)


def recorded_entries(ws: Workspace, entry: PathEntry, name: str) -> dict[str, ManifestEntry]:
    """``{relative file path: entry}`` of a recorded version ('' for a single file)."""
    digest = entry.digest
    if not entry.is_dir:
        return {"": ManifestEntry(name, digest, entry.size, 0o644)}
    if not ws.store.has(digest):
        raise NotFoundError(f"the recorded version of {name} is not in the local store: run `shipyard data pull`")
    return {e.path: e for e in load_manifest(ws.store, digest)}


def current_files(ws: Workspace, rel: str,
                  progress: Progress = no_progress) -> tuple[dict[str, FileStat], dict[str, Digest]]:
    """The files now at ``rel`` keyed like ``recorded_entries``, and their digests by absolute path."""
    target = ws.abs(rel)
    if not target.exists():
        return {}, {}
    files = stat_path(target)
    # keyed by path inside a folder, or '' for a file: a folder replaced by a file (or the reverse) differs wholly
    is_dir = target.is_dir()
    keyed = {(f.rel if is_dir else ""): f for f in files}
    return keyed, digests_of(files, ws.state, progress)


def status(ws: Workspace, lock: Lock, progress: Progress = no_progress) -> list[PathStatus]:
    """Per tracked path: unchanged, or which files were added, modified or deleted."""
    out = []
    confined = Confined(ws.root, project=True)
    for rel, entry in sorted(lock.data.items()):
        # no link on the way: status never hashes (and so never tells about) files outside the project
        target = confined.check(rel, f"{LOCK_FILE} entry")
        if not target.exists():  # restorable by `data checkout` only if the store holds the version (a fresh clone
            out.append(PathStatus(rel, "missing", in_store=_in_store(ws, entry)))  # does not: `data pull`)
            continue
        tree = walk_tree(target) if entry.is_dir and target.is_dir() else None
        changed: set[str] | None = None  # the folders to compare file by file (None: all)
        if tree is not None:
            where = str(target)
            if ws.state.tree(where) == (tree.signature, entry.digest):
                out.append(PathStatus(rel, "unchanged"))  # no file's stat moved since it was this version
                continue
            changed = _changed_folders(ws, where, entry.digest, tree)
            files = tree.files(changed)
            keyed = {f.rel: f for f in files}
        else:
            files = stat_path(target)
            is_dir = target.is_dir()
            keyed = {(f.rel if is_dir else ""): f for f in files}
        try:
            recorded = _recorded_index(ws, entry, rel, changed)
        except NotFoundError:
            out.append(PathStatus(rel, "not-in-store", in_store=False))
            continue
        digests = digests_of(files, ws.state, progress)
        st = PathStatus(rel, "unchanged")
        for key, f in keyed.items():
            old = recorded.get(key)
            if old is None:
                st.added.append(key or rel)
            elif old.hex != digests[f.path].hex:  # .hex: a str compare, for 20,000 files
                st.modified.append(key or rel)
        st.deleted = sorted(k or rel for k in recorded if k not in keyed)
        st.added.sort()
        st.modified.sort()
        if st.added or st.modified or st.deleted:
            st.state = "modified"
        elif tree is not None:
            ws.state.remember_tree(str(target), tree.signature, entry.digest)
            ws.state.remember_parts(str(target), entry.digest, tree.parts)
        out.append(st)
    return out


def _changed_folders(ws: Workspace, where: str, version: Digest, tree: Tree) -> set[str] | None:
    """The folders (prefixes) of ``tree`` whose files' stats moved since the folder was last seen as ``version``,
    or None where that was never seen (compare every file). A folder whose own files kept their path, inode,
    size and mtime holds what the version holds there: the trust the stat cache already places in a stat."""
    known = ws.state.parts(where)
    if known is None or known[0] != version:
        return None
    then = known[1]
    now = tree.parts
    return {p for p in now.keys() | then.keys() if now.get(p) != then.get(p)}


def _in_store(ws: Workspace, entry: PathEntry) -> bool:
    """Whether the local store holds every object of a recorded version (a folder: its manifest and each file)."""
    if not ws.store.has(entry.digest):
        return False
    if not entry.is_dir:
        return True
    try:
        index = Manifest.index(read_verified(ws.store, entry.digest))
    except ShipyardError:
        return False  # a damaged manifest: what a pull fetches again
    return all(ws.store.has(d) for d in set(index.values()))


def _recorded_index(ws: Workspace, entry: PathEntry, name: str,
                    folders: set[str] | None = None) -> dict[str, Digest]:
    """``{file: digest}`` of a recorded version, read leniently from the manifest (``Manifest.index``);
    with ``folders``, only the files directly in those folders."""
    if not entry.is_dir:
        return {"": entry.digest}
    if not ws.store.has(entry.digest):
        raise NotFoundError(f"the recorded version of {name} is not in the local store: run `shipyard data pull`")
    return Manifest.index(read_verified(ws.store, entry.digest), folders)


def checkout(ws: Workspace, lock: Lock, paths: list[str] | None = None, force: bool = False,
             progress: Progress = no_progress) -> dict[str, int]:
    """Make the working tree match the lock for ``paths`` (all tracked paths by default).

    A file whose current content is not in the store is a change nobody recorded: unless
    ``force``, nothing at all is changed and the error names those files.

    The lock and the manifests are untrusted: every path goes through ``Confined``, so nothing
    is written, replaced or deleted outside the project, and no symbolic link inside a tracked
    folder is written through (the command stops before any change and names the link).
    """
    wanted = _select(ws, lock, paths)
    confined = Confined(ws.root, project=True)
    plans = []
    unsaved: list[str] = []
    for rel in wanted:
        entry = lock.data[rel]
        confined.check(rel, "tracked path")
        recorded = recorded_entries(ws, entry, rel)
        missing = [e.path for e in recorded.values() if not ws.store.has(e.digest)]
        if missing:
            raise NotFoundError(f"{len(missing)} file(s) of {rel} are not in the local store "
                                f"(e.g. {missing[0]}): run `shipyard data pull`")
        now, digests = current_files(ws, rel)
        if not entry.is_dir:
            _refuse_unscanned(ws.abs(rel), rel)
        write = [k for k, e in recorded.items() if k not in now or digests[now[k].path] != e.digest]
        delete = [k for k in now if k not in recorded]
        # a file where the version has a folder: the file itself is replaced (it is in `delete`, so its
        # content must be in the store, or --force); the folders below it are then new, nothing to check
        replace_top = entry.is_dir and "" in now
        for k in write:
            if k and not replace_top:
                confined.check(f"{rel}/{k}", "tracked path")  # a link on the way stops us before any change
        for k in [*write, *delete]:
            f = now.get(k)
            if f is not None and not ws.store.has(digests[f.path]):
                unsaved.append(f"{rel}/{k}" if k else rel)
        plans.append((rel, entry, recorded, now, write, delete))
    if unsaved and not force:
        listed = ", ".join(sorted(unsaved)[:MAX_LISTED]) + (" ..." if len(unsaved) > MAX_LISTED else "")
        raise ConflictError(
            f"{len(unsaved)} file(s) have changes that are not in the store and would be lost: {listed}; "
            "`shipyard data add` them to keep them, or pass --force to overwrite"
        )
    written = deleted = 0
    remembered = []
    for rel, entry, recorded, now, write, delete in plans:
        try:  # by folder descriptor from here: a link swapped in meanwhile is refused, never followed
            top, top_name = confined.parent_fd(rel, "tracked path")
            st = _lstat_at(top, top_name)
            if entry.is_dir and st is not None and stat.S_ISREG(st.st_mode):
                os.unlink(top_name, dir_fd=top)  # a file where the version has a folder (content checked above)
                deleted += 1
                now, delete = {}, []
            elif not entry.is_dir and st is not None and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(top_name, dir_fd=top)  # a folder where the lock has a file (files checked above)
                deleted += len(delete)
                now, delete = {}, []
            for k in delete:
                folder, name = confined.parent_fd(f"{rel}/{k}" if k else rel, "tracked path")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=folder)
                deleted += 1
            for k in write:
                dest = f"{rel}/{k}" if k else rel
                e = recorded[k]
                st = copy_verified_at(ws.store, e.digest, confined, dest, e.mode, "tracked path", size=e.size)
                remembered.append((str(ws.abs(dest)), st.st_ino, st.st_size, st.st_mtime_ns, e.digest))
                progress(e.size)
                written += 1
            if entry.is_dir:  # (again: the descriptor may have been recycled among many folders)
                confined.folder(rel, "tracked path")  # a version with no files is still a folder
                _prune_empty(*confined.parent_fd(rel, "tracked path"))
        finally:
            confined.close()
    ws.state.remember(remembered)
    return {"written": written, "deleted": deleted, "paths": len(plans)}


KEPT_OUT = (".git", ".shipyard")  # skipped by the scan, so never in the store: a repository, a project's data


def _refuse_unscanned(target: Path, rel: str) -> None:
    """A folder where the lock has a file is removed whole; refuse if it holds what no scan sees, so no
    store copy can bring back: a nested repository or Shipyard folder, or a symbolic link."""
    if target.is_symlink() or not target.is_dir():
        return
    for folder, dirs, files in os.walk(target):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            if name in KEPT_OUT or os.path.islink(path):
                shown = os.path.relpath(path, target)
                raise ConflictError(
                    f"{rel} is a folder but the lock records a file there, and replacing the folder would delete "
                    f"{rel}/{shown}, which Shipyard never stores; nothing was changed: move it out of {rel}, "
                    "then check out again")


def _lstat_at(folder: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _select(ws: Workspace, lock: Lock, paths: list[str] | None) -> list[str]:
    if not paths:
        out = [safe_relpath(rel, f"{LOCK_FILE} entry") for rel in sorted(lock.data)]
        for rel in out:
            refuse_reserved(rel, f"{LOCK_FILE} entry")
        return out
    out = []
    for p in paths:
        rel = project_path(ws.root, p, "data path")
        if rel not in lock.data:
            raise NotFoundError(f"{rel} is not tracked; `shipyard data status` lists tracked paths")
        out.append(rel)
    return out


def _prune_empty(top: int, name: str) -> None:
    """Remove the empty folders below ``name`` in the open folder ``top``, bottom-up, never through a link
    (``os.fwalk`` checks that each folder it opens is the one it listed)."""
    with contextlib.suppress(OSError):
        for _, dirs, _, fd in os.fwalk(name, topdown=False, dir_fd=top):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(d, dir_fd=fd)


def describe(ws: Workspace, rel: str) -> PathEntry | None:
    """The digest a path would have if added now (nothing stored), or None if it does not exist."""
    target = ws.abs(rel)
    if not target.exists():
        return None
    files = stat_path(target)
    if target.is_file():
        return PathEntry(digests_of(files, ws.state)[files[0].path], files[0].size)
    return PathEntry(folder_digest(target, files, ws.state), sum(f.size for f in files), len(files))
