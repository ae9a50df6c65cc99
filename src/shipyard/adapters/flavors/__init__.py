"""Model flavors by name; each lives in its own module, imported on first use."""

from __future__ import annotations

import importlib

from shipyard.errors import InvalidInputError, MissingExtraError
from shipyard.ports import Flavor

# name -> (module, class, extra that provides its libraries)
FLAVORS: dict[str, tuple[str, str, str]] = {
    "sklearn": ("shipyard.adapters.flavors.sklearn", "SklearnFlavor", "sklearn"),
    "python": ("shipyard.adapters.flavors.python", "PythonFlavor", "serve"),
    "torch": ("shipyard.adapters.flavors.torch", "TorchFlavor", "torch"),
    "onnx": ("shipyard.adapters.flavors.onnx", "OnnxFlavor", "onnx"),
}
_loaded: dict[str, Flavor] = {}


def get_flavor(name: str) -> Flavor:
    if name in _loaded:
        return _loaded[name]
    if name not in FLAVORS:
        raise InvalidInputError(f"unknown model flavor {name!r}; available: {', '.join(sorted(FLAVORS))}")
    module, cls, extra = FLAVORS[name]
    try:
        flavor: Flavor = getattr(importlib.import_module(module), cls)()
    except ModuleNotFoundError as exc:
        raise MissingExtraError(f"the {name} flavor", extra) from exc
    _loaded[name] = flavor
    return flavor
