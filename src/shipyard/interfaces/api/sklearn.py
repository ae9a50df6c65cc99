"""``shipyard.sklearn``: MLflow's ``mlflow.sklearn.log_model`` / ``load_model`` forms, for scikit-learn models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.registry.records import ModelVersion
from shipyard.errors import InvalidInputError
from shipyard.interfaces.api import fluent
from shipyard.interfaces.api.client import PathLike

DEFAULT_ARTIFACT = "model"
SERIALIZERS = {"skops": "skops", "pickle": "pickle", "cloudpickle": "pickle"}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``log_model`` logged: ``model_uri`` (``models:/NAME/VERSION`` once registered, which ``load_model``
    takes; else ``runs:/RUN_ID/PATH``) and, if registered, the version."""

    run_id: str
    artifact_path: str
    model_uri: str
    registered_model_version: int | None = None
    model_version: ModelVersion | None = None


def log_model(sk_model: Any, artifact_path: str | None = None, *, name: str | None = None,
              registered_model_name: str | None = None, input_example: Any = None,
              serialization_format: str | None = None, run_id: str | None = None,
              code_paths: list[str] | None = None) -> ModelInfo:
    """Save ``sk_model`` on the current run as ``name`` (or ``artifact_path``; default ``model``), and
    register it as the next version of ``registered_model_name`` if given.

    ``input_example`` rows are kept as golden examples; ``serialization_format`` is ``"skops"``
    (default, loads without running code) or ``"pickle"``/``"cloudpickle"`` (needs trust to load);
    ``code_paths``: project files or folders its own classes live in, stored with it (as MLflow's).
    """
    path = name or artifact_path or DEFAULT_ARTIFACT
    options: dict[str, Any] = {}
    if serialization_format is not None:
        if serialization_format not in SERIALIZERS:
            raise InvalidInputError(f"unknown serialization_format {serialization_format!r}: use "
                                    f"{', '.join(SERIALIZERS)}")
        options["serializer"] = SERIALIZERS[serialization_format]
    client, rid = fluent._current(run_id)
    if registered_model_name is None:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="shipyard-save-") as tmp:
            folder = fluent.save_model(sk_model, Path(tmp) / "model", "sklearn", input_example,
                                       code_paths=code_paths, **options)
            client.log_artifacts(rid, folder, path)
        return ModelInfo(rid, path, f"runs:/{rid}/{path}")
    mv = client.log_model(rid, sk_model, registered_model_name, "sklearn", input_example, artifact_path=path,
                          code_paths=code_paths, **options)
    # registered: a URI load_model takes (MLflow 3 also hands back a models:/ URI), not the run folder
    return ModelInfo(rid, path, f"models:/{mv.model}/{mv.version}", mv.version, mv)


def save_model(sk_model: Any, path: PathLike, *, input_example: Any = None) -> None:
    fluent.save_model(sk_model, path, "sklearn", input_example)


def load_model(model_uri: str, dst_path: PathLike | None = None) -> Any:
    """The scikit-learn model behind ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``NAME@VERSION``."""
    return fluent.load_model(model_uri)
