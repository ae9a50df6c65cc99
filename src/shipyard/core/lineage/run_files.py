"""A run's logged files, read back as one tree (MLflow's artifact paths): list a folder, read a file, or
write a file or folder into a local folder, every byte re-hashed on the way out.

A run records each logged file (``plots/fig.png``) and folder (``model``, a manifest) under its path; the
tree is their union, with a folder's manifest entries below its path. Paths asked for and names read from
manifests are untrusted: they are checked, and every write goes through ``Confined`` below the destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.tree import copy_verified_at, load_manifest, read_verified
from shipyard.core.lineage.records import ArtifactRecord, RunRecord
from shipyard.core.workspace.paths import Confined, refuse_reserved, safe_relpath
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.ports import ObjectStore

MAX_READ_BYTES = 256 * 1024 * 1024  # load_text/load_dict read into memory: a larger file is downloaded instead
_SHOWN = 12  # paths named in a "no such path" error


@dataclass(frozen=True, slots=True)
class FileInfo:
    """MLflow's ``FileInfo``: a path within the run's artifacts, whether it is a folder, and a file's size."""

    path: str
    is_dir: bool
    file_size: int | None = None


@dataclass(frozen=True, slots=True)
class _File:
    path: str  # within the run's artifacts
    digest: Digest
    size: int
    mode: int


def clean_path(path: str | None) -> str:
    """``path`` as a relative artifact path ("" for the whole run); ``..``, absolute or odd ones refused."""
    text = (path or "").strip()
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or ".." in parts:
        raise InvalidInputError(f"artifact path {path!r} is outside the run's artifacts: give a relative path "
                                "without '..'")
    return safe_relpath("/".join(parts), "artifact path") if parts else ""


def _latest(run: RunRecord) -> list[ArtifactRecord]:
    by_path: dict[str, ArtifactRecord] = {}
    for a in run.artifacts:  # a path logged again: its last record counts
        by_path[a.path.strip("/")] = a
    return list(by_path.values())


def _related(a: str, path: str) -> bool:
    return not path or a == path or a.startswith(path + "/") or path.startswith(a + "/")


def _files(store: ObjectStore, run: RunRecord, path: str) -> tuple[list[_File], set[str]]:
    """Every file of the run at or below ``path`` (or holding it), and the folders logged as such."""
    files: list[_File] = []
    folders: set[str] = set()
    for a in _latest(run):
        name = a.path.strip("/")
        if not _related(name, path):
            continue
        if not a.is_dir:
            files.append(_File(name, a.digest, a.size, 0o644))
            continue
        folders.add(name)
        for entry in load_manifest(store, a.digest):
            files.append(_File(f"{name}/{safe_relpath(entry.path, f'manifest {a.digest} entry')}",
                               entry.digest, entry.size, entry.mode))
    return files, folders


def _below(files: list[_File], folders: set[str], path: str) -> tuple[_File | None, list[_File], bool]:
    """The file at ``path``, or the files below it and whether it is a folder at all."""
    exact = next((f for f in files if f.path == path), None)
    if exact is not None:
        return exact, [], False
    prefix = path + "/" if path else ""
    inside = [f for f in files if f.path.startswith(prefix)]
    is_dir = not path or bool(inside) or path in folders or any(d.startswith(prefix) for d in folders)
    return None, inside, is_dir


def _missing(run: RunRecord, path: str) -> NotFoundError:
    names = sorted(a.path.strip("/") + ("/" if a.is_dir else "") for a in _latest(run))
    has = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    return NotFoundError(f"run {run.id[:8]} has no artifact {path!r}: it has "
                         f"{has or 'none (log some with log_artifact, log_dict, log_text...)'}")


def list_files(store: ObjectStore, run: RunRecord, path: str | None = None) -> list[FileInfo]:
    """The files and folders directly in ``path`` (the run's top level by default), sorted by path;
    a file's own path lists nothing, as MLflow's ``list_artifacts``."""
    where = clean_path(path)
    files, folders = _files(store, run, where)
    exact, inside, is_dir = _below(files, folders, where)
    if exact is not None:
        return []
    if not is_dir:
        raise _missing(run, where)
    prefix = where + "/" if where else ""
    children: dict[str, FileInfo] = {}
    for f in inside:
        head, sep, _ = f.path[len(prefix):].partition("/")
        child = prefix + head
        children[child] = FileInfo(child, True) if sep else FileInfo(child, False, f.size)
    for d in folders:
        if d.startswith(prefix) and d != where:
            head = d[len(prefix):].partition("/")[0]
            children.setdefault(prefix + head, FileInfo(prefix + head, True))
    return [children[k] for k in sorted(children)]


def read_file(store: ObjectStore, run: RunRecord, path: str) -> bytes:
    """The bytes of the file at ``path``, re-hashed (a folder, or a file over 256 MiB, is refused)."""
    where = clean_path(path)
    files, folders = _files(store, run, where)
    exact, _, is_dir = _below(files, folders, where)
    if exact is None:
        if is_dir and where:
            raise InvalidInputError(f"{where!r} of run {run.id[:8]} is a folder: download_artifacts writes it "
                                    "into a local folder")
        raise _missing(run, where)
    return read_verified(store, exact.digest, limit=MAX_READ_BYTES, what=f"{where} of run {run.id[:8]}",
                         too_large=": download it with download_artifacts instead")


def download(store: ObjectStore, run: RunRecord, path: str | None, dst: Path) -> tuple[Path, list[str]]:
    """Write the file or folder at ``path`` (the whole run by default) into ``dst`` at the same relative
    path, as MLflow does (``dst/plots/fig.png``). Returns the local path and the files written."""
    where = clean_path(path)
    files, folders = _files(store, run, where)
    exact, inside, is_dir = _below(files, folders, where)
    chosen = [exact] if exact is not None else inside
    if exact is None and not is_dir:
        raise _missing(run, where)
    what = f"artifact of run {run.id[:8]}"
    for f in chosen:  # every name checked before the first byte is written: a refusal writes nothing
        refuse_reserved(safe_relpath(f.path, what), what, True)
    store.fetch([f.digest for f in chosen], sizes={f.digest: f.size for f in chosen})
    dst.mkdir(parents=True, exist_ok=True)
    # as in a project: never into .git, .shipyard, .hg, .svn (a hook there runs code), a package folder or a venv
    with Confined(dst, project=True) as confined:
        for f in chosen:
            copy_verified_at(store, f.digest, confined, f.path, f.mode, what, f.size)
        if exact is None and where and not chosen:  # an empty folder still comes back as a folder
            confined.folder(where, "artifact path")
    return (dst / where if where else dst), [f.path for f in chosen]
