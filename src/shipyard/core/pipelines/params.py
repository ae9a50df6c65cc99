"""Stage params: dotted keys read from params.yaml (or ``FILE:key`` from another file), as in DVC.

A params file is read only from inside the project: its name must be a relative path without
``..`` (checked when shipyard.yaml is loaded, and again here), and a symbolic link on the way that
leads outside the project is refused, so no value from elsewhere (``/etc``, a kubeconfig) can end up
in shipyard.lock or a run's params. Files go through the bounded reader like every YAML file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from shipyard.core.boundedyaml import load_json, load_yaml, read_bounded
from shipyard.core.workspace.paths import declared_path
from shipyard.errors import ConfigError, InvalidInputError


def parse_params(raw: bytes, name: str, source: str | None = None) -> Any:
    """A params (or metrics) file's data: JSON, TOML or YAML by ``name``'s suffix, bounded like every file
    Shipyard reads; errors name ``source`` (default: ``name``)."""
    source = source or name
    if name.endswith(".json"):
        return load_json(raw, source)
    if name.endswith(".toml"):
        import tomllib

        try:
            return tomllib.loads(raw.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise ConfigError(f"{source}: not valid TOML: {' '.join(str(exc).split())[:200]}") from None
    return load_yaml(raw, source)


def inside_project(root: Path, name: str, what: str) -> Path:
    """``root/name``, refused unless it is a regular file (or absent) inside the project, links resolved."""
    try:
        declared_path(name, what)
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from None
    path = root / name
    real, top = os.path.realpath(path), os.path.realpath(root)
    if not real.startswith(top.rstrip(os.sep) + os.sep):
        raise ConfigError(f"{what} {name!r} leads outside the project (through a symbolic link); "
                          "Shipyard reads params only from files inside it")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {name!r} is not a regular file")
    return path


class ParamFiles:
    """Reads each params file once per command."""

    def __init__(self, root: Path, default_file: str) -> None:
        self.root = root
        self.default_file = default_file
        self._files: dict[str, Any] = {}

    def _load(self, name: str, stage: str) -> Any:
        if name not in self._files:
            path = self._inside(name, stage)
            try:
                raw = read_bounded(path, name)
            except FileNotFoundError:
                raise ConfigError(f"shipyard.yaml: stage '{stage}' reads params file {name} (its params:), which does "
                                  "not exist: create it, or fix the name") from None
            self._files[name] = parse_params(raw, name)
        return self._files[name]

    def _inside(self, name: str, stage: str) -> Path:
        return inside_project(self.root, name, f"stage '{stage}' params file")

    def values(self, stage: str, keys: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for spec in keys:
            name, sep, key = spec.rpartition(":")
            name = name if sep else self.default_file
            node: Any = self._load(name, stage)
            if not key:  # `FILE:` (DVC's `- FILE:` with no keys): all of the file's params, each by its top key
                if not isinstance(node, dict):
                    raise ConfigError(f"stage '{stage}' uses all params of {name}, which is not a mapping of params")
                for top, value in node.items():
                    out[str(top) if name == self.default_file else f"{name}:{top}"] = value
                continue
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ConfigError(f"stage '{stage}' uses param {key!r}, which {name} does not define")
                node = node[part]
            out[key if name == self.default_file else f"{name}:{key}"] = node
        return out
