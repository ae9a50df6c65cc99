"""The module functions that log files and inputs on the current run, in MLflow's shapes:
``shipyard.log_dict({...}, "config.json")``, ``log_text``, ``log_table``, ``log_figure``, ``log_image``,
``log_input(shipyard.data.from_pandas(df, name="wine"), context="training")``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord
from shipyard.interfaces.api import content
from shipyard.interfaces.api.fluent import _current


def log_dict(dictionary: Mapping[str, Any], artifact_file: str, run_id: str | None = None) -> ArtifactRecord:
    """Log ``dictionary`` as ``artifact_file`` on the current run: YAML for ``.yaml``/``.yml``, else JSON."""
    client, rid = _current(run_id)
    return client.log_dict(rid, dictionary, artifact_file)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> ArtifactRecord:
    client, rid = _current(run_id)
    return client.log_text(rid, text, artifact_file)


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> ArtifactRecord:
    """A dict of columns or a pandas DataFrame, as MLflow's JSON table (``{"columns": ..., "data": ...}``)."""
    client, rid = _current(run_id)
    return client.log_table(rid, data, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: Mapping[str, Any] | None = None) -> ArtifactRecord:
    """A matplotlib figure (``fig.png``, ``fig.svg``, ...) or a plotly one (``fig.html``), neither imported
    unless it is what you pass."""
    client, rid = _current()
    return client.log_figure(rid, figure, artifact_file, save_kwargs=save_kwargs)


def log_image(image: Any, artifact_file: str | None = None, key: str | None = None, step: int | None = None,
              timestamp: int | None = None, synchronous: bool | None = False) -> ArtifactRecord:
    """A numpy array (H x W, H x W x 3 or 4; 0-255 integers or 0-1 floats) or a PIL image, as PNG."""
    client, rid = _current()
    return client.log_image(rid, image, artifact_file, key, step)


def log_input(dataset: Any = None, context: str | None = None, tags: Mapping[str, Any] | None = None,
              model: Any = None) -> Digest:
    """Record what the current run read, by its digest over every byte (MLflow hashes a sample): a dataset
    from ``shipyard.data.from_pandas``/``from_numpy``, a numpy array, a pandas DataFrame, or a path to a file or
    folder (stored, as ``shipyard data add`` would). ``context`` (``"training"``) and ``tags`` become the run's
    ``input.NAME.*`` tags. Returns the digest."""
    from shipyard.errors import InvalidInputError

    if dataset is None:
        raise InvalidInputError("log_input needs a dataset (a model a run used is named by its version)")
    if model is not None:
        raise InvalidInputError("log_input takes a dataset; a model a run used is named by its version")
    client, rid = _current()
    return content.log_input(client.services, rid, dataset, context, tags)
