"""``shipyard.lightning.ShipyardLogger``: a PyTorch Lightning logger that records a Trainer's run in Shipyard.

    trainer = lightning.Trainer(logger=ShipyardLogger(experiment_name="mnist", run_name="baseline"))

It takes the keywords of Lightning's own ``MLFlowLogger`` (``experiment_name``, ``run_name``,
``tracking_uri``, ``tags``, ``log_model``, ``prefix``, ``run_id``), so a script that used that logger needs only
its construction changed. Hyperparameters become the run's params (nested ones as ``outer/inner``), logged
metrics become step metrics at the Trainer's global step, and the run ends with the training (finished, or
failed). Needs ``pip install 'shipyard[lightning]'``.
"""

from __future__ import annotations

import logging
import math
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import MissingExtraError
from shipyard.interfaces.api.autologging import param_text
from shipyard.interfaces.api.client import ActiveRun, Client

try:
    from lightning.fabric.loggers.logger import rank_zero_experiment  # where Lightning defines it
    from lightning.pytorch.loggers.logger import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingExtraError("the PyTorch Lightning logger", "lightning") from exc

log = logging.getLogger("shipyard")

JOIN = "-"  # between the prefix and a metric's name, as Lightning's loggers join them
NESTED = "/"  # between the levels of a nested hyperparameter
STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}  # else KILLED
CHECKPOINTS = "checkpoints"  # the run's artifact folder for checkpoint files (log_model)


class ShipyardLogger(Logger):  # type: ignore[misc, unused-ignore]  # Any where lightning is not installed
    """Records a Lightning Trainer's hyperparameters, metrics and (with ``log_model``) checkpoints on a run.

    ``experiment_name``: the run's experiment; ``run_name``: its name; ``tracking_uri``: a database URL or
    project folder (default: as the module functions, ``set_tracking_uri`` included); ``tags``: set on the run;
    ``log_model``: ``True`` keeps the checkpoints of the ``ModelCheckpoint`` callback on the run when training
    ends, ``"all"`` each one as it is saved; ``prefix``: put before every metric name; ``run_id``: record on
    that running run instead of a new one. Inside ``shipyard.start_run()``, the new run is its child.
    """

    def __init__(self, experiment_name: str = "lightning_logs", run_name: str | None = None,
                 tracking_uri: str | None = None, tags: Mapping[str, Any] | None = None,
                 save_dir: str | None = None, log_model: bool | str = False, prefix: str = "",
                 artifact_location: str | None = None, run_id: str | None = None,
                 synchronous: bool | None = None) -> None:
        super().__init__()
        if log_model not in (True, False, "all"):
            from shipyard.errors import InvalidInputError

            raise InvalidInputError(f"log_model is True, False or 'all', not {log_model!r}")
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tracking_uri = tracking_uri
        self._tags = dict(tags or {})
        self._save_dir = save_dir
        self._log_model = log_model
        self._prefix = prefix
        self._run_id = run_id
        self._run: ActiveRun | None = None
        self._own_client: Client | None = None
        self._checkpoint_callback: Any = None
        self._logged_checkpoints: set[str] = set()
        self._said_nan = False

    # -- what Lightning reads -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str:
        """The run's id (the run starts here if nothing started it yet)."""
        return str(self.experiment.id)

    @property
    def run_id(self) -> str:
        return str(self.experiment.id)

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    @rank_zero_experiment  # type: ignore[untyped-decorator, unused-ignore]
    def experiment(self) -> ActiveRun:
        """The Shipyard run this logger records on, started on first use."""
        if self._run is None:
            self._run = self._start()
        return self._run

    def _start(self) -> ActiveRun:
        from shipyard.interfaces.api import fluent

        if self._tracking_uri is not None:
            client = self._own_client = Client(tracking_uri=self._tracking_uri)
            parent = None
        else:
            client = fluent.default_client()
            current = fluent.active_run()
            parent = current.id if current is not None else None
        if self._run_id is not None:
            return client.adopt_run(self._run_id)
        return client.start_run(self._run_name, self._experiment_name, self._tags, parent)

    # -- what Lightning calls -------------------------------------------------------------------------------

    @rank_zero_only  # type: ignore[untyped-decorator, unused-ignore]
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        flat = flatten(vars(params) if isinstance(params, Namespace) else dict(params))
        if flat:
            self.experiment.log_params({k: param_text(v) for k, v in flat.items()})

    @rank_zero_only  # type: ignore[untyped-decorator, unused-ignore]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        batch = []
        for key, value in metrics.items():
            number = float(value)
            if math.isnan(number):  # Shipyard keeps numbers only: a NaN loss is left out, said once
                if not self._said_nan:
                    self._said_nan = True
                    log.warning("shipyard.lightning: %s is NaN at step %s; NaN values are not recorded", key, step)
                continue
            batch.append((f"{self._prefix}{JOIN}{key}" if self._prefix else key, number, step or 0))
        if batch:
            run = self.experiment
            run.client.log_batch(run.id, batch)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._checkpoint_callback = checkpoint_callback
        if self._log_model == "all":
            self._log_checkpoints()

    @rank_zero_only  # type: ignore[untyped-decorator, unused-ignore]
    def finalize(self, status: str) -> None:
        if self._run is None:
            return
        if self._log_model and self._checkpoint_callback is not None:
            self._log_checkpoints()
        self._run.end(STATUS.get(status, "KILLED"))
        if self._own_client is not None:
            self._own_client.close()

    def _log_checkpoints(self) -> None:
        callback = self._checkpoint_callback
        paths = [*getattr(callback, "best_k_models", {}), getattr(callback, "best_model_path", ""),
                 getattr(callback, "last_model_path", "")]
        for path in paths:
            name = Path(path).name if path else ""
            if name and name not in self._logged_checkpoints and Path(path).is_file():
                self.experiment.log_artifact(path, name=f"{CHECKPOINTS}/{name}")
                self._logged_checkpoints.add(name)


def flatten(params: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """Nested hyperparameters as one level: ``{"opt": {"lr": 0.1}}`` -> ``{"opt/lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{parent}{NESTED}{key}" if parent else str(key)
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat

