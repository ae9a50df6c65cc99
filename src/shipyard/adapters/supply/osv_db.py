"""An offline OSV database: a folder in the format of OSV's per-ecosystem exports
(``gs://osv-vulnerabilities/<ECOSYSTEM>/all.zip``): ``DIR/PyPI/all.zip`` holding ``<ID>.json`` advisories, or
``DIR/PyPI/*.json``.

The files are untrusted input: nothing is extracted to disk, each advisory is read within
``MAX_ADVISORY_BYTES`` whatever its zip header claims (a zip bomb stops there and is skipped, said in the
scan's errors), the whole database within ``MAX_TOTAL_BYTES``, and a malformed advisory is skipped and counted.
The first scan of a database reads every advisory once to index them by package name; the index is kept in
memory and, with a cache folder, on disk (keyed by the files' size and mtime), so later scans read only the
advisories of the packages they look at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shipyard.core.supply.osv import Finding, Package, affected_keys, check_advisory, match, merge
from shipyard.errors import BackendUnavailableError, InvalidInputError

MAX_ADVISORY_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
MAX_MEMBERS = 2_000_000
MAX_INDEX_BYTES = 512 * 1024 * 1024
MAX_ERRORS_SHOWN = 5
MEMO_SOURCES = 8
INDEX_VERSION = 1
_ECOSYSTEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_ -]{0,63}")
_MEMBER = re.compile(r"[^\x00-\x1f]{1,300}\.json")

# (source file or folder, its signature) -> {package name: [member names]}
_MEMO: dict[tuple[str, str], dict[str, list[str]]] = {}


class _Problems:
    """What went wrong reading the database: a few messages in full, the rest counted."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.shown) < MAX_ERRORS_SHOWN:
            self.shown.append(text)
        else:
            self.more += 1

    def lines(self) -> list[str]:
        return self.shown + ([f"and {self.more} more advisories skipped the same way"] if self.more else [])


class _Source:
    """One ecosystem's advisories: an all.zip or a folder of .json files."""

    def __init__(self, path: Path, problems: _Problems) -> None:
        self.path = path
        self.problems = problems
        self.total = 0
        self.zip: zipfile.ZipFile | None = None

    def __enter__(self) -> _Source:
        if self.path.is_file():
            try:
                self.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise BackendUnavailableError(f"the offline OSV database {self.path} is not a readable zip "
                                              f"({exc})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zip is not None:
            self.zip.close()

    def signature(self) -> str:
        if self.zip is not None:
            st = self.path.stat()
            return f"zip:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        h = hashlib.sha256()
        for name in self.names():
            with contextlib.suppress(OSError):
                st = (self.path / name).stat()
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"dir:{h.hexdigest()}"

    def names(self) -> list[str]:
        if self.zip is not None:
            infos = self.zip.infolist()
            if len(infos) > MAX_MEMBERS:
                raise BackendUnavailableError(f"{self.path} holds {len(infos)} entries: more than {MAX_MEMBERS}, "
                                              "not an OSV export")
            return [i.filename for i in infos if _MEMBER.fullmatch(i.filename) and not i.is_dir()]
        with os.scandir(self.path) as it:
            return sorted(e.name for e in it if _MEMBER.fullmatch(e.name) and e.is_file(follow_symlinks=False))

    def read(self, name: str) -> dict[str, Any] | None:
        """One advisory, checked; None (and a problem noted) when it is too large, malformed or unreadable."""
        try:
            if self.zip is not None:
                info = self.zip.getinfo(name)
                if info.file_size > MAX_ADVISORY_BYTES:
                    self.problems.add(f"{self.path.name}: {name[:80]} declares {info.file_size} bytes, more than "
                                      f"{MAX_ADVISORY_BYTES // 1024 // 1024} MiB: skipped")
                    return None
                with self.zip.open(info) as f:
                    raw = f.read(MAX_ADVISORY_BYTES + 1)
            else:
                with open(self.path / name, "rb") as f:
                    raw = f.read(MAX_ADVISORY_BYTES + 1)
        except (OSError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError,
                ValueError) as exc:
            self.problems.add(f"{name[:80]}: unreadable ({str(exc)[:120]}): skipped")
            return None
        self.total += len(raw)
        if len(raw) > MAX_ADVISORY_BYTES:
            self.problems.add(f"{name[:80]} inflates past {MAX_ADVISORY_BYTES // 1024 // 1024} MiB (a zip bomb, or "
                              "not an advisory): skipped")
            return None
        if self.total > MAX_TOTAL_BYTES:
            raise BackendUnavailableError(f"the offline OSV database {self.path} holds more than "
                                          f"{MAX_TOTAL_BYTES // 1024 ** 3} GiB of advisories: refused")
        try:
            return check_advisory(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            self.problems.add(f"{name[:80]}: not an OSV advisory ({str(exc)[:120]}): skipped")
            return None


def _holds_export(folder: Path) -> bool:
    """``folder`` is one ecosystem's export: an all.zip, or at least one ``.json`` advisory."""
    if (folder / "all.zip").is_file():
        return True
    try:
        with os.scandir(folder) as it:
            return any(_MEMBER.fullmatch(e.name) and e.is_file(follow_symlinks=False) for e in it)
    except OSError:
        return False


def check_database(folder: Path, option: str = "--db") -> None:
    """A usage error (InvalidInputError, one line) unless ``folder`` is a folder holding at least one
    ecosystem's export (``<Ecosystem>/all.zip`` or ``<Ecosystem>/*.json``): a path typed wrong must not be
    asked, and its "not checked" must not be recorded."""
    expected = "give the folder of OSV exports that holds PyPI/all.zip (or PyPI/*.json)"
    if not folder.exists():
        raise InvalidInputError(f"{option} {folder}: no such folder; {expected}")
    if not folder.is_dir():
        raise InvalidInputError(f"{option} {folder} is a file, not a folder; {expected}")
    try:
        with os.scandir(folder) as it:
            ecosystems = [Path(e.path) for e in it if _ECOSYSTEM.fullmatch(e.name) and e.name not in (".", "..")
                          and e.is_dir(follow_symlinks=False)]
    except OSError as exc:
        raise InvalidInputError(f"{option} {folder}: cannot list it ({exc.strerror or exc}); {expected}") from None
    if any(_holds_export(eco) for eco in ecosystems):
        return
    if _holds_export(folder):
        raise InvalidInputError(f"{option} {folder} is one ecosystem's export: give the folder that holds "
                                f"{folder.name}/ ({folder.parent})")
    raise InvalidInputError(f"{option} {folder} holds no OSV export (no <Ecosystem>/all.zip or "
                            f"<Ecosystem>/*.json); {expected}")


class OfflineDb:
    """The OSV source behind ``--db DIR`` (or ``scan.db``)."""

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        self.folder = folder
        self.cache_dir = cache_dir

    @property
    def label(self) -> str:
        return f"offline:{self.folder}"

    def scan(self, packages: Iterable[Package]) -> tuple[list[Finding], list[str]]:
        """The findings for ``packages``, and what could not be read. A BackendUnavailableError when the folder
        is not a database, or holds nothing for an ecosystem among ``packages`` (no folder, or one with no advisory
        at all: an empty folder or zip answers nothing, so those packages were not checked, never "clean")."""
        if not self.folder.is_dir():
            raise BackendUnavailableError(f"the offline OSV database {self.folder} is not a folder")
        by_eco: dict[str, list[Package]] = {}
        for pkg in set(packages):
            by_eco.setdefault(pkg.key[0], []).append(pkg)
        problems = _Problems()
        found: list[Finding] = []
        missing = []
        empty = []
        for eco, pkgs in sorted(by_eco.items()):
            path = self._path(eco)
            if path is None:
                missing.append(f"{len(pkgs)} {eco} package{'s' if len(pkgs) != 1 else ''}")
                continue
            with _Source(path, problems) as source:
                index = self._index(source)
                if not index:  # an empty folder or zip (or one of unreadable files) answers nothing: not checked
                    empty.append(eco)
                    continue
                for pkg in pkgs:
                    for name in index.get(pkg.key[1], ()):
                        doc = source.read(name)
                        finding = match(pkg, doc) if doc is not None else None
                        if finding is not None:
                            found.append(finding)
        reasons = [f"{self.folder} holds no {eco} advisories" for eco in empty]
        if missing:
            reasons.insert(0, f"the offline OSV database {self.folder} has no advisories for "
                              f"{', '.join(missing)} (no {'/'.join(m.split()[1] for m in missing)} "
                              "folder with all.zip or .json files)")
        if reasons:
            raise BackendUnavailableError("; ".join(reasons + problems.lines()[:2]))
        return merge(found), problems.lines()

    def _path(self, eco: str) -> Path | None:
        if not _ECOSYSTEM.fullmatch(eco) or eco in (".", ".."):
            return None
        folder = self.folder / eco
        if (folder / "all.zip").is_file():
            return folder / "all.zip"
        if folder.is_dir() and not folder.is_symlink():
            return folder
        return None

    def _index(self, source: _Source) -> dict[str, list[str]]:
        memo_key = (str(source.path.resolve()), source.signature())
        if memo_key in _MEMO:
            return _MEMO[memo_key]
        index = self._load_index(memo_key)
        if index is None:
            index = {}
            for name in source.names():
                doc = source.read(name)
                for _, pkg_name in affected_keys(doc) if doc is not None else ():
                    index.setdefault(pkg_name, []).append(name)
            self._save_index(memo_key, index)
        while len(_MEMO) >= MEMO_SOURCES:  # a few ecosystems' indexes stay in memory, the oldest goes first
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[memo_key] = index
        return index

    def _index_file(self, key: tuple[str, str]) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"osv-index-{hashlib.sha256(key[0].encode()).hexdigest()[:24]}.json"

    def _load_index(self, key: tuple[str, str]) -> dict[str, list[str]] | None:
        path = self._index_file(key)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_INDEX_BYTES + 1)
            body = json.loads(raw) if len(raw) <= MAX_INDEX_BYTES else None
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(body, dict) or body.get("version") != INDEX_VERSION or body.get("source") != list(key):
            return None
        names = body.get("names")
        if not isinstance(names, dict) or not all(isinstance(v, list) and all(isinstance(m, str) for m in v)
                                                  for v in names.values()):
            return None
        return names

    def _save_index(self, key: tuple[str, str], index: dict[str, list[str]]) -> None:
        path = self._index_file(key)
        if path is None:
            return
        from shipyard.core.workspace.atomic import write_atomic

        with contextlib.suppress(OSError):
            write_atomic(path, json.dumps({"version": INDEX_VERSION, "source": list(key), "names": index}).encode())


def iter_advisories(folder: Path, ecosystem: str) -> Iterator[dict[str, Any]]:
    """Every readable advisory of one ecosystem of the database (for tools and tests)."""
    path = OfflineDb(folder)._path(ecosystem)
    if path is None:
        return
    with _Source(path, _Problems()) as source:
        for name in source.names():
            doc = source.read(name)
            if doc is not None:
                yield doc
