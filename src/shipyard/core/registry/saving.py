"""Save a model object into a folder Shipyard can register: flavor files, description, examples."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.core.registry.service import EXAMPLES_FILE, MODEL_FILE, SavedModel
from shipyard.errors import InvalidInputError
from shipyard.ports import Flavor


def save_model(flavor: Flavor, model: Any, folder: Path, examples: Any = None,
               options: Mapping[str, Any] | None = None) -> SavedModel:
    """Write ``model`` into the empty folder ``folder``.

    With ``examples``, the model's own predictions on them are stored beside them as golden
    examples, and the signature is read from both.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InvalidInputError(f"{folder} is not empty; save a model into a new or empty folder")
    flavor_meta = flavor.save(model, folder, dict(options or {}))
    signature: dict[str, Any] = {}
    if examples is not None:
        outputs = flavor.predict(model, examples)
        golden = {"inputs": flavor.to_json(examples), "outputs": flavor.to_json(outputs)}
        (folder / EXAMPLES_FILE).write_bytes(json.dumps(golden, sort_keys=True).encode())
        signature = {"inputs": flavor.schema(examples), "outputs": flavor.schema(outputs)}
    saved = SavedModel(flavor.name, flavor_meta, signature)
    (folder / MODEL_FILE).write_bytes(saved.to_bytes())
    return saved
