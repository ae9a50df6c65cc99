"""PyTorch models: TorchScript, or a state_dict plus the model's class (loaded with ``weights_only``).

A ``torch.jit.ScriptModule`` is saved as TorchScript. Any other ``nn.Module`` is saved as its
state_dict; loading imports its class (``module:Class``, which must be importable), builds it with
the ``init_kwargs`` given at save time, and loads the weights with ``torch.load(weights_only=True)``,
which refuses arbitrary pickled objects.

Both run code the model names, so both need trust for the version: the class (``--class``) is
imported only if it was trusted, and a TorchScript program (``--code``) runs only if its code was.
``log_model`` trusts what it saved from the object it was given; a registered folder trusts nothing.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import first_line, model_file, require, tensors
from shipyard.core.registry.trust import TrustSet, refuse_untrusted
from shipyard.errors import InvalidInputError

SCRIPT_FILE = "model.pt"
WEIGHTS_FILE = "state_dict.pt"


def _torch() -> Any:
    return require("torch", "PyTorch models", "torch")


class TorchFlavor:
    name = "torch"

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        torch = _torch()
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, str(folder / SCRIPT_FILE))
            return {"kind": "torchscript", "file": SCRIPT_FILE, "torch_version": torch.__version__}
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"a {type(model).__name__} is not a torch.nn.Module or a TorchScript module")
        cls = type(model)
        if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
            raise InvalidInputError(f"{cls.__qualname__} must be defined at the top level of an importable module "
                                    "to be loaded again; or save torch.jit.script(model) instead")
        torch.save(model.state_dict(), folder / WEIGHTS_FILE)
        return {"kind": "state_dict", "file": WEIGHTS_FILE, "class": f"{cls.__module__}:{cls.__qualname__}",
                "init_kwargs": dict(options.get("init_kwargs", {})), "torch_version": torch.__version__}

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        kind = meta.get("kind")
        _path(folder, meta)
        if kind == "torchscript":
            return TrustSet(code=True)  # a TorchScript program: PyTorch says to treat it as code
        if kind == "state_dict":
            return TrustSet.of(classes=[str(meta.get("class", ""))])
        raise InvalidInputError(f"unknown kind {str(kind)[:40]!r} of PyTorch model in the model description")

    def packages(self, meta: Mapping[str, Any]) -> tuple[str, ...]:
        # TorchScript and a state_dict both load with torch alone; predict hands numpy arrays in and out.
        # A state_dict's class is the model's own code: its distribution is one of the model's requirements.
        if meta.get("kind") not in ("torchscript", "state_dict"):
            raise InvalidInputError(f"unknown kind {str(meta.get('kind'))[:40]!r} of PyTorch model in the model "
                                    "description")
        return ("torch", "numpy")

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        refuse_untrusted("this PyTorch model", self.requires(folder, meta), trusted)  # before any import
        torch = _torch()
        path = _path(folder, meta)
        if meta.get("kind") == "torchscript":
            try:
                model = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as exc:
                raise InvalidInputError(f"torch cannot load {path.name}: {first_line(exc)}") from exc
        else:
            kwargs = meta.get("init_kwargs", {})
            if not isinstance(kwargs, dict):
                raise InvalidInputError("init_kwargs in the model description is not a mapping")
            cls = _import(str(meta["class"]))
            if not issubclass(cls, torch.nn.Module):  # before the call: a trusted name is not yet a model class
                raise InvalidInputError(f"{meta['class']} is not a torch.nn.Module class: nothing was built")
            model = cls(**kwargs)
            if not isinstance(model, torch.nn.Module):
                raise InvalidInputError(f"{meta['class']} did not build a torch.nn.Module")
            try:  # weights_only: the unpickler refuses anything but tensors and plain containers
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
                raise InvalidInputError(f"torch cannot load the weights in {path.name}: {first_line(exc)}") from exc
        model.eval()
        return model

    def predict(self, model: Any, inputs: Any) -> Any:
        torch = _torch()
        with torch.inference_mode():
            out = model(torch.as_tensor(tensors.as_array(inputs), dtype=torch.float32))
        return out.numpy()

    def to_json(self, data: Any) -> Any:
        return tensors.to_json(data.detach().numpy() if hasattr(data, "detach") else data)

    def schema(self, data: Any) -> dict[str, Any]:
        return tensors.schema(data.detach().numpy() if hasattr(data, "detach") else data)



def _path(folder: Path, meta: Mapping[str, Any]) -> Path:
    return model_file(folder, meta, SCRIPT_FILE if meta.get("kind") == "torchscript" else WEIGHTS_FILE)


def _import(name: str) -> Any:
    """The class ``module:Qual.Name`` (trusted by the caller), refusing anything that is not a class."""
    module_name, _, qualname = name.partition(":")
    try:
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"cannot import {name} to rebuild the model: {exc}") from exc
    if not isinstance(cls, type):
        raise InvalidInputError(f"{name} is not a class: a state_dict model is rebuilt from an nn.Module class")
    return cls

FLAVOR = TorchFlavor
