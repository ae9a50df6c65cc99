"""What ``exp show``, ``metrics diff`` and ``params diff`` read: pipeline runs from the database, metrics and
params files at revisions (through ``wiring.revisions``), recorded values of runs and model versions."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.errors import ConfigError, InvalidInputError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.core.lineage.experiments import Experiment
    from shipyard.core.lineage.records import RunRecord
    from shipyard.core.lineage.valuediff import Values
    from shipyard.core.project.model import Project
    from shipyard.wiring import Services
    from shipyard.wiring.revisions import Revision, Revisions

MAX_STAGE_RUNS = 200_000  # stage runs read for exp show, newest first
MAX_FETCHED = 500  # reused runs looked up one by one (runs older than the pipeline run tag, or past the bound)


def experiments(svc: Services, where: str | None = None, order_by: str | None = None,
                limit: int = 50) -> list[Experiment]:
    """The pipeline runs of the project, joined (``core.lineage.experiments``): one query for the tagged stage
    runs (the adapter reads their params, metrics and tags in a few batched queries), filtered and sorted."""
    from shipyard.core.lineage import experiments as exps
    from shipyard.core.lineage.search import Condition

    tagged = svc.meta.search_runs([Condition("tags", exps.PIPELINE_RUN_TAG, ">", "")], MAX_STAGE_RUNS, None,
                                  lineage=False)
    joined = exps.join(tagged, lambda ids: fetch_runs(svc, ids), svc.tracker.status_of)
    return exps.select(joined, where, order_by, limit)


def fetch_runs(svc: Services, ids: Sequence[str]) -> list[RunRecord]:
    """The runs ``ids`` names that exist (at most ``MAX_FETCHED``): reused runs a pipeline run names."""
    found = []
    for run_id in ids[:MAX_FETCHED]:
        try:
            found.append(svc.meta.get_run(run_id))
        except NotFoundError:
            continue
    return found


@dataclass(frozen=True)
class Side:
    """One side of a diff: its label, and its values by file (recorded values under ``valuediff.RECORDED``
    until aligned with the other side)."""

    label: str
    values: Values
    recorded: bool = False


def metrics_side(revs: Revisions, rev: str | None) -> Side:
    """The metrics of ``rev``: the project's metrics files (top-level and the stages') at a commit or in the
    workspace, or what a run, a pipeline run (``exp show``'s ids) or a model version recorded."""
    from shipyard.core.lineage.valuediff import flat_metrics

    revision = revs.resolve(rev)
    if revision.kind == "pipeline":  # its stages' metrics, each under the file it came from
        return Side(revision.label, dict(revs.recorded(revision).metric_files or {}))
    if revision.kind in ("run", "model"):
        return Side(revision.label, {"": dict(revs.recorded(revision).metrics)}, recorded=True)
    files = sorted({p for config in _configs(revs, revision) for p in metrics_files(config)})
    values: Values = {}
    from shipyard.core.boundedyaml import MAX_BYTES  # the bound of every YAML file

    for path, raw in revs.read_many(files, revision, MAX_BYTES).items():
        if raw is not None:
            values[path] = flat_metrics(_parsed(raw, path, revision))
    return Side(revision.label, values)


def params_side(revs: Revisions, rev: str | None) -> Side:
    """The params of ``rev``: the keys the stages use from their params files, and every key of the files the
    top-level ``params:`` list names; or what a run or a model version recorded."""
    from shipyard.core.lineage.valuediff import flat_params, pick, recorded_params

    revision = revs.resolve(rev)
    configs = _configs(revs, revision)
    if revision.kind in ("run", "model", "pipeline"):
        default = configs[0].params if configs else "params.yaml"
        return Side(revision.label, recorded_params(revs.recorded(revision).params, default))
    wanted: dict[str, list[str]] = {}
    for config in configs:
        for path, keys in params_keys(config).items():
            wanted.setdefault(path, []).extend(keys)
    values: Values = {}
    from shipyard.core.boundedyaml import MAX_BYTES  # the bound of every YAML file

    for path, raw in revs.read_many(sorted(wanted), revision, MAX_BYTES).items():
        if raw is not None:
            values[path] = pick(flat_params(_parsed(raw, path, revision)), wanted[path])
    return Side(revision.label, values)


def metrics_files(config: Project) -> list[str]:
    """The metrics files of ``config``: top-level ones, then each stage's (relative to its ``wdir``)."""
    out = list(config.metrics)
    for spec in config.stages.values():
        out.extend(_in_wdir(spec.wdir, p) for p in spec.metrics)
    return [p for p in dict.fromkeys(out) if p]


def params_keys(config: Project) -> dict[str, list[str]]:
    """``{params file: keys}`` the stages use (``""``: the whole file), and the files of ``params_files``."""
    out: dict[str, list[str]] = {}
    for spec in config.stages.values():
        for item in spec.params:  # a stage with a wdir reads its params files from there, the default one too
            path, sep, key = item.rpartition(":")
            out.setdefault(_in_wdir(spec.wdir, path if sep else config.params), []).append(key)
    for path in config.params_files:
        out.setdefault(path, []).append("")
    out.pop("", None)  # a file outside the project (refused when shipyard.yaml loads): never read
    return out


def _in_wdir(wdir: str, path: str) -> str:
    joined = posixpath.normpath(posixpath.join(wdir or ".", path))
    return "" if joined.startswith("../") or joined == ".." or joined.startswith("/") else joined


def _configs(revs: Revisions, revision: Revision) -> list[Project]:
    """shipyard.yaml of the workspace, and the one at ``revision`` when it is another commit (its files may have
    other names): DVC reads each revision's own dvc.yaml."""
    from shipyard.config import CONFIG_FILE
    from shipyard.core.project.loader import load_config, parse_config
    from shipyard.core.project.model import Project

    configs = [load_config(revs.root)]
    if revision.kind == "commit":
        raw = revs.read(CONFIG_FILE, revision)
        if raw is not None:
            # an old or broken shipyard.yaml: the workspace's names stand
            with contextlib.suppress(ShipyardError, UnicodeDecodeError, ValueError):
                configs.append(Project.from_dict(parse_config(raw.decode(), f"{CONFIG_FILE} at {revision.label}")
                                                 .model_dump()))
    return configs


def _parsed(raw: bytes, path: str, revision: Revision) -> object:
    from shipyard.core.lineage.valuediff import parse_file

    try:
        return parse_file(raw, f"{path} at {revision.label}", path)
    except ConfigError as exc:
        raise InvalidInputError(str(exc)) from None
