"""Bounded YAML: every YAML file Shipyard reads (shipyard.yaml, shipyard.lock, params, metrics) goes through here.

YAML files are untrusted input (invariant 7). A few hundred bytes of nested aliases ("billion
laughs") describe billions of nodes to whoever walks the result, and a few aliases of one long
string describe a string thousands of times the file's size. So limits are checked while the
document is composed, before anything is built:

- a file over ``MAX_BYTES`` is refused before it is read whole;
- each alias is charged what it expands to: the nodes under its anchor and the characters of
  every scalar there (aliases inside included, computed once per anchor). In all, aliases may add
  at most ``MAX_ALIAS_NODES`` nodes, and at most ``MAX_ALIAS_CHARS`` characters or the document's
  own length, whichever is larger; plain files without aliases are never limited;
- an alias to a node that contains it (a cycle) is refused;
- nesting deeper than ``MAX_DEPTH`` is refused;
- a key given twice in one mapping is refused (YAML says keys are unique; PyYAML would keep the last,
  so a second ``stages:`` appended to shipyard.yaml silently replaced the first).

JSON files (metrics, params) get the same size bound through ``load_json``.
Every refusal, like every syntax error, is one ``ConfigError`` line naming the file and the line.
Parsing uses libyaml when it is installed; composing is PyYAML's, with the counting added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from shipyard.errors import ConfigError

MAX_BYTES = 8 * 1024 * 1024
MAX_ALIAS_NODES = 10_000
MAX_ALIAS_CHARS = 1_000_000  # or the document's length, if larger: aliases at most double a big file
MAX_DEPTH = 100


class _Refused(yaml.MarkedYAMLError):  # type: ignore[misc]
    """A document that is valid YAML but over one of the limits."""


class _BoundedComposer(Composer):  # type: ignore[misc]
    max_alias_chars = MAX_ALIAS_CHARS

    def __init__(self) -> None:
        super().__init__()
        self._done: set[int] = set()  # id() of anchored nodes composed to the end (an alias to another is a cycle)
        self._sizes: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (nodes, scalar characters), expanded
        self._alias_nodes = 0
        self._alias_chars = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self._done:
                    raise _Refused(None, None, f"alias *{event.anchor} refers to a node that contains it",
                                   event.start_mark)
                self._charge(event, self._size(target))
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:  # sizes are computed only for anchors that are used: plain files pay nothing
            self._done.add(id(node))
        return node

    def _size(self, node: Node) -> tuple[int, int]:
        """Nodes and scalar characters under ``node``, aliases expanded; each anchored node is walked once."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, ScalarNode):
            size = (1, len(node.value))
        else:
            children = node.value if isinstance(node, SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else []
            nodes, chars = 1, 0
            for child in children:
                n, c = self._size(child)
                nodes, chars = nodes + n, chars + c
            size = (nodes, chars)
        if id(node) in self._done:
            self._sizes[id(node)] = size
        return size

    def _charge(self, event: AliasEvent, size: tuple[int, int]) -> None:
        """Count what the alias ``event`` adds once expanded; refuse past the limits."""
        self._alias_nodes += size[0]
        self._alias_chars += size[1]
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _Refused(None, None, f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark)
        if self._alias_chars > self.max_alias_chars:
            raise _Refused(None, None, f"aliases expand to more than {self.max_alias_chars} characters",
                           event.start_mark)


MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeys(SafeConstructor):  # type: ignore[misc]
    """SafeConstructor that refuses a key written twice in one mapping (``<<`` merges may still be overridden)."""

    def construct_mapping(self, node: Node, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key, _ in node.value:
                if isinstance(key, ScalarNode) and key.tag != MERGE_TAG:
                    first = seen.setdefault((key.tag, key.value), key)
                    if first is not key:
                        raise ConstructorError(None, None, f"key {key.value!r} is given twice in one mapping (first "
                                               f"at line {first.start_mark.line + 1}): keep one", key.start_mark)
        return super().construct_mapping(node, deep)


try:
    from yaml._yaml import CParser

    class _Loader(_BoundedComposer, CParser, _UniqueKeys, Resolver):  # type: ignore[misc]
        def __init__(self, stream: str | bytes) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            _UniqueKeys.__init__(self)
            Resolver.__init__(self)

    class _Fast(CParser, _UniqueKeys, Resolver):  # type: ignore[misc]
        """libyaml builds the whole document (as yaml.CSafeLoader), with unique keys."""

        def __init__(self, stream: str | bytes) -> None:
            CParser.__init__(self, stream)
            _UniqueKeys.__init__(self)
            Resolver.__init__(self)

except ImportError:  # no libyaml: the pure-Python parser, same limits
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _BoundedComposer, _UniqueKeys, Resolver):  # type: ignore[no-redef,misc]
        def __init__(self, stream: str | bytes) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            _UniqueKeys.__init__(self)
            Resolver.__init__(self)

    _Fast = _Loader  # type: ignore[misc]


def read_bounded(path: Path, source: str, hint: str = "") -> bytes:
    """The bytes of ``path``, refused (one line) if over ``MAX_BYTES``; ``FileNotFoundError`` passes through."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}{_hint(hint)}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: refused: larger than the {MAX_BYTES // (1024 * 1024)} MiB Shipyard reads "
                          f"from a YAML or JSON file{_hint(hint)}")
    return raw


def load_yaml(text: str | bytes, source: str, hint: str = "") -> Any:
    """The data of the YAML document ``text`` (None if empty); ``source`` names the file in errors."""
    if len(text) <= MAX_BYTES and _plain(text if isinstance(text, str) else text.decode("utf-8", "replace")):
        try:  # nothing to count: libyaml builds it whole (shipyard.lock on every command)
            return yaml.load(text, Loader=_Fast)  # a safe loader (CSafeLoader's parts)
        except yaml.YAMLError as exc:
            raise ConfigError(_describe(exc, source) + _hint(hint)) from None
    return load_yaml_node(text, source, hint)[0]


# what could nest a document deeply: a deep indentation, or a long run of "- - - ..." on one line
_DEEP = re.compile(rf"^ {{{MAX_DEPTH // 4},}}|(?:-[ \t]+){{{MAX_DEPTH // 4},}}", re.M)


def _plain(text: str) -> bool:
    """Whether ``text`` can neither expand (no ``&`` anywhere, so no anchor, so no alias) nor nest past
    about ``MAX_DEPTH`` levels (shallow indentation, few flow brackets, no long dash runs): then the
    counting composer has nothing to count. Anything else, even an ``&`` inside a string, takes it."""
    return ("&" not in text and text.count("[") + text.count("{") < MAX_DEPTH // 4
            and _DEEP.search(text) is None)


def load_yaml_node(text: str | bytes, source: str, hint: str = "") -> tuple[Any, Node | None]:
    """The data of ``text`` and its node tree (for line numbers); errors are one line naming ``source``."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: refused: larger than the {MAX_BYTES // (1024 * 1024)} MiB Shipyard reads "
                          f"from a YAML file{_hint(hint)}")
    loader = _Loader(text)
    loader.max_alias_chars = max(MAX_ALIAS_CHARS, len(text))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(_describe(exc, source) + _hint(hint)) from None
    except RecursionError:
        raise ConfigError(f"{source}: refused: nested too deeply{_hint(hint)}") from None
    finally:
        loader.dispose()
    return data, node


def load_json(raw: str | bytes, source: str, hint: str = "") -> Any:
    """The data of the JSON document ``raw``, bounded like YAML; errors are one line naming ``source``."""
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: refused: larger than the {MAX_BYTES // (1024 * 1024)} MiB Shipyard reads "
                          f"from a JSON file{_hint(hint)}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid JSON: {' '.join(str(exc).split())[:200]}{_hint(hint)}") from None


def _describe(exc: yaml.YAMLError, source: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    what = "refused" if isinstance(exc, _Refused) else "not valid YAML"
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    return f"{where}: {what}: {' '.join(str(problem).split())[:200]}"


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""
