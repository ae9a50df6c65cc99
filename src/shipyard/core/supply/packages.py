"""The packages an SBOM names, and the OS packages a Debian or Ubuntu image holds, as OSV packages (no I/O).

``dpkg_status`` reads ``/var/lib/dpkg/status`` (the text, read by an adapter within a bound); ``os_release``
reads ``/etc/os-release``; ``packages_of`` reads the purls of a CycloneDX document back (``pkg:pypi/…`` and
``pkg:deb/…``), so a scan works from the stored SBOM alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.core.supply.osv import Package

MAX_DPKG_PACKAGES = 50_000
MAX_FIELD_CHARS = 4096
_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}")
_DEB_VERSION = re.compile(r"[A-Za-z0-9.+~:-]{1,200}")
_DISTRO = re.compile(r"(debian|ubuntu)-([0-9][0-9.]{0,9})")


@dataclass(frozen=True, slots=True)
class DebPackage:
    name: str
    version: str
    arch: str
    source: str  # the source package OSV's Debian advisories name (the binary's own name when it has none)
    source_version: str


def dpkg_status(text: str) -> list[DebPackage]:
    """The installed packages of a dpkg status file (paragraphs of ``Field: value``; ``Status`` ending in
    ``installed``), sorted by name. Lines that are not fields, packages with malformed names or versions,
    and paragraphs beyond ``MAX_DPKG_PACKAGES`` are skipped: the file came out of an image someone built."""
    found: dict[tuple[str, str], DebPackage] = {}
    for paragraph in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        if len(found) >= MAX_DPKG_PACKAGES:
            break
        fields: dict[str, str] = {}
        for line in paragraph.split("\n"):
            if not line or line[0] in " \t#" or ":" not in line:
                continue  # a continuation line (Description, Conffiles) or junk
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()[:MAX_FIELD_CHARS]
        name, version = fields.get("package", ""), fields.get("version", "")
        status = fields.get("status", "install ok installed").split()
        if not status or status[-1] != "installed":
            continue
        if not _DEB_NAME.fullmatch(name) or not _DEB_VERSION.fullmatch(version):
            continue
        source, source_version = name, version
        m = re.fullmatch(r"([a-z0-9][a-z0-9+.-]{0,127})(?:\s+\(([A-Za-z0-9.+~:-]{1,200})\))?",
                         fields.get("source", ""))
        if m:
            source, source_version = m.group(1), m.group(2) or version
        arch = fields.get("architecture", "")
        found[(name, arch)] = DebPackage(name, version, arch if re.fullmatch(r"[a-z0-9-]{1,32}", arch) else "",
                                         source, source_version)
    return sorted(found.values(), key=lambda p: (p.name, p.arch))


def os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict (``ID``, ``VERSION_ID`` ...), quotes removed; junk lines skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]{0,63})=(.{0,400})", line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip().strip("\"'")
    return out


def distro_of(release: Mapping[str, str]) -> str | None:
    """The purl ``distro`` qualifier of a Debian or Ubuntu release: ``debian-12``, ``ubuntu-22.04``; None
    for another (or an unreadable) one."""
    ident, version = release.get("ID", "").lower(), release.get("VERSION_ID", "")
    distro = f"{ident}-{version}"
    return distro if _DISTRO.fullmatch(distro) else None


def deb_ecosystem(distro: str | None) -> str | None:
    """``debian-12`` -> ``Debian:12``, ``ubuntu-22.04`` -> ``Ubuntu:22.04`` (OSV's ecosystem names)."""
    m = _DISTRO.fullmatch(distro or "")
    if m is None:
        return None
    return f"{m.group(1).capitalize()}:{m.group(2)}"


MAX_COMPONENTS = 200_000


def _components(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every component of ``document``, nested ones (an image's OS packages) and the subject's (an image with no
    model) included, within a bound."""
    out: list[Mapping[str, Any]] = []
    stack: list[tuple[Any, int]] = [(document.get("components"), 0)]
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("component"), Mapping):
        stack.append((metadata["component"].get("components"), 1))
    while stack and len(out) < MAX_COMPONENTS:
        items, depth = stack.pop()
        if not isinstance(items, list) or depth > 8:
            continue
        for comp in items[:MAX_COMPONENTS]:
            if isinstance(comp, Mapping):
                out.append(comp)
                stack.append((comp.get("components"), depth + 1))
    return out


def packages_of(document: Mapping[str, Any]) -> tuple[list[Package], int]:
    """The OSV packages of a CycloneDX document's components (each by its purl), and how many components had
    no purl Shipyard can scan (another type, a malformed one)."""
    from packageurl import PackageURL

    out: list[Package] = []
    skipped = 0
    for comp in _components(document):
        purl = comp.get("purl")
        if not isinstance(purl, str):
            continue
        try:
            p = PackageURL.from_string(purl)
        except ValueError:
            skipped += 1
            continue
        quals = p.qualifiers if isinstance(p.qualifiers, dict) else {}
        if p.type == "pypi" and p.version:
            out.append(Package("PyPI", p.name, p.version))
        elif p.type == "deb" and p.version:
            ecosystem = deb_ecosystem(str(quals.get("distro", "")))
            if ecosystem is None:
                skipped += 1
                continue
            name, version = p.name, p.version
            upstream = str(quals.get("upstream", ""))
            if upstream:
                name, _, version = upstream.partition("@")
                version = version or p.version
            out.append(Package(ecosystem, name, version))
        else:
            skipped += 1
    return out, skipped
