"""``shipyard.sklearn``: MLflow's ``mlflow.sklearn.log_model`` / ``save_model`` / ``load_model`` forms."""

from __future__ import annotations

from typing import Any

from shipyard.errors import InvalidInputError
from shipyard.interfaces.api import flavor_module
from shipyard.interfaces.api.autologging import autolog  # mlflow.sklearn.autolog(), MLflow's usual spelling
from shipyard.interfaces.api.client import PathLike
from shipyard.interfaces.api.flavor_module import DEFAULT_ARTIFACT, ModelInfo

__all__ = ["DEFAULT_ARTIFACT", "SERIALIZERS", "ModelInfo", "autolog", "load_model", "log_model", "save_model"]

SERIALIZERS = {"skops": "skops", "pickle": "pickle", "cloudpickle": "pickle"}


def _options(serialization_format: str | None) -> dict[str, Any]:
    if serialization_format is None:
        return {}
    if serialization_format not in SERIALIZERS:
        raise InvalidInputError(f"unknown serialization_format {serialization_format!r}: use {', '.join(SERIALIZERS)}")
    return {"serializer": SERIALIZERS[serialization_format]}


def log_model(sk_model: Any, artifact_path: str | None = None, *, name: str | None = None,
              registered_model_name: str | None = None, input_example: Any = None, signature: Any = None,
              serialization_format: str | None = None, run_id: str | None = None,
              code_paths: list[str] | None = None) -> ModelInfo:
    """Save ``sk_model`` on the current run as ``name`` (or ``artifact_path``; default ``model``), and
    register it as the next version of ``registered_model_name`` if given.

    ``input_example`` rows are kept as golden examples; ``serialization_format`` is ``"skops"``
    (default, loads without running code) or ``"pickle"``/``"cloudpickle"`` (needs trust to load);
    ``code_paths``: project files or folders its own classes live in, stored with it (as MLflow's).
    """
    return flavor_module.log_model("sklearn", sk_model, artifact_path, name, registered_model_name, input_example,
                                   signature, run_id, code_paths, **_options(serialization_format))


def save_model(sk_model: Any, path: PathLike, *, input_example: Any = None, signature: Any = None,
               serialization_format: str | None = None, code_paths: list[str] | None = None) -> None:
    flavor_module.save_model("sklearn", sk_model, path, input_example, signature, code_paths,
                             **_options(serialization_format))


def load_model(model_uri: str, dst_path: PathLike | None = None) -> Any:
    """The scikit-learn model behind ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``NAME@VERSION``."""
    return flavor_module.load_model(model_uri)
