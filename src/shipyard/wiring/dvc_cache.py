"""DVC's cache and workspace read for ``shipyard init --from-dvc``: each file DVC recorded, its md5 checked as it
is read, copied into Shipyard's store (see ``shipyard.wiring.from_dvc``)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.project.from_dvc import BadDvcFile, DvcOut, Report, parse_dir_listing
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.lockfile import PathEntry
from shipyard.core.workspace.scan import IGNORED_NAMES
from shipyard.errors import BackendUnavailableError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.adapters.remotes.dvc_http import DvcHttpRemote

SMALL = 1024 * 1024  # read whole; larger files stream
BATCH = 50_000  # files copied into the store together share one durability barrier (paths only are kept)
MAX_LISTING_BYTES = 64 * 1024 * 1024  # a .dir object of about 500,000 files; larger is not read
MAX_EXTRA_FOLDERS = 10_000  # folders (empty ones, say) a dependency's walk takes beyond one per listed file
MAX_UNSIZED = 64 * 1024 ** 3  # a file fetched from DVC's HTTP remote whose size DVC did not record: at most this


class Importer:
    """Copies what DVC recorded into the store, from the workspace where it is intact, else from DVC's
    cache; every file's md5 is checked against DVC's record as it is read."""

    def __init__(self, ws: Workspace, cache: Path, report: Report, remote: DvcHttpRemote | None = None,
                 keep_md5: bool = False) -> None:
        """``remote``: DVC's HTTP remote, where what is in neither the workspace nor the cache is fetched from;
        ``keep_md5``: record DVC's md5 in each entry (``PathEntry.dvc_md5``), so a DVC HTTP remote serves it."""
        self.ws = ws
        self.cache = cache
        self.report = report
        self.remote = remote
        self.keep_md5 = keep_md5
        self._scratch: Path | None = None  # files fetched from the remote wait here for ``flush``
        self._fetched = 0
        self.known: dict[str, PathEntry] = {}
        self.md5s: dict[str, str] = {}  # path -> the md5 DVC recorded for what was carried over
        self.remembered: list[tuple[str, int, int, int, Digest]] = []  # workspace files, for the stat cache
        self._pending: dict[Digest, str] = {}  # checked files to copy into the store, by digest
        self._safe_folders: set[str] = {""}
        self._origins: set[str] = set()  # where the current output's files came from
        self._root, self._cache = str(ws.root), str(cache)  # plain strings on the per-file paths

    # -- outputs --------------------------------------------------------------------------------
    def take(self, out: DvcOut) -> PathEntry | None:
        if out.path in self.known:
            return self.known[out.path] if self.md5s.get(out.path) == out.md5 else None
        if out.md5 is None:
            self.report.skip(out.path, "DVC recorded no hash for it")
            return None
        self._origins = set()
        try:
            entry = self._folder(out) if out.is_dir else self._file(out)
        except (ShipyardError, BadDvcFile, OSError) as exc:
            self.report.skip(out.path, str(exc))
            return None
        if entry is not None:
            if self.keep_md5 and not out.legacy:
                entry = dataclasses.replace(entry, dvc_md5=out.md5 + (".dir" if out.is_dir else ""))
            elif self.keep_md5:  # DVC 2's md5 (text hashed with CRLF as LF), kept in its remote's older layout
                self.report.skip(f"{out.path} on DVC's HTTP remote", "recorded by DVC 2 (an older md5 and layout): "
                                 "it cannot be pulled from the HTTP remote; `shipyard data push` it to a folder or "
                                 "S3 remote")
            self.known[out.path] = entry
            self.md5s[out.path] = out.md5
            self.report.data[out.path] = " and ".join(sorted(self._origins)) or "workspace"
        return entry

    def _file(self, out: DvcOut) -> PathEntry | None:
        assert out.md5 is not None
        got = self._one(out.path, out.md5, out.legacy, out.cached, size=out.size)
        if got is None:
            return None
        digest, size, _ = got
        return PathEntry(digest, size)

    def _folder(self, out: DvcOut) -> PathEntry | None:
        listing = self._listing(out)
        if listing is None:
            where = "DVC's cache nor its HTTP remote" if self.remote is not None else "DVC's cache"
            self.report.skip(out.path, f"its file list (.dir) is not in {where}: `dvc fetch` it, then convert again")
            return None
        entries = []
        skipped = 0
        # DVC 3's .dir lists no sizes: a file fetched from the HTTP remote gets at most what is left of the
        # folder's recorded size (a hostile server could otherwise stream MAX_UNSIZED bytes per file)
        left = out.size
        for item in listing:
            if IGNORED_NAMES & set(item.relpath.split("/")):
                skipped += 1
                continue
            bound = item.size if left is None else left if item.size is None else min(item.size, left)
            got = self._one(f"{out.path}/{item.relpath}", item.md5, out.legacy, out.cached, item.executable,
                            bound)
            if got is None:
                return None
            digest, size, mode = got
            if left is not None:
                left = max(0, left - size)
            entries.append(ManifestEntry(item.relpath, digest, size, mode))
        if skipped:
            self.report.skip(out.path, f"{skipped} file(s) under names Shipyard never tracks (.git, __pycache__, "
                                       ".DS_Store, .shipyard) were left out")
        manifest = Manifest.of(entries)
        digest = self.ws.store.put_bytes(manifest.to_bytes())
        return PathEntry(digest, manifest.size, len(entries))

    def _listing(self, out: DvcOut) -> list[Any] | None:
        key = out.cache_key()
        if key is None:
            return None
        raw = read_file(self.cache / key, MAX_LISTING_BYTES)
        where = "in DVC's cache"
        if raw is None and self.remote is not None and out.md5 is not None and not out.legacy:
            try:
                raw = b"".join(self.remote.fetch_md5(out.md5 + ".dir", MAX_LISTING_BYTES))
            except NotFoundError:
                return None
            except BackendUnavailableError as exc:
                self.report.skip(f"remote {self.remote.name}", f"{exc}: nothing more is fetched from it")
                self.remote = None
                return None
            except ShipyardError as exc:  # more than a listing holds, say
                raise BadDvcFile(str(exc)) from None
            where = "on DVC's HTTP remote"
            self._origins.add("DVC's HTTP remote")
        if raw is None:
            return None
        if hashlib.md5(raw).hexdigest() != out.md5:
            raise BadDvcFile(f"its file list {where} ({key}) is corrupt (md5 mismatch)")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadDvcFile(f"its file list {where} ({key}) is not JSON") from None
        return parse_dir_listing(body, f"{out.path}'s file list")

    def _one(self, rel: str, md5: str, legacy: bool, cached: bool,
             executable: bool = False, size: int | None = None) -> tuple[Digest, int, int] | None:
        """Store the version of ``rel`` DVC recorded as ``md5``: (digest, size, mode), or None (reported)."""
        fd = self._workspace_fd(rel)
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                got = self._store(f, f"{self._root}/{rel}", md5, legacy)
            if got is not None:
                self._origins.add("workspace")
                self.remembered.append((f"{self._root}/{rel}", st.st_ino, st.st_size, st.st_mtime_ns, got))
                return got, st.st_size, 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            self._origins.add("DVC's cache (the workspace copy differs: `shipyard data status` shows it)")
        name = f"{md5[:2]}/{md5[2:]}" if legacy else f"files/md5/{md5[:2]}/{md5[2:]}"
        fd = _open_regular(f"{self._cache}/{name}") if cached else None
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                got = self._store(f, f"{self._cache}/{name}", md5, legacy)
            if got is None:
                raise BadDvcFile(f"{rel}: DVC's cache copy ({name}) is corrupt (its md5 is not the one DVC "
                                 "recorded); nothing of it was stored")
            self._origins.add("DVC's cache")
            return got, size, 0o755 if executable else 0o644
        if cached and not legacy and self.remote is not None:
            fetched = self._fetch(rel, md5, size)
            if fetched is not None:
                self._origins.add("DVC's HTTP remote")
                return fetched[0], fetched[1], 0o755 if executable else 0o644
        where = "neither in the workspace nor in DVC's cache" if cached else "not in the workspace (cache: false)"
        if cached and not legacy and self.remote is not None:
            where = "in neither the workspace, DVC's cache nor its HTTP remote"
        raise BadDvcFile(f"{rel}: the version DVC recorded is {where}: `dvc pull` it, then convert again")

    def _fetch(self, rel: str, md5: str, size: int | None) -> tuple[Digest, int] | None:
        """Fetch the version of ``rel`` DVC recorded as ``md5`` from DVC's HTTP remote into a scratch file (at
        most its recorded size), its md5 checked as it streams: (digest, size) queued for the store; None if the
        remote does not have it; BadDvcFile if what it serves is not that version (nothing stored)."""
        assert self.remote is not None
        if self._scratch is None:
            home = self.ws.root / ".shipyard"
            self._scratch = Path(tempfile.mkdtemp(prefix="from-dvc-", dir=home if home.is_dir() else None))
        self._fetched += 1
        path = self._scratch / str(self._fetched)
        h, sha, got = hashlib.md5(), hashlib.sha256(), 0
        try:
            with open(path, "xb") as out:
                for chunk in self.remote.fetch_md5(md5, MAX_UNSIZED if size is None else size):
                    h.update(chunk)
                    sha.update(chunk)
                    got += len(chunk)
                    out.write(chunk)
        except NotFoundError:
            path.unlink(missing_ok=True)
            return None
        except BackendUnavailableError as exc:  # said once; the rest is reported as not found
            path.unlink(missing_ok=True)
            self.report.skip(f"remote {self.remote.name}", f"{exc}: nothing more is fetched from it")
            self.remote = None
            return None
        except ShipyardError as exc:
            path.unlink(missing_ok=True)
            raise BadDvcFile(f"{rel}: {exc}") from None
        if h.hexdigest() != md5:
            path.unlink(missing_ok=True)
            raise BadDvcFile(f"{rel}: DVC's HTTP remote serves bytes whose md5 is not the one DVC recorded; nothing "
                             "of it was stored")
        digest = Digest.trusted(sha.hexdigest())
        if digest in self._pending:
            path.unlink()
        else:
            self._pending[digest] = str(path)
            if len(self._pending) >= BATCH:
                self.flush()
        return digest, got

    def close(self) -> None:
        """Remove what was fetched from DVC's HTTP remote and not stored (a failed conversion)."""
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _store(self, f: Any, path: str, md5: str, legacy: bool) -> Digest | None:
        """Hash ``f`` (md5 and SHA-256 in one pass); if its md5 is ``md5``, queue ``path`` for the store (which
        re-hashes it as it copies: a file changed meanwhile is refused) and return its digest, else None."""
        data = f.read(SMALL + 1)
        if len(data) <= SMALL:
            if hashlib.md5(data).hexdigest() != md5 and not (
                    legacy and hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest() == md5):
                return None
            digest = Digest.of_bytes(data)
        else:
            raw, text, sha = hashlib.md5(), hashlib.md5(), hashlib.sha256()
            carry = b""
            for chunk in _chunks(f, data):
                raw.update(chunk)
                sha.update(chunk)
                if legacy:
                    chunk = carry + chunk
                    carry = b"\r" if chunk.endswith(b"\r") else b""
                    text.update((chunk[:-1] if carry else chunk).replace(b"\r\n", b"\n"))
            text.update(carry)
            if raw.hexdigest() != md5 and not (legacy and text.hexdigest() == md5):
                return None
            digest = Digest.trusted(sha.hexdigest())
        if digest not in self._pending:  # one already stored costs one stat in put_many (``known``)
            self._pending[digest] = path
            if len(self._pending) >= BATCH:
                self.flush()
        return digest

    def flush(self) -> None:
        """Copy the queued files into the store (one durability barrier for the batch)."""
        if self._pending:
            digests = list(self._pending)
            self.ws.store.put_many(list(self._pending.values()), known=digests, expect=digests)
        if self._scratch is not None:  # fetched files: stored now
            for path in self._pending.values():
                if path.startswith(f"{self._scratch}/"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        self._pending.clear()

    # -- dependencies ---------------------------------------------------------------------------
    def unchanged(self, dep: DvcOut) -> bool:
        """Whether ``dep`` (a dvc.lock dependency) is still what DVC recorded."""
        return self.changed(dep) is None

    def changed(self, dep: DvcOut) -> str | None:
        """Why ``dep`` (a dvc.lock dependency) is not what DVC recorded, or cannot be checked; None if it is.
        No symbolic link is followed, and the work is bounded by what dvc.lock records: a folder's walk stops
        at the first name its listing does not hold (or at ``MAX_EXTRA_FOLDERS`` folders more than it needs),
        and a file whose size is not the recorded one is not read."""
        if dep.md5 is None:
            return "dvc.lock records no hash for it"
        if dep.path in self.md5s:
            return None if self.md5s[dep.path] == dep.md5 else "changed since dvc.lock"
        link = self._link_on_the_way(dep.path)
        if link is not None:
            return link
        if not dep.is_dir:
            return None if self._md5_of(dep.path, dep.size) == dep.md5 else "changed since dvc.lock"
        try:
            listing = self._listing(dep)
        except (BadDvcFile, OSError):  # a damaged file list: the stage runs again
            return "its file list (.dir) in DVC's cache cannot be read"
        if listing is None:
            return "its file list (.dir) is not in DVC's cache"
        top = f"{self._root}/{dep.path}"
        try:
            if not stat.S_ISDIR(os.lstat(top).st_mode):
                return "changed since dvc.lock (not a folder)"
        except OSError:
            return "not in the workspace"
        expected = {e.relpath: e for e in listing}
        folders_left = len(expected) + MAX_EXTRA_FOLDERS
        found = 0
        # os.walk lists a link to a folder among the folders and never enters it (followlinks=False)
        for folder, _, files in os.walk(top):
            folders_left -= 1
            if folders_left < 0:
                return f"holds more than {len(expected) + MAX_EXTRA_FOLDERS} folders: not checked further"
            for name in files:
                rel = os.path.relpath(os.path.join(folder, name), top).replace(os.sep, "/")
                if rel not in expected:
                    return f"changed since dvc.lock ({rel} is not in its file list)"
                found += 1
        if found != len(expected):
            return "changed since dvc.lock (files of its file list are missing)"
        for e in listing:
            if self._md5_of(f"{dep.path}/{e.relpath}", e.size) != e.md5:
                return f"changed since dvc.lock ({e.relpath} differs)"
        return None

    def _link_on_the_way(self, rel: str) -> str | None:
        """Why ``rel`` cannot be checked when it or a folder on its way is a symbolic link (never followed)."""
        done = ""
        for part in rel.split("/"):
            done = f"{done}/{part}" if done else part
            try:
                mode = os.lstat(f"{self._root}/{done}").st_mode
            except OSError:
                return None  # absent: the file checks say so
            if stat.S_ISLNK(mode):
                return f"{done} is a symbolic link, which Shipyard never follows: not checked"
        return None

    def _md5_of(self, rel: str, size: int | None = None) -> str | None:
        fd = self._workspace_fd(rel)
        if fd is None:
            return None
        h = hashlib.md5()
        with os.fdopen(fd, "rb") as f:
            if size is not None and os.fstat(f.fileno()).st_size != size:
                return None  # not the recorded version: not read
            for chunk in _chunks(f, b""):
                h.update(chunk)
        return h.hexdigest()

    def _workspace_fd(self, rel: str) -> int | None:
        """A descriptor on the workspace file ``rel`` if it is a regular file with no symbolic link on the way."""
        folder = rel.rpartition("/")[0]
        if folder not in self._safe_folders:
            done = ""
            for part in folder.split("/"):
                done = f"{done}/{part}" if done else part
                if done in self._safe_folders:
                    continue
                try:
                    if not stat.S_ISDIR(os.lstat(f"{self._root}/{done}").st_mode):
                        return None
                except OSError:
                    return None
                self._safe_folders.add(done)
        return _open_regular(f"{self._root}/{rel}", follow=False)


def _chunks(f: Any, head: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := f.read(size):
        yield chunk


def _open_regular(path: str | Path, follow: bool = True) -> int | None:
    """A descriptor on ``path`` if it is a regular file (never blocks on a FIFO), else None."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_file(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file (no link), at most ``limit``; None if absent or not a regular file;
    BadDvcFile if larger."""
    fd = _open_regular(path, follow=False)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise BadDvcFile(f"{path.name} is larger than {limit // 1024 // 1024} MiB: not read")
    return raw
