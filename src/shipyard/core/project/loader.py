"""Read ``shipyard.yaml`` into a ``ProjectConfig``; errors name the file, the line and the key."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def parse_config(text: str, source: str = CONFIG_FILE, root: Path | None = None) -> ProjectConfig:
    """Validate ``text``; an error names the file, the line and the key, in Shipyard's words.

    DVC's templating (``vars``, ``${...}``, ``foreach``, ``matrix``) is expanded first, reading params
    files from ``root`` (none without it). Unknown keys and a ``default_remote`` that names no remote
    are checked next, so they are reported at their own line with a suggestion; what pydantic finds
    after that is put in plain words by ``_plain``, and pydantic's own wording never reaches the user.
    """
    return _parse(text, source, root)[0]


def _parse(text: str, source: str, root: Path | None) -> tuple[ProjectConfig, dict[str, str | None]]:
    """The validated configuration, and the params files templating read (name -> digest, None if absent)."""
    from pydantic import ValidationError

    from shipyard.core.project.schema import DEFAULT_PARAMS_FILE, ProjectConfig
    from shipyard.core.project.templating import expand

    data, node = load_yaml_node(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping of settings (version, stages, remotes, ...)")
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    reads: dict[str, str | None] = {}
    default = data.get("params") if isinstance(data.get("params"), str) else DEFAULT_PARAMS_FILE
    expanded = expand(data, lines, source, _reader(root, reads), str(default))
    data = expanded.data
    below: dict[tuple[str | int, ...], list[tuple[tuple[str | int, ...], int]]] = {}
    for generated, template in expanded.origins.items():  # a generated stage's errors point into its template
        if template not in below:
            n = len(template)
            below[template] = [(loc[n:], line) for loc, line in lines.items() if loc[:n] == template
                               and len(loc) > n and loc[n] not in ("foreach", "matrix", "do")]
        lines[("stages", generated)] = lines.get(template, 1)
        for rest, line in below[template]:
            lines[("stages", generated, *rest)] = line
    _check_keys(data, lines, source)
    _check_dvc_keys(data, lines, source)
    try:
        return ProjectConfig.model_validate(data), reads
    except ValidationError as exc:
        err, loc, same = _chosen(exc.errors())
        err, loc = _field_of(err, loc, lines)
        line = _nearest_line(lines, loc)
        more = exc.error_count() - same
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}:{line}: {_plain(err, loc)}{tail}") from exc


def _field_of(err: Any, loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> tuple[Any, tuple[
        str | int, ...]]:
    """A stage's whole-entry check (its model validator) that names its field first (``params: ...``) is
    reported at that field's line, as the field's own check would be."""
    if err["type"] != "value_error" or loc[:1] != ("stages",):
        return err, loc
    msg = str(err["msg"]).removeprefix("Value error, ")
    field, sep, rest = msg.partition(": ")
    if sep and (*loc, field) in lines:
        return {**err, "msg": rest}, (*loc, field)
    return err, loc


def _reader(root: Path | None, reads: dict[str, str | None]) -> Callable[[str], Any]:
    """Reads a params file for templating from inside the project, recording its digest in ``reads``."""
    def read(name: str) -> Any:
        from shipyard.core.pipelines.params import inside_project, parse_params

        if root is None:
            reads[name] = None
            return None
        path = inside_project(root, name, "params file")
        try:
            raw = read_bounded(path, name)
        except FileNotFoundError:
            reads[name] = None
            return None
        reads[name] = Digest.of_bytes(raw).hex
        return parse_params(raw, name)

    return read


# DVC's keys Shipyard does not take, and what to write instead.
DVC_TOP_KEYS = {
    "artifacts": "declare the model under models: (path, flavor, examples; see README, Coming from DVC)",
    "datasets": "track the data with `shipyard data add PATH` and list it in the stages' deps",
}
DVC_OUT_KEYS = {
    "remote": "every stored output goes to the project's remote (default_remote); remove remote:",
    "push": "every stored output is pushed; remove push:, or use cache: false to leave the file to git",
    "checkpoint": "DVC 3 dropped checkpoints too; remove checkpoint: (persist: true keeps the output between runs)",
}
PLOT_KEYS = ("x", "y", "template", "title", "x_label", "y_label", "header")


def _check_dvc_keys(data: dict[Any, Any], lines: dict[tuple[str | int, ...], int], source: str) -> None:
    """DVC's forms Shipyard does not take, each refused at its line with what to write instead."""
    from shipyard.core.project.schema import OutOptions

    stages = data.get("stages")
    for name, stage in (stages.items() if isinstance(stages, dict) else ()):
        if not isinstance(stage, dict):
            continue
        for i, dep in enumerate(stage.get("deps") or () if isinstance(stage.get("deps"), list) else ()):
            if isinstance(dep, dict):
                line = _nearest_line(lines, ("stages", str(name), "deps", i))
                raise ConfigError(f"{source}:{line}: stages.{name}.deps[{i}]: a dependency is a path: write "
                                  f"`- {next(iter(dep), 'PATH')}` (options on dependencies are not supported)")
        for section in ("outs", "metrics", "plots"):
            entries = stage.get(section)
            for i, entry in enumerate(entries if isinstance(entries, list) else ()):
                if not isinstance(entry, dict):
                    continue
                for path, options in entry.items():
                    known = [*OutOptions.model_fields, *(PLOT_KEYS if section == "plots" else ())]
                    for key in options if isinstance(options, dict) else ():
                        if key in known:
                            continue
                        loc = ("stages", str(name), section, i, str(path), str(key))
                        line = _nearest_line(lines, loc)
                        where = f"stages.{name}.{section}[{i}] ({path})"
                        hint = DVC_OUT_KEYS.get(str(key))
                        if hint is None:
                            guess = suggest(str(key), known)
                            hint = f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(known)}"
                        raise ConfigError(f"{source}:{line}: {key!r} in {where} is not supported: {hint}")


# Words other tools use for a stage's keys (GitHub Actions, Makefiles, MLflow projects, DVC's long forms).
SYNONYMS = {"command": "cmd", "run": "cmd", "script": "cmd", "dependencies": "deps", "inputs": "deps",
            "outputs": "outs", "parameters": "params", "environment": "env", "workdir": "wdir",
            "working_dir": "wdir", "cwd": "wdir", "remote": "default_remote"}


def _check_keys(data: dict[Any, Any], lines: dict[tuple[str | int, ...], int], source: str) -> None:
    """Refuse the first unknown key (with one suggestion) and a ``default_remote`` that names no remote."""
    from shipyard.core.project.schema import ExecutorSpec, ProjectConfig, RemoteSpec, StageSpec

    sections: list[tuple[tuple[str | int, ...], dict[object, object], list[str], str]] = [
        ((), data, list(ProjectConfig.model_fields), "shipyard.yaml's top level")]
    executor = data.get("executor")
    if isinstance(executor, dict):
        sections.append((("executor",), executor, list(ExecutorSpec.model_fields), "executor"))
    from pydantic import BaseModel

    from shipyard.core.governance.config import PolicySpec, ScanSpec, SecretsSpec, SigningSpec, VaultSpec

    governance: tuple[tuple[str, type[BaseModel]], ...] = (
        ("policy", PolicySpec), ("signing", SigningSpec), ("scan", ScanSpec), ("secrets", SecretsSpec))
    for part, spec in governance:  # the governance sections, as strictly as the rest
        found = data.get(part)
        if isinstance(found, dict):
            sections.append(((part,), found, list(spec.model_fields), part))
            vault = found.get("vault") if part == "secrets" else None
            if isinstance(vault, dict):
                sections.append((("secrets", "vault"), vault, list(VaultSpec.model_fields), "secrets.vault"))
    for section, model in (("remotes", RemoteSpec), ("stages", StageSpec)):
        entries = data.get(section)
        if isinstance(entries, dict):
            for name, entry in entries.items():
                if isinstance(entry, dict):
                    sections.append(((section, str(name)), entry, list(model.model_fields), f"{section}.{name}"))
    for path, mapping, known, where in sections:
        for key in mapping:
            if key in known:
                continue
            if not path and key in DVC_TOP_KEYS:
                line = _nearest_line(lines, (str(key),))
                raise ConfigError(f"{source}:{line}: DVC's {key}: is not supported in shipyard.yaml: "
                                  f"{DVC_TOP_KEYS[str(key)]}")
            guess = suggest(str(key), known)
            hint = f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(known)}"
            line = _nearest_line(lines, (*path, str(key)))
            raise ConfigError(f"{source}:{line}: unknown key {str(key)!r} in {where} ({hint})")
    chosen, remotes = data.get("default_remote"), data.get("remotes", {})
    if isinstance(chosen, str) and isinstance(remotes, dict) and chosen not in remotes:
        line = _nearest_line(lines, ("default_remote",))
        if remotes:
            guess = suggest(chosen, [str(r) for r in remotes])
            hint = f"did you mean {guess!r}? " if guess else ""
            defined = ", ".join(str(r) for r in remotes)
            raise ConfigError(f"{source}:{line}: default_remote {chosen!r} is not one of the remotes defined under "
                              f"remotes: ({defined}); {hint}fix default_remote or add remotes.{chosen}")
        raise ConfigError(f"{source}:{line}: default_remote {chosen!r} names a remote, but no remotes are defined: "
                          f"add remotes.{chosen} with a url, or remove default_remote")


def suggest(word: str, known: list[str]) -> str | None:
    """The one known word ``word`` was most likely meant to be, or None."""
    synonym = SYNONYMS.get(word.lower())
    if synonym in known:
        return synonym
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


# The help shown for a missing key or a wrong type, by pydantic's error type.
_TYPE_WORDS = {
    "string_type": "should be text", "bool_type": "should be true or false", "float_type": "should be a number",
    "int_type": "should be a whole number", "dict_type": "should be a mapping (key: value lines)",
    "model_type": "should be a mapping (key: value lines)", "model_attributes_type": "should be a mapping "
    "(key: value lines)", "none_required": "should be empty",
    "bool_parsing": "should be true or false", "float_parsing": "should be a number",
    "int_parsing": "should be a whole number", "int_from_float": "should be a whole number",
    "string_too_short": "should not be empty",
}
# Bounds, by pydantic's error type: the word, and the key of the bound in the error's context.
_BOUND_WORDS = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
                "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}


def _chosen(errors: list[Any]) -> tuple[Any, tuple[str | int, ...], int]:
    """The error to show, its key path, and how many errors it stands for.

    A value that fits no member of a union (``outs: [{x: {cache: "no"}}]``: neither text nor a mapping of
    options) fails once per member, each under the member's tag (``str``, ``dict[str,OutOptions]``): the
    deepest of them names the real problem (``cache``); the tags are no keys of the file."""
    err = errors[0]
    prefix = tuple(err["loc"][:-1])
    branches = [e for e in errors if tuple(e["loc"][:len(prefix)]) == prefix and len(e["loc"]) > len(prefix)]
    tags = {e["loc"][len(prefix)] for e in branches}
    if len(branches) > 1 and any(isinstance(t, str) and t.startswith(("dict[", "list[")) for t in tags):
        err = max(branches, key=lambda e: len(e["loc"]))
        loc = (*prefix, *err["loc"][len(prefix) + 1:])
        same = len(branches)
    else:
        loc, same = tuple(err["loc"]), 1
    return err, tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "tuple[")))), same


def _plain(err: Any, loc: tuple[str | int, ...]) -> str:
    """One error of pydantic as ``key: what is wrong`` in Shipyard's words."""
    kind = err["type"]
    if "[key]" in loc:  # a name (of a remote, a stage) that YAML read as a number, a boolean or null
        at = loc.index("[key]")
        section = ".".join(str(p) for p in loc[:at - 1]) or "the top level"
        return f"{section}: the name {loc[at - 1]!s} should be text; quote it"
    key = ".".join(str(p) for p in loc) or "(top level)"
    if kind == "missing" and loc:
        parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
        return f"{parent}: missing key {str(loc[-1])!r}"
    if kind == "value_error":
        return f"{key}: {str(err['msg']).removeprefix('Value error, ')}"
    if kind.startswith(("tuple", "list")):
        return f"{key}: should be a list of strings (or one string)"
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        return f"{key}: should be {expected}" if expected else f"{key}: is not one of the allowed values"
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind in _BOUND_WORDS:
        relation, bound = _BOUND_WORDS[kind]
        limit = err.get("ctx", {}).get(bound)
        return f"{key}: should be a number {relation} {limit} (got {_brief(err.get('input'))})"
    words = _TYPE_WORDS.get(kind)
    if words is None:
        words = "has a value Shipyard cannot use here"
    got = err.get("input")
    shown = f" (got {type(got).__name__} {_brief(got)})" if got is not None and kind in _TYPE_WORDS else ""
    return f"{key}: {words}{shown}"


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _nearest_line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
        as_text = tuple(str(p) for p in loc[:n])  # a mapping key YAML read as a number
        if as_text in lines:
            return lines[as_text]
    return 1


CACHE_FILE = ".shipyard/config-cache.json"
SCHEMA_REVISION = 14  # bump when validation gets stricter, so a file cached as valid before is checked again


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
    key = f"{__version__}:{SCHEMA_REVISION}:{Digest.of_bytes(raw).hex}"
    cache = root / CACHE_FILE
    try:
        cached = json.loads(cache.read_bytes())
        if cached.get("key") == key and _same_files(root, cached.get("reads") or {}):
            return Project.from_dict(cached["config"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        pass
    validated, reads = _parse(text, _shown(path, root), root)
    project = Project.from_dict(validated.model_dump())
    if cache.parent.is_dir():
        with contextlib.suppress(OSError):  # an unwritable cache only costs the next command a validation
            write_atomic(cache, json.dumps({"key": key, "reads": reads, "config": project.to_dict()}).encode())
    return project


def _same_files(root: Path, reads: dict[str, str | None]) -> bool:
    """Whether the params files templating read (when the cached configuration was expanded) are unchanged:
    a changed params.yaml must expand ``${...}`` again."""
    from shipyard.core.pipelines.params import inside_project

    for name, digest in reads.items():
        try:
            raw: bytes | None = read_bounded(inside_project(root, name, "params file"), name)
        except FileNotFoundError:
            raw = None
        if (None if raw is None else Digest.of_bytes(raw).hex) != digest:
            return False
    return True


def _shown(path: Path, root: Path) -> str:
    """``path`` as the user sees it from where they are (``../shipyard.yaml`` from a subfolder, as git shows
    paths); from outside the project (a program using the library), relative to the project."""
    try:
        here = Path.cwd()
    except OSError:  # the current folder was removed
        here = root
    inside = here.is_relative_to(root.resolve()) or here.is_relative_to(root)
    return os.path.relpath(path, here) if inside else str(path.relative_to(root))
