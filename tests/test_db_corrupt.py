"""A damaged metadata database is one clear error, never a traceback and never a new, empty database.

Issue 7, findings 5 and 10: a zero-byte ``shipyard.db`` silently became a new empty database (and
``gc --dry-run`` then offered to delete every object); a garbage file gave a SQLAlchemy traceback.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.adapters.db.store import SqlMetadataStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import RunRecord, RunStatus
from shipyard.core.registry.records import NewVersion
from shipyard.errors import BackendUnavailableError, ShipyardError
from tests.conftest import cli_env, shipyard


def _healthy(path: Path) -> None:
    """A real Shipyard database with enough rows to span many pages."""
    store = SqlMetadataStore(f"sqlite:///{path}")
    try:
        for i in range(300):
            store.create_run(RunRecord(id=f"{i:032x}", name=f"run {i} " + "x" * 200, experiment="e",
                                       status=RunStatus.FINISHED, start_time=time.time(), end_time=None,
                                       user="u", host="h", pid=1))
        store.register_version(NewVersion(model="iris", manifest_digest=Digest("a" * 64), flavor="sklearn",
                                          size=1, run_id=None, env_digest=None, created_by="t"))
    finally:
        store.close()


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _sqlite_header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(64 * 1024))


def _truncated_to_first_page(path: Path) -> None:
    _healthy(path)
    with path.open("r+b") as f:
        f.truncate(4096)


def _truncated_half(path: Path) -> None:
    _healthy(path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _garbled_pages(path: Path) -> None:
    _healthy(path)
    data = bytearray(path.read_bytes())
    for i in range(8192, len(data), 4096):
        data[i:i + 512] = os.urandom(512)
    path.write_bytes(bytes(data))


def _other_sqlite_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('not shipyard')")
    conn.commit()
    conn.close()


def _a_folder(path: Path) -> None:
    path.mkdir()


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "zero_bytes": _zero_bytes, "random_bytes": _random_bytes, "sqlite_header_then_garbage": _sqlite_header_then_garbage,
    "truncated_to_first_page": _truncated_to_first_page, "truncated_half": _truncated_half,
    "garbled_pages": _garbled_pages, "other_sqlite_database": _other_sqlite_database, "a_folder": _a_folder,
}
# refused before any use: Shipyard can tell at open time that these are not its database
REFUSED_AT_OPEN = {"zero_bytes", "random_bytes", "sqlite_header_then_garbage", "truncated_to_first_page",
                   "other_sqlite_database", "a_folder"}


def _use(url: str) -> None:
    """Open the store and exercise reads and a write, as the commands do."""
    store = SqlMetadataStore(url)
    try:
        store.list_models()
        store.referenced_digests()
        store.search_runs((), 1000, None)
        store.register_version(NewVersion(model="new", manifest_digest=Digest("b" * 64), flavor="sklearn",
                                          size=1, run_id=None, env_digest=None, created_by="t"))
    finally:
        store.close()


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_no_database_library_error_escapes_the_adapter(tmp_path: Path, corruption: str) -> None:
    db = tmp_path / "shipyard.db"
    CORRUPTIONS[corruption](db)
    before = db.read_bytes() if db.is_file() else None
    try:
        _use(f"sqlite:///{db}")
    except ShipyardError as e:
        assert "\n" not in str(e)
        if corruption in REFUSED_AT_OPEN:
            assert isinstance(e, BackendUnavailableError) and str(db) in str(e)
    else:
        assert corruption not in REFUSED_AT_OPEN, "a damaged database was used as if it were fine"
    if corruption in REFUSED_AT_OPEN and before is not None:
        assert db.read_bytes() == before  # refused, never replaced by a new, empty database


def test_a_zero_byte_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "shipyard.db"
    db.write_bytes(b"")
    with pytest.raises(BackendUnavailableError, match=r"is empty \(0 bytes\)"):
        SqlMetadataStore(f"sqlite:///{db}")
    assert db.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipyard.db"]  # no temp file, no -wal left behind


def test_a_read_only_database_reads_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "shipyard.db"
    _healthy(db)
    store = SqlMetadataStore(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        assert [m.name for m in store.list_models()] == ["iris"]
        with pytest.raises(BackendUnavailableError, match="read-only"):
            store.register_version(NewVersion(model="iris", manifest_digest=Digest("c" * 64), flavor="sklearn",
                                              size=1, run_id=None, env_digest=None, created_by="t"))
    finally:
        store.close()


def test_a_missing_database_is_created_and_concurrent_creators_agree(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "shipyard.db"
    db.parent.mkdir(parents=True)  # the folder is the user's to make (test_discovery: a missing one is refused)
    first = SqlMetadataStore(f"sqlite:///{db}")
    second = SqlMetadataStore(f"sqlite:///{db}")  # opens the one the first made
    try:
        first.register_version(NewVersion(model="iris", manifest_digest=Digest("a" * 64), flavor="sklearn",
                                          size=1, run_id=None, env_digest=None, created_by="t"))
        assert [m.name for m in second.list_models()] == ["iris"]
    finally:
        first.close()
        second.close()
    assert sorted(p.name for p in db.parent.iterdir() if not p.name.startswith("shipyard.db")) == []


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("command", [("models", "list"), ("store", "gc", "--dry-run")])
def test_cli_on_a_damaged_database_says_one_line(project: Path, corruption: str, command: tuple[str, ...]) -> None:
    home = project / ".shipyard"
    home.mkdir()
    (home / "objects").mkdir()
    db = home / "shipyard.db"
    CORRUPTIONS[corruption](db)
    done = shipyard(*command, env=cli_env(SHIPYARD_HOME=str(home)), cwd=project, check=False)
    assert "Traceback" not in done.stderr
    if corruption in REFUSED_AT_OPEN or done.returncode != 0:
        assert done.returncode == BackendUnavailableError.exit_code, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
        assert "would remove" not in done.stdout


def test_cli_on_a_read_only_database_reads_and_refuses_writes_in_one_line(project: Path) -> None:
    home = project / ".shipyard"
    home.mkdir()
    _healthy(home / "shipyard.db")
    env = cli_env(SHIPYARD_HOME=str(home), SHIPYARD_DB_URL=f"sqlite:///file:{home / 'shipyard.db'}?mode=ro&uri=true")
    listed = shipyard("models", "list", env=env, cwd=project, check=False)
    assert listed.returncode == 0 and "iris" in listed.stdout, listed.stderr
    moved = shipyard("alias", "set", "iris", "production", "1", "-m", "release", env=env, cwd=project, check=False)
    assert moved.returncode == BackendUnavailableError.exit_code, moved.stderr
    assert moved.stderr.count("\n") == 1 and "read-only" in moved.stderr and "Traceback" not in moved.stderr
