"""Model flavors by name: ``shipyard.adapters.flavors.<name>`` defines ``FLAVOR``, a class.

Adding a flavor is adding one module here; its heavy library is imported when the flavor is first
used, and a missing one becomes "pip install 'shipyard[<name>]'".
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError, MissingExtraError
from shipyard.ports import Flavor

_NOT_FLAVORS = {"tensors", "code"}
_loaded: dict[str, Flavor] = {}


def require(module: str, feature: str, extra: str) -> Any:
    """Import a flavor's library on first use; a missing one says which extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(feature, extra) from exc


def model_file(folder: Path, meta: Mapping[str, Any], default: str) -> Path:
    """The file ``meta`` names inside ``folder``: a plain file name (never a path that leaves it) of a
    regular file there."""
    name = str(meta.get("file", default))
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or len(name) > 255:
        raise InvalidInputError(f"the model description names {name[:80]!r} as its file: not a file name")
    path = folder / name
    if path.is_symlink() or not path.is_file():  # a link is not stored with the version: it would never load
        raise InvalidInputError(f"the model description names {name!r} as its file, but the folder has no "
                                "regular file by that name")
    return path


def first_line(exc: BaseException) -> str:
    """A library's error message cut to one short line, for a one-line ShipyardError."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_FLAVORS)


def get_flavor(name: str) -> Flavor:
    if name in _loaded:
        return _loaded[name]
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in _NOT_FLAVORS or name not in available():
        raise InvalidInputError(f"unknown model flavor {name!r}; available: {', '.join(available())}")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
        flavor: Flavor = module.FLAVOR()
    except ModuleNotFoundError as exc:
        raise MissingExtraError(f"the {name} flavor", name) from exc
    _loaded[name] = flavor
    return flavor
