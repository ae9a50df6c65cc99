"""A DVC HTTP remote, read-only: the data ``shipyard init --from-dvc`` converted, pulled from where DVC pushed it.

DVC lays its remote out by md5 (``<url>/files/md5/ab/cdef...``; a folder is a ``.dir`` object, the JSON list of
its files' md5s and relative paths); Shipyard names objects by SHA-256 and a folder by its manifest's digest.
shipyard.lock keeps DVC's md5 of each converted entry (``PathEntry.dvc_md5``), and the wiring gives this remote
those entries, so:

- a file entry is one GET, streamed under its recorded size, re-hashed: accepted only if its SHA-256 is the
  lock's digest;
- a folder entry is its ``.dir`` listing (bounded, md5-checked, every path checked) and one GET per file
  (bounded by the lock's size and file count), each file md5-checked; the manifest is built as the converter
  builds it and accepted only if its digest is the lock's; then files and manifest enter the store;
- a file that a local manifest of such a folder names is found through that folder's listing (a partial pull).

Every body is untrusted: bounded reads, redirects only to http(s), timeouts. Pushing, refs, deleting and listing
are refused in one line: the remote is DVC's, and read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.artifacts.tree import load_manifest
from shipyard.core.project.from_dvc import MD5, BadDvcFile, DirEntry, parse_dir_listing
from shipyard.core.redact import mask_userinfo
from shipyard.core.workspace.lockfile import Lock, PathEntry
from shipyard.core.workspace.scan import IGNORED_NAMES
from shipyard.errors import BackendUnavailableError, ConfigError, IntegrityError, NotFoundError
from shipyard.ports import ObjectStore, Progress, no_progress

TIMEOUT = 30.0  # seconds a connection or a read may stall
CHUNK = 1024 * 1024
MAX_LISTING_BYTES = 64 * 1024 * 1024  # a .dir listing of about 500,000 files
LISTING_BYTES_PER_FILE = 4096  # a listing's entry is ~100 bytes: with the lock's file count, the bound of one
MAX_REDIRECTS = 5


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows at most MAX_REDIRECTS redirects, each to http(s) only (never file:, ftp: or data:)."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(req.full_url, code, "redirect to a URL that is not http(s) refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True, slots=True)
class _Found:
    """Where a file digest's bytes are on the remote (its md5) and its size, as a local manifest records it."""

    md5: str
    size: int


class DvcHttpRemote:
    """The DVC HTTP remote at ``url``; ``entries``: shipyard.lock's converted entries by digest (those with a
    ``dvc_md5``), called once on first use; ``local``: the local store, where folders' manifests are looked up
    for a partial pull (None: none); ``scratch``: where downloads wait to enter a store."""

    def __init__(self, url: str, name: str | None = None,
                 entries: Callable[[], Mapping[Digest, PathEntry]] | None = None,
                 local: Callable[[], ObjectStore | None] | None = None, scratch: Path | None = None) -> None:
        base = url.rstrip("/")
        what = f"remote {name!r}" if name else "a DVC HTTP remote"
        try:
            parts = urllib.parse.urlsplit(base)
            ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
            userinfo = parts.username is not None or parts.password is not None
            query = bool(parts.query or parts.fragment or "?" in base or "#" in base)
        except ValueError:  # a bad port, say
            ok, userinfo, query = False, False, False
        if not ok:
            shown = mask_userinfo(url.split("?", 1)[0].split("#", 1)[0])  # a query may hold a token: never shown
            raise ConfigError(f"{what}: {shown!r} is not an http(s) URL; a DVC HTTP remote (layout: dvc) is "
                              "http(s)://HOST/PATH")
        if userinfo:
            raise ConfigError(f"{what}: its URL {mask_userinfo(url)!r} holds a user name or password; Shipyard keeps "
                              "no credentials in shipyard.yaml: remove them from the URL")
        if query:  # a token may be there: never shown; the objects' paths would land inside it
            raise ConfigError(f"{what}: its URL holds a query string or fragment (after ? or #, where a token may "
                              "be); Shipyard reads a DVC HTTP remote without credentials, at http(s)://HOST/PATH: "
                              "remove them from the URL")
        self.base = base
        self.url = mask_userinfo(base)
        self.name = name
        self._entries_of = entries or dict
        self._local = local or (lambda: None)
        self._scratch = scratch
        self._guard = threading.Lock()
        self._entries: dict[Digest, PathEntry] | None = None
        self._listings: dict[str, list[DirEntry]] = {}
        self._files: dict[Digest, _Found] | None = None  # file digests found through local manifests
        self._opener = urllib.request.build_opener(_Redirects())

    # -- what it can serve ---------------------------------------------------------------------------------
    def _index(self) -> dict[Digest, PathEntry]:
        with self._guard:
            if self._entries is None:
                self._entries = {d: e for d, e in self._entries_of().items() if e.dvc_md5 is not None}
            return self._entries

    def _file_index(self) -> dict[Digest, _Found]:
        """File digests the local manifests of mapped folders name, with their md5 from the folder's listing
        (fetched once per folder, only when a file is asked for that is not itself mapped)."""
        with self._guard:
            if self._files is not None:
                return self._files
        found: dict[Digest, _Found] = {}
        store = self._local()
        for digest, entry in self._index().items():
            if not entry.is_dir or store is None or not store.has(digest):
                continue
            manifest = load_manifest(store, digest)
            md5s = {item.relpath: item.md5 for item in self._listing(entry)}
            for e in manifest:
                if e.path in md5s:
                    found.setdefault(e.digest, _Found(md5s[e.path], e.size))
        with self._guard:
            self._files = found
        return found

    def _where(self, digest: Digest) -> PathEntry | _Found | None:
        entry = self._index().get(digest)
        if entry is not None:
            return entry
        return self._file_index().get(digest)

    def missing(self, digests: Sequence[Digest]) -> list[Digest]:
        """Those of ``digests`` this remote cannot map to DVC's md5 (DVC pushed what it recorded: the others are
        taken to be there, and every download is checked)."""
        index = self._index()
        rest = [d for d in digests if d not in index]
        if not rest:
            return []
        files = self._file_index()
        return [d for d in rest if d not in files]

    def sizes(self, digests: Sequence[Digest]) -> dict[Digest, int]:
        """Nothing is reported present: a push then tries to send everything, and is refused (read-only)."""
        return {}

    def stats(self, digests: Sequence[Digest]) -> dict[Digest, tuple[int, float]]:
        out: dict[Digest, tuple[int, float]] = {}
        for d in digests:
            where = self._where(d)
            if isinstance(where, _Found) or (isinstance(where, PathEntry) and not where.is_dir):
                out[d] = (where.size, 0.0)
        return out

    # -- reading -----------------------------------------------------------------------------------------
    def read(self, digest: Digest) -> Iterator[bytes]:
        """A file's bytes as the remote serves them (the caller hashes them); a folder's manifest, built from its
        listing and files (which enter the local store as they are checked)."""
        where = self._where(digest)
        if where is None:
            raise NotFoundError(f"object {digest} is not on the DVC remote {self.url} (shipyard.lock records no DVC "
                                "md5 for it)")
        if isinstance(where, PathEntry) and where.is_dir:
            store = self._local()
            if store is None:
                raise NotFoundError(f"folder {digest} from the DVC remote {self.url} needs a local store")
            yield self._folder(digest, where, store)
            return
        md5 = where.dvc_md5 if isinstance(where, PathEntry) else where.md5
        assert md5 is not None
        yield from self.fetch_md5(md5, where.size)

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress,
                 sizes: Mapping[Digest, int] | None = None) -> None:
        for digest in digests:
            if store.has(digest):
                continue
            where = self._where(digest)
            if where is None:
                raise NotFoundError(f"object {digest} is not on the DVC remote {self.url} (shipyard.lock records no "
                                    "DVC md5 for it): push it to a folder or S3 remote from where it was made")
            if isinstance(where, PathEntry) and where.is_dir:
                store.put_bytes(self._folder(digest, where, store, progress))
                with self._guard:
                    self._files = None  # its files are now named by a local manifest
                continue
            md5 = where.dvc_md5 if isinstance(where, PathEntry) else where.md5
            assert md5 is not None
            most = where.size if sizes is None or digest not in sizes else min(where.size, sizes[digest])
            with self._scratch_dir() as tmp:
                path = tmp / "object"
                got, _, size = self._save(md5.removesuffix(".dir"), most, path)
                if got != digest:
                    raise IntegrityError(f"the DVC remote {self.url} serves files/md5/{md5[:2]}/{md5[2:]} with "
                                         f"bytes whose digest is {got}, not the {digest} shipyard.lock records: "
                                         "damaged or hostile, nothing was stored")
                store.put_file(path, expect=digest)
                progress(size)

    def fetch_md5(self, md5: str, most: int | None) -> Iterator[bytes]:
        """The bytes DVC keeps as ``md5`` (``....dir`` for a folder's listing), at most ``most`` (None: no bound
        beyond MAX_LISTING_BYTES for a listing); not checked here: the caller hashes them."""
        name = md5.removesuffix(".dir")
        if not MD5.fullmatch(name):
            raise IntegrityError(f"{md5!r} is not DVC's md5: nothing is fetched for it")
        if md5.endswith(".dir"):
            most = MAX_LISTING_BYTES if most is None else min(most, MAX_LISTING_BYTES)
        return self._get(f"files/md5/{md5[:2]}/{md5[2:]}", most)

    def listing(self, md5: str, files: int | None = None) -> list[DirEntry]:
        """A folder's ``.dir`` listing (``md5`` without ``.dir``), md5-checked, every path and md5 checked."""
        with self._guard:
            if md5 in self._listings:
                return self._listings[md5]
        most = MAX_LISTING_BYTES if files is None else min(MAX_LISTING_BYTES, 4096 + LISTING_BYTES_PER_FILE * files)
        raw = b"".join(self.fetch_md5(md5 + ".dir", most))
        where = f"files/md5/{md5[:2]}/{md5[2:]}.dir"
        if hashlib.md5(raw).hexdigest() != md5:
            raise IntegrityError(f"the DVC remote {self.url} serves {where} with bytes whose md5 is not its name: "
                                 "damaged or hostile, nothing was stored")
        try:
            items = parse_dir_listing(json.loads(raw), f"the DVC remote's {where}")
        except (ValueError, RecursionError) as exc:
            why = str(exc) if isinstance(exc, BadDvcFile) else "it is not JSON"
            raise IntegrityError(f"{why}; refused, nothing was stored") from None
        with self._guard:
            self._listings[md5] = items
        return items

    def _listing(self, entry: PathEntry) -> list[DirEntry]:
        assert entry.dvc_md5 is not None
        return self.listing(entry.dvc_md5.removesuffix(".dir"), entry.files)

    def _folder(self, digest: Digest, entry: PathEntry, store: ObjectStore, progress: Progress = no_progress) -> bytes:
        """A folder's files fetched (each md5-checked, in all at most the lock's size and file count) and its
        manifest built as the converter builds it: the manifest's bytes if its digest is ``digest`` (the files
        are then in ``store``), else IntegrityError (nothing stored)."""
        items = [i for i in self._listing(entry) if not IGNORED_NAMES & set(i.relpath.split("/"))]
        assert entry.files is not None
        if len(items) > entry.files:
            raise IntegrityError(f"the DVC remote {self.url} lists {len(items)} files for a folder shipyard.lock "
                                 f"records with {entry.files}: damaged or hostile, nothing was stored")
        left = entry.size
        with self._scratch_dir() as tmp:
            entries, paths = [], []
            for n, item in enumerate(items):
                path = tmp / str(n)
                digest_of, md5, size = self._save(item.md5, left, path)
                if md5 != item.md5:
                    raise IntegrityError(f"the DVC remote {self.url} serves {item.relpath} (files/md5/{item.md5[:2]}/"
                                         f"{item.md5[2:]}) with bytes whose md5 is not its name: damaged or hostile, "
                                         "nothing was stored")
                left -= size
                entries.append(ManifestEntry(item.relpath, digest_of, size, 0o755 if item.executable else 0o644))
                paths.append(str(path))
            manifest = Manifest.of(entries)
            raw = manifest.to_bytes()
            if Digest.of_bytes(raw) != digest:
                raise IntegrityError(f"the folder the DVC remote {self.url} serves as {entry.dvc_md5} is not the "
                                     f"version shipyard.lock records ({digest}): damaged or hostile, nothing was "
                                     "stored")
            if paths:
                store.put_many(paths, expect=[e.digest for e in entries], progress=progress)
        return raw

    def _save(self, md5: str, most: int, path: Path) -> tuple[Digest, str, int]:
        """Stream DVC's object ``md5`` (at most ``most`` bytes) into ``path``: (its digest, its md5, its size)."""
        sha, h, size = hashlib.sha256(), hashlib.md5(), 0
        with open(path, "xb") as out:
            for chunk in self.fetch_md5(md5, most):
                sha.update(chunk)
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return Digest.trusted(sha.hexdigest()), h.hexdigest(), size

    @contextlib.contextmanager
    def _scratch_dir(self) -> Iterator[Path]:
        if self._scratch is not None:
            self._scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dvc-http-", dir=self._scratch) as tmp:
            yield Path(tmp)

    def _get(self, rel: str, most: int | None) -> Iterator[bytes]:
        """GET ``<url>/<rel>``, streamed: more than ``most`` bytes is refused as soon as it shows."""
        url = f"{self.base}/{rel}"
        where = f"{self.url}/{rel}"
        try:
            response = self._opener.open(urllib.request.Request(url, headers={"Accept-Encoding": "identity"}),
                                         timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (403, 404, 410):
                raise NotFoundError(f"the DVC remote has no {where} (HTTP {exc.code}): `dvc push` it from where "
                                    "it was made") from None
            raise BackendUnavailableError(f"the DVC remote answered HTTP {exc.code} for {where}: "
                                          f"{_one_line(str(exc.reason))[:100]}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise BackendUnavailableError(f"the DVC remote {self.url} cannot be reached "
                                          f"({_one_line(str(why))[:120]}): check the URL and the network"
                                          ) from None
        with response:
            declared = response.headers.get("Content-Length")
            if most is not None and declared is not None and declared.isdigit() and int(declared) > most:
                raise IntegrityError(f"the DVC remote serves {where} with {declared} bytes where at most {most} "
                                     "are expected: damaged or hostile, nothing was stored")
            got = 0
            try:
                while chunk := response.read(CHUNK):
                    got += len(chunk)
                    if most is not None and got > most:
                        raise IntegrityError(f"the DVC remote serves {where} with more than the {most} bytes "
                                             "expected: damaged or hostile, nothing was stored")
                    yield chunk
            except (OSError, ValueError) as exc:
                raise BackendUnavailableError(f"reading {where} from the DVC remote failed "
                                              f"({_one_line(str(exc))[:120]})") from None

    # -- refused: the remote is DVC's ----------------------------------------------------------------------
    def _read_only(self) -> ConfigError:
        what = f"remote {self.name!r}" if self.name else f"remote {self.url}"
        return ConfigError(f"{what} is a DVC HTTP remote, read-only: nothing was sent or changed; push to a folder "
                           "or S3 remote (add one under remotes: in shipyard.yaml and pass --remote NAME)")

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress,
               replace: bool = True) -> None:
        raise self._read_only()

    def put_ref(self, name: str, data: bytes) -> None:
        raise self._read_only()

    def get_ref(self, name: str) -> bytes | None:
        return None  # DVC keeps no stage-cache refs

    def delete(self, digest: Digest) -> None:
        raise self._read_only()

    def clean_temp(self, older_than: float) -> int:
        raise self._read_only()

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        raise self._read_only()


def _one_line(text: str) -> str:
    """The server's text (a reason phrase) as one printable line: control characters become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def lock_entries(lock: Lock) -> dict[Digest, PathEntry]:
    """The entries of a ``Lock`` (data and stage outputs) that carry DVC's md5, by digest."""
    out: dict[Digest, PathEntry] = {}
    for entry in [*lock.data.values(), *(e for s in lock.stages.values() for e in s.outs.values())]:
        if entry.dvc_md5 is not None:
            out.setdefault(entry.digest, entry)
    return out


def scratch_of(root: Path) -> Path | None:
    """Where downloads wait: the project's .shipyard/ (the store's disk, usually), else the system's temp."""
    home = root / ".shipyard"
    return home / "tmp-dvc-http" if home.is_dir() and not os.path.islink(home) else None
