"""Re-run the stages behind a model version from its record, in a scratch folder, and compare outputs.

The record is enough: every stage run keeps its command, params, and the digests (and bytes) of
what it read, so the raw inputs are restored by digest, the producing stages re-run in order, and
each recorded output is compared with what came out this time.
"""

from __future__ import annotations

import json
import math
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.artifacts.tree import copy_verified, load_manifest, materialize
from shipyard.core.lineage.records import RunRecord
from shipyard.core.pipelines.jobs import Events, NoEvents, StageJob
from shipyard.core.pipelines.runner import read_metrics
from shipyard.core.registry.records import ModelVersion
from shipyard.core.workspace.data import Workspace, describe
from shipyard.core.workspace.paths import Confined
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.ports import Executor, MetadataStore, NoStateCache, ObjectStore

DEFAULT_TOLERANCE = 1e-6
BYTES_DIFFER = "bytes differ"


@dataclass
class OutputCheck:
    stage: str
    path: str
    verdict: str  # "identical", "metrics within tolerance", "different", "missing"
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "path": self.path, "verdict": self.verdict, "detail": self.detail}


@dataclass
class Reproduction:
    ref: str
    stages: list[str] = field(default_factory=list)
    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return all(c.verdict in ("identical", "metrics within tolerance", "same predictions") for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {"ref": self.ref, "reproduced": self.reproduced, "stages": self.stages,
                "outputs": [c.to_dict() for c in self.checks]}


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` if it is a finite number >= 0; a negative or NaN one would make every comparison fail or pass."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise InvalidInputError(f"--tolerance must be a finite number >= 0, not {tolerance!r}")
    return float(tolerance)


def stage_runs(meta: MetadataStore, version: ModelVersion) -> list[RunRecord]:
    """The stage runs behind ``version``, producers first."""
    if version.run_id is None:
        raise InvalidInputError(f"{version.ref} was registered without a run: there is nothing to reproduce")
    ordered: list[RunRecord] = []
    seen: set[str] = set()

    def visit(run_id: str) -> None:
        if run_id in seen:
            return
        seen.add(run_id)
        run = meta.get_run(run_id)
        if "shipyard.cmd" not in run.tags:
            raise InvalidInputError(
                f"run {run.id[:8]} ({run.name}) behind {version.ref} was not a pipeline stage, so its command is "
                "not on record; reproduce works for models produced by `shipyard run`")
        for digest in run.inputs.values():
            producers = [p for p in meta.producers(digest) if p.id != run.id and "shipyard.cmd" in p.tags]
            if producers:
                visit(producers[0].id)
        ordered.append(run)

    visit(version.run_id)
    return ordered


def reproduce(meta: MetadataStore, store: ObjectStore, version: ModelVersion, scratch: Path,
              executor: Executor, child_env: dict[str, str], events: Events | None = None,
              tolerance: float = DEFAULT_TOLERANCE,
              golden: Callable[[], tuple[bool, str]] | None = None) -> Reproduction:
    """Re-run the stages behind ``version`` in the empty folder ``scratch`` and compare their outputs.

    ``golden`` checks the model the re-run registered against the version's golden examples; when
    it agrees, outputs of the registering stage that differ only in bytes (serializers that stamp
    times) count as the same model.
    """
    tolerance = check_tolerance(tolerance)
    sink = events or NoEvents()
    runs = stage_runs(meta, version)
    produced = {a.digest for r in runs for a in r.artifacts}
    _restore_inputs(store, runs, produced, scratch)
    _write_params(runs, scratch)
    result = Reproduction(version.ref, [r.tags["shipyard.stage"] for r in runs])
    ws = Workspace(scratch, store, NoStateCache())
    for run in runs:
        name = run.tags["shipyard.stage"]
        sink.started(name, f"re-running (recorded as run {run.id[:8]})")
        wdir = posixpath.normpath(run.tags.get("shipyard.wdir", "."))  # as written in shipyard.yaml: "./sub" too
        cwd = scratch if wdir == "." else Confined(scratch).folder(wdir, f"working folder of stage {name}")
        job = StageJob(name, run.tags["shipyard.cmd"], cwd,
                       {**child_env, "SHIPYARD_STAGE": name})

        def relay(text: str, stage: str = name) -> None:
            sink.line(stage, text)

        began = time.monotonic()
        code = executor.run(job, relay)
        sink.finished(name, "ran" if code == 0 else "failed", time.monotonic() - began)
        if code != 0:
            result.checks.append(OutputCheck(name, "-", "different", f"the command exited with {code}"))
            break
        checks = [_compare(store, ws, run, name, a.path, a.digest, scratch, tolerance) for a in run.artifacts]
        if run.id == version.run_id and golden is not None:
            same, detail = golden()
            checks.append(OutputCheck(name, f"{version.model} (golden examples)",
                                      "same predictions" if same else "different", detail))
            if same:
                for c in checks:
                    if c.verdict == "different" and c.detail == BYTES_DIFFER:
                        c.verdict, c.detail = "same predictions", "bytes differ; the re-trained model agrees on " \
                                                                  "the golden examples"
        result.checks.extend(checks)
    return result


def _restore_inputs(store: ObjectStore, runs: list[RunRecord], produced: set[Digest], scratch: Path) -> None:
    """Write the recorded inputs the stages do not make into ``scratch``. A read-through store (one in S3, or
    a local one with a default remote) fetches them all at once first; one that neither holds is named."""
    wanted: list[tuple[RunRecord, str, Digest, Path]] = []
    for run in runs:
        for path, digest in run.inputs.items():
            if digest not in produced:  # else made again by re-running its stage
                target = Confined(scratch).target(path, f"recorded input of stage {run.name}")
                wanted.append((run, path, digest, target))
    store.fetch(list(dict.fromkeys(d for _, _, d, _ in wanted)))
    for run, path, digest, target in wanted:
        if target.exists():
            continue
        try:
            with store.open(digest) as f:
                head = f.read(64)
        except NotFoundError as exc:
            raise NotFoundError(f"input {path} of stage {run.name} cannot be restored: {exc}") from exc
        if Manifest.looks_like(head):
            materialize(store, digest, target)
        else:
            copy_verified(store, digest, target)


def _write_params(runs: list[RunRecord], scratch: Path) -> None:
    files: dict[str, dict[str, Any]] = {}
    for run in runs:
        for key, text in run.params.items():
            name, sep, dotted = key.rpartition(":")
            tree = files.setdefault(name if sep else "params.yaml", {})
            *parents, leaf = dotted.split(".")
            for part in parents:
                tree = tree.setdefault(part, {})
            tree[leaf] = _value(text)
    for name, tree in files.items():
        path = Confined(scratch).target(name, "recorded params file")
        if not path.exists():
            path.write_text(json.dumps(tree) if name.endswith(".json") else yaml.safe_dump(tree, sort_keys=True))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compare(store: ObjectStore, ws: Workspace, run: RunRecord, stage: str, path: str, recorded: Digest,
             scratch: Path, tolerance: float) -> OutputCheck:
    Confined(scratch).check(path, f"recorded output of stage {stage}")
    now = describe(ws, path)
    if now is None:
        return OutputCheck(stage, path, "missing", "the re-run did not produce it")
    if now.digest == recorded:
        return OutputCheck(stage, path, "identical")
    metrics_files = json.loads(run.tags.get("shipyard.metrics", "[]"))
    if path in metrics_files or (not now.is_dir and path.endswith((".json", ".yaml", ".yml")) and run.metrics):
        try:
            fresh = read_metrics(scratch / path, path)
        except Exception:
            fresh = {}
        drift = [f"{k}: {run.metrics[k]:g} -> {fresh.get(k, float('nan')):g}" for k in sorted(fresh)
                 if k in run.metrics and not math.isclose(run.metrics[k], fresh[k], rel_tol=tolerance,
                                                          abs_tol=tolerance)]
        if fresh and not drift:
            return OutputCheck(stage, path, "metrics within tolerance", f"bytes differ; {len(fresh)} metric(s) agree")
        if drift:
            return OutputCheck(stage, path, "different", "; ".join(drift))
    if now.is_dir:
        store.fetch([recorded])  # a read-through store: the recorded manifest may be upstream only
        old = {e.path: e.digest for e in load_manifest(store, recorded)} if store.has(recorded) else {}
        new = {e.path: e.digest for e in _manifest_now(ws, path)}
        changed = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
        return OutputCheck(stage, path, "different", "files: " + ", ".join(changed[:10]))
    return OutputCheck(stage, path, "different", BYTES_DIFFER)


def _manifest_now(ws: Workspace, path: str) -> Manifest:
    from shipyard.core.workspace.scan import digests_of, manifest_of, stat_path

    files = stat_path(ws.abs(path))
    return manifest_of(files, digests_of(files, ws.state))
