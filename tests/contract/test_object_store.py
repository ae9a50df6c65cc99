"""The ObjectStore contract, with verify and gc on top of it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.maintenance import gc, verify
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.core.artifacts.tree import Stored, copy_verified, materialize, put_path, read_verified
from shipyard.errors import BackendUnavailableError, IntegrityError, InvalidInputError, NotFoundError


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def _objects(store: LocalObjectStore) -> list[Digest]:
    return [d for d, _, _ in store.iter_objects()]


def test_objects_are_named_by_sha256_and_stored_once(store: LocalObjectStore, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    d1 = store.put_file(f)
    d2 = store.put_file(f)
    d3 = store.put_bytes(f.read_bytes())
    assert d1 == d2 == d3 == Digest.of_bytes(f.read_bytes())
    assert _objects(store) == [d1]
    assert read_verified(store, d1) == f.read_bytes()
    assert list((store.root / "tmp").iterdir()) == []  # no temp file left behind


def test_stored_objects_are_read_only(store: LocalObjectStore) -> None:
    d = store.put_bytes(b"weights")
    assert store.local_path(d).stat().st_mode & 0o222 == 0


def test_a_missing_object_is_a_clear_error(store: LocalObjectStore) -> None:
    with pytest.raises(NotFoundError, match="store verify"):
        store.open(Digest.of_bytes(b"never stored"))


def test_store_under_a_file_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackendUnavailableError, match="SHIPYARD_STORE"):
        LocalObjectStore(tmp_path / "file" / "objects")


def _corrupt(store: LocalObjectStore, digest: Digest, data: bytes) -> None:
    path = store.local_path(digest)
    path.chmod(0o644)
    path.write_bytes(data)


def test_verify_names_corrupt_and_missing_objects(store: LocalObjectStore, tmp_path: Path) -> None:
    good = store.put_bytes(b"good")
    bad = store.put_bytes(b"will rot")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a").write_text("a")
    (folder / "b").write_text("b")
    tree = put_path(store, folder)
    assert verify(store, [good, bad, tree.digest]).ok

    _corrupt(store, bad, b"bit rot")
    gone = Digest.of_bytes(b"b")
    store.delete(gone)
    report = verify(store, [good, bad, tree.digest])
    assert not report.ok
    assert report.corrupt == [str(bad)]
    assert report.missing == [str(gone)]  # found through the folder's manifest
    with pytest.raises(IntegrityError):
        read_verified(store, bad)
    with pytest.raises(IntegrityError):
        copy_verified(store, bad, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def _age(store: LocalObjectStore, digest: Digest, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(store.local_path(digest), (past, past))


def _stored_model(store: LocalObjectStore, tmp_path: Path) -> tuple[Stored, Digest]:
    """A one-file model folder in ``store``: its manifest, and the digest of its one file."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 100)
    return put_path(store, folder), Digest.of_bytes(b"w" * 100)


def test_gc_removes_only_old_unreferenced_objects(store: LocalObjectStore, tmp_path: Path) -> None:
    tree, child = _stored_model(store, tmp_path)
    old_orphan = store.put_bytes(b"old orphan")
    young_orphan = store.put_bytes(b"young orphan")
    for d in (tree.digest, child, old_orphan):
        _age(store, d, 7200)

    dry = gc(store, [tree.digest], grace_seconds=3600, dry_run=True)
    assert dry.removed == [str(old_orphan)] and store.has(old_orphan)

    report = gc(store, [tree.digest], grace_seconds=3600)
    assert report.removed == [str(old_orphan)]
    assert report.young_unreferenced == 1
    assert not store.has(old_orphan)
    assert store.has(young_orphan) and store.has(tree.digest) and store.has(child)


def test_reusing_an_old_object_restarts_its_grace_period(store: LocalObjectStore) -> None:
    d = store.put_bytes(b"shared")
    _age(store, d, 7200)
    assert store.put_bytes(b"shared") == d  # a new writer is about to reference it
    assert gc(store, [], grace_seconds=3600).removed == []
    assert store.has(d)


def test_gc_cleans_temp_files_of_killed_writers(store: LocalObjectStore) -> None:
    from shipyard.core.workspace.atomic import temp_name

    leftover = Path(temp_name(store.root / "tmp"))  # only the store's own temp names are ever removed
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    report = gc(store, [], grace_seconds=3600)
    assert report.temp_removed == 1 and not leftover.exists()


def test_hardlink_is_refused_when_the_process_can_write_through_read_only_files(
        store: LocalObjectStore, tmp_path: Path) -> None:
    from shipyard.adapters.stores.local import can_override_modes
    from shipyard.core.artifacts.tree import put_path

    if not can_override_modes():
        pytest.skip("needs root or CAP_DAC_OVERRIDE (the non-root case runs in the next test)")
    f = tmp_path / "data.csv"
    f.write_text("the only copy\n")
    with pytest.raises(InvalidInputError, match="add without --hardlink"):
        put_path(store, f, hardlink=True)
    assert _objects(store) == [] and f.stat().st_mode & 0o200  # nothing stored, the file left writable
    assert put_path(store, f).digest == Digest.of_bytes(b"the only copy\n")  # copy mode works


@pytest.mark.parametrize("drop", ["setuid", "setpriv"])
def test_hardlink_without_the_power_to_override_modes_links_read_only(drop: str) -> None:
    """An ordinary user, or root without CAP_DAC_OVERRIDE, may link: the read-only mode then holds."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if drop == "setpriv" and (os.geteuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("needs root and setpriv (util-linux)")
    folder = Path(tempfile.mkdtemp(prefix="sy-hardlink-"))  # under /tmp, which an ordinary user can traverse
    try:
        folder.chmod(0o777)
        code = (
            "import os, sys\n"
            "from pathlib import Path\n"
            "from shipyard.adapters.stores.local import LocalObjectStore, can_override_modes\n"
            "import ctypes  # noqa: F401  (the store loads it lazily; once nobody, root's Python may be unreadable)\n"
            "if os.geteuid() == 0 and sys.argv[1] == 'setuid':\n"
            "    os.setgid(65534); os.setuid(65534)  # drop root (and with it CAP_DAC_OVERRIDE)\n"
            "assert not can_override_modes()\n"
            f"root = Path({str(folder)!r})\n"
            "(root / 'data.csv').write_bytes(b'linked')\n"
            "store = LocalObjectStore(root / 'objects')\n"
            "d = store.put_many([str(root / 'data.csv')], hardlink=True)[0]\n"
            "assert store.local_path(d).stat().st_ino == (root / 'data.csv').stat().st_ino\n"
            "try:\n"
            "    open(root / 'data.csv', 'a').write('edit')\n"
            "    sys.exit('an edit went through the read-only link')\n"
            "except PermissionError:\n"
            "    pass\n"
        )
        prefix = ["setpriv", "--bounding-set", "-dac_override", "--"] if drop == "setpriv" else []
        done = subprocess.run([*prefix, sys.executable, "-c", code, drop], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_gc_stops_on_a_manifest_it_cannot_read_and_removes_nothing(store: LocalObjectStore, tmp_path: Path) -> None:
    tree, child = _stored_model(store, tmp_path)
    orphan = store.put_bytes(b"old orphan")
    lookalike = store.put_bytes(b'{"entries": not a manifest, just data')  # an intact data file: no reason to stop
    for d in (tree.digest, child, orphan, lookalike):
        _age(store, d, 7200)
    raw = store.local_path(tree.digest).read_bytes()
    _corrupt(store, tree.digest, raw.replace(b'"entries":[', b'"entries":[,', 1))  # one comma added
    _age(store, tree.digest, 7200)

    with pytest.raises(IntegrityError, match=f"manifest {tree.digest} is corrupt.*nothing was removed"):
        gc(store, [tree.digest, lookalike], grace_seconds=0)
    assert store.has(child) and store.has(orphan)  # gc ran nothing at all
    assert not verify(store, [tree.digest]).ok  # verify still reports instead of stopping

    _corrupt(store, tree.digest, raw)  # restored: gc proceeds and keeps what the manifest lists
    assert gc(store, [tree.digest, lookalike], grace_seconds=0).removed == [str(orphan)]
    assert store.has(child)


@contextlib.contextmanager
def _within(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a blocked ``open`` is interrupted by the alarm."""
    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["link to /dev/zero", "link to a copy", "fifo", "folder"])
def test_an_object_that_is_not_a_regular_file_is_refused_without_reading_it(store: LocalObjectStore,
                                                                            tmp_path: Path, kind: str) -> None:
    d = store.put_bytes(b"weights")
    path = store.local_path(d)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "link to a copy":  # the right bytes, but through a link: still refused
        (tmp_path / "copy").write_bytes(b"weights")
        path.symlink_to(tmp_path / "copy")
    else:
        path.symlink_to("/dev/zero")
    with _within(10), pytest.raises(IntegrityError, match=f"{path} is not a regular file.*rm {path}"):
        read_verified(store, d, limit=1024)  # bounded: an unfixed store would read /dev/zero without end
    if kind != "link to /dev/zero":
        with _within(10), pytest.raises(IntegrityError, match="not a regular file"):
            copy_verified(store, d, tmp_path / "out")


def test_materialize_never_writes_more_than_the_manifest_entry_records(store: LocalObjectStore,
                                                                        tmp_path: Path) -> None:
    big = store.put_bytes(os.urandom(3 * 1024 * 1024))  # intact, but the manifest says 10 bytes
    manifest = Manifest.of([ManifestEntry("weights.bin", big, 10, 0o644)])
    digest = store.put_bytes(manifest.to_bytes())
    dest = tmp_path / "out"
    with pytest.raises(IntegrityError, match="more than the 10 bytes its manifest records"):
        materialize(store, digest, dest)
    assert list(dest.iterdir()) == []  # the temp file is gone, nothing written
