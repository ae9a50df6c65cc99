"""``shipyard import mlflow``: what an MLflow tracking store holds, as Shipyard's records (pure: no I/O).

The readers (``adapters/mlflow_store``) turn MLflow's rows and files into the plain records below, every
value bounded and checked; this module maps them onto runs, versions and aliases, and keeps the report of
what was added, skipped and not carried over. Lineage to MLflow stays in tags (``mlflow.run_id``,
``mlflow.experiment_id``) and in each imported version's description (``mlflow`` in its flavor metadata).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.lineage.records import Metric, RunRecord, RunStatus
from shipyard.core.registry.refs import ALIAS_RE, LATEST, NAME_RE

RUN_ID_TAG = "mlflow.run_id"
EXPERIMENT_ID_TAG = "mlflow.experiment_id"
IMPORT_HOST = "mlflow-import"  # a run's host: never this machine, so an imported running run is never "killed"
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_NAMESPACE = uuid.UUID("5b0e2f3a-7c59-4c8e-9a61-2f3d1b8a0c11")  # ids that are not 32 hex digits map through it
STAGE_ALIASES = {"Production": "production", "Staging": "staging", "Archived": "archived"}
_STATUSES = {"FINISHED": RunStatus.FINISHED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.KILLED,
             "RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.RUNNING}
MAX_KEY = 255  # Shipyard's param, tag and metric key columns
MAX_NAME = 255  # run and experiment names


@dataclass(frozen=True, slots=True)
class MlExperiment:
    id: str
    name: str
    artifact_location: str
    deleted: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MlRun:
    id: str
    experiment_id: str
    name: str
    status: str  # MLflow's spelling: FINISHED, FAILED, KILLED, RUNNING, SCHEDULED
    start_ms: int | None
    end_ms: int | None
    user: str
    artifact_uri: str
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MlVersion:
    model: str
    version: int
    created_ms: int
    run_id: str | None
    source: str
    storage_location: str  # where MLflow keeps the version's files ("" when it did not say)
    stage: str  # None, Staging, Production, Archived
    description: str
    user: str
    status: str  # READY, PENDING_REGISTRATION, FAILED_REGISTRATION


@dataclass(frozen=True, slots=True)
class MlLoggedModel:
    id: str
    experiment_id: str
    name: str
    artifact_location: str
    run_id: str | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class MlAlias:
    model: str
    alias: str
    version: int


@dataclass
class Report:
    """What the import added, what it found already imported, and what it could not carry over."""

    source: str
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("experiments", "runs", "params", "metrics", "tags", "artifacts", "versions", "aliases"), 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("runs", "versions", "aliases"), 0))
    versions: list[dict[str, object]] = field(default_factory=list)  # each version added: ref, mlflow, flags
    flagged: list[str] = field(default_factory=list)  # "wine@2 (MLflow wine/2): model.pkl changed after ..."
    trust_needed: list[str] = field(default_factory=list)  # refs that load only once a user trusts them
    stage_aliases: list[str] = field(default_factory=list)  # "wine@1: stage Production -> alias production"
    not_carried: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.not_carried.append((what[:300], " ".join(why.split())[:300]))

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "added": dict(self.added), "skipped": dict(self.skipped),
                "versions": list(self.versions), "flagged": list(self.flagged),
                "trust_needed": list(self.trust_needed), "stage_aliases": list(self.stage_aliases),
                "not_carried": [{"what": w, "why": y} for w, y in self.not_carried]}


def run_id_for(mlflow_id: str) -> str:
    """Shipyard's id of an MLflow run: the same id when it is 32 hex digits (MLflow's uuid4), so
    ``runs:/ID/...`` keeps working; else a stable id derived from it (a re-run finds it again)."""
    low = mlflow_id.lower()
    return low if _HEX32.match(low) else uuid.uuid5(_NAMESPACE, mlflow_id).hex


def experiment_name(exp: MlExperiment) -> str:
    return exp.name[:MAX_NAME] if exp.name else f"mlflow-{exp.id}"


def to_run(run: MlRun, experiment: str, report: Report) -> RunRecord:
    """``run`` as a Shipyard run record (params and tags included; metrics go separately)."""
    status = _STATUSES.get(run.status.upper())
    if status is None:
        report.skip(f"run {run.id} status {run.status[:20]!r}",
                    "not an MLflow status Shipyard knows: imported as failed")
        status = RunStatus.FAILED
    start_ms, end_ms = run.start_ms, run.end_ms
    for label, ms in (("start", start_ms), ("end", end_ms)):
        if ms is not None and not fits_time(ms):
            report.skip(f"run {run.id} {label} time {str(ms)[:24]!r}", "not a time Shipyard records (milliseconds "
                        "since 1970, before the year 10000): left out")
    start = (start_ms or 0) / 1000 if start_ms is None or fits_time(start_ms) else 0.0
    end = None if end_ms is None or status is RunStatus.RUNNING or not fits_time(end_ms) else end_ms / 1000
    params = _keyed(run.params, f"run {run.id} param", report)
    tags = _keyed(run.tags, f"run {run.id} tag", report)
    tags[RUN_ID_TAG] = run.id
    tags[EXPERIMENT_ID_TAG] = run.experiment_id
    parent = run.tags.get("mlflow.parentRunId")
    name = run.name or run.tags.get("mlflow.runName", "") or run.id[:8]
    return RunRecord(id=run_id_for(run.id), name=name[:MAX_NAME], experiment=experiment, status=status,
                     start_time=start, end_time=end, user=(run.user or "unknown")[:255], host=IMPORT_HOST, pid=0,
                     parent_id=run_id_for(parent) if parent else None, params=params, tags=tags)


MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: what a datetime (and a report) can show


def fits_time(ms: int | float) -> bool:
    """Whether ``ms`` (MLflow's milliseconds since 1970, read from an untrusted store) is a time Shipyard records."""
    return 0 <= ms <= MAX_TIME_MS


def to_metric(key: str, value: float, timestamp_ms: int, step: int, is_nan: bool) -> Metric:
    """ValueError for a time outside ``fits_time`` (a store's value, untrusted)."""
    if not fits_time(timestamp_ms):
        raise ValueError(f"timestamp {str(timestamp_ms)[:24]} is not a time")
    return Metric(key, math.nan if is_nan else float(value), int(step), timestamp_ms / 1000)


def _keyed(values: Mapping[str, str], what: str, report: Report) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if len(key) > MAX_KEY:
            report.skip(f"{what} {key[:60]!r}...", f"its key is longer than Shipyard's {MAX_KEY} characters")
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class AliasPlan:
    """The aliases a model's imported versions get: MLflow's own, then one per stage (the newest version in it)."""

    aliases: dict[str, int]  # alias -> MLflow version number
    notes: list[str]  # for the report: "stage Production -> alias production"
    refused: list[tuple[str, str]]  # (what, why) not carried


def plan_aliases(model: str, versions: Iterable[MlVersion], aliases: Iterable[MlAlias],
                 flagged: set[int]) -> AliasPlan:
    """MLflow's aliases, and its stages as aliases (``Production`` -> ``production``: the newest version in
    the stage; an alias of the same name set in MLflow wins). A flagged version gets none: an alias is what
    serving and promotion follow, and its files are not the ones registered (the user sets it after checking)."""
    out: dict[str, int] = {}
    notes: list[str] = []
    refused: list[tuple[str, str]] = []
    for a in aliases:
        if not ALIAS_RE.match(a.alias) or a.alias == LATEST:
            refused.append((f"alias {model}@{a.alias[:64]}", "not a valid Shipyard alias name (a letter, then "
                            "letters, digits, '_' or '-')"))
        elif a.version in flagged:
            refused.append((f"alias {model}@{a.alias}", f"points at MLflow version {a.version}, whose files changed "
                            "after registration: check them, then `shipyard alias set` it yourself"))
        else:
            out[a.alias] = a.version
    newest: dict[str, int] = {}
    for v in versions:
        alias = STAGE_ALIASES.get(v.stage)
        if alias is None:
            continue
        if alias in newest:
            lower = min(newest[alias], v.version)
            refused.append((f"stage {v.stage} of MLflow {model}/{lower}", f"an alias names one version: "
                            f"{alias} goes to the newest version in the stage"))
        newest[alias] = max(newest.get(alias, 0), v.version)
    for alias, version in sorted(newest.items()):
        stage = next(s for s, a in STAGE_ALIASES.items() if a == alias)
        if alias in out:
            refused.append((f"stage {stage} of MLflow {model}/{version}", f"MLflow's own alias {alias!r} "
                            f"names version {out[alias]}; it wins"))
        elif version in flagged:
            refused.append((f"stage {stage} of MLflow {model}/{version}", "its files changed after registration: "
                            "no alias is set on it (check them, then `shipyard alias set` it yourself)"))
        else:
            out[alias] = version
            notes.append(f"stage {stage} -> alias {alias}")
    return AliasPlan(out, notes, refused)


def valid_model_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def model_meta(mlmodel: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None, str]:
    """The Shipyard flavor and its metadata for an MLflow model's ``MLmodel`` (MLflow's sklearn flavor, else its
    onnx flavor), or (``""``, None, why not)."""
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict):
        return "", None, "its MLmodel lists no flavors"
    if isinstance(flavors.get("sklearn"), dict):
        meta, why = _sklearn_meta(flavors["sklearn"])
        return "sklearn", meta, why
    if isinstance(flavors.get("onnx"), dict):
        file = str(flavors["onnx"].get("data", ""))
        if not _file_name(file):
            return "", None, f"its model file {file[:80]!r} is not a file name in the model's folder"
        return "onnx", {"file": file}, ""
    names = ", ".join(sorted(str(k)[:40] for k in flavors)[:6])
    return "", None, f"flavors {names}: Shipyard imports MLflow's sklearn and onnx models as versions (a pytorch " \
                     "or pyfunc model is a pickle of code; its files are kept with the run's outputs where MLflow " \
                     "put them there)"


def _file_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and "\0" not in name and name not in (".", "..")


def _sklearn_meta(sk: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    fmt = str(sk.get("serialization_format", "cloudpickle"))
    file = str(sk.get("pickled_model", ""))
    if not _file_name(file):
        return None, f"its model file {file[:80]!r} is not a file name in the model's folder"
    serializer = {"skops": "skops", "pickle": "pickle", "cloudpickle": "pickle"}.get(fmt)
    if serializer is None:
        return None, f"serialization format {fmt[:40]!r} is not one Shipyard loads"
    meta: dict[str, Any] = {"serializer": serializer, "file": file}
    version = sk.get("sklearn_version")
    if isinstance(version, str):
        meta["sklearn_version"] = version[:40]
    if fmt == "cloudpickle":
        meta["mlflow_serialization"] = "cloudpickle"  # plain pickle reads it; a by-value function needs cloudpickle
    return meta, ""


def lineage(v: MlVersion, flagged: str) -> dict[str, Any]:
    """What an imported version keeps of its MLflow origin (inside its immutable description)."""
    body: dict[str, Any] = {"name": v.model, "version": v.version, "run_id": v.run_id, "source": v.source[:500],
                            "creation_timestamp": v.created_ms, "stage": v.stage}
    if flagged:
        body["modified_after_registration"] = flagged
    return body


def version_description(v: MlVersion, flagged: str) -> str:
    head = f"Imported from MLflow {v.model}/{v.version}"
    text = f"{head}. {v.description}" if v.description else head
    if flagged:
        text += f"\n\nFLAGGED: {flagged}"
    return text[:4000]
