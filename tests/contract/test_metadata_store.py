"""The MetadataStore contract on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import contextlib
import time

import pytest
import sqlalchemy as sa

from shipyard.adapters.db.store import SqlMetadataStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
from shipyard.core.lineage.search import parse_filter
from shipyard.core.registry.records import NewVersion
from shipyard.errors import (
    BackendUnavailableError,
    ConflictError,
    ImmutableError,
    InvalidInputError,
    NotFoundError,
)
from tests.conftest import raw_sql


@pytest.fixture
def meta(db_url: str):  # type: ignore[no-untyped-def]
    store = SqlMetadataStore(db_url)
    yield store
    store.close()


def _run(meta: SqlMetadataStore, run_id: str, name: str = "r") -> str:
    meta.create_run(RunRecord(id=run_id, name=name, experiment="e", status=RunStatus.RUNNING,
                              start_time=time.time(), end_time=None, user="u", host="h", pid=1))
    return run_id


def _new(model: str = "iris", digest: str = "sha256:" + "a" * 64, **kw: object) -> NewVersion:
    kw.setdefault("env_digest", None)
    return NewVersion(model=model, manifest_digest=Digest.parse(digest), flavor="sklearn", size=10, run_id=None,
                      created_by="tester", **kw)  # type: ignore[arg-type]


def test_run_round_trip_with_params_metrics_tags_artifacts(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "a" * 32)
    meta.log_params(rid, {"lr": "0.1", "layers": "3"})
    meta.log_metrics(rid, [Metric("loss", 1.0, 0, 1.0), Metric("loss", 0.5, 1, 2.0), Metric("loss", 0.9, 0, 3.0)])
    meta.set_tags(rid, {"team": "vision"})
    meta.add_artifact(rid, ArtifactRecord("report.txt", Digest("b" * 64), 5, False))
    meta.end_run(rid, RunStatus.FINISHED, time.time())
    run = meta.get_run(rid[:6])
    assert run.params == {"lr": "0.1", "layers": "3"}
    assert run.metrics == {"loss": 0.5}  # the latest step wins, not the latest call
    assert run.tags == {"team": "vision"}
    assert run.status is RunStatus.FINISHED
    assert [m.value for m in meta.metric_history(rid, "loss")] == [1.0, 0.9, 0.5]


def test_a_run_ended_elsewhere_takes_no_more_metrics(meta: SqlMetadataStore) -> None:
    """The API skips the run lookup for a run it holds open; the store still refuses a write to a run another
    process ended meanwhile, keeping nothing of the call (a batch included)."""
    rid = _run(meta, "f" * 32)
    meta.log_metrics(rid, [Metric("loss", 1.0, 0, 1.0)])
    meta.end_run(rid, RunStatus.FINISHED, time.time())
    for batch in ([Metric("loss", 0.5, 1, 2.0)], [Metric("loss", 0.4, 2, 3.0), Metric("acc", 0.9, 2, 3.0)]):
        with pytest.raises(ImmutableError, match="no longer running"):
            meta.log_metrics(rid, batch)
    assert [m.value for m in meta.metric_history(rid, "loss")] == [1.0]
    assert meta.get_run(rid).metrics == {"loss": 1.0}


def test_metric_counts_say_which_metrics_are_series(meta: SqlMetadataStore) -> None:
    series, single, empty = _run(meta, "a" * 32), _run(meta, "b" * 32), _run(meta, "c" * 32)
    meta.log_metrics(series, [Metric("cv", v, step, 1.0) for step, v in enumerate((0.9, 0.8, 1.0))])
    meta.log_metrics(series, [Metric("acc", 0.7, 0, 1.0)])
    meta.log_metrics(single, [Metric("cv", 0.5, 0, 1.0)])
    assert meta.metric_counts([series, single, empty]) == {series: {"cv": 3, "acc": 1}, single: {"cv": 1}}
    assert meta.metric_counts([]) == {}


def test_a_run_carries_digests_and_its_rows_keep_the_sha256_text(meta: SqlMetadataStore) -> None:
    made, read = _run(meta, "d" * 32, "prepare"), _run(meta, "e" * 32, "train")
    meta.add_artifact(made, ArtifactRecord("features", Digest("1" * 64), 5, True))
    meta.end_run(made, RunStatus.FINISHED, time.time())
    meta.add_inputs(read, {"features": Digest("1" * 64)})
    run = meta.get_run(read)
    assert run.inputs == {"features": Digest("1" * 64)}
    assert [r.id for r in meta.producers(run.inputs["features"])] == [made]
    assert meta.get_run(made).artifacts[0].digest == Digest("1" * 64)
    assert run.to_dict()["inputs"] == {"features": "sha256:" + "1" * 64}
    with meta.read() as conn:
        texts = conn.execute(sa.text("SELECT digest FROM run_artifacts UNION ALL SELECT digest FROM run_inputs")).all()
    assert [tuple(r) for r in texts] == [("sha256:" + "1" * 64,)] * 2


def test_params_are_write_once(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "b" * 32)
    meta.log_params(rid, {"lr": "0.1"})
    meta.log_params(rid, {"lr": "0.1"})  # the same value again is fine
    with pytest.raises(ConflictError, match="write-once"):
        meta.log_params(rid, {"lr": "0.2", "new": "x"})
    assert meta.get_run(rid).params == {"lr": "0.1"}  # the failed call changed nothing


def test_an_artifact_name_is_never_overwritten(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "c" * 32)
    meta.add_artifact(rid, ArtifactRecord("model.bin", Digest("1" * 64), 5, False))
    with pytest.raises(ConflictError, match="nothing is overwritten"):
        meta.add_artifact(rid, ArtifactRecord("model.bin", Digest("2" * 64), 5, False))
    assert meta.get_run(rid).artifacts[0].digest == Digest("1" * 64)


def test_search_filters_on_metrics_params_and_status(meta: SqlMetadataStore) -> None:
    for i in range(6):
        rid = _run(meta, f"{i:032x}", name=f"r{i}")
        meta.log_metrics(rid, [Metric("acc", i / 10, 0, float(i))])
        meta.log_params(rid, {"kind": "even" if i % 2 == 0 else "odd"})
        if i < 3:
            meta.end_run(rid, RunStatus.FINISHED, time.time())
    names = lambda q, order=None: [r.name for r in meta.search_runs(parse_filter(q), 100, order)]  # noqa: E731
    assert sorted(names("metrics.acc > 0.25")) == ["r3", "r4", "r5"]
    assert sorted(names("metrics.acc >= 0.2 and params.kind = 'even'")) == ["r2", "r4"]
    assert sorted(names("status = 'finished' and params.kind != 'even'")) == ["r1"]
    assert names("metrics.acc > 0", "metrics.acc asc")[:2] == ["r1", "r2"]
    assert names("metrics.missing > 0") == []
    with pytest.raises(InvalidInputError):
        meta.search_runs((), 10, "nonsense")


def test_search_returns_every_runs_params_and_tags_past_one_chunk_of_ids(meta: SqlMetadataStore) -> None:
    from shipyard.adapters.db.runs import _CHUNK

    count = _CHUNK + 3  # the runs' params, tags and metrics are fetched in chunks of run ids
    for i in range(count):
        rid = _run(meta, f"{i:032x}", name=f"r{i}")
        meta.log_params(rid, {f"p{i % 7}": str(i)})
        meta.set_tags(rid, {"t": str(i)})
    found = meta.search_runs((), count + 10, None)
    assert len(found) == count
    assert all(r.params == {f"p{int(r.name[1:]) % 7}": r.name[1:]} and r.tags == {"t": r.name[1:]} for r in found)


def test_versions_are_numbered_in_order_and_never_reused(meta: SqlMetadataStore) -> None:
    v1 = meta.register_version(_new())
    v2 = meta.register_version(_new(digest="sha256:" + "b" * 64))
    assert (v1.version, v2.version) == (1, 2)
    with pytest.raises(ImmutableError, match="iris@1 is already registered"):
        meta.register_version(_new(digest="sha256:" + "c" * 64, requested_version=1))
    with pytest.raises(ConflictError, match="the next is 3"):
        meta.register_version(_new(requested_version=7))
    assert meta.get_version("iris", 1).manifest_digest == Digest("a" * 64)
    assert meta.get_version("iris", None).version == 2
    assert meta.register_version(_new(requested_version=3)).version == 3


def test_a_version_carries_digests_and_its_row_keeps_the_sha256_text(meta: SqlMetadataStore) -> None:
    meta.register_version(_new(env_digest=Digest("e" * 64), examples_digest=Digest("f" * 64)))
    mv = meta.get_version("iris", 1)
    assert (mv.manifest_digest, mv.env_digest, mv.examples_digest) == (Digest("a" * 64), Digest("e" * 64),
                                                                       Digest("f" * 64))
    with meta.read() as conn:
        row = conn.execute(sa.text("SELECT manifest_digest, env_digest, examples_digest FROM model_versions")).one()
    assert tuple(row) == ("sha256:" + "a" * 64, "sha256:" + "e" * 64, "sha256:" + "f" * 64)
    assert (mv.to_dict()["manifest_digest"], mv.to_dict()["env_digest"]) == ("sha256:" + "a" * 64, "sha256:" + "e" * 64)
    assert "sha256:" + "a" * 64 in {e.new for e in meta.audit_events("iris")}
    assert {Digest(x * 64) for x in "aef"} <= set(meta.referenced_digests())


def test_the_database_itself_refuses_to_change_a_version(meta: SqlMetadataStore) -> None:
    meta.register_version(_new(metrics={"acc": 0.9}))
    from shipyard.adapters.db.engine import translate

    rewrite = _statement("truncate" if meta.dialect == "postgresql" else "insert_or_replace", "model_versions")
    for sql in ("UPDATE model_versions SET manifest_digest = 'sha256:evil' WHERE version = 1",
                "UPDATE model_versions SET metrics = '{\"acc\": 1.0}'",
                "DELETE FROM model_versions",
                "DELETE FROM audit_events",
                rewrite):  # the engine tells the refusal by its code (SQLSTATE, SQLite extended code)
        with pytest.raises(ImmutableError), translate(meta.url), meta.engine.begin() as conn:
            conn.execute(sa.text(sql))
    mv = meta.get_version("iris", 1)
    assert mv.manifest_digest == Digest("a" * 64) and mv.metrics == {"acc": 0.9}
    assert len(meta.audit_events("iris")) == 1


def test_alias_moves_are_audited(meta: SqlMetadataStore) -> None:
    meta.register_version(_new())
    meta.register_version(_new())
    meta.set_alias("iris", "production", 1, "alice", "first release")
    moved = meta.set_alias("iris", "production", 2, "bob", "better")
    assert (moved.old, moved.new, moved.actor) == ("1", "2", "bob")
    assert meta.resolve_alias("iris", "production") == 2
    removed = meta.remove_alias("iris", "production", "carol", "rollback")
    assert (removed.old, removed.new) == ("2", None)
    events = [(e.action, e.name, e.old, e.new, e.actor) for e in meta.audit_events("iris")]
    assert events[2:] == [("alias.set", "production", None, "1", "alice"),
                          ("alias.set", "production", "1", "2", "bob"),
                          ("alias.remove", "production", "2", None, "carol")]
    assert all(e.at > 0 for e in meta.audit_events("iris"))


def test_unknown_names_give_actionable_errors(meta: SqlMetadataStore) -> None:
    with pytest.raises(NotFoundError, match="models list"):
        meta.get_version("nope", None)
    meta.register_version(_new())
    with pytest.raises(NotFoundError, match=r"versions 1\.\.1"):
        meta.get_version("iris", 5)
    with pytest.raises(NotFoundError, match="no alias 'prod'"):
        meta.resolve_alias("iris", "prod")
    with pytest.raises(NotFoundError):
        meta.set_alias("iris", "prod", 9, "a", "")
    assert meta.audit_events("iris")[-1].action == "version.register"  # the failed move wrote nothing
    with pytest.raises(NotFoundError):
        meta.get_run("ffffffff")


def test_unreachable_database_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(BackendUnavailableError, match="SHIPYARD_DB_URL"):
        SqlMetadataStore("postgresql://nobody@127.0.0.1:1/none")


def test_migrations_create_exactly_the_declared_schema(meta: SqlMetadataStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from shipyard.adapters.db.schema import metadata

    with meta.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


# --- The database itself refuses every statement that would rewrite history (issue 7, finding 3). ---
# Each statement goes through the driver directly (sqlite3 / psycopg), the way any other client would.

_EVIL = "sha256:" + "e" * 64
_VERSION_COLS = "(model, version, manifest_digest, flavor, size, signature, metrics, params, description, " \
                "created_at, created_by)"
_VERSION_ROW = f"('iris', 1, '{_EVIL}', 'sklearn', 1, '{{}}', '{{}}', '{{}}', '', 0, 'mallory')"
_AUDIT_COLS = "(id, at, actor, action, model, name, old, new, reason)"
_AUDIT_ROW = f"(1, 0, 'mallory', 'version.register', 'iris', '1', NULL, '{_EVIL}', '')"
_ALIAS_ROW = "('iris', 'production', 2, 0)"
_MODEL_ROW = "('iris', 0, 0)"
_TABLES = {
    "model_versions": (_VERSION_COLS, _VERSION_ROW, "(model, version)", "manifest_digest = excluded.manifest_digest",
                       f"manifest_digest = '{_EVIL}'"),
    "audit_events": (_AUDIT_COLS, _AUDIT_ROW, "(id)", "new = excluded.new", f"new = '{_EVIL}'"),
    "aliases": ("", _ALIAS_ROW, "(model, alias)", "version = excluded.version", "version = 2"),
    "registered_models": ("", _MODEL_ROW, "(name)", "last_version = excluded.last_version", "last_version = 0"),
}
_GUARD_CODES = {"SQLITE_CONSTRAINT_TRIGGER", "SY001", "SY002"}  # what the triggers of migration 0003 raise
_KINDS = {  # the statements each dialect has
    "sqlite": ("insert_or_replace", "replace_into", "upsert", "update", "delete"),
    "postgresql": ("upsert", "update", "delete", "truncate", "truncate_cascade"),
}


def _statement(kind: str, table: str) -> str:
    cols, row, key, upsert_set, update_set = _TABLES[table]
    return {
        "insert_or_replace": f"INSERT OR REPLACE INTO {table} {cols} VALUES {row}",
        "replace_into": f"REPLACE INTO {table} {cols} VALUES {row}",
        "upsert": f"INSERT INTO {table} {cols} VALUES {row} ON CONFLICT {key} DO UPDATE SET {upsert_set}",
        "update": f"UPDATE {table} SET {update_set}",
        "delete": f"DELETE FROM {table}",
        "truncate": f"TRUNCATE {table}",
        "truncate_cascade": f"TRUNCATE {table} CASCADE",
    }[kind]


def _refused_code(url: str, sql: str) -> str:
    """The error code the database answers ``sql`` with (it must refuse it)."""
    try:
        raw_sql(url, sql)
    except Exception as e:  # the driver's own error class: sqlite3.Error or psycopg.Error
        code = getattr(e, "sqlite_errorname", None) or getattr(getattr(e, "diag", None), "sqlstate", None)
        return str(code)
    raise AssertionError(f"the database accepted: {sql}")


def _history(meta: SqlMetadataStore) -> tuple[object, ...]:
    return (meta.get_version("iris", 1), meta.get_version("iris", 2), meta.list_models(),
            meta.audit_events(None), meta.resolve_alias("iris", "production"))


@pytest.mark.parametrize("table", sorted(_TABLES))
def test_the_database_refuses_every_statement_that_rewrites_history(meta: SqlMetadataStore, table: str) -> None:
    meta.register_version(_new())
    meta.register_version(_new(digest="sha256:" + "b" * 64))
    meta.set_alias("iris", "production", 1, "alice", "first release")
    before = _history(meta)
    for kind in _KINDS[meta.dialect]:  # every statement of this dialect that could rewrite a row
        sql = _statement(kind, table)
        if meta.dialect == "sqlite" and table == "registered_models" and kind not in ("update", "delete"):
            raw_sql(meta.url, sql)  # a second insert of a name is skipped, never replaced nor updated
        else:
            expected = {"sqlite": {"SQLITE_CONSTRAINT_TRIGGER"}, "postgresql": {"SY001", "SY002"}}[meta.dialect]
            if kind == "truncate" and table == "registered_models":
                expected = {"0A000"}  # PostgreSQL refuses to truncate a table other tables reference
            assert _refused_code(meta.url, sql) in expected, sql
        assert _history(meta) == before, sql
    assert meta.get_version("iris", 1).manifest_digest == Digest("a" * 64)  # still loads the same model
    assert meta.register_version(_new()).version == 3  # numbering goes on where it was


def test_an_alias_moves_only_with_its_audit_event_and_to_an_existing_version(meta: SqlMetadataStore) -> None:
    meta.register_version(_new())
    meta.register_version(_new(digest="sha256:" + "b" * 64))
    meta.register_version(_new(model="other"))
    meta.set_alias("iris", "production", 1, "alice", "first release")
    refused = ["INSERT INTO aliases VALUES ('iris', 'canary', 1, 0)",  # a new alias without its event
               "UPDATE aliases SET version = 2",
               "UPDATE aliases SET model = 'other'",
               "DELETE FROM aliases"]
    for sql in refused:
        assert _refused_code(meta.url, sql) in _GUARD_CODES, sql
    assert meta.resolve_alias("iris", "production") == 1
    # a move recorded in the append-only audit first is a move like Shipyard's own ...
    raw_sql(meta.url, "INSERT INTO audit_events (at, actor, action, model, name, old, new, reason) "
                       "VALUES (0, 'mallory', 'alias.set', 'iris', 'production', '1', '2', 'by hand')")
    raw_sql(meta.url, "UPDATE aliases SET version = 2")
    assert meta.resolve_alias("iris", "production") == 2
    assert meta.audit_events("iris")[-1].actor == "mallory"  # ... and can never be erased
    # ... but only to a version of the alias's own model
    raw_sql(meta.url, "INSERT INTO audit_events (at, actor, action, model, name, old, new, reason) "
                       "VALUES (0, 'mallory', 'alias.set', 'iris', 'production', '2', '9', '')")
    assert _refused_code(meta.url, "UPDATE aliases SET version = 9") in _GUARD_CODES
    assert meta.resolve_alias("iris", "production") == 2


def test_shipyard_moves_aliases_through_the_guarded_tables(meta: SqlMetadataStore) -> None:
    """Shipyard's own writes pass the triggers: new alias, move, same version again, remove, set again."""
    meta.register_version(_new())
    meta.register_version(_new())
    for version in (1, 2, 2):
        meta.set_alias("iris", "production", version, "alice", "")
    meta.remove_alias("iris", "production", "bob", "")
    meta.set_alias("iris", "production", 1, "carol", "")
    assert meta.resolve_alias("iris", "production") == 1
    assert [(e.old, e.new) for e in meta.audit_events("iris")][2:] == [
        (None, "1"), ("1", "2"), ("2", "2"), ("2", None), (None, "1")]


def test_an_existing_database_is_upgraded_to_the_guarded_schema(db_url: str) -> None:
    """A database made by the previous release (revision 0002) gets the triggers when it is opened."""
    from alembic import command
    from alembic.config import Config

    from shipyard.adapters.db import engine as engines

    engine = sa.create_engine(sa.engine.make_url(db_url).set(
        drivername="postgresql+psycopg" if db_url.startswith("postgresql") else "sqlite"))
    cfg = Config()
    cfg.set_main_option("script_location", str(engines._MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    engine.dispose()
    store = SqlMetadataStore(db_url)
    try:
        store.register_version(_new())
        assert _refused_code(db_url, "DELETE FROM model_versions") in _GUARD_CODES
        sql = _statement("truncate" if store.dialect == "postgresql" else "insert_or_replace", "model_versions")
        assert _refused_code(db_url, sql) in _GUARD_CODES
        assert store.get_version("iris", 1).manifest_digest == Digest("a" * 64)
    finally:
        store.close()


def test_concurrent_alias_moves_leave_an_unbroken_history(db_url: str) -> None:
    """Moves from several connections at once: each audit event's ``old`` is the previous ``new``."""
    import threading

    first = SqlMetadataStore(db_url)
    for _ in range(3):
        first.register_version(_new())
    failures: list[BaseException] = []

    def mover(k: int) -> None:
        store = SqlMetadataStore(db_url)
        try:
            for i in range(10):
                if i % 4 == 3:
                    with contextlib.suppress(NotFoundError):
                        store.remove_alias("iris", "production", f"w{k}", "")
                else:
                    store.set_alias("iris", "production", (i + k) % 3 + 1, f"w{k}", "")
        except BaseException as e:  # reported below, in the test's thread
            failures.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=mover, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    try:
        assert failures == []
        moves = [(e.old, e.new) for e in first.audit_events("iris") if e.action.startswith("alias.")]
        assert len(moves) >= 3 * 7
        assert all(old == prev_new for (old, _), (_, prev_new) in zip(moves[1:], moves, strict=False))
        assert moves[0][0] is None
    finally:
        first.close()


def test_an_over_long_value_is_refused_naming_its_field(meta: SqlMetadataStore) -> None:
    """Attack report 13: a 300-character actor gave PostgreSQL's "value too long for type character
    varying(255)", naming no field (and SQLite stored it). Every user-supplied text now gets one line
    naming the field and its limit, before anything is written, on both databases."""
    run = _run(meta, "a" * 32)
    long = "x" * 300
    cases = [
        (lambda: meta.register_version(NewVersion(model="iris", manifest_digest="sha256:" + "a" * 64, flavor="sklearn",
                                                  size=1, run_id=None, env_digest=None, created_by=long)),
         "SHIPYARD_ACTOR (the actor recorded in the audit"),
        (lambda: meta.set_tags(run, {long: "v"}), "a tag key is 300 characters long; the limit is 255"),
        (lambda: meta.log_params(run, {long: "v"}), "a param key is 300"),
        (lambda: meta.log_metrics(run, [Metric(long, 1.0, 0, 0.0)]), "a metric key is 300"),
        (lambda: meta.register_version(_new(model="m" * 129)),
         "the model name is 129 characters long; the limit is 128"),
        (lambda: _run(meta, "b" * 32, name=long), "the run name is 300"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
            call()
    meta.register_version(_new())
    with pytest.raises(InvalidInputError, match="the alias name is 65 characters long; the limit is 64"):
        meta.set_alias("iris", "a" * 65, 1, "tester", "")
    with pytest.raises(InvalidInputError, match="SHIPYARD_ACTOR"):
        meta.set_alias("iris", "prod", 1, long, "")
    assert meta.list_models()[0].latest_version == 1 and meta.get_version("iris", 1).aliases == ()
    assert [e.action for e in meta.audit_events(None)] == ["version.register"]  # nothing half-written


def test_the_immutability_triggers_of_a_new_database_are_all_there(meta: SqlMetadataStore) -> None:
    assert meta.immutability_problems() == []
    if meta.dialect == "sqlite":
        raw_sql(meta.url, "DROP TRIGGER aliases_audited_delete", "DROP TRIGGER audit_events_no_replace")
        assert meta.immutability_problems() == [
            "the database's immutability triggers are missing (dropped or the table was replaced): "
            "audit_events_no_replace on audit_events, aliases_audited_delete on aliases"]
        # a look-alike that guards nothing, under the same name
        raw_sql(meta.url, "DROP TRIGGER model_versions_no_update",
                "CREATE TRIGGER model_versions_no_update BEFORE UPDATE ON model_versions WHEN 0 "
                "BEGIN SELECT RAISE(ABORT, 'shipyard: rows of this table are immutable (model_versions)'); END")
        assert meta.immutability_problems()[1] == (
            "the database's immutability triggers were replaced by others of the same name: "
            "model_versions_no_update on model_versions")
    else:
        raw_sql(meta.url, "ALTER TABLE aliases DISABLE TRIGGER aliases_audited",
                "DROP TRIGGER audit_events_no_truncate ON audit_events")
        assert meta.immutability_problems() == [
            "the database's immutability triggers are missing (dropped or the table was replaced): "
            "audit_events_no_truncate on audit_events",
            "the database's immutability triggers are disabled: aliases_audited on aliases"]


def test_a_check_of_a_version_is_an_audit_event_whose_record_gc_keeps(meta: SqlMetadataStore) -> None:
    meta.register_version(_new())
    record = Digest("d" * 64)
    event = meta.record_result("iris", 1, "verify", record, "ci", "pass in venv")
    assert (event.action, event.name, event.new, event.reason) == ("verify", "1", str(record), "pass in venv")
    assert meta.audit_events("iris")[-1] == event
    assert record in set(meta.referenced_digests())
    with pytest.raises(NotFoundError, match="iris"):
        meta.record_result("iris", 2, "verify", record, "ci", "pass")
