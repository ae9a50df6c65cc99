"""Module functions that look runs and experiments up, in MLflow's shapes: ``last_active_run()``,
``get_experiment_by_name(name)``."""

from __future__ import annotations

from shipyard.core.lineage.records import RunRecord
from shipyard.interfaces.api.fluent import LAST_STARTED, Experiment, active_run, default_client


def last_active_run() -> RunRecord | None:
    """The current run, else the run this process started last (ended since), read now; None before any
    (MLflow's: ``mlflow.last_active_run()`` after an autologged ``fit``)."""
    run = active_run()
    run_id = run.id if run is not None else LAST_STARTED[-1] if LAST_STARTED else None
    return None if run_id is None else default_client().get_run(run_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    """The experiment ``name`` (``.experiment_id``, ``.name``, ``.lifecycle_stage``) if a run was recorded in
    it, else None. Experiments are names here: the name is also its id."""
    return default_client().get_experiment_by_name(name)
