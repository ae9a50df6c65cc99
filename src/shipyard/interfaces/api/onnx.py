"""``shipyard.onnx``: MLflow's ``mlflow.onnx.log_model`` / ``save_model`` / ``load_model`` forms, for an
``onnx.ModelProto``, ONNX bytes or a ``.onnx`` file; onnxruntime runs it (and checks it before it is kept)."""

from __future__ import annotations

from typing import Any

from shipyard.interfaces.api import flavor_module
from shipyard.interfaces.api.client import PathLike
from shipyard.interfaces.api.flavor_module import ModelInfo

__all__ = ["ModelInfo", "load_model", "log_model", "save_model"]


def log_model(onnx_model: Any, artifact_path: str | None = None, *, name: str | None = None,
              registered_model_name: str | None = None, input_example: Any = None, signature: Any = None,
              run_id: str | None = None) -> ModelInfo:
    return flavor_module.log_model("onnx", onnx_model, artifact_path, name, registered_model_name, input_example,
                                   signature, run_id)


def save_model(onnx_model: Any, path: PathLike, *, input_example: Any = None, signature: Any = None) -> None:
    flavor_module.save_model("onnx", onnx_model, path, input_example, signature)


def load_model(model_uri: str, dst_path: PathLike | None = None) -> Any:
    """The model behind ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``, as an onnxruntime
    ``InferenceSession`` ready to ``run`` (MLflow hands back the ``onnx.ModelProto``; ``onnx.load`` of the
    version's file gives that)."""
    return flavor_module.load_model(model_uri)
