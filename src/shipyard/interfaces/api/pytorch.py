"""``shipyard.pytorch``: MLflow's ``mlflow.pytorch.log_model`` / ``save_model`` / ``load_model`` forms.

A TorchScript module is saved as TorchScript; any other ``nn.Module`` as its weights and its class, which must be
importable where it loads (``init_kwargs``: what to build the class with). torch is imported only when a model is
saved or loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.interfaces.api import flavor_module
from shipyard.interfaces.api.client import PathLike
from shipyard.interfaces.api.flavor_module import ModelInfo

__all__ = ["ModelInfo", "load_model", "log_model", "save_model"]


def _options(init_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"init_kwargs": dict(init_kwargs)} if init_kwargs else {}


def log_model(pytorch_model: Any, artifact_path: str | None = None, *, name: str | None = None,
              registered_model_name: str | None = None, input_example: Any = None, signature: Any = None,
              run_id: str | None = None, init_kwargs: Mapping[str, Any] | None = None) -> ModelInfo:
    """Save ``pytorch_model`` on the current run (as ``name``/``artifact_path``, default ``model``) and register
    it as the next version of ``registered_model_name`` if given; ``input_example`` becomes golden examples."""
    return flavor_module.log_model("torch", pytorch_model, artifact_path, name, registered_model_name,
                                   input_example, signature, run_id, None, **_options(init_kwargs))


def save_model(pytorch_model: Any, path: PathLike, *, input_example: Any = None, signature: Any = None,
               init_kwargs: Mapping[str, Any] | None = None) -> None:
    flavor_module.save_model("torch", pytorch_model, path, input_example, signature, None, **_options(init_kwargs))


def load_model(model_uri: str, dst_path: PathLike | None = None, **kwargs: Any) -> Any:
    """The module behind ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (its class or TorchScript program
    runs only if trusted for the version: ``log_model`` trusts what it saved)."""
    return flavor_module.load_model(model_uri)
