"""The MetadataStore contract on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from shipyard.adapters.db.store import SqlMetadataStore
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
    return NewVersion(model=model, manifest_digest=digest, flavor="sklearn", size=10, run_id=None,
                      env_digest=None, created_by="tester", **kw)  # type: ignore[arg-type]


def test_run_round_trip_with_params_metrics_tags_artifacts(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "a" * 32)
    meta.log_params(rid, {"lr": "0.1", "layers": "3"})
    meta.log_metrics(rid, [Metric("loss", 1.0, 0, 1.0), Metric("loss", 0.5, 1, 2.0), Metric("loss", 0.9, 0, 3.0)])
    meta.set_tags(rid, {"team": "vision"})
    meta.add_artifact(rid, ArtifactRecord("report.txt", "sha256:" + "b" * 64, 5, False))
    meta.end_run(rid, RunStatus.FINISHED, time.time())
    run = meta.get_run(rid[:6])
    assert run.params == {"lr": "0.1", "layers": "3"}
    assert run.metrics == {"loss": 0.5}  # the latest step wins, not the latest call
    assert run.tags == {"team": "vision"}
    assert run.status is RunStatus.FINISHED
    assert [m.value for m in meta.metric_history(rid, "loss")] == [1.0, 0.9, 0.5]


def test_params_are_write_once(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "b" * 32)
    meta.log_params(rid, {"lr": "0.1"})
    meta.log_params(rid, {"lr": "0.1"})  # the same value again is fine
    with pytest.raises(ConflictError, match="write-once"):
        meta.log_params(rid, {"lr": "0.2", "new": "x"})
    assert meta.get_run(rid).params == {"lr": "0.1"}  # the failed call changed nothing


def test_an_artifact_name_is_never_overwritten(meta: SqlMetadataStore) -> None:
    rid = _run(meta, "c" * 32)
    meta.add_artifact(rid, ArtifactRecord("model.bin", "sha256:" + "1" * 64, 5, False))
    with pytest.raises(ConflictError, match="nothing is overwritten"):
        meta.add_artifact(rid, ArtifactRecord("model.bin", "sha256:" + "2" * 64, 5, False))
    assert meta.get_run(rid).artifacts[0].digest == "sha256:" + "1" * 64


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


def test_versions_are_numbered_in_order_and_never_reused(meta: SqlMetadataStore) -> None:
    v1 = meta.register_version(_new())
    v2 = meta.register_version(_new(digest="sha256:" + "b" * 64))
    assert (v1.version, v2.version) == (1, 2)
    with pytest.raises(ImmutableError, match="iris@1 is already registered"):
        meta.register_version(_new(digest="sha256:" + "c" * 64, requested_version=1))
    with pytest.raises(ConflictError, match="the next is 3"):
        meta.register_version(_new(requested_version=7))
    assert meta.get_version("iris", 1).manifest_digest == "sha256:" + "a" * 64
    assert meta.get_version("iris", None).version == 2
    assert meta.register_version(_new(requested_version=3)).version == 3


def test_the_database_itself_refuses_to_change_a_version(meta: SqlMetadataStore) -> None:
    meta.register_version(_new(metrics={"acc": 0.9}))
    from shipyard.adapters.db.engine import translate

    for sql in ("UPDATE model_versions SET manifest_digest = 'sha256:evil' WHERE version = 1",
                "UPDATE model_versions SET metrics = '{\"acc\": 1.0}'",
                "DELETE FROM model_versions",
                "DELETE FROM audit_events"):
        with pytest.raises(ImmutableError), translate(meta.url), meta.engine.begin() as conn:
            conn.execute(sa.text(sql))
    mv = meta.get_version("iris", 1)
    assert mv.manifest_digest == "sha256:" + "a" * 64 and mv.metrics == {"acc": 0.9}
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
