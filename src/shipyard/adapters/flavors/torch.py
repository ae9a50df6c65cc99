"""PyTorch models: TorchScript, or a state_dict plus the model's class (loaded with ``weights_only``).

A ``torch.jit.ScriptModule`` is saved as TorchScript. Any other ``nn.Module`` is saved as its
state_dict; loading imports its class (``module.Class``, which must be importable), builds it with
the ``init_kwargs`` given at save time, and loads the weights with ``torch.load(weights_only=True)``,
which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import require, tensors
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

    def load(self, folder: Path, meta: Mapping[str, Any]) -> Any:
        torch = _torch()
        if meta.get("kind") == "torchscript":
            model = torch.jit.load(str(folder / str(meta["file"])), map_location="cpu")
        else:
            module_name, _, qualname = str(meta["class"]).partition(":")
            try:
                cls: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    cls = getattr(cls, part)
            except (ImportError, AttributeError) as exc:
                raise InvalidInputError(f"cannot import {meta['class']} to rebuild the model: {exc}") from exc
            model = cls(**meta.get("init_kwargs", {}))
            model.load_state_dict(torch.load(folder / str(meta["file"]), map_location="cpu", weights_only=True))
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

FLAVOR = TorchFlavor
