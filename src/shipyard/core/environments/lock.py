"""A model's lock: the pinned requirements that serving it needs, cut from its environment record (no I/O).

The roots are what the model's flavor and its own code ask for; the lock is their closure over the
record's ``requires`` (each package's dependencies whose markers held where the record was captured),
pinned at the versions the record holds. It is not the whole training environment. A record captured
before ``requires`` existed still locks: its dependencies come from a function the caller passes in
(the same distributions in the current environment), and what stays open is said in the header.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from shipyard.core.environments.capture import is_name, normalize, packages_of
from shipyard.errors import InvalidInputError

# What a lock never pins: Shipyard itself is installed by whoever serves the model (the image, verify).
NEVER_PINNED = frozenset({"shipyard"})
MAX_OVERRIDE_CHARS = 500
MAX_OVERRIDES = 100
MAX_REQUIRES = 2000  # per package: more is a damaged or hostile record
_LEGACY_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,100}")
# printable ASCII without whitespace or a backslash (pip and uv join a line ending in one with the next): one line
_SAFE_URL = re.compile(r"[A-Za-z0-9+.-]+://[!-\[\]-~]{1,2000}")
_SUBDIRECTORY = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){0,20}")
# what pip reads in a requirement line as something else: a comment (whitespace then #), an option (whitespace
# then -), or a continuation (a backslash at the end)
_NOT_ONE_REQUIREMENT = re.compile(r"\s#|\s-|\\$")
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
_PYTHON_VERSION = re.compile(r"[0-9A-Za-z.+]{1,40}")

# (name, version) -> the normalized names of its dependencies, or None when they are not known
RequiresOf = Callable[[str, str], Sequence[str] | None]


@dataclass(frozen=True)
class Pin:
    """One package of a lock, at the version (and from the source) the record holds."""

    name: str
    version: str
    source: Mapping[str, Any] | None

    def requirement(self) -> str:
        """A PEP 508 requirement, one line: ``numpy==2.1.3``; a VCS source ``pkg @ git+URL@COMMIT``; a
        non-PEP 440 version ``pkg===v``. A local path or URL source is pinned by version (see ``comment``)."""
        vcs = self._vcs()
        if vcs is not None:
            return f"{self.name} @ {vcs}"
        # packaging reads a version with whitespace around it (" 1.0", "\n1.0"): written as given, that would
        # split the pin over lines, so only the characters of a version are taken
        if not _LEGACY_VERSION.fullmatch(self.version):
            raise InvalidInputError(f"the environment record gives {self.name} the version "
                                    f"{self.version[:60]!r}, which no installer can pin; "
                                    f"pass --with {self.name}==VERSION")
        try:
            Version(self.version)
        except ValueError:  # InvalidVersion, or a number too long for int()
            return f"{self.name}==={self.version}"
        return f"{self.name}=={self.version}"

    def comment(self) -> str | None:
        """Why a pin is not exactly what was installed: a local path or URL source is pinned by version,
        since that path is not where the model will be served."""
        source = self.source or {}
        kind = source.get("kind")
        if kind in ("local path", "url") or (kind == "vcs" and self._vcs() is None):
            url = str(source.get("url", ""))
            url = url if _SAFE_URL.fullmatch(url) else "(an unprintable URL)"
            return f"{self.name} was installed from {kind} {url}; pinned by version: " \
                   "publish it to an index, or pass --with NAME @ URL"
        return None

    def _vcs(self) -> str | None:
        source = self.source or {}
        if source.get("kind") != "vcs":
            return None
        vcs, url, commit = str(source.get("vcs") or ""), str(source.get("url") or ""), str(source.get("commit") or "")
        subdirectory = source.get("subdirectory")
        # a '#' or '?' in the URL would take the "@COMMIT" after it as part of a fragment or query: the pin
        # would install the default branch, so such a URL is pinned by version
        if vcs not in ("git", "hg", "svn", "bzr") or not _SAFE_URL.fullmatch(url) or not _COMMIT.fullmatch(commit) \
                or "@" in url.split("://", 1)[1].split("/", 1)[-1] or "#" in url or "?" in url:
            return None
        if subdirectory is not None and (not isinstance(subdirectory, str) or not _SUBDIRECTORY.fullmatch(subdirectory)
                                         or ".." in subdirectory.split("/")):
            return None
        fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
        return f"{url if url.startswith(vcs + '+') else vcs + '+' + url}@{commit}{fragment}"


@dataclass(frozen=True)
class Lock:
    """The pinned closure of ``roots`` in an environment record."""

    python: str                    # the record's Python version, e.g. "3.11.7"
    pins: tuple[Pin, ...]          # sorted by name; never Shipyard itself
    roots: tuple[str, ...]         # what the flavor and the model's code asked for
    missing: tuple[str, ...]       # roots (or their dependencies) the record does not hold
    unclosed: tuple[str, ...] = ()  # pins whose dependencies neither the record nor the fallback knew
    label: str = ""                # the model version it locks, e.g. "iris@3"
    env_digest: str = ""           # the environment record's digest

    def requirements(self, overrides: Sequence[str] = ()) -> list[str]:
        """One requirement per package, sorted by name; each override (``torch==2.3.1``, ``tinypkg>=2``)
        replaces the pin of the same name, or is added."""
        lines = {pin.name: pin.requirement() for pin in self.pins}
        for name, req in parse_overrides(overrides).items():
            lines[name] = req
        return [lines[name] for name in sorted(lines)]

    def text(self, overrides: Sequence[str] = ()) -> str:
        """A requirements file both pip and uv install (``pip install -r``, ``uv pip install -r``)."""
        parsed = parse_overrides(overrides)
        head = [f"# Locked by Shipyard for {_printable(self.label) or 'a model version'}: what its flavor and code "
                "need, pinned as in the environment it was registered from",
                f"# environment {_printable(self.env_digest) or '(unknown)'}, Python {_printable(self.python)}",
                f"# roots: {' '.join(self.roots) or '(none)'}"]
        if parsed:
            head.append(f"# overrides: {' ; '.join(parsed.values())}")
        if self.unclosed:
            head.append("# not closed (the record predates dependency capture and this environment does not "
                        f"have the same versions): {' '.join(self.unclosed)}; their dependencies are not pinned")
        missing = [name for name in self.missing if name not in parsed]
        if missing:
            head.append(f"# MISSING from the record, not pinned: {' '.join(missing)}")
        body = []
        for pin in self.pins:
            comment = pin.comment()
            if comment and pin.name not in parsed:
                body.append(f"# {comment}")
        body += self.requirements(overrides)
        return "\n".join(head + body) + "\n"

    def complete(self, what: str, overrides: Sequence[str] = ()) -> Lock:
        """``self`` when every package is pinned (or given by an override); else an InvalidInputError naming
        the missing packages and what to do. ``what`` says what needed the lock, e.g. "build iris@3"."""
        given = parse_overrides(overrides)
        missing = [name for name in self.missing if name not in given]
        if not missing:
            return self
        raise InvalidInputError(
            f"cannot {what}: the environment {self.label or 'the model'} was registered from lacks "
            f"{', '.join(missing)} (needed to load it); register it again from an environment that has "
            f"{'it' if len(missing) == 1 else 'them'}, or pass --with NAME==VERSION")

    def to_dict(self, overrides: Sequence[str] = ()) -> dict[str, Any]:
        return {"label": self.label, "environment": self.env_digest, "python": self.python,
                "roots": list(self.roots), "missing": list(self.missing), "unclosed": list(self.unclosed),
                "overrides": list(parse_overrides(overrides).values()),
                "pins": [{"name": p.name, "version": p.version, "source": dict(p.source) if p.source else None,
                          "requirement": p.requirement()} for p in self.pins],
                "requirements": self.requirements(overrides)}


def _printable(text: str) -> str:
    """``text`` without what could end a line of the file (a header line holds exactly one line)."""
    return "".join(c for c in text if c.isprintable())[:200]


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """Normalized name -> the override as one canonical requirement line. Untrusted: anything that is not
    a single valid PEP 508 requirement is refused."""
    if len(overrides) > MAX_OVERRIDES:
        raise InvalidInputError(f"{len(overrides)} overrides: at most {MAX_OVERRIDES}")
    out: dict[str, str] = {}
    for spec in overrides:
        # not printable covers every line break pip or uv might split on (\n, \r, \v, \f, \x1c-\x1e, \x85, \u2028...)
        if len(spec) > MAX_OVERRIDE_CHARS or not spec.isprintable() or spec.strip().startswith("-"):
            raise InvalidInputError(f"override {spec[:60]!r} is not one requirement line; write it as NAME==VERSION")
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            why = str(exc).splitlines()[0][:120]
            raise InvalidInputError(f"override {spec[:60]!r} is not a valid requirement ({why}); write it as "
                                    "NAME==VERSION, NAME>=VERSION or NAME @ URL") from None
        if req.url and not _SAFE_URL.fullmatch(req.url):
            raise InvalidInputError(f"override {spec[:60]!r} has a URL with spaces, a backslash or control characters")
        name = normalize(req.name)
        req.name = name  # NumPy==2 and numpy==2 are one requirement: one line, one environment for verify
        line = str(req)
        if _NOT_ONE_REQUIREMENT.search(line):
            raise InvalidInputError(f"override {spec[:60]!r} would not be one requirement for pip (a space before "
                                    "'#' or '-' starts a comment or an option, a final backslash joins the next "
                                    "line); write it as NAME==VERSION")
        if name in out:
            raise InvalidInputError(f"two overrides name {name}; give one")
        out[name] = line
    return out


def lock_of(record: Mapping[str, Any], roots: Sequence[str], *, requires_of: RequiresOf | None = None,
            label: str = "", env_digest: str = "") -> Lock:
    """The lock of ``roots`` in ``record``: each root and, transitively, what it requires there.
    ``requires_of`` is asked only for packages the record has no ``requires`` for (records captured
    before it existed); without it, or when it answers None, the package's dependencies stay open."""
    # a v1 record kept the names as given
    packages = {normalize(name): entry for name, entry in packages_of(record).items()}
    python = record.get("python")
    version = str(python.get("version") if isinstance(python, Mapping) else python or "unknown")
    if not _PYTHON_VERSION.fullmatch(version):  # it goes into the file's header: one printable line
        version = "unknown"
    wanted = []
    for root in roots:
        if not is_name(root):
            raise InvalidInputError(f"{root[:60]!r} is not a package name")
        if normalize(root) not in wanted:
            wanted.append(normalize(root))
    pins: dict[str, Pin] = {}
    missing: list[str] = []
    unclosed: list[str] = []
    # each name enters the queue once: the work is linear in the record's size, whatever its requires say
    queue = deque(name for name in wanted if name not in NEVER_PINNED)
    seen = set(queue)
    while queue:
        name = queue.popleft()
        entry = packages.get(name)
        if entry is None or not entry.get("version"):
            missing.append(name)
            continue
        source = entry.get("source")
        pins[name] = Pin(name, str(entry["version"]), dict(source) if isinstance(source, Mapping) else None)
        requires = entry.get("requires")
        if requires is None and requires_of is not None:
            requires = requires_of(name, str(entry["version"]))
        if requires is None:
            unclosed.append(name)
            continue
        if not isinstance(requires, (list, tuple)) or len(requires) > MAX_REQUIRES:
            raise InvalidInputError(f"the environment record's dependencies of {name} are not a list of names")
        for dep in requires:
            if not isinstance(dep, str) or not is_name(dep):
                raise InvalidInputError(f"the environment record lists {str(dep)[:60]!r} as a dependency of "
                                        f"{name}: not a package name")
            dep = normalize(dep)
            if dep not in seen and dep not in NEVER_PINNED:
                seen.add(dep)
                queue.append(dep)
    return Lock(python=version, pins=tuple(pins[n] for n in sorted(pins)), roots=tuple(wanted),
                missing=tuple(sorted(missing)), unclosed=tuple(sorted(unclosed)), label=label,
                env_digest=env_digest)

