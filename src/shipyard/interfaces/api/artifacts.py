"""MLflow's ``mlflow.artifacts`` as ``shipyard.artifacts``: a run's logged files back, each byte re-hashed.

``download_artifacts(run_id=..., artifact_path="plots")`` or ``download_artifacts("runs:/RUN_ID/plots")``,
``load_text``, ``load_dict``, ``list_artifacts``. Runs are read from the default client's project.
"""

from __future__ import annotations

import os
from typing import Any

from shipyard.core.lineage import run_files
from shipyard.core.lineage.run_files import FileInfo
from shipyard.core.registry.refs import RUNS_URI
from shipyard.errors import InvalidInputError, InvalidReferenceError

__all__ = ["FileInfo", "download_artifacts", "list_artifacts", "load_dict", "load_text"]

YAML_SUFFIXES = (".yaml", ".yml")


def _target(artifact_uri: str | None, run_id: str | None, artifact_path: str | None) -> tuple[str, str]:
    if artifact_uri is not None:
        if run_id is not None or artifact_path is not None:
            raise InvalidInputError("give either artifact_uri or run_id (with artifact_path), not both")
        text = os.fspath(artifact_uri)
        if not text.startswith(RUNS_URI):
            raise InvalidReferenceError(f"cannot read {text!r}: Shipyard reads a run's files by runs:/RUN_ID/PATH "
                                        "(a local file needs no download)")
        rid, _, path = text[len(RUNS_URI):].lstrip("/").partition("/")
        if not rid:
            raise InvalidReferenceError(f"cannot read {text!r}: use runs:/RUN_ID/ARTIFACT_PATH")
        return rid, path
    if run_id is None:
        raise InvalidInputError("give artifact_uri (runs:/RUN_ID/PATH) or run_id")
    return run_id, artifact_path or ""


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None, artifact_path: str | None = None,
                       dst_path: str | os.PathLike[str] | None = None, tracking_uri: str | None = None) -> str:
    """Write a run's file or folder (every file of the run without a path) into ``dst_path`` (default: a new
    temporary folder), at its path within the run as MLflow does; returns the local path."""
    from shipyard.interfaces.api.fluent import default_client

    if tracking_uri is not None:
        raise InvalidInputError("download_artifacts reads the current project: set_tracking_uri chooses another")
    rid, path = _target(artifact_uri, run_id, artifact_path)
    return default_client().download_artifacts(rid, path, dst_path)


def list_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                   artifact_path: str | None = None, tracking_uri: str | None = None) -> list[FileInfo]:
    """The files and folders directly in a run's folder (its top level by default): ``.path``, ``.is_dir``,
    ``.file_size``."""
    from shipyard.interfaces.api.fluent import default_client

    if tracking_uri is not None:
        raise InvalidInputError("list_artifacts reads the current project: set_tracking_uri chooses another")
    rid, path = _target(artifact_uri, run_id, artifact_path)
    return default_client().list_artifacts(rid, path or None)


def _read(artifact_uri: str) -> tuple[str, bytes]:
    from shipyard.interfaces.api.fluent import default_client

    rid, path = _target(artifact_uri, None, None)
    svc = default_client().services
    return path, run_files.read_file(svc.store, svc.tracker.get_run(rid), path)


def load_text(artifact_uri: str) -> str:
    """The text of the file at ``runs:/RUN_ID/PATH`` (UTF-8)."""
    path, data = _read(artifact_uri)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text: download it with download_artifacts") from None


def load_dict(artifact_uri: str) -> Any:
    """The dict in the file at ``runs:/RUN_ID/PATH``, as ``log_dict`` wrote it: YAML for ``.yaml``/``.yml``,
    else JSON."""
    from shipyard.core.boundedyaml import load_json, load_yaml

    path, data = _read(artifact_uri)
    if path.lower().endswith(YAML_SUFFIXES):
        return load_yaml(data, path)
    return load_json(data, path)
