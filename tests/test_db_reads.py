"""Reads of runs from a SQLite file at the head revision go through the stdlib's sqlite3 (no SQLAlchemy): the
same records as through SQLAlchemy, and every other file is left to the SQLAlchemy path and its messages."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.db.revisions import HEAD_REVISION, REVISIONS
from shipyard.adapters.db.sqla_store import SqlaStore
from shipyard.adapters.db.sqlite_reader import SqliteReader
from shipyard.adapters.db.store import SqlMetadataStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
from shipyard.core.lineage.search import Condition, parse_filter
from shipyard.errors import BackendUnavailableError, IntegrityError, InvalidInputError, NotFoundError
from tests.conftest import cli_env

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _record(run_id: str, name: str, start: float, **tags: str) -> RunRecord:
    return RunRecord(id=run_id, name=name, experiment="e", status=RunStatus.RUNNING, start_time=start,
                     end_time=None, user="u", host="h", pid=1, tags=dict(tags))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database at head with runs that differ in params, metrics, tags, status and lineage."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reads') / 'meta.db'}"
    store = SqlMetadataStore(url)
    try:
        for i in range(6):
            run_id = f"{i:x}" * 32
            store.create_run(_record(run_id, f"run{i}", 1000.0 + i, stage="train" if i % 2 else "eval"))
            store.log_params(run_id, {"lr": str(i % 3), "model": "lr" if i < 3 else "rf"})
            if i != 4:  # one run without the metric
                store.log_metrics(run_id, [Metric("acc", i / 10, 0, 1.0), Metric("acc", i / 5, 1, 2.0)])
            store.add_inputs(run_id, {"data": Digest(f"{i}" * 64)})
            store.add_artifact(run_id, ArtifactRecord("model.pkl", Digest(f"{i + 1}" * 64), 10, False))
            if i != 5:  # one left running
                store.end_run(run_id, RunStatus.FAILED if i == 2 else RunStatus.FINISHED, 2000.0 + i)
    finally:
        store.close()
    return url


def test_the_revisions_known_without_sqlalchemy_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from shipyard.adapters.db import engine

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engine.__file__).parent / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_current_head() == HEAD_REVISION
    assert tuple(reversed([r.revision for r in script.walk_revisions()])) == REVISIONS


@pytest.mark.parametrize("where, order", [
    ("", None), ("metrics.acc > 0.3", "metrics.acc"), ("metrics.acc <= 0.4", "metrics.acc asc"),
    ("params.model != 'lr'", "name"), ("params.lr = '1' and tags.stage = 'train'", "end_time asc"),
    ("status = 'finished'", "start_time"), ("status != 'running'", None), ("tags.stage != 'eval'", "metrics.nope"),
])
def test_the_sqlite_reader_finds_what_sqlalchemy_finds(url: str, where: str, order: str | None) -> None:
    fast, sqla = SqlMetadataStore(url), SqlaStore(url)
    try:
        assert fast.dialect == "sqlite" and fast._sqla is None  # the reader serves it
        conditions = parse_filter(where)
        for lineage in (True, False):
            got = fast.search_runs(conditions, 4, order, lineage)
            assert got == sqla.search_runs(conditions, 4, order, lineage)
            assert got == fast.sqla.search_runs(conditions, 4, order, lineage)
        assert fast._sqla is not None
    finally:
        fast.close()
        sqla.close()


def test_the_reader_answers_every_read_as_sqlalchemy_does(url: str) -> None:
    fast, sqla = SqlMetadataStore(url), SqlaStore(url)
    try:
        dead = (Condition("attr", "status", "=", "killed", dead=("5" * 32,)),)
        assert [r.id for r in fast.search_runs(dead, 10, None)] == ["5" * 32]
        assert fast.search_runs(dead, 10, None) == sqla.search_runs(dead, 10, None)
        assert fast.get_run("3333") == sqla.get_run("3333")
        assert fast.get_run("3333").inputs == {"data": Digest("3" * 64)}
        assert fast.producers(Digest("2" * 64)) == sqla.producers(Digest("2" * 64))
        assert fast.metric_history("1" * 32, "acc") == sqla.metric_history("1" * 32, "acc")
        assert fast.metric_counts(["1" * 32, "4" * 32]) == {"1" * 32: {"acc": 2}}
        for bad in ("12", "zz!z"):
            with pytest.raises(InvalidInputError, match="too short or malformed"):
                fast.get_run(bad)
        with pytest.raises(NotFoundError, match="not found"):
            fast.get_run("abcd")
        with pytest.raises(InvalidInputError, match="cannot order by 'pid'"):
            fast.search_runs((), 1, "pid")
    finally:
        fast.close()
        sqla.close()


def test_a_command_that_reads_runs_imports_no_sqlalchemy_and_sees_its_own_writes(url: str) -> None:
    code = f"""
import sys
from shipyard.adapters.db.store import SqlMetadataStore
from shipyard.core.lineage.search import parse_filter
store = SqlMetadataStore({url!r})
found = [r.id[:1] for r in store.search_runs(parse_filter("metrics.acc >= 0.4"), 10, "metrics.acc")]
print("sqlalchemy" in sys.modules, "alembic" in sys.modules, found)
store.set_tags("1" * 32, {{"seen": "yes"}})
print("sqlalchemy" in sys.modules, store.get_run("1111").tags["seen"])
store.close()
"""
    done = subprocess.run([sys.executable, "-c", code], env={**cli_env(), "PYTHONPATH": SRC}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False False ['5', '3', '2']", "True yes"]


def _copy(url: str, tmp_path: Path) -> tuple[str, Path]:
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    target = tmp_path / "copy.db"
    with sqlite3.connect(target) as dest:
        source.backup(dest)
    source.close()
    return f"sqlite:///{target}", target


def test_a_database_of_an_unknown_revision_is_refused_as_before(url: str, tmp_path: Path) -> None:
    copy, path = _copy(url, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(BackendUnavailableError, match="has schema revision '0999', which this Shipyard does not "
                                                      "know: upgrade Shipyard"):
        SqlMetadataStore(copy)


def test_files_that_are_not_shipyard_databases_keep_their_messages(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(BackendUnavailableError, match="is empty"):
        SqlMetadataStore(f"sqlite:///{empty}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackendUnavailableError, match="damaged"):
        SqlMetadataStore(f"sqlite:///{garbage}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(BackendUnavailableError, match="without Shipyard's tables"):
        SqlMetadataStore(f"sqlite:///{other}")


def test_an_older_revision_is_migrated_through_sqlalchemy(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from shipyard.adapters.db import engine

    path = tmp_path / "old.db"
    old = sa.create_engine(f"sqlite:///{path}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engine.__file__).parent / "migrations"))
    with old.begin() as conn:  # a database as the Shipyard of revision 0002 left it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    old.dispose()
    store = SqlMetadataStore(f"sqlite:///{path}")
    try:
        assert store._reader is None and store._sqla is not None  # migrated at open, as before
        store.create_run(_record("c" * 32, "r", 1.0))
        assert store.get_run("cccc").name == "r"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD_REVISION,)


def test_exp_show_reads_the_project_database_through_the_reader(tmp_path: Path) -> None:
    """The CLI end to end: a pipeline run recorded, then `exp show --json` in a fresh interpreter."""
    from shipyard.config import Settings, default_db_url
    from shipyard.wiring import build

    home = tmp_path / ".shipyard"
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")
    svc = build(Settings(home=home, db_url=default_db_url(home), store_path=home / "objects", actor="t@ci"), tmp_path)
    try:
        svc.meta.create_run(_record("a" * 32, "train", time.time(), **{"shipyard.pipeline_run": "p" * 32,
                                                                       "shipyard.stage": "train"}))
        svc.meta.log_params("a" * 32, {"train.lr": "0.1"})
        svc.meta.end_run("a" * 32, RunStatus.FINISHED, time.time())
    finally:
        svc.close()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "shipyard", "exp", "show", "--json"],
                          cwd=tmp_path, env={**cli_env(), "PYTHONPATH": SRC}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert [(e["id"], e["params"]) for e in json.loads(done.stdout)] == [("p" * 32, {"train.lr": "0.1"})]
    assert " sqlalchemy\n" not in done.stderr and "| sqlalchemy" not in done.stderr


def test_a_search_of_many_runs_reads_each_runs_params_and_tags(url: str, tmp_path: Path) -> None:
    """Past one chunk of ids, a search of most runs reads the tables whole and one of fewer looks ids up: both give
    every run its own values."""
    copy, path = _copy(url, tmp_path)
    with sqlite3.connect(path) as conn:
        for i in range(1200):
            run_id = f"f{i:031x}"
            conn.execute("INSERT INTO runs (id, name, experiment, status, start_time, user, host, pid, git_dirty) "
                         "VALUES (?, ?, 'e', 'finished', ?, 'u', 'h', 1, 0)", (run_id, f"n{i}", float(i)))
            conn.execute("INSERT INTO tags VALUES (?, 'g', ?)", (run_id, "a" if i % 2 else "b"))
            conn.execute("INSERT INTO params VALUES (?, 'i', ?)", (run_id, str(i)))
            conn.execute("INSERT INTO latest_metrics VALUES (?, 'm', ?, 0, 0)", (run_id, i / 2))
    store = SqlMetadataStore(copy)
    try:
        for where, count in (("", 1206), ("tags.g = 'a'", 600), ("tags.g = 'b' and metrics.m < 300", 300)):
            runs = store.search_runs(parse_filter(where), 5000, None, lineage=False)
            assert len(runs) == count
            mine = [r for r in runs if r.name.startswith("n")]
            assert all(r.params == {"i": r.name[1:]} and r.metrics == {"m": int(r.name[1:]) / 2} for r in mine)
            assert all(r.tags == {"g": "a" if int(r.name[1:]) % 2 else "b"} for r in mine)
    finally:
        store.close()


@pytest.mark.parametrize("edit, why", [("status = 'weird'", "the status 'weird'"), ("start_time = 'abc'", "a time"),
                                       ("end_time = x'00'", "a time")])
def test_a_row_edited_by_hand_is_one_line_on_both_paths(url: str, tmp_path: Path, edit: str, why: str) -> None:
    copy, path = _copy(url, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE runs SET {edit} WHERE id = '{'1' * 32}'")
    fast, sqla = SqlMetadataStore(copy), SqlaStore(copy)
    try:
        for store in (fast, sqla):
            with pytest.raises(IntegrityError, match=f"run 11111111: {why}.* restore the database from a backup"):
                store.search_runs((), 10, None)
    finally:
        fast.close()
        sqla.close()


def test_a_read_never_creates_the_file_it_reads(url: str, tmp_path: Path) -> None:
    """The file moved away while a command reads (a new thread opens its own connection): an error, and no empty
    file left in its place (every later command would refuse it as empty)."""
    copy, path = _copy(url, tmp_path)
    store = SqlMetadataStore(copy)
    try:
        assert store._reader is not None and len(store.search_runs((), 10, None)) == 6
        path.rename(tmp_path / "moved.db")
        failed: list[BaseException] = []
        worker = threading.Thread(target=lambda: _catch(failed, store.search_runs, (), 10, None))
        worker.start()
        worker.join()
        assert [type(e) for e in failed] == [BackendUnavailableError], failed
        assert not path.exists()
    finally:
        store.close()
    assert SqliteReader.open(copy) is None and not path.exists()


def _catch(into: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # the test looks at it
        into.append(exc)
