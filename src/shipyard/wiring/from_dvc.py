"""``shipyard init --from-dvc``: convert a DVC project in place (the I/O around ``core.project.from_dvc``).

dvc.yaml becomes shipyard.yaml; each ``.dvc`` file's outputs and each dvc.lock stage's outputs are
copied into the store from the workspace or from DVC's cache, every file's md5 checked against
what DVC recorded as it is read (a corrupt cache file is never stored); a dvc.lock stage whose
inputs are still what DVC recorded becomes a shipyard.lock entry and a stage-cache entry, so
`shipyard status` finds it up to date and `shipyard run` restores missing outputs without running.
Nothing of DVC's is changed or removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.boundedyaml import MAX_BYTES, load_yaml
from shipyard.core.pipelines.dag import Stage
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.project.from_dvc import (
    BadDvcFile,
    DvcLockStage,
    DvcOut,
    Report,
    convert_yaml,
    parse_dir_listing,
    parse_dvc_config,
    parse_dvc_file,
    parse_dvc_lock,
    stage_wdirs,
)
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import LOCK_FILE, PathEntry, StageEntry, editing_lock, overlapping
from shipyard.core.workspace.scan import IGNORED_NAMES
from shipyard.errors import ConfigError, ConflictError, InvalidInputError, ShipyardError

SMALL = 1024 * 1024  # read whole; larger files stream
BATCH = 50_000  # files copied into the store together share one durability barrier (paths only are kept)
MAX_LISTING_BYTES = 64 * 1024 * 1024  # a .dir object of about 500,000 files; larger is not read
MAX_DVC_FILES = 10_000
SKIPPED_FOLDERS = frozenset({".git", ".dvc", ".shipyard", "node_modules", ".venv", "venv", "__pycache__"})
HEADER = "# shipyard.yaml: converted from dvc.yaml by `shipyard init --from-dvc` (dvc.yaml is left as it was).\n"


def convert(folder: Path, environ: Mapping[str, str], force: bool = False) -> Report:
    """Convert the DVC project in ``folder``; return what was carried over and what was not."""
    from shipyard.config import load_settings
    from shipyard.core.pipelines import dag
    from shipyard.core.project.loader import CONFIG_FILE, parse_config
    from shipyard.core.project.model import Project
    from shipyard.core.workspace.atomic import write_atomic
    from shipyard.wiring import open_workspace

    root = folder.resolve()
    if not (root / ".dvc").is_dir() and not (root / "dvc.yaml").is_file():
        raise InvalidInputError(f"{folder} is not a DVC project (no .dvc/ folder or dvc.yaml): run `shipyard init "
                                "--from-dvc` in the DVC project's top folder")
    for name in (CONFIG_FILE, LOCK_FILE):
        if os.path.lexists(root / name) and not force:
            raise ConflictError(f"{root / name} already exists; nothing was changed (use --force to replace it)")
    report = Report()
    dvc_yaml = _yaml(root, "dvc.yaml")
    config = parse_dvc_config([(f".dvc/{n}", raw.decode("utf-8", "replace")) for n in ("config", "config.local")
                               if (raw := _read(root, f".dvc/{n}")) is not None], report)
    try:
        body = convert_yaml(dvc_yaml, config, report)
    except BadDvcFile as exc:
        raise ConfigError(f"{exc}; nothing was changed") from None
    text = HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)
    try:
        project = Project.from_dict(parse_config(text, "shipyard.yaml (converted from dvc.yaml)", root).model_dump())
    except ConfigError as exc:
        raise ConfigError(f"dvc.yaml does not convert: {exc}; nothing was changed") from None

    home = root / ".shipyard"
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        raise ConfigError(f"{home} is not a folder, so Shipyard cannot keep its data there; nothing was changed: "
                          "move it away and run the conversion again")
    home.mkdir(exist_ok=True)
    ws = open_workspace(load_settings(environ, root))
    importer = Importer(ws, _cache_dir(root, config.cache_dir), report)
    data: dict[str, PathEntry] = {}
    for rel, outs in _dvc_files(root, report):
        for out in outs:
            top = out.path.split("/")[0]
            if out.path in (CONFIG_FILE, LOCK_FILE) or top in (".shipyard", ".git", ".dvc"):
                report.skip(f"{rel}: {out.path}", "is Shipyard's, git's or DVC's own file or folder, never data")
                continue
            taken = importer.take(out)
            if taken is not None:
                data[out.path] = taken
    clash = overlapping(data)
    if clash is not None:
        data.pop(clash[1])
        report.skip(clash[1], f"is inside the tracked {clash[0]}: one entry kept")
    importer.flush()
    try:
        pipeline = dag.build(project, root)
    except ConfigError:  # a stage reads tracked data not in the workspace: restored, as `dvc checkout` does
        _restore_missing(ws, data, report)
        try:
            pipeline = dag.build(project, root)
        except ConfigError as exc:
            raise ConfigError(f"dvc.yaml does not convert: {exc}; shipyard.yaml and shipyard.lock were not "
                              "written") from None
    for rel in data:
        if not os.path.lexists(root / rel):
            report.data[rel] += " (not in the workspace: `shipyard data checkout` writes it there)"

    locked = parse_dvc_lock(_yaml(root, "dvc.lock"), stage_wdirs(dvc_yaml), report)
    params = ParamFiles(root, project.params)
    stages: dict[str, StageEntry] = {}
    for name in pipeline.order:
        if name not in locked:
            report.stages[name] = "not in dvc.lock: it runs once under Shipyard"
            continue
        try:
            entry = stage_entry(pipeline.stages[name], locked[name], importer, params, environ)
        except ShipyardError as exc:  # e.g. a dependency that is a symbolic link: Shipyard refuses to hash it
            report.stages[name] = f"{' '.join(str(exc).split())[:200]}: not recorded"
            continue
        if entry is not None:
            stages[name] = entry
    importer.flush()

    write_atomic(root / CONFIG_FILE, text.encode())
    report.written.append(CONFIG_FILE)
    with editing_lock(root) as lock:
        lock.data = data
        lock.stages = stages
        for name, st in stages.items():
            ws.store.put_ref(st.cache_key(), st.cache_bytes(name))
    report.written.append(LOCK_FILE)
    ws.state.remember(importer.remembered)
    return report


def _restore_missing(ws: Workspace, data: dict[str, PathEntry], report: Report) -> None:
    """Write the tracked paths that are not in the workspace from the store (never over an existing file)."""
    from shipyard.core.workspace import data as workspace
    from shipyard.core.workspace.lockfile import Lock

    for rel in sorted(rel for rel in data if not os.path.lexists(ws.root / rel)):
        try:
            workspace.checkout(ws, Lock(data={rel: data[rel]}), [str(ws.root / rel)])
        except ShipyardError as exc:  # a link on the way, say: recorded, but left for `shipyard data checkout`
            report.skip(rel, f"recorded but not restored into the workspace: {exc}")
            continue
        report.data[rel] += " (restored into the workspace, as `dvc checkout` does)"


def stage_entry(stage: Stage, locked: DvcLockStage, importer: Importer, params: ParamFiles,
                environ: Mapping[str, str]) -> StageEntry | None:
    """The shipyard.lock entry for a stage whose inputs are still what dvc.lock recorded, else None (why: in
    the report). Its outputs are stored (from the workspace or DVC's cache)."""
    from shipyard.core.pipelines.status import inputs_of

    why = _changed(stage, locked, importer, params)
    outs: dict[str, PathEntry] = {}
    if why is None:
        recorded = {o.path: o for o in locked.outs}
        for path in stage.produced:
            out = recorded.get(path)
            if out is None:
                why = f"dvc.lock records no output {path}"
                break
            if path in stage.uncached:  # cache: false: not stored, but still the version dvc.lock recorded
                if not importer.unchanged(out):
                    why = f"output {path} (cache: false) changed since dvc.lock"
                    break
                continue
            entry = importer.take(out)
            if entry is None:
                why = f"output {path} could not be carried over"
                break
            outs[path] = entry
    if why is not None:
        importer.report.stages[stage.name] = f"{why}: it runs once under Shipyard"
        return None
    now = inputs_of(importer.ws, stage, params, environ)
    # the versions DVC recorded, where they were carried over (the workspace may hold others, or none)
    deps = {p: importer.known[p].digest if p in importer.known else d for p, d in now.deps.items()}
    now = replace(now, deps=deps)
    importer.report.stages[stage.name] = "up to date (from dvc.lock)"
    return StageEntry(now.fingerprint(stage), None, stage.spec.cmd, now.deps, now.params, outs)


def _changed(stage: Stage, locked: DvcLockStage, importer: Importer, params: ParamFiles) -> str | None:
    """What changed since dvc.lock recorded the stage (its command, a param, a dependency), or None."""
    if " ".join(locked.cmd.split()) != " ".join(stage.spec.cmd.split()):
        return "its command changed since dvc.lock"
    for file, values in locked.params.items():
        for key, value in values.items():
            spec = key if file == params.default_file else f"{file}:{key}"
            try:
                now = next(iter(params.values(stage.name, (spec,)).values()))
            except (ConfigError, StopIteration):
                return f"param {spec} is gone"
            if now != value:
                return f"param {spec} changed since dvc.lock"
    for dep in locked.deps:
        if not importer.unchanged(dep):
            return f"dependency {dep.path} changed since dvc.lock (or cannot be checked)"
    return None


class Importer:
    """Copies what DVC recorded into the store, from the workspace where it is intact, else from DVC's
    cache; every file's md5 is checked against DVC's record as it is read."""

    def __init__(self, ws: Workspace, cache: Path, report: Report) -> None:
        self.ws = ws
        self.cache = cache
        self.report = report
        self.known: dict[str, PathEntry] = {}
        self.md5s: dict[str, str] = {}  # path -> the md5 DVC recorded for what was carried over
        self.remembered: list[tuple[str, int, int, int, Digest]] = []  # workspace files, for the stat cache
        self._pending: dict[Digest, str] = {}  # checked files to copy into the store, by digest
        self._safe_folders: set[str] = {""}
        self._origins: set[str] = set()  # where the current output's files came from
        self._root, self._cache = str(ws.root), str(cache)  # plain strings on the per-file paths

    # -- outputs --------------------------------------------------------------------------------
    def take(self, out: DvcOut) -> PathEntry | None:
        if out.path in self.known:
            return self.known[out.path] if self.md5s.get(out.path) == out.md5 else None
        if out.md5 is None:
            self.report.skip(out.path, "DVC recorded no hash for it")
            return None
        self._origins = set()
        try:
            entry = self._folder(out) if out.is_dir else self._file(out)
        except (ShipyardError, BadDvcFile, OSError) as exc:
            self.report.skip(out.path, str(exc))
            return None
        if entry is not None:
            self.known[out.path] = entry
            self.md5s[out.path] = out.md5
            self.report.data[out.path] = " and ".join(sorted(self._origins)) or "workspace"
        return entry

    def _file(self, out: DvcOut) -> PathEntry | None:
        assert out.md5 is not None
        got = self._one(out.path, out.md5, out.legacy, out.cached)
        if got is None:
            return None
        digest, size, _ = got
        return PathEntry(digest, size)

    def _folder(self, out: DvcOut) -> PathEntry | None:
        listing = self._listing(out)
        if listing is None:
            self.report.skip(out.path, "its file list (.dir) is not in DVC's cache: `dvc fetch` it, then convert "
                                       "again")
            return None
        entries = []
        skipped = 0
        for item in listing:
            if IGNORED_NAMES & set(item.relpath.split("/")):
                skipped += 1
                continue
            got = self._one(f"{out.path}/{item.relpath}", item.md5, out.legacy, out.cached, item.executable)
            if got is None:
                return None
            digest, size, mode = got
            entries.append(ManifestEntry(item.relpath, digest, size, mode))
        if skipped:
            self.report.skip(out.path, f"{skipped} file(s) under names Shipyard never tracks (.git, __pycache__, "
                                       ".DS_Store, .shipyard) were left out")
        manifest = Manifest.of(entries)
        digest = self.ws.store.put_bytes(manifest.to_bytes())
        return PathEntry(digest, manifest.size, len(entries))

    def _listing(self, out: DvcOut) -> list[Any] | None:
        key = out.cache_key()
        if key is None:
            return None
        raw = _read_file(self.cache / key, MAX_LISTING_BYTES)
        if raw is None:
            return None
        if hashlib.md5(raw).hexdigest() != out.md5:
            raise BadDvcFile(f"its file list in DVC's cache ({key}) is corrupt (md5 mismatch)")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadDvcFile(f"its file list in DVC's cache ({key}) is not JSON") from None
        return parse_dir_listing(body, f"{out.path}'s file list")

    def _one(self, rel: str, md5: str, legacy: bool, cached: bool,
             executable: bool = False) -> tuple[Digest, int, int] | None:
        """Store the version of ``rel`` DVC recorded as ``md5``: (digest, size, mode), or None (reported)."""
        fd = self._workspace_fd(rel)
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                got = self._store(f, f"{self._root}/{rel}", md5, legacy)
            if got is not None:
                self._origins.add("workspace")
                self.remembered.append((f"{self._root}/{rel}", st.st_ino, st.st_size, st.st_mtime_ns, got))
                return got, st.st_size, 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            self._origins.add("DVC's cache (the workspace copy differs: `shipyard data status` shows it)")
        name = f"{md5[:2]}/{md5[2:]}" if legacy else f"files/md5/{md5[:2]}/{md5[2:]}"
        fd = _open_regular(f"{self._cache}/{name}") if cached else None
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                got = self._store(f, f"{self._cache}/{name}", md5, legacy)
            if got is None:
                raise BadDvcFile(f"{rel}: DVC's cache copy ({name}) is corrupt (its md5 is not the one DVC "
                                 "recorded); nothing of it was stored")
            self._origins.add("DVC's cache")
            return got, size, 0o755 if executable else 0o644
        where = "neither in the workspace nor in DVC's cache" if cached else "not in the workspace (cache: false)"
        raise BadDvcFile(f"{rel}: the version DVC recorded is {where}: `dvc pull` it, then convert again")

    def _store(self, f: Any, path: str, md5: str, legacy: bool) -> Digest | None:
        """Hash ``f`` (md5 and SHA-256 in one pass); if its md5 is ``md5``, queue ``path`` for the store (which
        re-hashes it as it copies: a file changed meanwhile is refused) and return its digest, else None."""
        data = f.read(SMALL + 1)
        if len(data) <= SMALL:
            if hashlib.md5(data).hexdigest() != md5 and not (
                    legacy and hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest() == md5):
                return None
            digest = Digest.of_bytes(data)
        else:
            raw, text, sha = hashlib.md5(), hashlib.md5(), hashlib.sha256()
            carry = b""
            for chunk in _chunks(f, data):
                raw.update(chunk)
                sha.update(chunk)
                if legacy:
                    chunk = carry + chunk
                    carry = b"\r" if chunk.endswith(b"\r") else b""
                    text.update((chunk[:-1] if carry else chunk).replace(b"\r\n", b"\n"))
            text.update(carry)
            if raw.hexdigest() != md5 and not (legacy and text.hexdigest() == md5):
                return None
            digest = Digest.trusted(sha.hexdigest())
        if digest not in self._pending:  # one already stored costs one stat in put_many (``known``)
            self._pending[digest] = path
            if len(self._pending) >= BATCH:
                self.flush()
        return digest

    def flush(self) -> None:
        """Copy the queued files into the store (one durability barrier for the batch)."""
        if self._pending:
            digests = list(self._pending)
            self.ws.store.put_many(list(self._pending.values()), known=digests, expect=digests)
        self._pending.clear()

    # -- dependencies ---------------------------------------------------------------------------
    def unchanged(self, dep: DvcOut) -> bool:
        """Whether ``dep`` (a dvc.lock dependency) is still what DVC recorded."""
        if dep.md5 is None:
            return False
        if dep.path in self.md5s:
            return self.md5s[dep.path] == dep.md5
        if dep.is_dir:
            try:
                listing = self._listing(dep)
            except (BadDvcFile, OSError):  # a damaged file list: the stage runs again
                return False
            if listing is None:
                return False
            top = f"{self._root}/{dep.path}"
            names = {os.path.relpath(os.path.join(folder, name), top).replace(os.sep, "/")
                     for folder, _, files in os.walk(top) for name in files}  # links to folders not followed
            if names != {e.relpath for e in listing}:
                return False
            return all(self._md5_of(f"{dep.path}/{e.relpath}") == e.md5 for e in listing)
        return self._md5_of(dep.path) == dep.md5

    def _md5_of(self, rel: str) -> str | None:
        fd = self._workspace_fd(rel)
        if fd is None:
            return None
        h = hashlib.md5()
        with os.fdopen(fd, "rb") as f:
            for chunk in _chunks(f, b""):
                h.update(chunk)
        return h.hexdigest()

    def _workspace_fd(self, rel: str) -> int | None:
        """A descriptor on the workspace file ``rel`` if it is a regular file with no symbolic link on the way."""
        folder = rel.rpartition("/")[0]
        if folder not in self._safe_folders:
            done = ""
            for part in folder.split("/"):
                done = f"{done}/{part}" if done else part
                if done in self._safe_folders:
                    continue
                try:
                    if not stat.S_ISDIR(os.lstat(f"{self._root}/{done}").st_mode):
                        return None
                except OSError:
                    return None
                self._safe_folders.add(done)
        return _open_regular(f"{self._root}/{rel}", follow=False)


def _chunks(f: Any, head: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := f.read(size):
        yield chunk


def _open_regular(path: str | Path, follow: bool = True) -> int | None:
    """A descriptor on ``path`` if it is a regular file (never blocks on a FIFO), else None."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read_file(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file (no link), at most ``limit``; None if absent or not a regular file;
    BadDvcFile if larger."""
    fd = _open_regular(path, follow=False)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise BadDvcFile(f"{path.name} is larger than {limit // 1024 // 1024} MiB: not read")
    return raw


def _read(root: Path, rel: str) -> bytes | None:
    try:
        return _read_file(root / rel, MAX_BYTES)
    except BadDvcFile as exc:
        raise ConfigError(f"{rel}: {exc}; nothing was changed") from None


def _yaml(root: Path, rel: str) -> Any:
    raw = _read(root, rel)
    return None if raw is None else load_yaml(raw, rel)


def _cache_dir(root: Path, configured: str | None) -> Path:
    if not configured:
        return root / ".dvc" / "cache"
    path = Path(os.path.expanduser(configured))
    return path if path.is_absolute() else (root / ".dvc" / path)


def _dvc_files(root: Path, report: Report) -> Iterator[tuple[str, list[DvcOut]]]:
    """Each ``.dvc`` file of the project (not in .git, .dvc, .shipyard; no link followed) and its outputs."""
    found = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
        for name in sorted(files):
            if not name.endswith(".dvc") or name == ".dvc":
                continue
            found += 1
            rel = (Path(folder) / name).relative_to(root).as_posix()
            if found > MAX_DVC_FILES:
                report.skip(rel, f"more than {MAX_DVC_FILES} .dvc files: the rest were not read")
                return
            try:
                raw = _read_file(Path(folder) / name, MAX_BYTES)
                if raw is None:
                    report.skip(rel, "is a symbolic link or cannot be read")
                    continue
                yield rel, parse_dvc_file(load_yaml(raw, rel), rel)
            except (BadDvcFile, ConfigError) as exc:
                report.skip(rel, str(exc))


