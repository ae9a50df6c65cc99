"""``shipyard.pyfunc``: MLflow's ``mlflow.pyfunc`` forms: ``load_model`` for any flavor, and ``log_model`` /
``save_model`` of a ``PythonModel`` (``predict(self, context, model_input, params=None)``), kept with Shipyard's
python flavor (a pickle: its class must be importable where it loads, or given in ``code_paths``)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError
from shipyard.interfaces.api import flavor_module
from shipyard.interfaces.api.client import PathLike
from shipyard.interfaces.api.flavor_module import ModelInfo

__all__ = ["ModelInfo", "PythonModel", "PythonModelContext", "load_model", "log_model", "save_model"]


@dataclass(frozen=True, slots=True)
class PythonModelContext:
    """What ``load_context`` and ``predict`` receive: Shipyard stores no extra artifacts with a model, so
    ``artifacts`` is empty (keep files in the model's own attributes, or in ``code_paths``)."""

    artifacts: dict[str, str] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)


class PythonModel:
    """MLflow's base class for a model written in Python: override ``predict(self, context, model_input,
    params=None)`` and, if it must prepare after loading, ``load_context(self, context)``."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once after the model is loaded."""

    def predict(self, context: PythonModelContext | None, model_input: Any, params: dict[str, Any] | None = None,
                ) -> Any:
        raise NotImplementedError("a PythonModel overrides predict(self, context, model_input, params=None)")


class _Served:
    """A ``PythonModel`` as Shipyard's python flavor calls it: ``predict(inputs)``, and ``load(folder)`` after
    loading (which calls its ``load_context``)."""

    def __init__(self, model: Any) -> None:
        self.python_model = model

    def load(self, folder: Path) -> None:
        if callable(getattr(self.python_model, "load_context", None)):
            self.python_model.load_context(PythonModelContext())

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        predict = self.python_model.predict
        try:
            takes_context = len([p for p in inspect.signature(predict).parameters.values()
                                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2
        except (TypeError, ValueError):
            takes_context = True
        if takes_context:
            return predict(PythonModelContext(), model_input, params) if params else \
                predict(PythonModelContext(), model_input)
        return predict(model_input)

    def unwrap_python_model(self) -> Any:
        """MLflow's name for the object that was logged."""
        return self.python_model


def _served(python_model: Any, loader_module: Any, artifacts: Mapping[str, Any] | None) -> _Served:
    if loader_module is not None or artifacts:
        raise InvalidInputError("Shipyard keeps a python model as its object: pass python_model= (no "
                                "loader_module, data_path or artifacts; keep files the model needs in its attributes)")
    if python_model is None or not callable(getattr(python_model, "predict", None)):
        raise InvalidInputError("pass python_model=, an object with predict(context, model_input) (a "
                                "shipyard.pyfunc.PythonModel)")
    return _Served(python_model)


def log_model(artifact_path: str | None = None, loader_module: Any = None, data_path: Any = None,
              code_paths: list[str] | None = None, *, python_model: Any = None, artifacts: Mapping[str, Any] | None
              = None, registered_model_name: str | None = None, input_example: Any = None, signature: Any = None,
              name: str | None = None, run_id: str | None = None) -> ModelInfo:
    """Save ``python_model`` on the current run (as ``name``/``artifact_path``, default ``model``) and register
    it as the next version of ``registered_model_name`` if given; ``input_example`` becomes golden examples."""
    served = _served(python_model, loader_module or data_path, artifacts)
    return flavor_module.log_model("python", served, artifact_path, name, registered_model_name, input_example,
                                   signature, run_id, code_paths)


def save_model(path: PathLike, loader_module: Any = None, data_path: Any = None,
               code_paths: list[str] | None = None, *, python_model: Any = None,
               artifacts: Mapping[str, Any] | None = None, input_example: Any = None, signature: Any = None) -> None:
    served = _served(python_model, loader_module or data_path, artifacts)
    flavor_module.save_model("python", served, path, input_example, signature, code_paths)


def load_model(model_uri: str, suppress_warnings: bool = False, dst_path: PathLike | None = None,
               model_config: Any = None) -> Any:
    """The model behind ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/RUN_ID/PATH`` or
    ``NAME@VERSION``, as ``shipyard.load_model`` returns it: the flavor's own object (a scikit-learn estimator
    answers ``predict``; a ``PythonModel`` comes wrapped so that ``predict(model_input)`` works)."""
    if model_config is not None:
        raise InvalidInputError("model_config is not supported: models load as they were saved")
    return flavor_module.load_model(model_uri)
