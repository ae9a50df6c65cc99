"""Read ``shipyard.yaml`` into a ``ProjectConfig``; errors name the file, the line and the key."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from shipyard._version import __version__
from shipyard.core.artifacts.digest import Digest
from shipyard.core.boundedyaml import load_yaml_node, read_bounded
from shipyard.core.project.model import Project
from shipyard.core.workspace.atomic import write_atomic
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.project.schema import ProjectConfig

CONFIG_FILE = "shipyard.yaml"


def _lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[(*path, k)] = key.start_mark.line + 1
            _lines(value, (*path, k), out)
            out[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def parse_config(text: str, source: str = CONFIG_FILE) -> ProjectConfig:
    """Validate ``text`` (pydantic); errors name the file, the line and the key."""
    from pydantic import ValidationError

    from shipyard.core.project.schema import ProjectConfig

    data, node = load_yaml_node(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping of settings (version, stages, remotes, ...)")
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tuple["))))
        line = _nearest_line(lines, loc)
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"].startswith("tuple"):
            msg = "should be a list of strings (or one string)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `shipyard init --help` shows an annotated example)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}:{line}: {key}: {msg}{more}") from exc


def _nearest_line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


CACHE_FILE = ".shipyard/config-cache.json"


def load_config(root: Path) -> Project:
    """The project's configuration; an absent ``shipyard.yaml`` means all defaults.

    A file validated before (same bytes, same Shipyard) is read from a small cache instead.
    """
    path = root / CONFIG_FILE
    try:
        raw = read_bounded(path, str(path))
        text = raw.decode()
    except FileNotFoundError:
        return Project()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    key = f"{__version__}:{Digest.of_bytes(raw).hex}"
    cache = root / CACHE_FILE
    try:
        cached = json.loads(cache.read_bytes())
        if cached.get("key") == key:
            return Project.from_dict(cached["config"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    validated = parse_config(text, str(path.relative_to(root) if path.is_relative_to(root) else path))
    project = Project.from_dict(validated.model_dump())
    if cache.parent.is_dir():
        with contextlib.suppress(OSError):  # an unwritable cache only costs the next command a validation
            write_atomic(cache, json.dumps({"key": key, "config": project.to_dict()}).encode())
    return project
