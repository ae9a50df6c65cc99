"""Immutable records of runs: what ran, with which inputs, and what it produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shipyard.core.artifacts.digest import Digest


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"  # the process died without ending the run (SIGKILL, OOM, power loss)


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The git state a run started from; ``diff_digest`` names the uncommitted diff, if any."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    diff_digest: Digest | None = None
    repo: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"commit": self.commit, "branch": self.branch, "dirty": self.dirty,
                "diff_digest": _text(self.diff_digest), "repo": self.repo}


NO_CODE_VERSION = CodeVersion()


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    path: str  # the name under the run, e.g. "report.txt" or "plots/"
    digest: Digest  # of the file or of the folder's manifest
    size: int
    is_dir: bool


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    name: str
    experiment: str
    status: RunStatus
    start_time: float
    end_time: float | None
    user: str
    host: str
    pid: int
    code: CodeVersion = NO_CODE_VERSION
    env_digest: Digest | None = None
    parent_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each key
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactRecord, ...] = ()
    inputs: dict[str, Digest] = field(default_factory=dict)  # path -> digest of what the run read

    @property
    def info(self) -> RunInfo:
        """MLflow's ``run.info`` (``run_id``, ``run_name``, ``status`` in upper case, times in ms), read-only."""
        return RunInfo(run_id=self.id, run_name=self.name, experiment_id=self.experiment, user_id=self.user,
                       status=self.status.value.upper(), start_time=_ms(self.start_time),
                       end_time=None if self.end_time is None else _ms(self.end_time))

    @property
    def data(self) -> RunData:
        """MLflow's ``run.data``: the latest value of each metric, the params and the tags (copies)."""
        return RunData(metrics=dict(self.metrics), params=dict(self.params), tags=dict(self.tags))

    def effective_status(self, this_host: str, pid_alive: bool) -> RunStatus:
        """A run still marked running whose process is gone on this host was killed."""
        if self.status is RunStatus.RUNNING and self.host == this_host and not pid_alive:
            return RunStatus.KILLED
        return self.status

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "experiment": self.experiment, "status": str(self.status),
            "start_time": self.start_time, "end_time": self.end_time, "user": self.user,
            "host": self.host, "pid": self.pid, "code": self.code.to_dict(), "env_digest": _text(self.env_digest),
            "parent_id": self.parent_id, "params": dict(self.params), "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "artifacts": [{"path": a.path, "digest": str(a.digest), "size": a.size, "is_dir": a.is_dir}
                          for a in self.artifacts],
            "inputs": {path: str(d) for path, d in self.inputs.items()},
        }


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's identity and state in MLflow's names (``RunRecord.info``); experiments are named, not numbered."""

    run_id: str
    run_name: str
    experiment_id: str  # the experiment's name
    user_id: str
    status: str  # "RUNNING", "FINISHED", "FAILED" or "KILLED", as MLflow spells them
    start_time: int  # milliseconds since the epoch, as MLflow's
    end_time: int | None

    @property
    def run_uuid(self) -> str:
        return self.run_id

    @property
    def lifecycle_stage(self) -> str:
        return "active"  # MLflow's: runs are never deleted here

    @property
    def artifact_uri(self) -> str:
        """Where the run's files are, as a URI ``shipyard.artifacts.download_artifacts`` takes (``runs:/ID``; with
        ``/PATH`` appended, one of them)."""
        return f"runs:/{self.run_id}"


@dataclass(frozen=True, slots=True)
class RunData:
    """A run's values in MLflow's shape (``RunRecord.data``)."""

    metrics: dict[str, float]  # the latest value of each key
    params: dict[str, str]
    tags: dict[str, str]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _text(digest: Digest | None) -> str | None:
    return None if digest is None else str(digest)
