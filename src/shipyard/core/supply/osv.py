"""Matching packages against OSV advisories (https://ossf.github.io/osv-schema/), no I/O.

An advisory names what it affects in ``affected[]``: a package (ecosystem + name; PyPI names compared as
PEP 503 normalizes them), ``ranges`` (ECOSYSTEM or SEMVER, with ``introduced``/``fixed``/``last_affected``/
``limit`` events) and explicit ``versions``. PyPI versions compare as ``packaging`` does, Debian and Ubuntu
versions as dpkg does (``debver``), SEMVER as semver 2.0; a range whose versions cannot be compared is left
to the explicit list. Severity: the database's own word (GHSA's LOW/MODERATE/HIGH/CRITICAL), else the worst
CVSS vector in ``severity[]`` (through the ``cvss`` library), else "unknown".

Every advisory is untrusted input: each field is checked for its type before it is used, and a malformed one
is a ``ValueError`` from ``check_advisory`` (its caller skips it and says so), never a crash mid-scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shipyard.core.environments.capture import normalize

SEVERITIES = ("critical", "high", "medium", "low", "unknown")  # worst first
BLOCKING = frozenset({"critical", "high"})
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_WORDS = {"critical": "critical", "high": "high", "important": "high", "moderate": "medium", "medium": "medium",
          "low": "low", "negligible": "low", "unimportant": "low", "none": "low"}
# GHSA-xxxx-xxxx-xxxx, PYSEC-2021-1, CVE-2024-3094, DSA-5000-1, OSV-2020-111, MAL-2024-1, UBUNTU-CVE-2024-1 ...
_OSV_ID = re.compile(r"[A-Z][A-Z0-9]{0,19}(-[A-Za-z0-9._]{1,40}){1,6}")
MAX_AFFECTED = 2000
MAX_EVENTS = 5000
MAX_VERSIONS = 200_000
MAX_ALIASES = 100
MAX_SUMMARY = 200
MAX_TEXT = 200  # a fixed version, a package name or version taken from an advisory or a stored record
# terminal escape sequences: CSI (ESC [ ... final), OSC/DCS/APC/PM/SOS (ESC ] ... BEL or ST), any other ESC x
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x9b[0-?]*[ -/]*[@-~]?"
                     r"|[\x1b][\]PX^_].*?(?:\x07|\x1b\\|\x9c|$)|[\x90\x9d\x98\x9e\x9f].*?(?:\x07|\x1b\\|\x9c|$)"
                     r"|\x1b.?", re.DOTALL)


def clean_text(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` as one printable line of at most ``limit`` characters: terminal escape sequences and control
    characters (newlines included) removed. What an advisory or a stored record says goes through this before it
    reaches a table, an error line or a record."""
    raw = str(text)[:limit * 4]
    return "".join(c for c in _ESCAPE.sub("", raw) if c.isprintable())[:limit]


def is_osv_id(text: object) -> bool:
    return isinstance(text, str) and len(text) <= 120 and bool(_OSV_ID.fullmatch(text))


def check_id(text: str) -> str:
    """``text`` when it is an OSV id (``GHSA-…``, ``PYSEC-…``, ``CVE-…``); a ValueError saying so otherwise."""
    if not is_osv_id(text):
        raise ValueError(f"{text[:80]!r} is not an OSV advisory id (like GHSA-jfhm-5ghh-2f97, PYSEC-2021-19 or "
                         "CVE-2024-3094)")
    return text


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:12`` -> ``Debian``: the folder of OSV's per-ecosystem exports."""
    return ecosystem.split(":", 1)[0]


def package_name(ecosystem: str, name: str) -> str:
    return normalize(name) if base_ecosystem(ecosystem) == "PyPI" else name


@dataclass(frozen=True, slots=True)
class Package:
    ecosystem: str  # "PyPI", "Debian:12"
    name: str
    version: str

    @property
    def key(self) -> tuple[str, str]:
        return base_ecosystem(self.ecosystem), package_name(self.ecosystem, self.name)


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    ecosystem: str
    severity: str
    fixed: tuple[str, ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "aliases": list(self.aliases), "package": self.package, "version": self.version,
                "ecosystem": self.ecosystem, "severity": self.severity, "fixed": list(self.fixed),
                "summary": self.summary}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Finding:
        """A finding from a stored scan record (untrusted): a ValueError when it is not that shape."""
        def text(key: str) -> str:
            value = body.get(key)
            if not isinstance(value, str):
                raise ValueError(f"a finding's {key} is not text")
            return value

        aliases, fixed = body.get("aliases") or [], body.get("fixed") or []
        if not isinstance(aliases, list) or not isinstance(fixed, list):
            raise ValueError("a finding's aliases or fixed is not a list")
        severity = text("severity")
        return cls(clean_text(text("id"), 120), tuple(clean_text(a, 120) for a in aliases[:MAX_ALIASES]),
                   clean_text(text("package")), clean_text(text("version")), clean_text(text("ecosystem"), 64),
                   severity if severity in _RANK else "unknown", tuple(clean_text(f) for f in fixed[:100]),
                   clean_text(body.get("summary") or "", MAX_SUMMARY))


# --- versions ------------------------------------------------------------------------------------------------

Key = Callable[[str], Any]


def _pypi_key(text: str) -> Any:
    from packaging.version import Version

    version = Version(text)  # InvalidVersion is a ValueError
    return Version(version.public) if version.local is not None else version  # 2.1.0+cpu is 2.1.0 to an advisory


def _debian_key(text: str) -> Any:
    from shipyard.core.supply.debver import DebianVersion

    return DebianVersion(text)


_SEMVER = re.compile(r"v?(0|[1-9]\d{0,17})\.(0|[1-9]\d{0,17})\.(0|[1-9]\d{0,17})"
                     r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?")


def semver_key(text: str) -> tuple[Any, ...]:
    m = _SEMVER.fullmatch(text)
    if m is None:
        raise ValueError(f"not a semantic version: {text[:60]!r}")
    major, minor, patch, pre = m.groups()
    if pre is None:
        return int(major), int(minor), int(patch), (1,)
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return int(major), int(minor), int(patch), (0, *ids)


def version_key(ecosystem: str, range_type: str) -> Key | None:
    """How versions of ``ecosystem`` sort in a range of ``range_type``; None when Shipyard cannot say."""
    if range_type == "SEMVER":
        return semver_key
    if range_type != "ECOSYSTEM":
        return None  # GIT ranges name commits: only the explicit versions list speaks for them
    base = base_ecosystem(ecosystem)
    if base == "PyPI":
        return _pypi_key
    if base in ("Debian", "Ubuntu"):
        return _debian_key
    return None


_ZERO = (0,)


def in_range(version: str, events: Sequence[Any], key: Key) -> bool:
    """Whether ``version`` lies in the range ``events`` describe (OSV's evaluation: events sorted by version,
    the last one ``version`` has passed decides; ``limit`` bounds the range from above). A ValueError when a
    version cannot be compared."""
    v = (1, key(version))
    points: list[tuple[tuple[Any, ...], str]] = []
    limits = []
    for event in events[:MAX_EVENTS]:
        if not isinstance(event, Mapping):
            raise ValueError("a range event is not an object")
        for kind in ("introduced", "fixed", "last_affected", "limit"):
            value = event.get(kind)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"a range's {kind} is not text")
            at = _ZERO if kind == "introduced" and value == "0" else (1, key(value))
            if kind == "limit":
                limits.append(at)
            else:
                points.append((at, kind))
    affected = False
    for at, kind in sorted(points, key=lambda p: p[0]):
        if kind == "introduced" and v >= at:
            affected = True
        elif (kind == "fixed" and v >= at) or (kind == "last_affected" and v > at):
            affected = False
    return affected and not any(v >= limit for limit in limits)


def _listed(version: str, versions: Sequence[Any], ecosystem: str) -> bool:
    if version in versions:
        return True
    if base_ecosystem(ecosystem) != "PyPI":
        return False
    from packaging.utils import canonicalize_version

    canonical = canonicalize_version(_public(version))
    return any(isinstance(v, str) and canonicalize_version(_public(v)) == canonical for v in versions[:MAX_VERSIONS])


def _public(version: str) -> str:
    """A PyPI version without its local part (``2.1.0+cpu`` -> ``2.1.0``): an advisory for 2.1.0 covers the
    local builds of 2.1.0 (``torch 2.1.0+cu121``)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).public
    except InvalidVersion:
        return version


# --- advisories ----------------------------------------------------------------------------------------------


def check_advisory(doc: Any) -> dict[str, Any]:
    """``doc`` when it is an OSV advisory this module can read (an id, a list of affected packages); a
    ValueError saying what is wrong otherwise."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if not is_osv_id(doc.get("id")):
        raise ValueError(f"no OSV id (id {str(doc.get('id'))[:60]!r})")
    affected = doc.get("affected", [])
    if not isinstance(affected, list) or len(affected) > MAX_AFFECTED:
        raise ValueError(f"{doc['id']}: affected is not a list of at most {MAX_AFFECTED} entries")
    for entry in affected:
        if not isinstance(entry, dict):
            raise ValueError(f"{doc['id']}: an affected entry is not an object")
    return doc


def affected_keys(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (ecosystem folder, package name) pairs ``doc`` names: what an index files it under."""
    keys = set()
    for entry in doc.get("affected") or ():
        pkg = entry.get("package") if isinstance(entry, Mapping) else None
        if isinstance(pkg, Mapping) and isinstance(pkg.get("ecosystem"), str) and isinstance(pkg.get("name"), str):
            keys.add((base_ecosystem(pkg["ecosystem"]), package_name(pkg["ecosystem"], pkg["name"])))
    return keys


def _same_ecosystem(advisory: str, package: str) -> bool:
    """``Debian:12`` matches ``Debian:12`` and ``Debian`` (every release); ``Ubuntu:22.04:LTS`` matches
    ``Ubuntu:22.04``."""
    if base_ecosystem(advisory) != base_ecosystem(package):
        return False
    if ":" not in advisory or ":" not in package:
        return True
    return advisory == package or advisory.startswith(package + ":")


def _entry_affects(entry: Mapping[str, Any], pkg: Package) -> tuple[bool, list[str]]:
    """Whether one ``affected`` entry covers ``pkg``, and the versions its ranges name as fixed."""
    spec = entry.get("package")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("ecosystem"), str) \
            or not isinstance(spec.get("name"), str):
        return False, []
    if not _same_ecosystem(spec["ecosystem"], pkg.ecosystem) \
            or package_name(spec["ecosystem"], spec["name"]) != package_name(pkg.ecosystem, pkg.name):
        return False, []
    hit = False
    fixed: list[str] = []
    versions = entry.get("versions")
    if isinstance(versions, list) and _listed(pkg.version, versions, pkg.ecosystem):
        hit = True
    ranges = entry.get("ranges")
    for rng in ranges if isinstance(ranges, list) else ():
        if not isinstance(rng, Mapping) or not isinstance(rng.get("events"), list):
            continue
        fixed += [clean_text(e["fixed"]) for e in rng["events"][:MAX_EVENTS]
                  if isinstance(e, Mapping) and isinstance(e.get("fixed"), str)]
        key = version_key(spec["ecosystem"], str(rng.get("type")))
        if key is None or hit:
            continue
        try:
            hit = in_range(pkg.version, rng["events"], key)
        except (ValueError, TypeError):  # a version neither side can compare: the explicit list decides
            continue
    return hit, fixed


def severity_of(doc: Mapping[str, Any], entry: Mapping[str, Any] | None = None) -> str:
    """critical, high, medium, low or unknown: the database's word, else the worst CVSS vector, else unknown.
    A ``MAL-`` advisory (OSV's malicious packages: the package itself is malware) is critical."""
    if _malicious(doc):
        return "critical"
    for where in (doc, entry or {}):
        for section in ("database_specific", "ecosystem_specific"):
            found = where.get(section)
            word = found.get("severity") if isinstance(found, Mapping) else None
            if isinstance(word, str) and word.strip().lower() in _WORDS:
                return _WORDS[word.strip().lower()]
    worst = "unknown"
    for where in (doc, entry or {}):
        scores = where.get("severity")
        for item in scores[:20] if isinstance(scores, list) else ():
            if isinstance(item, Mapping):
                level = _cvss_level(str(item.get("type")), item.get("score"))
                if _RANK[level] < _RANK[worst]:
                    worst = level
    return worst


def _malicious(doc: Mapping[str, Any]) -> bool:
    aliases = doc.get("aliases")
    names = [doc.get("id"), *(aliases[:MAX_ALIASES] if isinstance(aliases, list) else ())]
    return any(isinstance(n, str) and n.startswith("MAL-") for n in names)


def _cvss_level(kind: str, score: Any) -> str:
    if not isinstance(score, str) or len(score) > 300:
        return "unknown"
    if kind == "Ubuntu":
        return _WORDS.get(score.strip().lower(), "unknown")
    try:
        import cvss  # type: ignore[import-untyped]
    except ImportError:  # the governance extra is missing: the vector is not read
        return "unknown"
    try:
        if kind == "CVSS_V4":
            return _WORDS.get(str(cvss.CVSS4(score).severity).lower(), "unknown")
        if kind == "CVSS_V3":
            return _WORDS.get(str(cvss.CVSS3(score).severities()[0]).lower(), "unknown")
        if kind == "CVSS_V2":
            base = float(cvss.CVSS2(score).scores()[0])
            return "high" if base >= 7 else "medium" if base >= 4 else "low"
    except (cvss.CVSSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "unknown"
    return "unknown"


def _ids(doc: Mapping[str, Any]) -> tuple[str, ...]:
    aliases = doc.get("aliases")
    return tuple(a for a in (aliases[:MAX_ALIASES] if isinstance(aliases, list) else ()) if is_osv_id(a))


def _summary(doc: Mapping[str, Any]) -> str:
    text = doc.get("summary") or doc.get("details") or ""
    line = str(text)[:MAX_SUMMARY * 20].strip().splitlines()[0] if str(text).strip() else ""
    return clean_text(line, MAX_SUMMARY)


def match(pkg: Package, doc: Mapping[str, Any], *, listed: bool = False) -> Finding | None:
    """The finding ``doc`` makes for ``pkg``, or None when it does not affect it (or was withdrawn).
    ``listed``: a source that matched already (the OSV API) said it does: the finding stands even where the
    ranges cannot be evaluated here, with what the advisory says of fixes and severity."""
    if doc.get("withdrawn"):
        return None
    hit, fixed, chosen = False, [], None
    for entry in doc.get("affected") or ():
        if not isinstance(entry, Mapping):
            continue
        affects, entry_fixed = _entry_affects(entry, pkg)
        if affects or (listed and entry_fixed and chosen is None):
            hit = hit or affects
            fixed += entry_fixed
            chosen = chosen or entry
    if not hit and not listed:
        return None
    return Finding(clean_text(doc["id"], 120), _ids(doc), clean_text(pkg.name), clean_text(pkg.version),
                   clean_text(pkg.ecosystem, 64), severity_of(doc, chosen),
                   tuple(sorted(set(fixed), key=str)[:50]), _summary(doc))


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per vulnerability and package: advisories that name each other (a PYSEC and its GHSA alias)
    become one, with the worst known severity, every alias and every fixed version."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.ecosystem, f.package, f.version, not f.id.startswith("GHSA-"), f.id)):
        names = {f.id, *f.aliases}
        for i, k in enumerate(kept):
            if (k.ecosystem, k.package, k.version) == (f.ecosystem, f.package, f.version) \
                    and names & {k.id, *k.aliases}:
                severity = k.severity if _RANK[k.severity] <= _RANK[f.severity] else f.severity
                aliases = tuple(sorted({*k.aliases, *names} - {k.id}))
                kept[i] = Finding(k.id, aliases, k.package, k.version, k.ecosystem, severity,
                                  tuple(sorted({*k.fixed, *f.fixed})), k.summary or f.summary)
                break
        else:
            kept.append(f)
    return sorted(kept, key=lambda f: (_RANK[f.severity], f.package, f.id))


@dataclass
class Index:
    """Advisories filed by (ecosystem folder, package name): a scan looks up each package once."""

    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict)

    def add(self, doc: Mapping[str, Any]) -> None:
        for key in affected_keys(doc):
            self.by_key.setdefault(key, []).append(doc)

    def scan(self, packages: Iterable[Package]) -> list[Finding]:
        found = []
        for pkg in packages:
            for doc in self.by_key.get(pkg.key, ()):
                finding = match(pkg, doc)
                if finding is not None:
                    found.append(finding)
        return merge(found)


# --- waivers -------------------------------------------------------------------------------------------------

MAX_WAIVER_DAYS = 366  # "at most a year ahead", a leap year's day included


@dataclass(frozen=True, slots=True)
class Waiver:
    id: str
    reason: str
    expires: date
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason, "expires": self.expires.isoformat(), "by": self.by}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Waiver:
        """A waiver from a stored record (untrusted): a ValueError when it is not that shape."""
        if not is_osv_id(body.get("id")) or not isinstance(body.get("reason"), str):
            raise ValueError("not a waiver record")
        return cls(str(body["id"]), str(body["reason"])[:500], parse_expiry(str(body.get("expires"))),
                   str(body.get("by") or "")[:200])


def parse_expiry(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
        raise ValueError(f"{text[:40]!r} is not a date: write YYYY-MM-DD")
    return date.fromisoformat(text)


def check_expiry(text: str, today: date) -> date:
    """A waiver's expiry: a YYYY-MM-DD date after ``today`` and at most a year ahead (a ValueError otherwise)."""
    when = parse_expiry(text)
    if when <= today:
        raise ValueError(f"--expires {text} is not in the future (today is {today.isoformat()})")
    if (when - today).days > MAX_WAIVER_DAYS:
        raise ValueError(f"--expires {text} is more than a year ahead: a waiver is looked at again within a year")
    return when


def active_waiver(finding: Finding, waivers: Sequence[Waiver], today: date) -> Waiver | None:
    """The newest waiver of ``waivers`` (oldest first) naming ``finding`` (its id or an alias) that has not
    expired by ``today`` (a waiver holds through its expiry day)."""
    names = {finding.id, *finding.aliases}
    for waiver in reversed(waivers):
        if waiver.id in names and waiver.expires >= today:
            return waiver
    return None
