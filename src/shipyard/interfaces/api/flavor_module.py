"""What ``shipyard.sklearn``, ``shipyard.pytorch``, ``shipyard.onnx`` and ``shipyard.pyfunc`` share: MLflow's
``log_model(model, artifact_path | name=..., registered_model_name=..., input_example=..., signature=...)``,
``save_model(model, path, input_example=...)`` and ``load_model(uri)``, translated to Shipyard's calls.

``input_example`` becomes the version's golden examples (the model's answers on it are kept beside it, and its
signature is read from both); ``signature`` from ``shipyard.models.infer_signature`` stands in for the example
(it keeps the first rows of the input it was inferred from).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.registry.records import ModelVersion
from shipyard.interfaces.api import fluent
from shipyard.interfaces.api.client import PathLike
from shipyard.interfaces.api.models import examples_of

DEFAULT_ARTIFACT = "model"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``log_model`` logged: ``model_uri`` (``models:/NAME/VERSION`` once registered, which ``load_model``
    takes; else ``runs:/RUN_ID/PATH``, which ``register_model`` takes) and, if registered, the version."""

    run_id: str
    artifact_path: str
    model_uri: str
    registered_model_version: int | None = None
    model_version: ModelVersion | None = None
    flavor: str = ""
    signature: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.artifact_path


def log_model(flavor: str, model: Any, artifact_path: str | None, name: str | None,
              registered_model_name: str | None, input_example: Any, signature: Any, run_id: str | None,
              code_paths: list[str] | None = None, **options: Any) -> ModelInfo:
    """Save ``model`` on the current run (or ``run_id``) as ``name`` (or ``artifact_path``; default ``model``),
    and register it as the next version of ``registered_model_name`` if given."""
    input_example = examples_of(signature, input_example)
    path = name or artifact_path or DEFAULT_ARTIFACT
    client, rid = fluent._current(run_id)
    if registered_model_name is None:
        with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
            folder = fluent.save_model(model, Path(tmp) / "model", flavor, input_example, code_paths=code_paths,
                                       **options)
            client.log_artifacts(rid, folder, path)
        return ModelInfo(rid, path, f"runs:/{rid}/{path}", flavor=flavor)
    mv = client.log_model(rid, model, registered_model_name, flavor, input_example, artifact_path=path,
                          code_paths=code_paths, **options)
    # registered: a URI load_model takes (MLflow 3 also hands back a models:/ URI), not the run folder
    return ModelInfo(rid, path, f"models:/{mv.model}/{mv.version}", mv.version, mv, flavor, mv.signature)


def save_model(flavor: str, model: Any, path: PathLike, input_example: Any, signature: Any,
               code_paths: list[str] | None = None, **options: Any) -> Path:
    input_example = examples_of(signature, input_example)
    return fluent.save_model(model, path, flavor, input_example, code_paths=code_paths, **options)


def load_model(model_uri: str | PathLike) -> Any:
    """The model behind ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/RUN_ID/PATH`` or
    ``NAME@VERSION``, verified against its digests, or in a folder ``save_model`` wrote (a path)."""
    return fluent.load_model(model_uri)
