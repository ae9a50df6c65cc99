"""Stage params: dotted keys read from params.yaml (or ``FILE:key`` from another file), as in DVC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParamFiles:
    """Reads each params file once per command."""

    def __init__(self, root: Path, default_file: str) -> None:
        self.root = root
        self.default_file = default_file
        self._files: dict[str, Any] = {}

    def _load(self, name: str) -> Any:
        if name not in self._files:
            path = self.root / name
            try:
                text = path.read_text()
            except FileNotFoundError:
                raise ConfigError(f"params file {name} does not exist") from None
            try:
                self._files[name] = json.loads(text) if name.endswith(".json") else yaml.load(text, Loader=_Loader)
            except (ValueError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read params file {name}: {exc}") from exc
        return self._files[name]

    def values(self, stage: str, keys: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for spec in keys:
            name, sep, key = spec.rpartition(":")
            name = name if sep else self.default_file
            node: Any = self._load(name)
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ConfigError(f"stage '{stage}' uses param {key!r}, which {name} does not define")
                node = node[part]
            out[key if name == self.default_file else f"{name}:{key}"] = node
        return out
