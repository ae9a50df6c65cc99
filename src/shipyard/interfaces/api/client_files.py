"""``MlflowClient``'s reading calls on ``shipyard.Client``: a run's logged files (``list_artifacts``,
``download_artifacts``), a metric's history (``get_metric_history``) and an experiment by name, in MLflow's shapes;
and for MlflowClient's methods Shipyard does not have, an AttributeError that says so."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.lineage import run_files
from shipyard.core.lineage.run_files import FileInfo
from shipyard.errors import InvalidInputError
from shipyard.interfaces.api import shapes

if TYPE_CHECKING:
    from shipyard.interfaces.api.fluent import Experiment
    from shipyard.wiring import Services

# MlflowClient's methods (mlflow 3.x) Shipyard does not have: experiments are names, runs and versions never change
MLFLOW_CLIENT_ONLY = frozenset({
    "copy_model_version", "create_experiment", "create_model_version", "delete_experiment", "delete_model_version",
    "delete_model_version_tag", "delete_registered_model", "delete_registered_model_tag", "delete_run",
    "delete_tag", "get_experiment", "get_logged_model", "get_model_version_download_uri", "log_artifact_async",
    "log_outputs", "rename_experiment", "rename_registered_model", "restore_experiment", "restore_run",
    "search_experiments", "search_logged_models", "set_experiment_tag", "set_model_version_tag",
    "set_registered_model_tag", "update_registered_model", "update_run",
})


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

    if not TYPE_CHECKING:  # at run time only: type checkers keep flagging a misspelt method

        def __getattr__(self, name: str) -> object:  # only for names the class and the instance lack
            if name in MLFLOW_CLIENT_ONLY:
                raise AttributeError(f"shipyard.Client has no {name} (MlflowClient.{name}); see README 'Coming "
                                     "from MLflow' for what Shipyard offers")
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment ``name`` (``.experiment_id``, ``.name``, ``.lifecycle_stage``) if a run was recorded in
        it, else None. Experiments are names here: the name is also its id."""
        from shipyard.interfaces.api.fluent import Experiment

        if not isinstance(name, str) or not name:
            raise InvalidInputError("get_experiment_by_name needs an experiment name")
        found = self.services.tracker.search(shapes.experiment_filter(None, name), 1)
        return Experiment(name) if found else None
