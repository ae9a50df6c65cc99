"""The store that lives elsewhere (``ReadThroughStore`` with ``primary=True``), on a real S3-API server (moto) and
on a shared folder: write-once objects named by their SHA-256, verified on every read, a bounded LRU cache on
each "machine" (a cache folder of its own), atomic uploads, and one clear line when S3 is gone."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shipyard.adapters.remotes import open_remote
from shipyard.adapters.remotes.folder import FolderRemote
from shipyard.adapters.stores.cache import evict
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.stores.shared import ReadThroughStore
from shipyard.core.artifacts import tree
from shipyard.core.artifacts.digest import Digest, object_key
from shipyard.core.artifacts.maintenance import verify
from shipyard.core.artifacts.tree import materialize, put_path, read_verified
from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.errors import BackendUnavailableError, ConfigError, IntegrityError, NotFoundError
from tests.conftest import (
    cli_env,
    make_bucket,
    moto_process,
    register_constant,
    shipyard,
    sigkill_when,
)
from tests.contract.test_object_store import _within

MIB = 1024 * 1024
Machine = Callable[..., ReadThroughStore]


class Upstream:
    """Where the objects live: a fresh bucket and prefix on moto, or a fresh shared folder."""

    def __init__(self, kind: str, tmp: Path, endpoint: str | None) -> None:
        self.kind, self.tmp, self.endpoint = kind, tmp, endpoint
        if kind == "s3":
            assert endpoint is not None
            self.bucket = make_bucket(endpoint)
            self.spec = RemoteSpec(url=f"s3://{self.bucket}/team/store", endpoint_url=endpoint)
        else:
            (tmp / "shared").mkdir()
            self.spec = RemoteSpec(url=str(tmp / "shared"))

    def machine(self, name: str, max_bytes: int = 1024**3) -> ReadThroughStore:
        """Another machine: its own cache folder, the same upstream."""
        return ReadThroughStore(LocalObjectStore(self.tmp / name), lambda: open_remote(self.spec, self.tmp),
                                primary=True, max_bytes=max_bytes)

    def replace(self, digest: Digest, data: bytes) -> None:
        """Put other bytes under ``digest``'s name, behind Shipyard's back."""
        if self.kind == "s3":
            import obstore
            from obstore.store import S3Store

            s3 = S3Store(self.bucket, prefix="team/store", endpoint=self.endpoint, region="us-east-1",
                         client_options={"allow_http": True})
            obstore.put(s3, object_key(digest), data)
        else:
            path = self.tmp / "shared" / object_key(digest)
            path.chmod(0o644)
            path.write_bytes(data)

    def holds(self, digest: Digest) -> bool:
        return bool(open_remote(self.spec, self.tmp).stats([digest]))


@pytest.fixture(params=["s3", "folder"])
def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Upstream:
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    return Upstream(request.param, tmp_path, endpoint)


def _cached(store: ReadThroughStore) -> dict[Digest, int]:
    return {d: size for d, size, _ in store.cache.iter_objects()}


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


# -- the contract: write-once, verify-on-read, shared between machines --------------------------------------------
def test_objects_are_written_once_named_by_sha256(upstream: Upstream, tmp_path: Path) -> None:
    a = upstream.machine("a")
    data = os.urandom(9 * MIB + 3)  # above the single-PUT size: a multipart upload on S3
    (tmp_path / "f").write_bytes(data)
    digests = {a.put_bytes(data), a.put_file(tmp_path / "f"), a.put_bytes(data), a.put_bytes(b"small")}
    assert digests == {Digest(hashlib.sha256(data).hexdigest()), Digest.of_bytes(b"small")}
    b = upstream.machine("b")  # a fresh process sees what upstream lists
    assert {d: size for d, size, _ in b.iter_objects()} == {Digest.of_bytes(data): len(data),
                                                             Digest.of_bytes(b"small"): 5}
    assert read_verified(b, Digest.of_bytes(data)) == data
    (tmp_path / "g").write_bytes(b"not what was expected")
    with pytest.raises(IntegrityError, match="expected"):
        a.put_file(tmp_path / "g", expect=Digest.of_bytes(b"something else"))
    assert not upstream.holds(Digest.of_bytes(b"not what was expected"))


def test_a_second_machine_loads_what_the_first_wrote_and_refs_are_shared(upstream: Upstream, tmp_path: Path) -> None:
    files = {"weights.bin": os.urandom(3 * MIB), "conf/params.json": b'{"a": 1}', "empty": b""}
    a, b = upstream.machine("a"), upstream.machine("b")
    stored = put_path(a, _folder(tmp_path / "model", files))
    a.put_ref("stage-cache/train", b'{"run": "r1"}')
    assert _cached(b) == {}
    materialize(b, stored.digest, tmp_path / "loaded")
    assert {n: (tmp_path / "loaded" / n).read_bytes() for n in files} == files
    assert set(_cached(b)) == {stored.digest, *(e.digest for e in stored.manifest or ())}  # it came through b's cache
    assert b.get_ref("stage-cache/train") == b'{"run": "r1"}'
    assert b.get_ref("stage-cache/other") is None


def test_an_object_altered_upstream_is_an_integrity_error_and_never_enters_the_cache(upstream: Upstream) -> None:
    a, b = upstream.machine("a"), upstream.machine("b")
    d = a.put_bytes(b"the real weights" * 1000)
    upstream.replace(d, b"poisoned weights" * 1000)  # same length, other bytes
    with pytest.raises(IntegrityError, match=f"object {d} in .*{upstream.spec.url}.* is corrupt") as failed:
        read_verified(b, d)
    assert len(str(failed.value).splitlines()) == 1
    assert _cached(b) == {} and list(b.cache.tmp.iterdir()) == []  # nothing of it was kept
    with pytest.raises(IntegrityError):
        b.fetch([d])


def test_an_object_larger_upstream_than_its_manifest_says_stops_as_the_excess_shows(upstream: Upstream,
                                                                                    tmp_path: Path) -> None:
    a, b = upstream.machine("a"), upstream.machine("b")
    stored = put_path(a, _folder(tmp_path / "model", {"weights.bin": b"w" * 1000}))
    weights = next(e for e in stored.manifest or () if e.path == "weights.bin")
    upstream.replace(weights.digest, b"w" * 3 * MIB)  # endless, as far as the manifest is concerned
    with pytest.raises(IntegrityError, match="more than the 1000 bytes it may have") as failed:
        materialize(b, stored.digest, tmp_path / "loaded")
    assert len(str(failed.value).splitlines()) == 1
    assert weights.digest not in _cached(b) and list(b.cache.tmp.iterdir()) == []


class _CountingFolder(FolderRemote):
    """A real folder remote that counts the objects read from it."""

    reads: list[Digest]

    def read(self, digest: Digest) -> Iterator[bytes]:
        self.reads.append(digest)
        return super().read(digest)


def test_a_manifest_or_bounded_read_stops_at_its_bound_as_it_downloads_and_only_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = Upstream("folder", tmp_path, None)
    stored = put_path(up.machine("a"), _folder(tmp_path / "model", {"weights.bin": b"w" * 1000}))
    remote = _CountingFolder(tmp_path / "shared")
    remote.reads = []
    b = ReadThroughStore(LocalObjectStore(tmp_path / "b"), lambda: remote, primary=True, max_bytes=1024**3)
    up.replace(stored.digest, b"{" * 3 * MIB)  # a huge (or endless) object under the manifest's name
    monkeypatch.setattr(tree, "MAX_MANIFEST_BYTES", 4096)
    with pytest.raises(IntegrityError, match=f"{stored.digest} in the store .* more than the 4096 bytes") as failed:
        materialize(b, stored.digest, tmp_path / "loaded")
    assert len(str(failed.value).splitlines()) == 1
    assert remote.reads == [stored.digest]  # not downloaded a second time by the retry of a corrupt copy
    assert _cached(b) == {} and list(b.cache.tmp.iterdir()) == []
    other = up.machine("a").put_bytes(b"x" * 5000)
    with pytest.raises(IntegrityError, match="more than the 100 bytes"):
        read_verified(b, other, limit=100)
    assert remote.reads.count(other) == 1 and other not in _cached(b)


def test_a_damaged_object_of_a_fallback_remote_says_to_push_it_again(tmp_path: Path) -> None:
    up = Upstream("folder", tmp_path, None)
    good = up.machine("a").put_bytes(b"the model")
    up.replace(good, b"the modeL")
    local = ReadThroughStore(LocalObjectStore(tmp_path / "local"), lambda: FolderRemote(tmp_path / "shared"),
                             primary=False)
    with pytest.raises(IntegrityError, match="push it again from a machine with a good copy") as damaged:
        read_verified(local, good)
    assert "store verify" not in str(damaged.value) and not local.cache.has(good)


def test_a_long_lived_writer_looks_upstream_again_once_what_it_saw_there_may_have_been_collected(
        upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.adapters.stores import shared

    a, gc_machine = upstream.machine("a"), upstream.machine("gc")
    d = a.put_bytes(b"features v1")
    gc_machine.delete(d)  # another machine's gc, once the object was old and unreferenced
    a.put_bytes(b"features v1")  # within the same hour: a trusts what it saw (no request)
    assert not upstream.holds(d)
    later = time.time() + shared.REFRESH_AFTER + 1
    monkeypatch.setattr(shared.time, "time", lambda: later)
    a.put_bytes(b"features v1")  # half a day on, in the same process (a notebook, a server)
    assert upstream.holds(d)


def test_verify_rehashes_the_shared_store_itself_not_the_cache(upstream: Upstream) -> None:
    a = upstream.machine("a")
    blobs = [os.urandom(n) for n in (10, 70_000, 2 * MIB)]
    digests = [a.put_bytes(blob) for blob in blobs]
    report = verify(a.verifying(), digests)
    assert report.ok and report.checked == 3 and report.bytes == sum(map(len, blobs))
    upstream.replace(digests[1], os.urandom(70_000))  # a's cache still holds the good copy
    cached_before = _cached(a)
    ghost = Digest.of_bytes(b"referenced, never stored")
    report = verify(a.verifying(), [*digests, ghost])
    assert report.corrupt == [str(digests[1])] and report.missing == [str(ghost)]
    assert _cached(a) == cached_before  # verify read upstream's bytes without filling or touching the cache


# -- the cache -------------------------------------------------------------------------------------------------------
def test_the_cache_keeps_within_its_bound_least_recently_used_first(upstream: Upstream) -> None:
    a = upstream.machine("a")
    digests = [a.put_bytes(os.urandom(MIB)) for _ in range(6)]
    bound = 3 * MIB + MIB // 2  # three objects fit, not four
    b = upstream.machine("b", max_bytes=bound)
    held = []
    for i, d in enumerate(digests):
        if i == 3:
            read_verified(b, digests[0])  # used again: now more recently used than 1 and 2
        b.fetch([d])
        assert sum(_cached(b).values()) <= bound
        held.append(set(_cached(b)))
    assert held[2] == set(digests[:3])
    assert held[3] == {digests[0], digests[2], digests[3]}  # 1 was the least recently used, though 0 came first
    assert held[5] == set(digests[3:])

    # one read needs more than the bound: none of its objects is evicted under it
    files = {f"part{i}": os.urandom(MIB) for i in range(5)}
    stored = put_path(a, _folder(upstream.tmp / "big", files))
    materialize(b, stored.digest, upstream.tmp / "loaded")
    assert {n: (upstream.tmp / "loaded" / n).read_bytes() for n in files} == files
    b.fetch([digests[1]])  # the next read: back within the bound
    assert sum(_cached(b).values()) <= bound


def test_a_corrupted_cached_object_is_detected_and_fetched_again(upstream: Upstream, tmp_path: Path) -> None:
    files = {"weights.bin": os.urandom(MIB), "meta.json": b'{"flavor": "sklearn"}'}
    a = upstream.machine("a")
    stored = put_path(a, _folder(tmp_path / "model", files))
    b = upstream.machine("b")
    materialize(b, stored.digest, tmp_path / "first")
    for name in files:  # a bit flipped on disk: same size, and the modification time put back
        d = next(e.digest for e in stored.manifest or () if e.path == name)
        path = b.local_path(d)
        st = path.stat()
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
        path.chmod(0o444)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    materialize(b, stored.digest, tmp_path / "second")
    assert {n: (tmp_path / "second" / n).read_bytes() for n in files} == files
    for d in _cached(b):
        assert Digest.of_bytes(b.local_path(d).read_bytes()) == d  # the cache holds good copies again
    manifest = b.local_path(stored.digest)
    manifest.chmod(0o644)
    manifest.write_bytes(manifest.read_bytes()[::-1])
    assert read_verified(b, stored.digest) == read_verified(a, stored.digest)


def test_a_cached_object_replaced_by_a_link_or_a_fifo_is_dropped_and_fetched_again(tmp_path: Path) -> None:
    up = Upstream("folder", tmp_path, None)
    files = {"weights.bin": os.urandom(MIB), "meta.json": b'{"flavor": "sklearn"}'}
    stored = put_path(up.machine("a"), _folder(tmp_path / "model", files))
    b = up.machine("b")
    materialize(b, stored.digest, tmp_path / "first")
    weights, meta = (next(e.digest for e in stored.manifest or () if e.path == n) for n in ("weights.bin", "meta.json"))
    b.local_path(weights).unlink()
    b.local_path(weights).symlink_to("/dev/zero")  # read through, it would stream zeros without end
    b.local_path(meta).unlink()
    os.mkfifo(b.local_path(meta))  # opened for reading, it would block
    materialize(b, stored.digest, tmp_path / "second")
    assert {n: (tmp_path / "second" / n).read_bytes() for n in files} == files
    assert b.local_path(weights).is_file() and not b.local_path(weights).is_symlink()


# -- S3 offline ------------------------------------------------------------------------------------------------------
def test_with_s3_offline_cached_objects_load_and_others_fail_in_one_line(s3_endpoint: str, tmp_path: Path) -> None:
    files = {"weights.bin": os.urandom(MIB), "meta.json": b"{}"}
    with moto_process() as (endpoint, moto):
        up = Upstream("s3", tmp_path, endpoint)
        a = up.machine("a")
        stored = put_path(a, _folder(tmp_path / "model", files))
        other = a.put_bytes(b"never read on b")
        materialize(up.machine("b"), stored.digest, tmp_path / "online")  # b caches this version
        moto.kill()
        moto.wait(timeout=30)
    b = up.machine("b")  # b starts again: only its cache folder remains
    materialize(b, stored.digest, tmp_path / "offline")
    assert {n: (tmp_path / "offline" / n).read_bytes() for n in files} == files
    with pytest.raises(BackendUnavailableError) as failed:
        read_verified(b, other)
    message = str(failed.value)
    assert len(message.splitlines()) == 1
    assert f"the store {up.spec.url} is unreachable" in message and "AWS_ENDPOINT_URL" in message
    assert "cached on this machine still load" in message
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        b.put_bytes(b"a write needs the store")


# -- atomic uploads --------------------------------------------------------------------------------------------------
UPLOAD = """\
import sys
from pathlib import Path
from shipyard.adapters.remotes import open_remote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.stores.shared import ReadThroughStore
from shipyard.core.project.model import Remote
spec = Remote(url=sys.argv[1], endpoint_url=sys.argv[2] or None)
store = ReadThroughStore(LocalObjectStore(Path(sys.argv[3])), lambda: open_remote(spec, Path(sys.argv[3])),
                         primary=True, max_bytes=2**40)
store.put_file(Path(sys.argv[4]))
"""


def _uploads_begun(endpoint: str, bucket: str) -> list[str]:
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    with urllib.request.urlopen(f"{endpoint}/{bucket}?uploads", timeout=10) as r:
        root = ET.fromstring(r.read())
    return [u.findtext(f"{ns}Key") or "" for u in root.iter(f"{ns}Upload")]


def _writing(folder: Path) -> bool:
    """A temp file of an upload in progress, with bytes in it, is in the shared folder's tmp/."""
    with contextlib.suppress(FileNotFoundError), os.scandir(folder / "tmp") as entries:
        return any(e.stat().st_size > 0 for e in entries)
    return False


def test_an_upload_killed_midway_leaves_no_object_under_its_name(upstream: Upstream, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MIB))
    digest = Digest(hashlib.sha256(big.read_bytes()).hexdigest())
    proc = subprocess.Popen([sys.executable, "-c", UPLOAD, upstream.spec.url, upstream.endpoint or "",
                             str(tmp_path / "writer"), str(big)], env=cli_env(), stderr=subprocess.PIPE)
    endpoint = upstream.endpoint
    sigkill_when(proc, lambda: _uploads_begun(endpoint, upstream.bucket) if endpoint else _writing(tmp_path / "shared"),
                 "the upload", poll=0.002)
    assert not upstream.holds(digest)  # no partial object under its name, for anyone
    b = upstream.machine("b")
    with pytest.raises(NotFoundError, match=str(digest)):
        b.open(digest)
    assert _cached(b) == {}
    assert verify(b.verifying(), []).ok
    if upstream.kind == "folder":  # what the killed writer left is a temp file, which clean-up removes
        assert b.clean_temp(0) == 1 and list((tmp_path / "shared" / "tmp").iterdir()) == []
    a = upstream.machine("writer")  # the writer runs again: its cached copy is published whole
    assert a.put_file(big) == digest and upstream.holds(digest)
    assert read_verified(upstream.machine("c"), digest) == big.read_bytes()


# -- shipyard store cache ----------------------------------------------------------------------------------------------
def test_store_cache_shows_bounds_and_clears_the_cache_never_the_store(s3_endpoint: str, tmp_path: Path) -> None:
    up = Upstream("s3", tmp_path, s3_endpoint)
    project = tmp_path / "project"
    (project / ".shipyard").mkdir(parents=True)
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"), SHIPYARD_STORE=up.spec.url, AWS_ENDPOINT_URL=s3_endpoint)
    writer = up.machine("writer")
    digests = [writer.put_bytes(os.urandom(MIB)) for _ in range(4)]
    mine = ReadThroughStore(LocalObjectStore(project / ".shipyard" / "cache"), lambda: open_remote(up.spec, project),
                            primary=True, max_bytes=1024**3)
    for d in digests:  # oldest use first
        mine.fetch([d])
    shown = json.loads(shipyard("store", "cache", "--json", env=env, cwd=project).stdout)
    assert shown == {"folder": str(project / ".shipyard" / "cache"), "objects": 4, "bytes": 4 * MIB,
                     "max_bytes": 20 * 1024**3, "store": up.spec.url, "endpoint": s3_endpoint, "cleared": 0,
                     "evicted": 0}
    done = shipyard("store", "cache", "--max", "2.5M", env=env, cwd=project)
    assert "2 least recently used object(s) evicted" in done.stdout and "holds 2 object(s)" in done.stdout
    assert set(_cached(mine)) == set(digests[2:])
    assert json.loads((project / ".shipyard" / "cache" / "cache.json").read_text()) == {"max_bytes": 5 * MIB // 2}
    done = shipyard("store", "cache", "--clear", "--json", env=env, cwd=project)
    assert json.loads(done.stdout)["cleared"] == 2 and _cached(mine) == {}
    assert all(up.holds(d) for d in digests)  # the store itself is whole
    local = shipyard("store", "cache", env=cli_env(SHIPYARD_HOME=str(project / ".shipyard")), cwd=project)
    assert local.stdout.startswith("no cache: the store is local") and len(local.stdout.splitlines()) == 1


def test_a_folder_of_objects_not_marked_as_a_cache_is_never_evicted_or_cleared(s3_endpoint: str,
                                                                               tmp_path: Path) -> None:
    up = Upstream("s3", tmp_path, s3_endpoint)
    project = tmp_path / "project"
    store = LocalObjectStore(project / ".shipyard" / "objects")  # a project's local store: the only copies
    only = store.put_bytes(b"never uploaded")
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"), SHIPYARD_STORE=up.spec.url, AWS_ENDPOINT_URL=s3_endpoint,
                  SHIPYARD_STORE_CACHE=str(store.root))
    for option in ("--clear", "--max=0"):
        done = shipyard("store", "cache", option, env=env, cwd=project, check=False)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "is not a Shipyard cache" in done.stderr and "SHIPYARD_STORE_CACHE" in done.stderr
    with pytest.raises(ConfigError, match="nothing was deleted"):
        ReadThroughStore(store, lambda: open_remote(up.spec, project), primary=True, max_bytes=0)
    with pytest.raises(ConfigError, match="not a Shipyard cache"):
        evict(store, 0)
    assert store.has(only) and not (store.root / "cache.json").exists()
    fresh = up.machine("fresh", max_bytes=0)  # a new folder is marked as a cache, and evicted from
    assert (tmp_path / "fresh" / ".shipyard-cache").is_file()
    fresh.put_bytes(b"a copy")
    assert evict(fresh.cache, 0) == (1, 0)


def test_the_cache_bound_from_the_environment_wins_over_cache_json(s3_endpoint: str, tmp_path: Path) -> None:
    from shipyard.wiring import from_environment

    up = Upstream("s3", tmp_path, s3_endpoint)
    env = cli_env(SHIPYARD_HOME=str(tmp_path / "home"), SHIPYARD_STORE=up.spec.url, AWS_ENDPOINT_URL=s3_endpoint,
                  SHIPYARD_STORE_CACHE_MAX="3M")
    (tmp_path / "home").mkdir()
    writer = up.machine("writer")
    digests = [writer.put_bytes(os.urandom(MIB)) for _ in range(5)]
    svc = from_environment(env, tmp_path)
    try:
        for d in digests:
            read_verified(svc.store, d)
    finally:
        svc.close()
    assert sum(os.path.getsize(p) for p in (tmp_path / "home" / "cache" / "sha256").rglob("*") if p.is_file()) \
        <= 3 * MIB
    shown = json.loads(shipyard("store", "cache", "--json", env=env, cwd=tmp_path).stdout)
    assert shown["max_bytes"] == 3 * MIB
    bad = shipyard("store", "cache", env={**env, "SHIPYARD_STORE_CACHE_MAX": "lots"}, cwd=tmp_path, check=False)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "SHIPYARD_STORE_CACHE_MAX" in bad.stderr


def test_verify_repair_uploads_this_machines_intact_cached_copies(s3_endpoint: str, tmp_path: Path) -> None:
    up = Upstream("s3", tmp_path, s3_endpoint)
    project = tmp_path / "project"
    (project / ".shipyard").mkdir(parents=True)
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"), SHIPYARD_STORE=up.spec.url, AWS_ENDPOINT_URL=s3_endpoint)
    register_constant(env, "lost")  # its objects are in the bucket and in this machine's cache
    mine = ReadThroughStore(LocalObjectStore(project / ".shipyard" / "cache"), lambda: open_remote(up.spec, project),
                            primary=True)
    cached = sorted(_cached(mine), key=lambda d: -_cached(mine)[d])
    gone, damaged = cached[0], cached[1]
    mine.upstream.delete(gone)  # lost from the bucket (a bad lifecycle rule, a mistaken delete)
    up.replace(damaged, b"not what it was")
    failed = shipyard("store", "verify", env=env, cwd=project, check=False)
    assert failed.returncode != 0 and "store verify --repair" in failed.stderr
    repaired = shipyard("store", "verify", "--repair", env=env, cwd=project, check=False)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "repaired 2 object(s) from this machine's cache" in repaired.stdout
    assert up.holds(gone) and read_verified(up.machine("other"), damaged)  # whole again, for every machine
    assert shipyard("store", "verify", env=env, cwd=project).returncode == 0


# -- a service that refuses conditional puts ---------------------------------------------------------------------------
@contextlib.contextmanager
def _refusing_if_none_match(endpoint: str) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP front for ``endpoint`` that answers a PUT carrying ``If-None-Match`` with 501 NotImplemented,
    as S3-compatible services without conditional writes do, and passes every other request through."""
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    target = urlsplit(endpoint)
    refused: list[str] = []

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "PUT" and self.headers.get("If-None-Match"):
                refused.append(self.path)
                status, headers = 501, [("Content-Type", "application/xml")]
                payload = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A '
                           b"header you provided implies functionality that is not implemented</Message></Error>")
            else:
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                conn.request(self.command, self.path, body, headers=dict(self.headers))
                answer = conn.getresponse()
                payload = answer.read()
                status = answer.status
                headers = [(k, v) for k, v in answer.getheaders()
                           if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                conn.close()
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", refused
    finally:
        server.shutdown()
        server.server_close()


def test_a_service_that_refuses_conditional_puts_gets_plain_ones(s3_endpoint: str, tmp_path: Path) -> None:
    up = Upstream("s3", tmp_path, s3_endpoint)
    with _refusing_if_none_match(s3_endpoint) as (front, refused):
        up.spec = RemoteSpec(url=up.spec.url, endpoint_url=front)
        a = up.machine("a")
        digests = [a.put_bytes(f"object {i}".encode()) for i in range(3)]
        assert len(refused) >= 1 and len({path for path in refused}) == 1  # asked once, then plain puts
        b = up.machine("b")
        assert [read_verified(b, d) for d in digests] == [f"object {i}".encode() for i in range(3)]


def test_a_conditional_put_of_an_object_already_there_is_success(s3_endpoint: str, tmp_path: Path) -> None:
    up = Upstream("s3", tmp_path, s3_endpoint)
    a, b = up.machine("a"), up.machine("b")
    d = a.put_bytes(b"written by a")
    b.cache.put_bytes(b"written by a")
    before = a.upstream.stats([d])
    b.upstream.upload(b.cache, [d], replace=False)  # b had seen it absent: moto answers 412, which is success
    assert a.upstream.stats([d]) == before  # and it was not written again


# -- hostile or mistaken settings: one line each, no secret printed ---------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_cache_json_that_is_a_fifo_or_a_folder_is_one_line_and_never_hangs(tmp_path: Path, kind: str) -> None:
    from shipyard.adapters.stores.cache import DEFAULT_CACHE_BYTES, cache_limit, set_cache_limit

    root = tmp_path / "cache"
    root.mkdir()
    if kind == "fifo":
        os.mkfifo(root / "cache.json")
    else:
        (root / "cache.json").mkdir()
    with _within(10):
        assert cache_limit(root) == DEFAULT_CACHE_BYTES
        with pytest.raises(ConfigError, match=f"cannot write the cache's bound to {root / 'cache.json'}.*rm -r"):
            set_cache_limit(root, MIB)


def test_a_bound_of_zero_empties_the_cache_and_a_huge_one_is_refused(tmp_path: Path) -> None:
    import typer

    from shipyard.interfaces.cli.store_cache import size_bytes

    cache = Upstream("folder", tmp_path, None).machine("m")
    cache.put_bytes(b"")
    cache.put_bytes(b"data")
    assert evict(cache.cache, 0) == (2, 0) and _cached(cache) == {}
    assert size_bytes("1024T") == 1024**5
    for text in ("99999999999999999999999", "1025T"):
        with pytest.raises(typer.BadParameter, match="more than 1 PiB"):
            size_bytes(text)


@pytest.mark.parametrize(("environ", "said"), [
    ({"SHIPYARD_STORE": "s3://AKIAFAKE:supersecret@team/x"},
     "SHIPYARD_STORE: the store URL s3://\\*\\*\\*@team/x holds"),
    ({"SHIPYARD_STORE": "s3://team/x", "AWS_ENDPOINT_URL": "http://minio:supersecret@127.0.0.1:9"},
     "AWS_ENDPOINT_URL: the store's endpoint http://\\*\\*\\*@127.0.0.1:9 holds a user name or password"),
    ({"SHIPYARD_STORE": "s3://team/x", "AWS_ENDPOINT_URL": "ftp://minio"}, "is not an http:// or https:// URL"),
    ({"yaml": 'store: {url: "s3://u:supersecret@team/x"}'}, "store: in shipyard.yaml: the store URL s3://\\*\\*\\*@"),
    ({"yaml": 'store: {url: s3://team/x, endpoint_url: "http://u:supersecret@h"}'},
     "endpoint http://\\*\\*\\*@h holds"),
    ({"yaml": 'store: {url: s3://team/x, endpoint_url: "ftp://h"}'}, "endpoint_url: should be an http:// or https://"),
    ({"yaml": "store: 42"}, "store: should be a URL string .* or a mapping"),
    ({"yaml": 'store: ""'}, "store: is empty: give s3://bucket/prefix"),
])
def test_a_store_url_with_credentials_or_of_a_wrong_kind_is_refused_in_one_line(
        tmp_path: Path, environ: dict[str, str], said: str) -> None:
    from shipyard.config import load_settings

    yaml = environ.pop("yaml", "")
    (tmp_path / "shipyard.yaml").write_text(yaml + "\n")
    with pytest.raises(ConfigError, match=said) as refused:
        load_settings({**environ, "SHIPYARD_HOME": str(tmp_path / ".shipyard")}, tmp_path)
    assert "supersecret" not in str(refused.value) and len(str(refused.value).splitlines()) == 1


def test_a_missing_bucket_a_damaged_download_and_credentials_are_named_plainly(s3_endpoint: str,
                                                                                tmp_path: Path) -> None:
    from shipyard.adapters.remotes.s3 import S3Remote

    absent = S3Remote(RemoteSpec(url="s3://no-such-bucket/x", endpoint_url=s3_endpoint))
    for attempt in (lambda: list(absent.iter_objects()), lambda: list(absent.read(Digest.of_bytes(b"x")))):
        with pytest.raises(ConfigError) as refused:
            attempt()
        assert str(refused.value) == (f"bucket no-such-bucket does not exist at {s3_endpoint}: create it or fix the "
                                      "store URL (or the remote's url in shipyard.yaml)")
    assert S3Remote(RemoteSpec(url="s3://AK:supersecret@b/x", endpoint_url=s3_endpoint)).url == "s3://***@b/x"
    up = Upstream("s3", tmp_path, s3_endpoint)
    remote = open_remote(up.spec, tmp_path)
    good = up.machine("a").put_bytes(b"the model")
    up.replace(good, b"the modeL")
    mine = LocalObjectStore(tmp_path / "mine")
    with pytest.raises(IntegrityError) as damaged:
        remote.download([good], mine)
    assert str(damaged.value).startswith(f"object {good} on remote {up.spec.url} is corrupt")
    assert "/tmp" not in str(damaged.value) and "models push" in str(damaged.value) and not mine.has(good)
