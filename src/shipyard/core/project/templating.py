"""DVC's templating in shipyard.yaml, expanded before validation: ``vars``, ``${...}``, ``foreach``/``do``, ``matrix``.

The rules are DVC's (dvc/parsing), so a ``dvc.yaml`` means here what it means there:

- values come from the default params file (``params.yaml``, when it exists), then the top-level ``vars``
  (params files, ``FILE:key1,key2``, or mappings), then a stage's own ``vars`` (files relative to its
  ``wdir``); two sources defining the same value is an error, mappings merge;
- ``${a.b}``, ``${a[0]}``: a value of those; ``\\${`` is a literal ``${``;
- a string that is one ``${...}`` takes the value's type (a number, a boolean); a list or a mapping only
  in ``foreach``/``matrix`` and, for a mapping, in ``cmd``, where it becomes ``--key value`` arguments;
- ``foreach`` over a list of simple values names the stages ``NAME@value``; over a list of lists or
  mappings ``NAME@0``, ``NAME@1``; over a mapping ``NAME@key`` (with ``${key}`` too); ``matrix`` names
  them ``NAME@v1-v2`` (``KEYi`` for a list or mapping value), with ``${item.KEY}`` and ``${key}``.

Shipyard is stricter in one way: an unknown variable, or a value that itself holds ``${``, is an error
naming the file, the line and the variable, never a command that fails later in the shell.

The file is untrusted: generated stages, the characters produced and the nesting are bounded.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ConfigError

Loc = tuple[str | int, ...]
# name -> the data of that params file (relative to the project), or None when the file does not exist
Reader = Callable[[str], Any]

MAX_STAGES = 1000  # stages in all, once foreach and matrix are expanded
MAX_STRING = 100_000  # characters of one string once expanded
MAX_CHARS = 16_000_000  # characters of all the strings expanded
MAX_DEPTH = 64  # nesting of what is expanded
MAX_FILES = 64  # params files read for vars
# DVC's pattern is `\$\{(?P<inner>.*?)\}`: each unclosed `${` scans to the end of the line, quadratic in a line
# of them. An inner part holds no brace here, so a scan stops at the next `${`: linear (`${a{b}` is no variable
# name either way).
KEYCRE = re.compile(r"(?<!\\)\$\{(?P<inner>[^{}\n]*)\}")  # DVC's: `\${` escapes
_EXPR = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[[^.\[\]]+\])*\Z")
RESERVED = ("item", "key")
KEY = re.compile(r"[^\x00-\x1f\x7f]{1,128}\Z")  # what may follow NAME@ (schema.GENERATED_NAME)
TEMPLATED_SECTIONS = ("metrics", "params", "plots")  # besides stages: DVC's top-level sections


@dataclass
class Expanded:
    data: dict[str, Any]
    origins: dict[str, Loc] = field(default_factory=dict)  # generated stage -> its template's place in the file
    files: tuple[str, ...] = ()  # the params files read


def needs_expansion(data: dict[str, Any]) -> bool:
    """Whether ``data`` uses templating at all (otherwise nothing is read and nothing changes)."""
    if "vars" in data:
        return True
    stages = data.get("stages")
    if isinstance(stages, dict) and any(
            isinstance(s, dict) and ({"foreach", "matrix", "do", "vars"} & set(s)) for s in stages.values()):
        return True
    return any(_has_brace(data.get(k)) for k in ("stages", *TEMPLATED_SECTIONS))


def _has_brace(node: Any) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, str):
            if "${" in n:
                return True
        elif isinstance(n, dict):
            stack.extend(n.keys())
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return False


def expand(data: dict[str, Any], lines: dict[Loc, int], source: str, read: Reader,
           default_params: str = "params.yaml") -> Expanded:
    """``data`` with vars loaded, ``${...}`` substituted and foreach/matrix stages generated."""
    stages = data.get("stages")
    if isinstance(stages, list):
        raise _error(source, lines, ("stages",), "stages: should be a mapping of stage names to stages "
                     "(NAME: then cmd:, deps:, outs: below it), as in dvc.yaml; a list is not")
    for name in stages if isinstance(stages, dict) else {}:
        if isinstance(name, str) and "@" in name:
            raise _error(source, lines, ("stages", name), f"stage name {name!r}: '@' is kept for the stages "
                         "foreach and matrix generate (NAME@item)")
    if not needs_expansion(data):
        return Expanded(data)
    return _Expander(lines, source, read).run(data, default_params)


class _Expander:
    def __init__(self, lines: dict[Loc, int], source: str, read: Reader) -> None:
        self.lines = lines
        self.source = source
        self._read = read
        self.files: dict[str, Any] = {}
        self.chars = 0
        self.origins: dict[str, Loc] = {}
        self.default = "params.yaml"  # the default params file, for messages
        self.loaded: set[str] = set()  # params files merged whole into the top-level values
        self.alias: tuple[Loc, Loc] | None = None  # (template, generated stage) while a stage is generated

    def dotted(self, loc: Loc) -> str:
        """``loc`` as a dotted key, naming the generated stage rather than its template."""
        if self.alias is not None and loc[:len(self.alias[0])] == self.alias[0]:
            loc = (*self.alias[1], *loc[len(self.alias[0]):])
        return _dotted(loc)

    def fail(self, loc: Loc, message: str) -> ConfigError:
        return _error(self.source, self.lines, loc, message)

    # -- values ----------------------------------------------------------------------------------------
    def read(self, name: str, loc: Loc) -> Any:
        if name not in self.files:
            if len(self.files) >= MAX_FILES:
                raise self.fail(loc, f"vars: more than {MAX_FILES} params files")
            self.files[name] = self._read(name)
        return self.files[name]

    def load_vars(self, scope: dict[str, Any], entries: Any, loc: Loc, wdir: str,
                  loaded: set[str]) -> dict[str, Any]:
        """``scope`` with the values of ``entries`` (a vars list) merged in; ``loaded``: the params files already
        merged whole (listing one again is allowed, as in DVC: `vars: [params.yaml]`)."""
        if entries is None:
            return scope
        if not isinstance(entries, list):
            raise self.fail(loc, f"{self.dotted(loc)} should be a list of params files (FILE or FILE:key1,key2) "
                            "and mappings of values")
        if _has_brace(entries):
            raise self.fail(loc, f"{self.dotted(loc)}: ${{...}} cannot be used in vars (as in DVC)")
        for i, entry in enumerate(entries):
            at = (*loc, i)
            if isinstance(entry, dict):
                scope = self.merge(scope, entry, f"{self.dotted(loc)}[{i}]", at, ())
            elif isinstance(entry, str):
                path, _, keys = entry.partition(":")
                name = _join(wdir, path)
                if name in loaded:
                    continue
                found = self.read(name, at)
                if found is None:
                    raise self.fail(at, f"vars: params file {name} does not exist")
                if not isinstance(found, dict):
                    raise self.fail(at, f"vars: params file {name} is not a mapping of values")
                wanted = [k.strip() for k in keys.split(",") if k.strip()]
                missing = [k for k in wanted if k not in found]
                if missing:
                    raise self.fail(at, f"vars: {name} has no {missing[0]!r}")
                scope = self.merge(scope, {k: found[k] for k in wanted} if wanted else found, name, at, ())
                if not wanted:
                    loaded.add(name)
            else:
                raise self.fail(at, f"{self.dotted(loc)}[{i}] should be a params file name or a mapping of values")
        return scope

    def merge(self, into: dict[str, Any], update: dict[Any, Any], origin: str, loc: Loc,
              prefix: tuple[str, ...]) -> dict[str, Any]:
        """``into`` with ``update`` merged in (new dicts, nothing shared is changed); DVC's rule: mappings
        merge, any other value defined twice is an error."""
        out = dict(into)
        for key, value in update.items():
            if not isinstance(key, str):
                continue  # as DVC: only text keys can be named in ${...}
            here = (*prefix, key)
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                if len(here) > MAX_DEPTH:
                    raise self.fail(loc, f"vars: nested more than {MAX_DEPTH} levels")
                out[key] = self.merge(out[key], value, origin, loc, here)
            elif key in out:
                raise self.fail(loc, f"vars: {'.'.join(here)!r} from {origin} is already defined (by the default "
                                "params file or an earlier vars entry): define each value once")
            else:
                out[key] = value
        return out

    def select(self, scope: dict[str, Any], inner: str, loc: Loc) -> Any:
        expr = inner.strip()
        if not _EXPR.match(expr):
            raise self.fail(loc, f"{self.dotted(loc)}: ${{{inner}}} is not a variable: write ${{name}}, "
                            "${name.key} or ${name[0]}")
        node: Any = scope
        parts = expr.replace("[", ".").replace("]", "").split(".")
        for n, part in enumerate(parts):
            part = part.strip()
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            if isinstance(node, list) and re.fullmatch(r"-?\d{1,9}", part) and -len(node) <= int(part) < len(node):
                node = node[int(part)]
                continue
            known = ".".join(parts[:n])
            if n == 0:
                hint = (f"it is defined neither in {self.default} nor in vars"
                        + (" (item and key exist only in foreach and matrix stages)" if part in RESERVED else ""))
            elif isinstance(node, dict | list):
                hint = f"{known} has no {part!r}"
            else:
                hint = f"{known} is a single value, not a mapping or a list"
            raise self.fail(loc, f"{self.dotted(loc)}: unknown variable ${{{expr}}}: {hint}")
        return node

    # -- strings ---------------------------------------------------------------------------------------
    def resolve(self, node: Any, scope: dict[str, Any], loc: Loc, key: str | None, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(loc, f"{self.dotted(loc)}: nested more than {MAX_DEPTH} levels")
        if isinstance(node, str):
            return self.string(node, scope, loc, key)
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                resolved_key = self.string(k, scope, (*loc, k), key) if isinstance(k, str) else k
                if isinstance(resolved_key, dict | list):
                    raise self.fail((*loc, k), f"{self.dotted((*loc, k))}: a key cannot be a list or a mapping")
                if not isinstance(resolved_key, str) and isinstance(k, str):
                    resolved_key = _text(resolved_key)
                out[resolved_key] = self.resolve(v, scope, (*loc, k), key, depth + 1)
            return out
        if isinstance(node, list):
            return [self.resolve(v, scope, (*loc, i), key, depth + 1) for i, v in enumerate(node)]
        return node

    def string(self, text: str, scope: dict[str, Any], loc: Loc, key: str | None) -> Any:
        if len(text) > MAX_STRING:  # before any scanning
            raise self.fail(loc, f"{self.dotted(loc)}: is longer than {MAX_STRING} characters")
        matches = list(KEYCRE.finditer(text))
        if len(matches) == 1 and matches[0].group(0) == text:  # the whole value: keeps its type
            value = self.select(scope, matches[0]["inner"], loc)
            if isinstance(value, dict) and key == "cmd":
                return self.count(_arguments(value, self, loc), loc, matches[0]["inner"])
            if isinstance(value, dict | list) and key is not None:
                raise self.fail(loc, _not_text(self.dotted(loc), matches[0]["inner"], value))
            if isinstance(value, str):
                return self.count(value, loc, matches[0]["inner"])
            return value
        parts, at = [], 0
        for m in matches:
            value = self.select(scope, m["inner"], loc)
            if isinstance(value, dict) and key == "cmd":
                piece = _arguments(value, self, loc)
            elif isinstance(value, dict | list):
                raise self.fail(loc, _not_text(self.dotted(loc), m["inner"], value))
            else:
                piece = _text(value)
            if "${" in piece:
                raise self.fail(loc, f"{self.dotted(loc)}: the value of ${{{m['inner'].strip()}}} holds '${{': values "
                                "are substituted once, never expanded again")
            parts += [text[at:m.start()], piece]
            at = m.end()
            if sum(map(len, parts)) > MAX_STRING:
                raise self.fail(loc, f"{self.dotted(loc)}: expands to more than {MAX_STRING} characters")
        parts.append(text[at:])
        return self.count("".join(parts).replace("\\${", "${"), loc, None)

    def count(self, text: str, loc: Loc, var: str | None) -> str:
        if var is not None and "${" in text:
            raise self.fail(loc, f"{self.dotted(loc)}: the value of ${{{var.strip()}}} holds '${{': values are "
                            "substituted once, never expanded again")
        if len(text) > MAX_STRING:
            raise self.fail(loc, f"{self.dotted(loc)}: expands to more than {MAX_STRING} characters")
        self.chars += len(text)
        if self.chars > MAX_CHARS:
            raise self.fail(loc, f"templating expands to more than {MAX_CHARS} characters in all")
        return text

    # -- stages ----------------------------------------------------------------------------------------
    def run(self, data: dict[str, Any], default_params: str) -> Expanded:
        scope: dict[str, Any] = {}
        self.default = default_params
        found = self.read(default_params, ())
        if isinstance(found, dict):
            scope = self.merge(scope, found, default_params, (), ())
            self.loaded.add(_join(".", default_params))
        scope = self.load_vars(scope, data.get("vars"), ("vars",), ".", self.loaded)
        out = {k: v for k, v in data.items() if k != "vars"}
        stages: dict[str, Any] = {}
        given = data.get("stages")
        for name, definition in (given.items() if isinstance(given, dict) else ()):
            loc: Loc = ("stages", name)
            if not isinstance(definition, dict) or not isinstance(name, str):
                stages[name] = definition
            elif "foreach" in definition:
                self.foreach(name, definition, scope, stages)
            elif "matrix" in definition:
                self.matrix(name, definition, scope, stages)
            elif "do" in definition:
                raise self.fail((*loc, "do"), f"stages.{name}: do: goes with foreach: (the values to repeat "
                                "the stage for)")
            else:
                stages[name] = self.stage(name, definition, scope, loc)
            if len(stages) > MAX_STAGES:
                raise self.fail(loc, f"stages.{name}: more than {MAX_STAGES} stages in all")
        if isinstance(given, dict):
            out["stages"] = stages
        for section in TEMPLATED_SECTIONS:
            value = data.get(section)
            if isinstance(value, list):
                out[section] = self.resolve(value, scope, (section,), None)
        return Expanded(out, self.origins, tuple(self.files))

    def stage(self, name: str, definition: dict[str, Any], scope: dict[str, Any], loc: Loc) -> dict[str, Any]:
        wdir = definition.get("wdir", ".")
        if isinstance(wdir, str):
            wdir = self.string(wdir, scope, (*loc, "wdir"), "wdir")
        if "vars" in definition:
            local = self.load_vars({k: v for k, v in scope.items() if k not in RESERVED}, definition["vars"],
                                   (*loc, "vars"), wdir if isinstance(wdir, str) else ".", set(self.loaded))
            clash = [k for k in RESERVED if k in scope and k in local]
            if clash:
                raise self.fail((*loc, "vars"), f"stages.{name}.vars: {clash[0]!r} is the foreach/matrix value "
                                "here: name the variable otherwise")
            scope = {**local, **{k: scope[k] for k in RESERVED if k in scope}}
        return {k: self.resolve(v, scope, (*loc, k), k) for k, v in definition.items() if k != "vars"}

    def _add(self, group: str, key: str, template: dict[str, Any], scope: dict[str, Any], at: Loc,
             stages: dict[str, Any]) -> None:
        generated = f"{group}@{key}"
        if not KEY.match(key):
            raise self.fail(at, f"stages.{group}: cannot name a stage {generated[:80]!r}: the value after '@' must be "
                            "1 to 128 characters, none of them a control character")
        if generated in stages:
            raise self.fail(at, f"stages.{group}: generates {generated!r} twice (or another stage has its name)")
        if len(stages) >= MAX_STAGES:
            raise self.fail(at, f"stages.{group}: more than {MAX_STAGES} stages in all")
        self.origins[generated] = at
        self.alias = (at, ("stages", generated))
        try:
            stages[generated] = self.stage(generated, template, scope, at)
        finally:
            self.alias = None

    def foreach(self, name: str, definition: dict[str, Any], scope: dict[str, Any], stages: dict[str, Any]) -> None:
        loc: Loc = ("stages", name)
        extra = [k for k in definition if k not in ("foreach", "do")]
        if extra:
            raise self.fail((*loc, extra[0]), f"stages.{name}: with foreach, the stage's keys go under do: "
                            f"({extra[0]!r} is beside foreach)")
        template = definition.get("do")
        if not isinstance(template, dict):
            raise self.fail((*loc, "do") if "do" in definition else loc, f"stages.{name}: foreach needs do: "
                            "with the stage to repeat (cmd:, deps:, outs:, ...)")
        if "foreach" in template or "matrix" in template:
            raise self.fail((*loc, "do"), f"stages.{name}.do: foreach and matrix cannot be nested (nor in DVC)")
        values = self.resolve(definition["foreach"], scope, (*loc, "foreach"), None)
        if isinstance(values, dict):
            items = {_text(k): (v, True) for k, v in values.items()}
        elif isinstance(values, list):
            composite = any(isinstance(v, dict | list) for v in values)
            items = {(str(i) if composite else _text(v)): (v, False) for i, v in enumerate(values)}
        else:
            raise self.fail((*loc, "foreach"), f"stages.{name}.foreach: should be a list or a mapping "
                            f"(got {type(values).__name__})")
        if len(stages) + len(items) > MAX_STAGES:
            raise self.fail((*loc, "foreach"), f"stages.{name}.foreach: {len(items)} stages: more than "
                            f"{MAX_STAGES} stages in all")
        base = {k: v for k, v in scope.items() if k not in RESERVED}
        for key, (item, keyed) in items.items():
            self._add(name, key, template, {**base, "item": item, **({"key": key} if keyed else {})},
                      (*loc, "do"), stages)

    def matrix(self, name: str, definition: dict[str, Any], scope: dict[str, Any], stages: dict[str, Any]) -> None:
        loc: Loc = ("stages", name)
        if "do" in definition:
            raise self.fail((*loc, "do"), f"stages.{name}: with matrix, the stage's keys sit beside matrix: "
                            "(no do:)")
        values = self.resolve(definition["matrix"], scope, (*loc, "matrix"), None)
        if not isinstance(values, dict) or not values or not all(isinstance(v, list) for v in values.values()):
            raise self.fail((*loc, "matrix"), f"stages.{name}.matrix: should be a mapping of names to lists "
                            "of values")
        count = math.prod(len(v) for v in values.values())
        if len(stages) + count > MAX_STAGES:
            raise self.fail((*loc, "matrix"), f"stages.{name}.matrix: {count} combinations: more than "
                            f"{MAX_STAGES} stages in all")
        template = {k: v for k, v in definition.items() if k != "matrix"}
        base = {k: v for k, v in scope.items() if k not in RESERVED}
        keys = [_text(k) for k in values]
        for combination in itertools.product(*(list(enumerate(v)) for v in values.values())):
            item = {k: v for k, (_, v) in zip(keys, combination, strict=True)}
            key = "-".join(f"{k}{i}" if isinstance(v, dict | list) else _text(v)
                           for k, (i, v) in zip(keys, combination, strict=True))
            self._add(name, key, template, {**base, "item": item, "key": key}, loc, stages)


def _text(value: Any) -> str:
    """A value as DVC writes it into a string: true/false for booleans, None for null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _arguments(value: dict[str, Any], ex: _Expander, loc: Loc) -> str:
    """DVC's dictionary unpacking in cmd: ``--key value`` for each (dotted) key; a true boolean is ``--key``, a
    false one nothing, a list ``--key a b``, strings shell-quoted."""
    out: list[str] = []

    def walk(prefix: str, node: dict[Any, Any], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ex.fail(loc, f"{ex.dotted(loc)}: nested more than {MAX_DEPTH} levels")
        for k, v in node.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                walk(name, v, depth + 1)
            elif isinstance(v, bool):
                if v:
                    out.append(f"--{name}")
            elif isinstance(v, str):
                out.append(f"--{name} {shlex.quote(v)}")
            elif isinstance(v, list):
                if any(isinstance(i, dict | list) for i in v):
                    raise ex.fail(loc, f"{ex.dotted(loc)}: cannot unpack the nested list {name!r} into arguments")
                out.append(" ".join([f"--{name}", *(shlex.quote(i) if isinstance(i, str) else _text(i) for i in v)]))
            else:
                out.append(f"--{name} {_text(v)}")

    walk("", value, 0)
    return " ".join(out)


def _not_text(where: str, inner: str, value: Any) -> str:
    kind = "a list" if isinstance(value, list) else "a mapping"
    also = " (a mapping also into cmd, as --key value arguments)" if isinstance(value, dict) else ""
    return (f"{where}: ${{{inner.strip()}}} is {kind}, which cannot be written here: lists and mappings go "
            f"only into foreach and matrix{also}")


def _join(wdir: str, path: str) -> str:
    import posixpath

    return posixpath.normpath(posixpath.join(wdir, path.strip()))


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _error(source: str, lines: dict[Loc, int], loc: Loc, message: str) -> ConfigError:
    line = 1
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    return ConfigError(f"{source}:{line}: {message}")
