"""``MlflowClient``'s reading calls on ``shipyard.Client``: a run's logged files (``list_artifacts``,
``download_artifacts``) and a metric's history (``get_metric_history``), in MLflow's shapes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.lineage import run_files
from shipyard.core.lineage.run_files import FileInfo

if TYPE_CHECKING:
    from shipyard.wiring import Services


@dataclass(frozen=True, slots=True)
class Metric:
    """MLflow's ``Metric``: one logged value, its ``timestamp`` in milliseconds since the epoch."""

    key: str
    value: float
    timestamp: int
    step: int


class FileMethods:
    """Mixed into ``Client``: each method names its run (an id or a unique prefix)."""

    @property
    def services(self) -> Services:
        raise NotImplementedError

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly in ``path`` (the run's top level by default): ``.path``,
        ``.is_dir``, ``.file_size``."""
        return run_files.list_files(self.services.store, self.services.tracker.get_run(run_id), path)

    def download_artifacts(self, run_id: str, path: str = "", dst_path: str | os.PathLike[str] | None = None) -> str:
        """Write the file or folder ``path`` (``""``: every file of the run) into ``dst_path`` (default: a new
        temporary folder) at the same relative path, each byte re-hashed; returns the local path."""
        dst = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="shipyard-artifacts-"))
        local, _ = run_files.download(self.services.store, self.services.tracker.get_run(run_id), path, dst)
        return str(local)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every value logged for ``key`` on the run, in the order logged (none: an empty list, as MLflow)."""
        run = self.services.tracker.get_run(run_id)
        return [Metric(m.key, m.value, round(m.timestamp * 1000), m.step)
                for m in self.services.meta.metric_history(run.id, key)]
