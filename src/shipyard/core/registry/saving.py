"""Save a model object into a folder Shipyard can register: flavor files, description, examples."""

from __future__ import annotations

import json
import math
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
    unknown = sorted(str(k)[:40] for k in tolerance if k not in DEFAULT_TOLERANCE)
    if unknown:
        raise InvalidInputError(f"tolerance has {', '.join(map(repr, unknown))}: only rtol and atol are known")
    out = dict(DEFAULT_TOLERANCE)
    for key, value in tolerance.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"tolerance {key}={str(value)[:40]} is not a finite number >= 0")
        out[key] = float(value)
    return out


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
