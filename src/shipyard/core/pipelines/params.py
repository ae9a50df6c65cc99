"""Stage params: dotted keys read from params.yaml (or ``FILE:key`` from another file), as in DVC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.core.boundedyaml import load_yaml, read_bounded
from shipyard.errors import ConfigError


class ParamFiles:
    """Reads each params file once per command."""

    def __init__(self, root: Path, default_file: str) -> None:
        self.root = root
        self.default_file = default_file
        self._files: dict[str, Any] = {}

    def _load(self, name: str) -> Any:
        if name not in self._files:
            try:
                raw = read_bounded(self.root / name, name)
            except FileNotFoundError:
                raise ConfigError(f"params file {name} does not exist") from None
            if not name.endswith(".json"):
                self._files[name] = load_yaml(raw, name)
            else:
                try:
                    self._files[name] = json.loads(raw)
                except (ValueError, RecursionError) as exc:
                    raise ConfigError(f"cannot read params file {name}: {' '.join(str(exc).split())[:200]}") from None
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
