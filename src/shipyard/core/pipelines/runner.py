"""Run a pipeline: what is out of date, in dependency order, in parallel, from cache where possible.

A stage's results enter the store, the stage cache and the lock only after it succeeded and its
outputs were stored, so a failure or a kill leaves nothing half-cached: the next run redoes it.

One ``shipyard run`` works on a project at a time (``run_lock``, as DVC's ``repro`` takes its repository
lock): outputs are removed before a stage runs, so a second run would delete what the first is writing, and
both would record the bytes of whichever wrote last. A second run waits for the first, saying so; one
started by a stage of the run holding the lock (which would wait forever) is refused in one line.
``shipyard status`` takes no lock. A stage's result is recorded under the project lock too, re-reading
``shipyard.lock`` first, so no entry other commands (``data add``) recorded meanwhile is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import MAX_MANIFEST_BYTES
from shipyard.core.artifacts.tree import load_manifest, put_path
from shipyard.core.boundedyaml import load_json, load_yaml, read_bounded
from shipyard.core.lineage.records import RunStatus
from shipyard.core.pipelines.dag import Pipeline, Stage
from shipyard.core.pipelines.jobs import Events, NoEvents, StageJob
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.pipelines.status import Inputs, StageStatus, check, explain, inputs_of
from shipyard.core.workspace import data
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import (
    MAX_REF_BYTES,
    BadEntry,
    Lock,
    PathEntry,
    StageEntry,
    cache_key,
    check_run_id,
    editing_lock,
    load_lock,
    outs_from_dict,
)
from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ShipyardError,
    StageFailed,
)
from shipyard.ports import Executor, Remote

if TYPE_CHECKING:
    from shipyard.core.lineage.tracking import Tracker
    from shipyard.core.workspace.paths import Confined

log = logging.getLogger("shipyard")


DONE = ("ran", "cached", "up-to-date", "frozen")  # outcomes downstream stages may build on
RUN_LOCK = ".shipyard/run.lock"
# run locks held, by (thread, lock path): reentrant in a thread (the CLI's run holds it around the runner's)
_runs_held: dict[tuple[int, str], int] = {}
_runs_guard = threading.Lock()


@contextlib.contextmanager
def run_lock(root: Path, environ: Mapping[str, str]) -> Iterator[None]:
    """Hold the project's run lock (an OS file lock on ``.shipyard/run.lock``, released however the
    process ends) for the ``with`` block; wait for another ``shipyard run`` holding it, with a warning
    line. Refused (``ConflictError``) in a stage's command (``SHIPYARD_STAGE`` set) while another run holds
    it: that run waits for the stage, so waiting would never end. Reentrant within a thread; another thread
    of the process waits like another process."""
    path = str(root / RUN_LOCK)
    key = (threading.get_ident(), path)
    with _runs_guard:
        again = key in _runs_held
        if again:
            _runs_held[key] += 1
    if again:
        try:
            yield
        finally:
            with _runs_guard:
                _runs_held[key] -= 1
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"pid {holder}" if holder.isdigit() else "pid unknown"
            stage = environ.get("SHIPYARD_STAGE")
            if stage:
                raise ConflictError(f"another `shipyard run` ({who}) is running in this project, and this one was "
                                    f"started by a stage's command ({stage}): a stage cannot run the pipeline it "
                                    "is part of; remove `shipyard run` from its cmd") from None
            log.warning("waiting for another `shipyard run` (%s) in this project to finish (one run at a time: "
                        "it removes and writes the stages' outputs); Ctrl-C to stop waiting", who)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"%-15d\n" % os.getpid(), 0)
        with _runs_guard:
            _runs_held[key] = 1
        try:
            yield
        finally:
            with _runs_guard:
                del _runs_held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class Outcome:
    stage: str
    result: str  # "ran", "cached", "up-to-date", "frozen", "failed", "skipped", "killed"
    seconds: float = 0.0
    detail: str = ""
    run_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "result": self.result, "seconds": round(self.seconds, 3),
                "detail": self.detail, "run": self.run_id}


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.result in DONE for o in self.outcomes)


class PipelineRunner:
    def __init__(self, pipeline: Pipeline, ws: Workspace, lock: Lock, params: ParamFiles,
                 environ: Mapping[str, str], executor: Executor, tracker: Callable[[], Tracker],
                 remote: Callable[[], Remote | None] = lambda: None, events: Events | None = None,
                 child_env: Mapping[str, str] | None = None) -> None:
        self.pipeline = pipeline
        self.ws = ws
        self.lock = lock
        self.params = params
        self.environ = environ
        self.executor = executor
        self._tracker = tracker  # opened only if a stage really runs: a no-op run touches no database
        self._remote = remote
        self.events = events or NoEvents()
        self._mutex = threading.Lock()
        self.child_env = dict(child_env or {})  # so a stage's own shipyard calls reach the same store and runs
        self.pipeline_run, self._used = "", dict[str, str]()  # this invocation's id; runs it took as they were

    def status(self, targets: list[str] | None = None, force: bool = False) -> list[StageStatus]:
        names = self.pipeline.select(targets)
        return check(self.pipeline, names, self.ws, self.lock, self.params, self.environ,
                     _forced(self.pipeline.expand(targets) if targets else None, names, force))

    def run(self, targets: list[str] | None = None, jobs: int = 1, force: bool = False) -> RunReport:
        """Bring ``targets`` (all stages by default) and what they depend on up to date.

        ``force`` runs the targets even if up to date, skipping the stage cache, as DVC's ``repro -f``
        does; their upstream stages still run only if out of date. Without targets, every stage is forced.
        """
        with run_lock(self.ws.root, self.environ):
            self.lock = load_lock(self.ws.root)  # as the run that held the lock (if we waited) left it
            return self._run(targets, jobs, force)

    def _run(self, targets: list[str] | None, jobs: int, force: bool) -> RunReport:
        names = self.pipeline.select(targets)
        selected = set(names)
        forced = _forced(self.pipeline.expand(targets) if targets else None, names, force)
        report = RunReport()
        self.pipeline_run, self._used = uuid.uuid4().hex, {}  # exp show joins the stage runs of one invocation
        done: set[str] = set()
        failed: set[str] = set()
        pending = list(names)
        running: dict[Future[Outcome], str] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            while pending or running:
                for name in list(pending):
                    ups = self.pipeline.stages[name].upstream & selected
                    if ups & failed:
                        pending.remove(name)
                        failed.add(name)
                        report.outcomes.append(Outcome(name, "skipped", detail="an upstream stage failed"))
                    elif ups <= done and len(running) < max(1, jobs):
                        pending.remove(name)
                        running[pool.submit(self._stage, self.pipeline.stages[name], name in forced)] = name
                if not running:
                    if pending:  # cannot happen in a valid DAG; never spin
                        raise StageFailed(f"cannot schedule {', '.join(pending)}")
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    outcome = fut.result()
                    report.outcomes.append(outcome)
                    if outcome.result in DONE and outcome.result != "ran" and outcome.run_id:
                        self._used[name] = outcome.run_id  # before any stage downstream of it starts
                    (done if outcome.result in DONE else failed).add(name)
        except KeyboardInterrupt:
            self.executor.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return report

    # -- one stage -------------------------------------------------------------------------------
    def _stage(self, stage: Stage, force: bool) -> Outcome:
        start = time.monotonic()
        if stage.spec.frozen:
            return self._frozen(stage, start)
        now = inputs_of(self.ws, stage, self.params, self.environ)
        fp = now.fingerprint(stage)
        recorded = self.lock.stages.get(stage.name)
        if not force and not explain(stage, now, fp, recorded, self.ws):
            return Outcome(stage.name, "up-to-date", run_id=recorded.run if recorded else None)
        try:
            # DVC caches no result of a stage that always runs, nor of one with outputs git keeps (cache: false)
            if not force and not stage.spec.always_changed and not stage.uncached:
                cached = self._from_cache(stage, fp, now)
                if cached is not None:
                    entry, fetched = cached
                    self._commit(stage.name, entry, fetched)
                    took = time.monotonic() - start
                    self.events.finished(stage.name, "cached", took)
                    return Outcome(stage.name, "cached", took, run_id=entry.run)
            return self._execute(stage, fp, now, start, removable_outputs(self.ws, stage, force))
        except ShipyardError as exc:
            took = time.monotonic() - start
            self.events.finished(stage.name, "failed", took, str(exc))
            return Outcome(stage.name, "failed", took, str(exc), getattr(exc, "run_id", None))

    def _frozen(self, stage: Stage, start: float) -> Outcome:
        """A frozen stage never runs: its recorded outputs are used, restored from the store if missing."""
        recorded = self.lock.stages.get(stage.name)
        try:
            if recorded is None:
                raise StageFailed(f"stage '{stage.name}' is frozen (frozen: true) but has never run: shipyard.lock "
                                  "records no outputs of it to use; set frozen: false for one `shipyard run`")
            missing = [p for p in recorded.outs if not self.ws.abs(p).exists()]
            if missing:
                data.checkout(self.ws, Lock(data={p: recorded.outs[p] for p in missing}),
                              [str(self.ws.abs(p)) for p in missing], force=False)
        except ShipyardError as exc:
            took = time.monotonic() - start
            self.events.finished(stage.name, "failed", took, str(exc))
            return Outcome(stage.name, "failed", took, str(exc))
        took = time.monotonic() - start
        self.events.finished(stage.name, "frozen", took)
        return Outcome(stage.name, "frozen", took, "frozen: its recorded outputs are used", recorded.run)

    def _from_cache(self, stage: Stage, fp: Digest, now: Inputs) -> tuple[StageEntry, bytes | None] | None:
        """The cached result for ``fp``, restored into the working tree, and the ref's bytes if they came
        from the remote (to keep in the local cache); None on a miss."""
        key = cache_key(fp)
        raw = self.ws.store.get_ref(key)
        found = None if raw is None else read_cache_ref(raw, key, "the local store")
        remote = None
        from_lock = False
        if found is None:
            remote = self._remote()
            raw = remote.get_ref(key) if remote is not None else None
            if remote is None:
                return None
            if raw is None:
                # a stage converted from dvc.lock whose outputs a DVC remote holds (it keeps no stage-cache refs):
                # the lock's own entry for this fingerprint is the record
                recorded = self.lock.stages.get(stage.name)
                if recorded is None or recorded.fingerprint != fp or not recorded.outs or \
                        any(o.dvc_md5 is None for o in recorded.outs.values()):
                    return None
                found, raw = (recorded.run, dict(recorded.outs)), recorded.cache_bytes(stage.name)
                from_lock = True
            else:
                found = read_cache_ref(raw, key, f"remote {remote.url}")
            if found is None:
                return None
        run_id, outs = found
        if set(outs) != set(stage.stored):
            return None
        self.events.started(stage.name, "restoring from cache")
        try:
            have = self._have(outs, remote)
        except (NotFoundError, BackendUnavailableError):
            if not from_lock:
                raise
            # DVC never pushed these outputs, or its remote is down: a miss, the stage runs (as `dvc repro` does);
            # only bytes that are not what the lock records (IntegrityError) fail the stage
            return None
        if not have:
            return None
        tmp = Lock(data=outs)
        data.checkout(self.ws, tmp, [str(self.ws.abs(p)) for p in outs], force=False)
        entry = StageEntry(fp, run_id, stage.spec.cmd, now.deps, now.params, outs)
        return entry, (raw if remote is not None else None)

    def _have(self, outs: dict[str, PathEntry], remote: Remote | None) -> bool:
        """Whether every object of ``outs`` is in the local store, fetching from ``remote`` if given."""
        store = self.ws.store
        # the most bytes each object may have (a ref is untrusted): a larger one is refused as it streams
        tops = {e.digest: MAX_MANIFEST_BYTES if e.is_dir else e.size for e in outs.values()}
        if remote is not None:
            remote.download([d for d in tops if not store.has(d)], store, sizes=tops)
        if not all(store.has(d) for d in tops):
            return False
        files = {e.digest: e.size for o in outs.values() if o.is_dir for e in load_manifest(store, o.digest)}
        absent = [d for d in files if not store.has(d)]
        if absent and remote is not None:
            remote.download(absent, store, sizes=files)
            absent = [d for d in absent if not store.has(d)]
        return not absent

    def _execute(self, stage: Stage, fp: Digest, now: Inputs, start: float, doomed: list[str]) -> Outcome:
        tracker = self._tracker()
        run = tracker.start_run(name=stage.name, experiment="pipeline", tags={
            "shipyard.stage": stage.name, "shipyard.fingerprint": str(fp), "shipyard.cmd": stage.spec.cmd,
            "shipyard.wdir": stage.spec.wdir, "shipyard.outs": json.dumps(list(stage.produced)),
            "shipyard.metrics": json.dumps(list(stage.metrics)), "shipyard.pipeline_run": self.pipeline_run,
            **({"shipyard.pipeline_uses": json.dumps(dict(self._used), sort_keys=True)} if self._used else {}),
        })
        self.events.started(stage.name, f"running (run {run.id[:8]})")
        status = RunStatus.FAILED
        try:
            if now.params:
                tracker.log_params(run.id, {k: _text(v) for k, v in now.params.items()})
            with tracker.writing():  # on a shared store, gc waits until what is stored is recorded
                for dep in stage.deps:  # keep the inputs' bytes too (code is small; data is mostly stored already)
                    put_path(self.ws.store, self.ws.abs(dep), state=self.ws.state)
                tracker.record_inputs(run.id, {p: d for p, d in now.deps.items() if d is not None})
            remove_outputs(self.ws.root, stage, doomed)
            job = StageJob(stage.name, stage.spec.cmd, self.ws.abs(stage.spec.wdir),
                           {**self.child_env, "SHIPYARD_RUN_ID": run.id, "SHIPYARD_STAGE": stage.name,
                            # dvclive in a stage: as under `dvc repro`, it saves no experiment (no git refs)
                            "DVC_ROOT": str(self.ws.root)})
            code = self.executor.run(job, lambda text: self.events.line(stage.name, text))
            if code != 0:
                status = RunStatus.KILLED if code < 0 else RunStatus.FAILED
                raise StageFailed(f"stage '{stage.name}' {'was killed' if code < 0 else f'exited with {code}'}; "
                                  "nothing was cached", run.id)
            missing = [p for p in stage.produced if not self.ws.abs(p).exists()]
            if missing:
                raise StageFailed(f"stage '{stage.name}' did not produce {', '.join(missing)}; nothing was cached",
                                  run.id)
            outs = {}
            for path in stage.stored:  # cache: false outputs are left to git
                with tracker.writing():
                    stored = put_path(self.ws.store, self.ws.abs(path), state=self.ws.state)
                    tracker.record_output(run.id, path, stored.digest, stored.size, stored.is_dir)
                before = self.lock.stages[stage.name].outs.get(path) if stage.name in self.lock.stages else None
                outs[path] = PathEntry(stored.digest, stored.size,  # unchanged bytes keep DVC's md5
                                       len(stored.manifest) if stored.manifest is not None else None).carried(before)
            metrics = {}
            for path in stage.metrics:
                metrics.update(read_metrics(self.ws.abs(path), path))
            if metrics:
                tracker.log_metrics(run.id, metrics)
            entry = StageEntry(fp, run.id, stage.spec.cmd, now.deps, now.params, outs)
            self._commit(stage.name, entry, entry.cache_bytes(stage.name))
            status = RunStatus.FINISHED
        finally:
            tracker.end_run(run.id, status)
        took = time.monotonic() - start
        self.events.finished(stage.name, "ran", took)
        return Outcome(stage.name, "ran", took, run_id=run.id)

    def _commit(self, name: str, entry: StageEntry, cache_ref: bytes | None = None) -> None:
        """Record ``entry`` in the stage cache (``cache_ref``, if new) and in shipyard.lock, re-read under
        the project lock so entries other commands recorded meanwhile are kept."""
        with self._mutex:
            with editing_lock(self.ws.root) as fresh:
                if cache_ref is not None:
                    self.ws.store.put_ref(entry.cache_key(), cache_ref)
                fresh.stages[name] = entry
            self.lock = fresh
        _partial_marker(self.ws.root, name).unlink(missing_ok=True)


MAX_LISTED = 5  # unsaved files named in the refusal


def removable_outputs(ws: Workspace, stage: Stage, force: bool = False) -> list[str]:
    """The outputs to remove before ``stage`` runs (DVC's ``repro``: a stage that leaves one out then fails,
    instead of passing with the last run's copy): all that exist but ``persist: true`` ones and ``cache: false``
    ones (git keeps those; the stage writes them again).

    An output is removed only if its bytes can be had back: every file of it is in the store (what the
    stage's last run stored). Otherwise (a hand edit, files left in the folder, a path that existed before the
    stage ever ran) ``ConflictError`` names them and nothing is removed, unless ``force``, or unless the
    stage's last run did not finish (failed or was killed): what is there is then that run's own writing.
    """
    from shipyard.core.workspace.paths import Confined

    doomed: list[str] = []
    unsaved: list[str] = []
    partial = os.path.lexists(_partial_marker(ws.root, stage.name))  # its outputs are a killed/failed run's
    with Confined(ws.root, project=True) as confined:
        for path in stage.produced:
            if path in stage.persist or path in stage.uncached:
                continue
            found = _output_at(confined, stage, path)
            if found is None:
                continue
            st = found[2]
            doomed.append(path)
            if force or partial or stat.S_ISLNK(st.st_mode):  # removing a link loses no bytes
                continue
            now, digests = data.current_files(ws, path)
            unsaved.extend(f"{path}/{k}" if k else path for k, f in now.items() if not ws.store.has(digests[f.path]))
    if unsaved:
        listed = ", ".join(sorted(unsaved)[:MAX_LISTED]) + (" ..." if len(unsaved) > MAX_LISTED else "")
        raise ConflictError(
            f"stage '{stage.name}' would remove its outputs before it runs, but {len(unsaved)} file(s) have changes "
            f"that are not in the store and would be lost: {listed}; move them away (or copy what you need) and "
            f"run again, or pass --force to overwrite")
    return doomed


PARTIAL_DIR = ".shipyard/partial"  # a marker per stage whose command is writing its outputs


def _partial_marker(root: Path, name: str) -> Path:
    import hashlib

    return root / PARTIAL_DIR / hashlib.sha256(name.encode()).hexdigest()[:32]


def remove_outputs(root: Path, stage: Stage, paths: list[str]) -> None:
    """Remove ``paths`` (from ``removable_outputs``) of ``stage``, then mark the stage as writing its outputs
    until its result is recorded (a failed or killed run's leftovers are then removed freely). Never through
    a link."""
    from shipyard.core.workspace.paths import Confined

    marker = _partial_marker(root, stage.name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stage.name)

    with Confined(root, project=True) as confined:
        for path in paths:
            found = _output_at(confined, stage, path)
            if found is None:
                continue
            fd, name, st = found
            try:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError as exc:
                raise StageFailed(f"cannot remove output {path} of stage '{stage.name}' before it runs: "
                                  f"{exc.strerror or exc}") from None


def _output_at(confined: Confined, stage: Stage, path: str) -> tuple[int, str, os.stat_result] | None:
    """The folder descriptor, name and lstat of output ``path`` of ``stage``, or None if it is not there; never
    through a link."""
    try:
        fd, name = confined.parent_fd(path, f"output of stage '{stage.name}'")
        return fd, name, os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StageFailed(f"cannot remove output {path} of stage '{stage.name}' before it runs: "
                          f"{exc.strerror or exc}") from None


def _forced(targets: list[str] | None, names: list[str], force: bool) -> set[str]:
    """The stages ``--force`` applies to: the named targets, or every stage when none is named."""
    if not force:
        return set()
    return set(targets) if targets else set(names)


def read_cache_ref(raw: bytes, key: str, where: str) -> tuple[str | None, dict[str, PathEntry]] | None:
    """The run id and outputs a stage-cache ref records, or None if the ref is damaged.

    A ref may come from a shared remote, so every field is checked before any is used: the run id
    is one the tracker makes, each output path passes ``safe_relpath``, each digest parses and each
    size is a whole number. A damaged ref (too large, not JSON, a bad or missing field) is a cache
    miss, not an error: one warning line names it and what is wrong, the stage runs again, and its
    new result replaces the ref.
    """
    try:
        if len(raw) > MAX_REF_BYTES:
            raise BadEntry(f"{len(raw)} bytes, more than a ref holds")
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise BadEntry("not a JSON object")
        if "outs" not in body:
            raise BadEntry("no outs")
        run_id = check_run_id(body.get("run"))
        outs = outs_from_dict(body["outs"])
    except (ValueError, RecursionError) as exc:  # BadEntry and JSON errors are ValueErrors
        problem = str(exc) if isinstance(exc, BadEntry) else "not valid JSON"
        log.warning("stage cache entry %s in %s is damaged (%s); ignored (the stage runs again and replaces it)",
                    key, where, " ".join(problem.split())[:200])
        return None
    return run_id, outs


def read_metrics(file: Path, source: str) -> dict[str, float]:
    """Numbers from a JSON or YAML metrics file, nested keys joined with dots.

    The file goes through the bounded reader, like every YAML or JSON file Shipyard reads: one over
    the size limit fails the stage with one line instead of taking the memory of a huge parse.
    """
    try:
        raw = read_bounded(file, source)
        body = load_json(raw, source) if source.endswith(".json") else load_yaml(raw, source)
    except ConfigError as exc:
        raise StageFailed(f"metrics file {exc}") from None
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise StageFailed(f"metrics file {source} cannot be read: {' '.join(str(exc).split())[:200]}") from None
    out: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, bool):
            return
        elif isinstance(node, int | float):
            out[prefix] = float(node)

    walk("", body)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
