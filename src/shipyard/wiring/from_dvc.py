"""``shipyard init --from-dvc``: convert a DVC project in place (the I/O around ``core.project.from_dvc``).

dvc.yaml becomes shipyard.yaml; each ``.dvc`` file's outputs and each dvc.lock stage's outputs are
copied into the store from the workspace or from DVC's cache, else fetched from DVC's HTTP remote
(its default one), every file's md5 checked against what DVC recorded as it is read (a corrupt
cache file is never stored); a dvc.lock stage whose
inputs are still what DVC recorded becomes a shipyard.lock entry and a stage-cache entry, so
`shipyard status` finds it up to date and `shipyard run` restores missing outputs without running.
Nothing of DVC's is changed or removed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from shipyard.core.boundedyaml import MAX_BYTES, load_yaml
from shipyard.core.pipelines.dag import Stage
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.project.from_dvc import (
    BadDvcFile,
    DvcLockStage,
    DvcOut,
    Report,
    convert_yaml,
    parse_dvc_config,
    parse_dvc_file,
    parse_dvc_lock,
    read_by_stages,
    stage_wdirs,
)
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import LOCK_FILE, PathEntry, StageEntry, editing_lock, overlapping
from shipyard.errors import ConfigError, ConflictError, InvalidInputError, ShipyardError
from shipyard.wiring.dvc_cache import Importer, read_file

if TYPE_CHECKING:
    from shipyard.adapters.remotes.dvc_http import DvcHttpRemote
    from shipyard.core.project.model import Project

MAX_DVC_FILES = 10_000
SKIPPED_FOLDERS = frozenset({".git", ".dvc", ".shipyard", "node_modules", ".venv", "venv", "__pycache__"})
HEADER = "# shipyard.yaml: converted from dvc.yaml by `shipyard init --from-dvc` (dvc.yaml is left as it was).\n"


def convert(folder: Path, environ: Mapping[str, str], force: bool = False) -> Report:
    """Convert the DVC project in ``folder``; return what was carried over and what was not."""
    from shipyard.config import load_settings
    from shipyard.core.project.loader import CONFIG_FILE, parse_config
    from shipyard.core.project.model import Project
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
    http = [n for n, spec in (body.get("remotes") or {}).items() if spec.get("layout") == "dvc"]
    importer = Importer(ws, _cache_dir(root, config.cache_dir), report, _fetching_remote(root, body, report),
                        bool(http))
    try:
        return _convert(root, environ, report, project, dvc_yaml, text, ws, importer)
    finally:
        importer.close()


def _fetching_remote(root: Path, body: dict[str, Any], report: Report) -> DvcHttpRemote | None:
    """DVC's HTTP remote to fetch what is in neither the workspace nor DVC's cache: the default remote (DVC's
    ``core.remote``), or the only remote; None if that is not an HTTP remote."""
    from shipyard.adapters.remotes.dvc_http import DvcHttpRemote, scratch_of

    remotes = body.get("remotes") or {}
    name = body.get("default_remote") or (next(iter(remotes)) if len(remotes) == 1 else None)
    spec = remotes.get(name) if name is not None else None
    if spec is None or spec.get("layout") != "dvc":
        return None
    try:
        return DvcHttpRemote(spec["url"], name, scratch=scratch_of(root))
    except ConfigError as exc:
        report.skip(f"remote {name}", f"{exc}: nothing is fetched from it")
        return None


def _convert(root: Path, environ: Mapping[str, str], report: Report, project: Project, dvc_yaml: Any, text: str,
             ws: Workspace, importer: Importer) -> Report:
    from shipyard.core.pipelines import dag
    from shipyard.core.project.loader import CONFIG_FILE
    from shipyard.core.workspace.atomic import write_atomic

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
    # the tracked data a stage reads, restored where it is missing (as `dvc checkout` does); removed again if
    # the conversion fails before anything is written
    restored = _restore_missing(ws, data, read_by_stages(project.stages, data), report)
    try:
        try:
            pipeline = dag.build(project, root)
        except ConfigError as exc:
            again = " (the data restored for it was removed again)" if restored else ""
            raise ConfigError(f"dvc.yaml does not convert: {exc}; shipyard.yaml and shipyard.lock were not "
                              f"written{again}") from None
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
        report.registration(set(stages))
    except BaseException:
        _remove(root, restored)
        raise

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


def _restore_missing(ws: Workspace, data: dict[str, PathEntry], needed: list[str], report: Report) -> list[str]:
    """Write the ``needed`` tracked paths that are not in the workspace from the store (never over an existing
    file); return what was created (each restored path's top folder that did not exist), to remove on failure."""
    from shipyard.core.workspace import data as workspace
    from shipyard.core.workspace.lockfile import Lock

    created: list[str] = []
    for rel in needed:
        if os.path.lexists(ws.root / rel):
            continue
        top = _first_missing(ws.root, rel)
        if top is not None:
            created.append(top)
        try:
            workspace.checkout(ws, Lock(data={rel: data[rel]}), [str(ws.root / rel)])
        except ShipyardError as exc:  # a link on the way, say: recorded, but left for `shipyard data checkout`
            report.skip(rel, f"recorded but not restored into the workspace: {exc}")
            continue
        report.data[rel] += " (restored into the workspace, as `dvc checkout` does)"
    return created


def _first_missing(root: Path, rel: str) -> str | None:
    """The top-most folder (or ``rel`` itself) of ``rel`` that does not exist, when every folder above it is a
    real folder (no symbolic link on the way); else None."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        try:
            mode = os.lstat(root.joinpath(*parts[:i])).st_mode
        except FileNotFoundError:
            return "/".join(parts[:i])
        except OSError:
            return None
        if not stat.S_ISDIR(mode):
            return None
    return None


def _remove(root: Path, created: list[str]) -> None:
    """Remove what ``_restore_missing`` created (a failed conversion leaves the workspace as it was); nothing
    is removed through a symbolic link (each folder on the way checked again)."""
    import shutil

    for rel in reversed(created):
        parent = rel.rpartition("/")[0]
        if parent and not _real_folders(root, parent):
            continue
        path = root / rel
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            shutil.rmtree(path, ignore_errors=True)  # never follows a link inside
        else:
            path.unlink(missing_ok=True)


def _real_folders(root: Path, rel: str) -> bool:
    """Whether every component of ``rel`` is a real folder (no symbolic link)."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        try:
            if not stat.S_ISDIR(os.lstat(root.joinpath(*parts[:i])).st_mode):
                return False
        except OSError:
            return False
    return True


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
        why = importer.changed(dep)
        if why is not None:
            return f"dependency {dep.path}: {why}"
    return None


def _read(root: Path, rel: str) -> bytes | None:
    try:
        return read_file(root / rel, MAX_BYTES)
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
                raw = read_file(Path(folder) / name, MAX_BYTES)
                if raw is None:
                    report.skip(rel, "is a symbolic link or cannot be read")
                    continue
                yield rel, parse_dvc_file(load_yaml(raw, rel), rel)
            except (BadDvcFile, ConfigError) as exc:
                report.skip(rel, str(exc))


