"""The PolicyEngine over ``regopy`` (rego-cpp, OPA's Rego in-process; no ``opa`` binary).

A bundle is a folder of ``.rego`` modules (their unit tests in ``*_test.rego``) and ``.json`` data files. It is
read once with bounds (no link out of the folder, no huge file, not too many files), named by its digest, and
compiled once per process: ``load_bundle`` keeps one engine per digest. Every regopy error becomes one
ConfigError line naming the file and line (``policies/x.rego:12: ...``).

regopy 1.5 quirks this module works around: the interpreter prints its errors on stdout unless its log level is
NONE; ``Output`` of a failed query crashes when printed (its error is read from the interpreter instead); and an
``Input`` must outlive the query that reads it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.errors import ConfigError, MissingExtraError

DECISION = "data.shipyard.decision"  # the bundle's answer: {"allow": bool, "reasons": [...], "checks": [...]}
MAX_FILES = 200
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 8
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
_TEST_RULE = re.compile(r"[ \t]*(test_[A-Za-z0-9_]*)\s*(?:if\b|\{|:=|=)")
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*|[{}\[\]()]|\n')
_ERROR = re.compile(r"\(error \d+:(?P<file>[^|\n]*)\|(?P<offset>\d+)\|\d+\s*\(errormsg \d+:(?P<msg>[^\n]*?)\)\s*\n",
                    re.MULTILINE)


def test_rules(text: str) -> list[str]:
    """The ``test_*`` rules a module defines: a line at the module's top level (outside every brace, bracket
    and parenthesis, strings and comments skipped) that starts, indented or not, with ``test_NAME`` and a rule's
    ``if``, ``{``, ``:=`` or ``=``. A local variable named ``test_x`` inside a rule's body is not a rule."""
    found = []
    depth = 0
    for token in _TOKENS.finditer("\n" + text):
        kind = token.group()
        if kind == "\n" and depth == 0:
            rule = _TEST_RULE.match(text, token.end() - 1)
            if rule is not None:
                found.append(rule.group(1))
        elif kind in ("{", "[", "("):
            depth += 1
        elif kind in ("}", "]", ")"):
            depth = max(depth - 1, 0)
    return found


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle folder, with /
    data: bytes


def read_bundle(folder: Path) -> list[BundleFile]:
    """The bundle's ``.rego`` and ``.json`` files, sorted by path; ConfigError for a link that leaves the folder,
    a file past MAX_FILE_BYTES, more than MAX_FILES files or MAX_TOTAL_BYTES in all, or folders deeper than
    MAX_DEPTH. Other files (a README) are skipped."""
    try:
        top = folder.resolve(strict=True)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot read the policy bundle ({exc.strerror}); "
                          "run `shipyard policy init` to write the default one") from None
    if not top.is_dir():
        raise ConfigError(f"{folder} is not a folder: the policy bundle is a folder of .rego files")
    found: list[BundleFile] = []
    total = 0

    def walk(here: Path, rel: str, depth: int) -> None:
        nonlocal total
        if depth > MAX_DEPTH:
            raise ConfigError(f"{folder}/{rel}: policy folders nest deeper than {MAX_DEPTH}; flatten the bundle")
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            raise ConfigError(f"{folder}/{rel}: cannot list it ({exc.strerror})") from None
        for entry in entries:
            name = f"{rel}{entry.name}"
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise ConfigError(f"{folder}/{name} is a broken link; remove it from the policy bundle") from None
                if target != top and top not in target.parents:
                    raise ConfigError(f"{folder}/{name} is a link to {target}, outside the policy bundle; "
                                      "copy the file into the folder instead") from None
                path = target
            try:
                st = path.stat()
            except OSError as exc:
                raise ConfigError(f"{folder}/{name}: cannot read it ({exc.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                if not entry.is_symlink():  # a link to a folder inside: its files are read where they are
                    walk(path, f"{name}/", depth + 1)
                continue
            if not name.endswith((".rego", ".json")):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{folder}/{name} is not a regular file; remove it from the policy bundle")
            if len(found) >= MAX_FILES:
                raise ConfigError(f"{folder}: more than {MAX_FILES} policy files; split the bundle")
            if st.st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{folder}/{name} is {st.st_size} bytes, past the {MAX_FILE_BYTES} a policy "
                                  "file may hold; keep big data out of the bundle")
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise ConfigError(f"{folder}/{name} grew past {MAX_FILE_BYTES} bytes while read")
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise ConfigError(f"{folder}: the policy files hold more than {MAX_TOTAL_BYTES} bytes")
            found.append(BundleFile(name, data))

    walk(top, "", 0)
    if not any(f.path.endswith(".rego") for f in found):
        raise ConfigError(f"{folder} holds no .rego file; run `shipyard policy init` to write the default bundle")
    return found


def bundle_digest(files: list[BundleFile]) -> Digest:
    """sha256 over the sorted relative paths and bytes of the bundle's files."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        path = f.path.encode()
        h.update(b"%d:%s%d:" % (len(path), path, len(f.data)))
        h.update(f.data)
    return Digest.trusted(h.hexdigest())


def _regopy() -> Any:
    try:
        import regopy  # type: ignore[import-untyped,unused-ignore]
    except ModuleNotFoundError as exc:
        raise MissingExtraError("policy evaluation (regopy)", "governance") from exc
    return regopy


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, min(offset, len(text)))) + 1


class RegoEngine:
    """One compiled bundle: ``decide`` queries ``data.shipyard.decision``, ``run_tests`` every ``test_*`` rule.

    The gates' interpreter holds only the policy modules (compiled once, here); the unit tests (``*_test.rego``)
    are compiled into a second bundle, with one entrypoint per test, the first time ``run_tests`` is called:
    querying test after test on one interpreter makes rego-cpp 1.5 grow without bound.
    """

    def __init__(self, files: list[BundleFile], label: str = "policies") -> None:
        self._label = label
        self._digest = bundle_digest(files)
        self._texts: dict[str, str] = {}
        self._tests: list[str] = []  # entrypoints: package/with/slashes/test_rule
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        for f in files:
            shown = f"{label}/{f.path}"
            try:
                text = f.data.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"{shown}: not UTF-8 text") from None
            if f.path.endswith(".json"):
                _merge_data(self._data, f, shown)
                continue
            self._texts[shown] = text
            package = _PACKAGE.search(text)
            if package is not None and f.path.endswith("_test.rego"):
                where = package.group(1).replace(".", "/")
                self._tests += [f"{where}/{rule}" for rule in dict.fromkeys(test_rules(text))]
        policy = {k: v for k, v in self._texts.items() if not k.endswith("_test.rego")}
        self._rego, self._bundle = self._compile(policy, query=f"x := {DECISION}")
        self._tested: tuple[Any, Any] | None = None

    def _compile(self, modules: Mapping[str, str], *, query: str | None = None,
                 entrypoints: list[str] | None = None) -> tuple[Any, Any]:
        regopy = _regopy()
        rego = regopy.Interpreter()
        rego.log_level = regopy.LogLevel.NONE  # else rego-cpp prints its errors on stdout
        for shown, text in modules.items():
            try:
                rego.add_module(shown, text)
            except regopy.RegoError as exc:
                raise self._error(str(exc), shown) from None
        if self._data:
            rego.add_data_json(json.dumps(self._data))
        try:
            bundle = rego.build(query, entrypoints or [])
            built = bool(bundle.ok())
        except (regopy.RegoError, ValueError) as exc:
            raise self._error(str(exc), self._label) from None
        if not built:
            raise self._error(self._last_error(rego), self._label)
        return rego, bundle

    @property
    def digest(self) -> Digest:
        return self._digest

    def decide(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        regopy = _regopy()
        with self._lock:
            value = regopy.Input(rego_safe(document))  # kept alive until the query is done
            try:
                self._rego.set_input(value)
                out = self._rego.query_bundle(self._bundle)
                ok = out.ok()
                raw = _output_json(out) if ok else None
            except (regopy.RegoError, ValueError) as exc:
                raise self._error(str(exc), self._label) from None
            if not ok:
                raise self._error(self._last_error(self._rego), self._label)
        bound = raw.get("bindings", {}).get("x") if isinstance(raw, dict) else None
        if not isinstance(bound, dict):
            raise ConfigError(f"{self._label}: {DECISION} is undefined for this input; the bundle must always "
                              "define package shipyard's decision := {\"allow\": bool, \"reasons\": [...]}")
        return bound

    def run_tests(self) -> list[tuple[str, bool, str]]:
        """Each ``test_*`` rule of the ``*_test.rego`` modules: (``data.PACKAGE.RULE``, passed, why not); passed
        when the rule is exactly true."""
        regopy = _regopy()
        if not self._tests:
            return []
        outcome: list[tuple[str, bool, str]] = []
        with self._lock:
            if self._tested is None:
                self._tested = self._compile(self._texts, entrypoints=self._tests)
            rego, bundle = self._tested
            empty = regopy.Input({})
            rego.set_input(empty)
            for entry in self._tests:
                name = "data." + entry.replace("/", ".")
                try:
                    out = rego.query_bundle_entrypoint(bundle, entry)
                    ok = out.ok()
                    raw = _output_json(out) if ok else None
                except (regopy.RegoError, ValueError) as exc:
                    outcome.append((name, False, str(self._error(str(exc), self._label))))
                    continue
                if not ok:
                    outcome.append((name, False, str(self._error(self._last_error(rego), self._label))))
                    continue
                value = raw.get("expressions", []) if isinstance(raw, dict) else []
                passed = value == [True]
                outcome.append((name, passed, "" if passed else
                                f"{'undefined' if not value else json.dumps(value[0])[:200]}, not true"))
        return outcome

    @staticmethod
    def _last_error(rego: Any) -> str:
        from regopy.rego_shared import rego_get_error  # type: ignore[import-untyped,unused-ignore]

        try:
            return str(rego_get_error(rego._impl))
        except Exception:  # the library could not say why: say that much
            return "the Rego interpreter failed without saying why"

    def _error(self, raw: str, where: str) -> ConfigError:
        """One line from rego-cpp's error tree: ``file:line: message`` for the first error."""
        m = _ERROR.search(raw)
        if m is None:
            first = " ".join(raw.split())[:300] or ("the Rego runtime refused the bundle without saying why (a rule "
                                                    "defined twice with different values is one cause)")
            return ConfigError(f"{where}: {first} (fix the Rego, then `shipyard policy test`)")
        file, msg = m["file"], " ".join(m["msg"].split())[:300]
        text = self._texts.get(file)
        line = f":{_line_of(text, int(m['offset']))}" if text is not None else ""
        return ConfigError(f"{file}{line}: {msg} (fix the Rego, then `shipyard policy test`)")


def rego_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with every string made safe for rego-cpp's output, which does not escape ``"`` or ``\\`` in
    the strings it returns (a package name could otherwise forge a key of the decision): both become ``'``, and
    control characters a space. The input document stored with the decision keeps the real text."""
    if depth > 32:
        raise ConfigError("the policy input nests deeper than 32 levels")
    if isinstance(value, str):
        return _UNSAFE.sub(lambda m: "'" if m.group() in "\"\\" else " ", value)
    if isinstance(value, Mapping):
        return {rego_safe(str(k), depth + 1): rego_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rego_safe(v, depth + 1) for v in value]
    return value


_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"the Rego output names {k[:40]!r} twice")
        seen[k] = v
    return seen


def _output_json(out: Any) -> Any:
    """The query's output, parsed again strictly: a key twice is an error, never the last one winning."""
    from regopy.rego_shared import rego_output_string  # type: ignore[import-untyped,unused-ignore]

    text = rego_output_string(out._impl)
    return {} if text == "undefined" else json.loads(text, object_pairs_hook=_no_duplicates)


def _merge_data(data: dict[str, Any], f: BundleFile, shown: str) -> None:
    """A .json data file: its object goes under its folder's path (``a/b/data.json`` -> ``data.a.b``)."""
    try:
        value = json.loads(f.data)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{shown}: not JSON ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{shown}: a policy data file must hold a JSON object")
    node = data
    for part in f.path.split("/")[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{shown}: its data clashes with another file's")
    node.update(value)


_ENGINES: dict[str, RegoEngine] = {}
_ENGINES_LOCK = threading.Lock()


def load_bundle(folder: Path, label: str = "policies") -> RegoEngine:
    """The engine for the bundle in ``folder``, compiled once per process for each digest."""
    files = read_bundle(folder)
    key = f"{label}\0{bundle_digest(files)}"
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = RegoEngine(files, label)
    return engine
