"""A project file as it was at a revision: what ``metrics diff``, ``params diff`` and ``plots diff`` compare.

A revision is, as DVC reads them:

- ``None`` or ``"workspace"``: the file on disk now;
- a git revision (``HEAD``, a branch, a tag, a commit, ``HEAD~1``): the file git holds in that commit;
  a file git does not track (a stage's output, a tracked dataset) is read through that commit's
  ``shipyard.lock``: the digest of the stage output or dataset that covers the path (the file
  itself, or a file listed in a folder's manifest), then the bytes from the local object store.
  An object the store lacks is an error that names the remote to pull from.

Run ids and model references (``iris@3``) name recorded values, not files: ``recorded`` gives their
params and metrics.

Everything read is untrusted: the lock at a revision is parsed with the project's lock parser
(bounded; each path checked), manifests with their parser, every object re-hashed, every file read
bounded by ``max_bytes``. Only clean relative paths are asked for: nothing can read outside the
project, its git repository or its store.

    from shipyard.wiring.revisions import open_revisions
    revs = open_revisions(root)
    text = revs.read("eval/metrics.json", "HEAD~1")   # bytes, or None where the file does not exist
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import InvalidInputError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.lineage.records import RunRecord
    from shipyard.core.pipelines.dag import Pipeline
    from shipyard.core.workspace.lockfile import Lock, PathEntry
    from shipyard.wiring import Services

WORKSPACE = "workspace"
MAX_FILE_BYTES = 64 * 1024 * 1024  # a metrics, params or plots file: far less; a larger one is refused unread
MAX_MANIFEST_READ = 128 * 1024 * 1024  # a folder manifest read to find one file in it (~700,000 files)
MAX_LISTED = 10_000  # files of one folder listed at a revision (plots' image folders)
MAX_REVISION_BYTES = 64 * 1024 * 1024  # the files of one read_many, all together
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Revision:
    """What a revision argument names: ``kind`` is "workspace", "commit", "run", "pipeline" (a pipeline run, as
    ``exp show`` lists them) or "model". ``name`` is as the user wrote it (a pipeline run: its full id);
    ``commit`` the full commit id (kind "commit")."""

    name: str
    kind: str
    commit: str | None = None

    @property
    def label(self) -> str:
        """How tables name it: ``workspace``, ``HEAD~1 (3f2a9c1d)``, ``run 80267653``, ``iris@3``."""
        if self.kind == "commit" and self.commit and not self.commit.startswith(self.name):
            return f"{self.name} ({self.commit[:8]})"
        if self.kind == "pipeline":
            return f"pipeline run {self.name[:8]}"
        return f"run {self.name[:8]}" if self.kind == "run" else self.name


@dataclass(frozen=True, slots=True)
class Recorded:
    """The params and metrics a run or a model version recorded (strings as recorded; metrics as numbers)."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_files: dict[str, dict[str, float]] | None = None  # a pipeline run's metrics by the file each came from


class Revisions:
    """Reads project files at revisions for one project (its root and its store)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.project_root.resolve()
        self._commits: dict[str, str | None] = {}
        self._locks: dict[str, Lock | None] = {}

    # -- what a revision names -------------------------------------------------------------------
    def resolve(self, rev: str | None) -> Revision:
        """The revision ``rev`` names; InvalidInputError (one line) when it names nothing known."""
        if rev is None or rev == WORKSPACE:
            return Revision(WORKSPACE, "workspace")
        if not isinstance(rev, str) or not rev.strip() or len(rev) > 200:
            raise InvalidInputError(f"revision {str(rev)[:60]!r} is not one: give a git revision (HEAD, a branch, "
                                    "a commit), 'workspace', a run id or a model reference such as iris@3")
        rev = rev.strip()
        if _RUN_ID.fullmatch(rev) and self._run_exists(rev):
            return Revision(rev, "run")
        commit = self._commit(rev)
        if commit is not None:
            return Revision(rev, "commit", commit)
        if "@" in rev and "{" not in rev and not rev.startswith("@"):  # iris@3, iris@production (not a branch)
            return Revision(rev, "model")
        if re.fullmatch(r"[0-9a-f]{4,32}", rev):
            if self._run_exists(rev):  # a run id's unique prefix
                return Revision(rev, "run")
            pipeline = self._pipeline_run(rev)  # a pipeline run id as exp show prints it (or its prefix)
            if pipeline is not None:
                return Revision(pipeline, "pipeline")
        from shipyard.adapters.vcs.git import find_repo

        if find_repo(self.root) is None:
            raise InvalidInputError(f"{self.root} is in no git repository, so {rev[:80]!r} names no commit: compare "
                                    "the workspace with a run id (`shipyard runs list`) or a model version (iris@3)")
        raise InvalidInputError(f"unknown revision {rev[:80]!r}: give a git revision (HEAD, HEAD~1, a branch, a "
                                "commit), 'workspace', a run id (`shipyard runs list`), a pipeline run id (`shipyard "
                                "exp show`) or a model version (iris@3)")

    def recorded(self, rev: Revision) -> Recorded:
        """The params and metrics a run, a pipeline run or a model version recorded.

        A run's params are those of the whole pipeline run it was part of, as ``exp show`` joins them. A pipeline
        run's are its stages' params, and its metrics are keyed by the metrics file each stage recorded them from.
        A model version declared in shipyard.yaml's ``models:`` has the params of the pipeline run that produced
        its recorded metrics (its ``metrics:`` stage's run; else its own stage's run), of the stages its stage and
        its metrics stage depend on only, each key one of the params file keys those stages declare (so a
        param logged by the script, or another model's, is left out); every section read as its leaves."""
        from shipyard.core.lineage.valuediff import expand_recorded
        from shipyard.wiring import build

        svc = build(self.settings, self.root)
        try:
            if rev.kind == "run":
                run = svc.tracker.get_run(rev.name)
                return Recorded(_pipeline_params(svc, run), dict(run.metrics))
            if rev.kind == "pipeline":
                stages = _pipeline_stages(svc, rev.name)
                return Recorded(_stage_params(stages, _project_pipeline(self.root), None), _merged_metrics(stages),
                                _metrics_by_file(stages))
            if rev.kind == "model":
                version = svc.registry.resolve(rev.name)
                params: dict[str, str] = {}
                if version.run_id is not None:
                    with contextlib.suppress(NotFoundError):
                        run = svc.tracker.get_run(version.run_id)
                        params = (_version_params(svc, self.root, version.model, version.created_at,
                                                  dict(version.metrics), run)
                                  or {**_pipeline_params(svc, run), **expand_recorded(version.params)})
                        return Recorded(params, dict(version.metrics))
                return Recorded(expand_recorded(version.params), dict(version.metrics))
            raise InvalidInputError(f"{rev.name} is a {rev.kind}, not a run or a model version")
        finally:
            svc.close()

    # -- files ------------------------------------------------------------------------------------
    def read(self, path: str, rev: str | Revision | None = None, max_bytes: int = MAX_FILE_BYTES) -> bytes | None:
        """The bytes of the project file ``path`` (relative to the project root) at ``rev``; None when the file
        does not exist there. Bigger than ``max_bytes``: InvalidInputError, nothing read."""
        return next(iter(self.read_many([path], rev, max_bytes).values()))

    def read_many(self, paths: Sequence[str], rev: str | Revision | None = None,
                  max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes | None]:
        """``read`` for several files of one revision, with a few git processes in all; keyed by each path as
        ``safe_relpath`` cleans it (``./a.json`` is ``a.json``)."""
        revision = rev if isinstance(rev, Revision) else self.resolve(rev)
        clean = [_clean(p) for p in paths]
        if revision.kind == "workspace":
            return {p: self._disk(p, max_bytes) for p in clean}
        if revision.kind != "commit" or revision.commit is None:
            raise InvalidInputError(f"{revision.name} is a {revision.kind}: it records values, not files; compare "
                                    "files at git revisions or in the workspace")
        from shipyard.adapters.vcs.revision import read_blobs

        blobs = read_blobs(self.root, revision.commit, clean, max_bytes, MAX_REVISION_BYTES)
        out: dict[str, bytes | None] = {}
        total = 0
        for path in clean:
            blob = blobs.get(path)
            if blob is not None:
                if blob.data is None:
                    raise _too_large(path, revision, blob.size, max_bytes)
                out[path] = blob.data
            else:
                out[path] = self._through_lock(path, revision, max_bytes)
            total += len(out[path] or b"")
            if total > MAX_REVISION_BYTES:  # git's blobs and the store's objects together
                raise InvalidInputError(f"the {len(clean)} files asked for at {revision.label} hold more than "
                                        f"{MAX_REVISION_BYTES} bytes in all, the most read from one revision at once; "
                                        "none was used (ask for fewer files)")
        return out

    def list(self, folder: str, rev: str | Revision | None = None) -> list[str]:
        """The files under ``folder`` at ``rev`` (project-relative paths, sorted); empty when there is none."""
        revision = rev if isinstance(rev, Revision) else self.resolve(rev)
        folder = _clean(folder)
        if revision.kind == "workspace":
            top = self.root / folder
            if not top.is_dir() or not self._inside(top):
                return []
            files = (p.relative_to(self.root).as_posix() for p in top.rglob("*") if p.is_file())
            return sorted(itertools.islice(files, MAX_LISTED))  # a huge folder is not walked to its end
        if revision.kind != "commit" or revision.commit is None:
            return []
        from shipyard.adapters.vcs.revision import list_files

        tracked = list_files(self.root, revision.commit, folder, MAX_LISTED)
        if tracked is not None:
            return sorted(tracked)[:MAX_LISTED]
        found_entry = self._entry(folder, revision)
        if found_entry is None:
            return []
        key, entry = found_entry
        if not entry.is_dir:
            return [key] if key == folder else []
        index = self._manifest(key, entry.digest, revision)
        prefix = "" if key == folder else folder[len(key) + 1:] + "/"
        return sorted(f"{key}/{p}" for p in index if p.startswith(prefix))[:MAX_LISTED]

    # -- helpers ------------------------------------------------------------------------------------
    def _disk(self, path: str, max_bytes: int) -> bytes | None:
        file = self.root / path
        if not file.is_file():
            return None
        if not self._inside(file):
            raise InvalidInputError(f"{path} leads outside the project (a link to {file.resolve()}); it is not read")
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise _too_large(path, Revision(WORKSPACE, "workspace"), size, max_bytes)
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(path, Revision(WORKSPACE, "workspace"), len(data), max_bytes)
        return data

    def _inside(self, path: Path) -> bool:
        """Whether ``path`` (links followed) is in the project or the store (a checkout may link into it)."""
        real = path.resolve()
        return real.is_relative_to(self.root) or real.is_relative_to(self.settings.store_path.resolve())

    def _commit(self, rev: str) -> str | None:
        if rev not in self._commits:
            from shipyard.adapters.vcs.revision import resolve_commit

            self._commits[rev] = resolve_commit(self.root, rev)
        return self._commits[rev]

    def _run_exists(self, run_id: str) -> bool:
        from shipyard.wiring import build

        svc = build(self.settings, self.root)
        try:
            svc.tracker.get_run(run_id)
            return True
        except (NotFoundError, InvalidInputError):
            return False
        except ShipyardError:
            return False
        finally:
            svc.close()

    def _pipeline_run(self, prefix: str) -> str | None:
        """The one pipeline run id that starts with ``prefix``; None when none or several do."""
        from shipyard.core.lineage.experiments import PIPELINE_RUN_TAG
        from shipyard.core.lineage.search import Condition
        from shipyard.wiring import build

        svc = build(self.settings, self.root)
        try:
            runs = svc.meta.search_runs([Condition("tags", PIPELINE_RUN_TAG, ">=", prefix),
                                         Condition("tags", PIPELINE_RUN_TAG, "<", prefix + "g")], 1000, None,
                                        lineage=False)
        except ShipyardError:
            return None
        finally:
            svc.close()
        ids = {r.tags.get(PIPELINE_RUN_TAG, "") for r in runs} - {""}
        ids = {i for i in ids if i.startswith(prefix)}
        return ids.pop() if len(ids) == 1 else None

    def _lock(self, revision: Revision) -> Lock | None:
        assert revision.commit is not None
        if revision.commit not in self._locks:
            from shipyard.adapters.vcs.revision import read_blobs
            from shipyard.core.boundedyaml import MAX_BYTES
            from shipyard.core.workspace.lockfile import LOCK_FILE, parse_lock

            blob = read_blobs(self.root, revision.commit, [LOCK_FILE], MAX_BYTES).get(LOCK_FILE)
            if blob is None:
                lock = None
            elif blob.data is None:
                raise InvalidInputError(f"{LOCK_FILE} at {revision.label} is larger than {MAX_BYTES} bytes: not a "
                                        "lock Shipyard wrote; it is not read")
            else:
                try:
                    lock = parse_lock(blob.data, f"{LOCK_FILE} at {revision.label}", "fix it in a new commit")
                except (ValueError, TypeError, RecursionError) as exc:
                    if isinstance(exc, ShipyardError):
                        raise
                    raise InvalidInputError(f"{LOCK_FILE} at {revision.label} is not a lock Shipyard wrote "
                                            f"({type(exc).__name__})") from None
            self._locks[revision.commit] = lock
        return self._locks[revision.commit]

    def _entry(self, path: str, revision: Revision) -> tuple[str, PathEntry] | None:
        """The tracked path or stage output of the revision's lock that is ``path`` or holds it."""
        lock = self._lock(revision)
        if lock is None:
            return None
        candidates = [*lock.data.items(), *(o for st in lock.stages.values() for o in st.outs.items())]
        best: tuple[str, PathEntry] | None = None
        for key, entry in candidates:
            if not isinstance(key, str):
                continue
            if (key == path or path.startswith(key + "/")) and (best is None or len(key) > len(best[0])):
                best = (key, entry)
        return best

    def _through_lock(self, path: str, revision: Revision, max_bytes: int) -> bytes | None:
        found = self._entry(path, revision)
        if found is None:
            return None
        key, entry = found
        if key == path:
            if entry.is_dir:
                return None  # a folder is no file: ``list`` names its files
            if entry.size > max_bytes:
                raise _too_large(path, revision, entry.size, max_bytes)
            return self._object(entry.digest, path, revision, max_bytes)
        if not entry.is_dir:
            return None
        digest = self._manifest(key, entry.digest, revision).get(path[len(key) + 1:])
        return None if digest is None else self._object(digest, path, revision, max_bytes)

    def _manifest(self, key: str, digest: Digest, revision: Revision) -> dict[str, Digest]:
        from shipyard.core.artifacts.manifest import Manifest

        raw = self._object(digest, f"{key}/ (its manifest)", revision, MAX_MANIFEST_READ)
        return {e.path: e.digest for e in Manifest.from_bytes(raw)}

    def _object(self, digest: Digest, path: str, revision: Revision, max_bytes: int) -> bytes:
        from shipyard.adapters.stores.local import LocalObjectStore
        from shipyard.core.artifacts.digest import Digest as DigestType
        from shipyard.errors import IntegrityError

        store = LocalObjectStore(self.settings.store_path, must_write=False)
        if not store.has(digest):
            raise NotFoundError(f"{path} at {revision.label} is {digest.short()} in that commit's shipyard.lock, and "
                                f"the local store lacks it: {self._pull_hint(revision)}")
        with store.open(digest) as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(path, revision, len(data), max_bytes)
        if DigestType.of_bytes(data) != digest:
            raise IntegrityError(f"object {digest.short()} ({path} at {revision.label}) does not match its digest; "
                                 "run `shipyard store verify`")
        return data

    def _pull_hint(self, revision: Revision) -> str:
        from shipyard.core.project.loader import load_config

        try:
            config = load_config(self.root)
            names = sorted(config.remotes)
            remote = config.default_remote or (names[0] if len(names) == 1 else None)
        except ShipyardError:
            remote, names = None, []
        where = (f" -r {remote}" if remote else f" -r NAME (one of {', '.join(names)})" if names else "")
        hint = f"`git checkout {revision.name} -- shipyard.lock && shipyard data pull{where}`"
        return hint + (" (no remote is configured: run that revision's stages again)" if not names else "")


def open_revisions(root: Path | None = None) -> Revisions:
    """The ``Revisions`` of the project at ``root`` (default: the one around the working folder), with the
    store the environment names (``SHIPYARD_STORE``, ``SHIPYARD_HOME``), as every command uses."""
    from shipyard.config import working_folder
    from shipyard.wiring import settings_from_environment

    return Revisions(settings_from_environment(None, root or working_folder()))


def _pipeline_params(svc: Services, run: RunRecord) -> dict[str, str]:
    """The params of the pipeline run ``run`` belongs to, joined; the run's own when it is in none."""
    from shipyard.core.lineage.experiments import PIPELINE_RUN_TAG, join
    from shipyard.core.lineage.search import Condition
    from shipyard.core.lineage.valuediff import expand_recorded
    from shipyard.wiring.experiments import fetch_runs

    pipeline_run = run.tags.get(PIPELINE_RUN_TAG)
    if not pipeline_run:
        return expand_recorded(run.params)
    group = svc.meta.search_runs([Condition("tags", PIPELINE_RUN_TAG, "=", pipeline_run)], 1000, None,
                                 lineage=False)
    joined = join(group, lambda ids: fetch_runs(svc, ids))
    return {**(joined[0].params if joined else {}), **expand_recorded(run.params)}


def _pipeline_stages(svc: Services, pipeline_run: str) -> dict[str, RunRecord]:
    """The run that made each stage's result in the pipeline run ``pipeline_run`` (reused ones included)."""
    from shipyard.core.lineage.experiments import PIPELINE_RUN_TAG, join
    from shipyard.core.lineage.search import Condition
    from shipyard.wiring.experiments import fetch_runs

    group = svc.meta.search_runs([Condition("tags", PIPELINE_RUN_TAG, "=", pipeline_run)], 1000, None,
                                 lineage=False)
    fetched: list[RunRecord] = []

    def fetch(ids: Sequence[str]) -> list[RunRecord]:
        fetched.extend(fetch_runs(svc, ids))
        return fetched

    joined = join(group, fetch)
    if not joined:
        return {}
    by_id = {r.id: r for r in [*group, *fetched]}
    return {stage: by_id[rid] for stage, rid in joined[0].stages.items() if rid in by_id}


def _project_pipeline(root: Path) -> tuple[Pipeline, str] | None:
    """The workspace's stage graph (which stage depends on which, each stage's params) and its default params
    file; None when it does not load (the recorded values are then shown as they are)."""
    from shipyard.core.pipelines.dag import build
    from shipyard.core.project.loader import load_config

    try:
        config = load_config(root)
        return build(config, root), config.params
    except (ShipyardError, OSError, ValueError):
        return None


def _stage_params(stages: dict[str, RunRecord], graph: tuple[Pipeline, str] | None,
                  wanted: set[str] | None) -> dict[str, str]:
    """The params of the stages' runs (those of ``wanted`` only, when given), as leaves, keyed as the runner
    records them (``train.lr``; ``FILE:key`` for another file than the default): with the stage graph, only the
    keys each stage declares (a param the script logged itself is no params file's)."""
    from shipyard.core.lineage.valuediff import expand_recorded

    pipeline, default = graph if graph is not None else (None, "")
    order = list(pipeline.order) if pipeline is not None else sorted(stages)
    out: dict[str, str] = {}
    for stage in [*order, *sorted(set(stages) - set(order))]:
        run = stages.get(stage)
        if run is None or (wanted is not None and stage not in wanted):
            continue
        values = expand_recorded(run.params)
        spec = pipeline.stages.get(stage) if pipeline is not None else None
        if spec is not None:
            values = {k: v for k, v in values.items() if _declared(k, spec.params, default)}
        out.update(values)
    return out


def _declared(key: str, specs: Sequence[str], default: str) -> bool:
    """Whether the recorded param ``key`` is one of (or inside one of) the stage's declared ``specs`` (the default
    params file's keys are recorded without the file)."""
    file, sep, name = key.rpartition(":")
    file = file if sep else default
    for spec in specs:
        spec_file, spec_sep, spec_key = spec.rpartition(":")
        if (spec_file if spec_sep else default) == file and (
                not spec_key or name == spec_key or name.startswith(spec_key + ".")):
            return True
    return False


def _merged_metrics(stages: dict[str, RunRecord]) -> dict[str, float]:
    out: dict[str, float] = {}
    for run in sorted(stages.values(), key=lambda r: (r.start_time, r.id)):
        out.update(run.metrics)
    return out


def _metrics_by_file(stages: dict[str, RunRecord]) -> dict[str, dict[str, float]]:
    """Each stage's metrics under its one metrics file (the ``shipyard.metrics`` tag), as ``metrics diff`` reads
    files; a stage with several files (or none) records them under ``""`` (shown as recorded)."""
    from shipyard.core.lineage.experiments import MAX_USES_CHARS, METRICS_TAG

    out: dict[str, dict[str, float]] = {}
    for run in sorted(stages.values(), key=lambda r: (r.start_time, r.id)):
        text = run.tags.get(METRICS_TAG) or ""
        try:
            files = json.loads(text) if 0 < len(text) <= MAX_USES_CHARS else None
        except (ValueError, RecursionError):
            files = None
        one = files[0] if isinstance(files, list) and len(files) == 1 and isinstance(files[0], str) else ""
        if run.metrics:
            out.setdefault(one, {}).update(run.metrics)
    return out


def _version_params(svc: Services, root: Path, model: str, created_at: float, metrics: dict[str, float],
                    run: RunRecord) -> dict[str, str] | None:
    """The params of a declared model's version (see ``Revisions.recorded``); None when the model is not declared
    in the workspace's shipyard.yaml (a ``log_model`` version: its run's pipeline params stand)."""
    from shipyard.core.lineage.experiments import PIPELINE_RUN_TAG, STAGE_TAG
    from shipyard.core.lineage.search import Condition
    from shipyard.core.project.loader import load_config

    try:
        decl = load_config(root).models.get(model)
    except ShipyardError:
        return None
    graph = _project_pipeline(root)
    producer = run.tags.get(STAGE_TAG)
    if decl is None or graph is None or producer not in graph[0].stages:
        return None
    pipeline = graph[0]
    source = run
    if decl.metrics and decl.metrics in pipeline.stages:
        candidates = svc.meta.search_runs([Condition("tags", STAGE_TAG, "=", decl.metrics)], 1000, None,
                                          lineage=False)
        source = next((r for r in candidates if r.metrics and r.start_time <= created_at
                       and all(metrics.get(k) == v for k, v in r.metrics.items())), run)
    stages = _pipeline_stages(svc, source.tags.get(PIPELINE_RUN_TAG, "")) if source.tags.get(PIPELINE_RUN_TAG) \
        else {}
    stages.setdefault(producer, run)
    if source is not run and decl.metrics:
        stages.setdefault(decl.metrics, source)
    wanted = _upstream(pipeline, {producer, *([decl.metrics] if decl.metrics in pipeline.stages else [])})
    return _stage_params(stages, graph, wanted)


def _upstream(pipeline: Pipeline, names: set[str]) -> set[str]:
    """``names`` and every stage they depend on, directly or not."""
    seen: set[str] = set()
    todo = [n for n in names if n in pipeline.stages]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(pipeline.stages[name].upstream)
    return seen


def _clean(path: str) -> str:
    from shipyard.core.workspace.paths import safe_relpath

    text = path.strip().removeprefix("./") if isinstance(path, str) else path
    return safe_relpath(text, "path")


def _too_large(path: str, revision: Revision, size: int, max_bytes: int) -> InvalidInputError:
    return InvalidInputError(f"{path} at {revision.label} is {size} bytes, more than the {max_bytes} read for a "
                             "metrics, params or plots file; it is not read")
