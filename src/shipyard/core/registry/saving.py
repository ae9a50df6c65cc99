"""Save a model object into a folder Shipyard can register: flavor files, description, examples."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shipyard.core.registry.service import EXAMPLES_FILE, MODEL_FILE, SavedModel, check_requirements
from shipyard.errors import InvalidInputError
from shipyard.ports import Flavor

DEFAULT_TOLERANCE = {"rtol": 1e-6, "atol": 0.0}  # how close a float output must come to its golden one; labels: exact


def check_tolerance(tolerance: Any) -> dict[str, float]:
    """The golden examples' tolerance: only ``rtol`` and ``atol``, finite non-negative numbers; what is not
    given keeps its default (``DEFAULT_TOLERANCE``). Read back from ``examples.json`` the same way."""
    if tolerance is None:
        return dict(DEFAULT_TOLERANCE)
    if not isinstance(tolerance, Mapping):
        raise InvalidInputError('tolerance is a mapping such as {"rtol": 1e-6, "atol": 0.0}')
    unknown = sorted(_shown(k) for k in tolerance if k not in DEFAULT_TOLERANCE)
    if unknown:
        raise InvalidInputError(f"tolerance has {', '.join(unknown)}: only rtol and atol are known")
    out = dict(DEFAULT_TOLERANCE)
    for key, value in tolerance.items():
        number = _real(value)
        if number is None or not math.isfinite(number) or number < 0:
            raise InvalidInputError(f"tolerance {key}={_shown(value)} is not a finite number >= 0")
        out[key] = number + 0.0  # -0.0 is 0.0
    return out


def _shown(value: Any) -> str:
    """``value`` for a message: its repr, cut (an int of thousands of digits has none: its type then)."""
    try:
        return repr(value)[:40]
    except ValueError:
        return type(value).__name__


def _real(value: Any) -> float | None:
    """``value`` as a float when it is a real number (numpy's float32 and int64 included, a bool not); None for
    anything else, or an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):
        return None


def save_model(flavor: Flavor, model: Any, folder: Path, examples: Any = None,
               options: Mapping[str, Any] | None = None, *, requirements: Iterable[str] = (),
               tolerance: Mapping[str, float] | None = None) -> SavedModel:
    """Write ``model`` into the empty folder ``folder``.

    With ``examples``, the model's own predictions on them are stored beside them as golden
    examples, with the ``tolerance`` a check compares outputs within (rtol 1e-6, atol 0 by default),
    and the signature is read from both. ``requirements``: the distributions the model's own code
    needs beyond its flavor's (names only: the versions come from the environment it is registered from).
    """
    names = check_requirements(requirements)
    tol = check_tolerance(tolerance)
    if tolerance is not None and examples is None:
        raise InvalidInputError("a tolerance is for golden examples: pass examples too")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InvalidInputError(f"{folder} is not empty; save a model into a new or empty folder")
    flavor_meta = flavor.save(model, folder, dict(options or {}))
    signature: dict[str, Any] = {}
    if examples is not None:
        outputs = flavor.predict(model, examples)
        golden = {"inputs": flavor.to_json(examples), "outputs": flavor.to_json(outputs), "tolerance": tol}
        (folder / EXAMPLES_FILE).write_bytes(json.dumps(golden, sort_keys=True).encode())
        signature = {"inputs": flavor.schema(examples), "outputs": flavor.schema(outputs)}
    saved = SavedModel(flavor.name, flavor_meta, signature, names)
    (folder / MODEL_FILE).write_bytes(saved.to_bytes())
    return saved
