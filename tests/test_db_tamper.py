"""A registered version keeps loading the same model, whatever is done to the database or the store.

Issue 7, finding 3: SQL that would swap a version for another model is refused by the database
(SQLite and PostgreSQL). Tampering below SQL is named by ``store verify``.

Attack report, finding 6: the table's owner can rename a guarded table away and put an unguarded copy
in its place, append a forged registration event, or change fields other than the manifest. Verify
names the missing triggers, holds each version to its FIRST registration event (a second one is
forged), and checks a digest of the whole row recorded in that event.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from shipyard.core.artifacts.digest import Digest
from shipyard.core.registry.integrity import check_versions, legacy_versions
from shipyard.core.registry.saving import save_model
from shipyard.wiring import Services
from tests.conftest import cli_env, raw_sql, register_constant, shipyard


def _register(services: Services, tmp_path: Path, name: str, constant: int) -> str:
    from shipyard.adapters.flavors import get_flavor

    model = DummyClassifier(strategy="constant", constant=constant).fit([[0, 0]] * 2, [constant] * 2)
    folder = tmp_path / f"{name}-saved"
    save_model(get_flavor("sklearn"), model, folder)
    return str(services.registry.register(name, folder).manifest_digest)


def test_sql_cannot_swap_a_version_for_another_model(services: Services, tmp_path: Path) -> None:
    import psycopg

    _register(services, tmp_path, "iris", 1)
    other = _register(services, tmp_path, "other", 2)
    url = services.settings.db_url
    row = (f"('iris', 1, '{other}', 'sklearn', 1, '{{}}', '{{}}', '{{}}', '', 0, 'mallory')")
    cols = ("(model, version, manifest_digest, flavor, size, signature, metrics, params, description, "
            "created_at, created_by)")
    if services.meta.dialect == "sqlite":  # type: ignore[attr-defined]
        attacks = [f"INSERT OR REPLACE INTO model_versions {cols} VALUES {row}",
                   f"REPLACE INTO model_versions {cols} VALUES {row}"]
    else:
        attacks = [f"INSERT INTO model_versions {cols} VALUES {row} ON CONFLICT (model, version) DO UPDATE "
                   "SET manifest_digest = excluded.manifest_digest",
                   "TRUNCATE model_versions CASCADE"]
    attacks += [f"UPDATE model_versions SET manifest_digest = '{other}' WHERE model = 'iris'",
                "DELETE FROM model_versions WHERE model = 'iris'"]
    for sql in attacks:
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error)):
            raw_sql(url, sql)
    assert list(services.registry.load("iris@1").predict([[0, 0]])) == [1]
    assert str(services.registry.resolve("iris@1").manifest_digest) != other
    assert check_versions(services.meta, services.store) == []


def _disable_guards(url: str) -> None:
    """What only the database's owner can do: switch the triggers off (and then tamper below Shipyard)."""
    if url.startswith("sqlite"):
        raw_sql(url, "DROP TRIGGER model_versions_no_update")
    else:
        raw_sql(url, "ALTER TABLE model_versions DISABLE TRIGGER USER")


def test_verify_names_a_version_pointing_to_another_manifest(services: Services, tmp_path: Path) -> None:
    registered = _register(services, tmp_path, "iris", 1)
    other = _register(services, tmp_path, "other", 2)
    _disable_guards(services.settings.db_url)
    raw_sql(services.settings.db_url, f"UPDATE model_versions SET manifest_digest = '{other}' WHERE model = 'iris'")
    problems = check_versions(services.meta, services.store)
    assert len(problems) == 2, problems
    assert problems[0].startswith(("database: the database's immutability triggers are missing",
                                   "database: the database's immutability triggers are disabled"))
    assert "on model_versions" in problems[0]
    assert problems[1] == f"iris@1: points to manifest {other}, but was registered with {registered}"


def _object_file(services: Services, digest: str) -> Path:
    hexdigest = Digest.parse(digest).hex
    (found,) = [p for p in services.settings.store_path.rglob("*") if p.is_file() and hexdigest.endswith(p.name)
                and hexdigest[:2] in p.parts]
    return found


def test_verify_names_a_manifest_that_was_altered_or_removed(services: Services, tmp_path: Path) -> None:
    altered = _register(services, tmp_path, "iris", 1)
    removed = _register(services, tmp_path, "other", 2)
    path = _object_file(services, altered)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"model.json", b"model.jsoN"))
    _object_file(services, removed).unlink()
    problems = check_versions(services.meta, services.store)
    assert len(problems) == 2
    assert problems[0].startswith(f"iris@1: manifest {altered} does not match its content")
    assert problems[1] == f"other@1: manifest {removed} is missing from the store"


def test_store_verify_fails_on_a_tampered_version(project: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    register_constant(env, "iris", 1)
    register_constant(env, "other", 2)
    db = project / ".shipyard" / "shipyard.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        other = conn.execute("SELECT manifest_digest FROM model_versions WHERE model = 'other'").fetchone()[0]
        conn.execute("DROP TRIGGER model_versions_no_update")
        conn.execute(f"UPDATE model_versions SET manifest_digest = '{other}' WHERE model = 'iris'")
    finally:
        conn.close()
    done = shipyard("store", "verify", env=env, cwd=project, check=False)
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"tampered iris@1: points to manifest {other}" in done.stdout
    assert "FAILED" in done.stdout and "Traceback" not in done.stderr


def _rename_and_copy(url: str, change: str) -> None:
    """The attack report's bypass: no trigger is dropped, the guarded table is replaced by a copy."""
    if url.startswith("sqlite"):
        raw_sql(url, "PRAGMA foreign_keys = OFF", "BEGIN", "ALTER TABLE model_versions RENAME TO mv_old",
                "CREATE TABLE model_versions AS SELECT * FROM mv_old", "DROP TABLE mv_old", change, "COMMIT")
    else:
        raw_sql(url, "ALTER TABLE model_versions RENAME TO mvx",
                "CREATE TABLE model_versions (LIKE mvx INCLUDING ALL)",
                "INSERT INTO model_versions SELECT * FROM mvx", change)


def test_verify_names_a_table_replaced_by_an_unguarded_copy(services: Services, tmp_path: Path) -> None:
    _register(services, tmp_path, "iris", 1)
    _rename_and_copy(services.settings.db_url,
                     """UPDATE model_versions SET metrics = '{"accuracy": 0.999}' WHERE model = 'iris'""")
    assert services.registry.resolve("iris@1").metrics == {"accuracy": 0.999}  # the bypass worked
    problems = check_versions(services.meta, services.store)
    assert problems[0].startswith("database: the database's immutability triggers are missing (dropped or the "
                                  "table was replaced): ")
    if services.meta.dialect == "sqlite":  # type: ignore[attr-defined]
        # SQLite's RENAME also rewrote the alias triggers that name model_versions: they now guard nothing
        assert problems[1].startswith("database: the database's immutability triggers were replaced by others of "
                                      "the same name: aliases_audited_insert on aliases")
    assert len(problems) == (3 if services.meta.dialect == "sqlite" else 2), problems  # type: ignore[attr-defined]
    expected = ("model_versions_no_update on model_versions" if services.meta.dialect == "sqlite"  # type: ignore[attr-defined]
                else "model_versions_immutable on model_versions")
    assert expected in problems[0]
    assert "on audit_events" not in problems[0] and "on aliases" not in problems[0]
    assert problems[-1].startswith("iris@1: its record (flavor, metrics, params, signature, lineage ...) is not "
                                  "the one registered")


def test_verify_catches_every_field_of_the_row_not_only_the_manifest(services: Services, tmp_path: Path) -> None:
    _register(services, tmp_path, "iris", 1)
    _register(services, tmp_path, "other", 2)
    _disable_guards(services.settings.db_url)
    changes = {"iris": "flavor = 'pickle'", "other": "run_id = NULL, description = 'forged', size = size + 1"}
    for model, change in changes.items():
        raw_sql(services.settings.db_url, f"UPDATE model_versions SET {change} WHERE model = '{model}'")
    problems = [p for p in check_versions(services.meta, services.store) if not p.startswith("database:")]
    assert [p.split(":")[0] for p in problems] == ["iris@1", "other@1"]
    assert all("is not the one registered" in p for p in problems)


def test_a_forged_registration_event_does_not_make_verify_pass(services: Services, tmp_path: Path) -> None:
    registered = _register(services, tmp_path, "iris", 1)
    other = _register(services, tmp_path, "other", 2)
    url = services.settings.db_url
    forged = ("INSERT INTO audit_events (at, actor, action, model, name, old, new, reason) "
              f"VALUES (0, 'ci', 'version.register', 'iris', '1', NULL, '{other}', '')")
    raw_sql(url, forged)  # the audit trail takes inserts by design: alone, it is named
    assert check_versions(services.meta, services.store)[0].startswith(
        "iris@1: has 2 registration events in the audit trail")
    _rename_and_copy(url, f"UPDATE model_versions SET manifest_digest = '{other}' WHERE model = 'iris'")
    raw_sql(url, forged)
    problems = check_versions(services.meta, services.store)
    assert any(p.startswith("iris@1: has 3 registration events in the audit trail") for p in problems), problems
    # the first event still speaks for the version: what it recorded is the truth
    first = next(e for e in services.meta.audit_events("iris") if e.action == "version.register")
    assert first.new == registered and first.record is not None


def test_versions_registered_before_record_digests_are_checked_on_their_manifest(
        services: Services, tmp_path: Path) -> None:
    digest = _register(services, tmp_path, "iris", 1)
    # what an older Shipyard wrote: the registration event's reason is the bare description
    raw_sql(services.settings.db_url,
            "INSERT INTO registered_models (name, last_version, created_at) VALUES ('old', 1, 0)",
            "INSERT INTO model_versions (model, version, manifest_digest, flavor, size, signature, metrics, params, "
            f"description, created_at, created_by) VALUES ('old', 1, '{digest}', 'sklearn', 1, '{{}}', '{{}}', "
            "'{}', 'first', 0, 'alice')",
            "INSERT INTO audit_events (at, actor, action, model, name, old, new, reason) "
            f"VALUES (0, 'alice', 'version.register', 'old', '1', NULL, '{digest}', 'first')")
    assert check_versions(services.meta, services.store) == []
    assert legacy_versions(services.meta) == ["old@1"]
    (event,) = [e for e in services.meta.audit_events("old") if e.action == "version.register"]
    assert event.reason == "first" and event.record is None
    (new,) = [e for e in services.meta.audit_events("iris") if e.action == "version.register"]
    assert new.reason == "" and new.record == services.registry.resolve("iris@1").record_digest()


# what README's Security model tells a team to run (as the owner, after Shipyard created the tables)
APP_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT UPDATE ON runs, tags, latest_metrics, registered_models, aliases TO {role}",
    "GRANT DELETE ON aliases TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_role_that_does_not_own_the_tables_works_but_cannot_remove_the_guards(db_url: str) -> None:
    import uuid

    import psycopg
    import sqlalchemy as sa

    from shipyard.adapters.db.store import SqlMetadataStore
    from shipyard.core.lineage.records import Metric, RunRecord, RunStatus
    from shipyard.core.registry.records import NewVersion

    SqlMetadataStore(db_url).close()  # the owner creates the tables (migrations run once, as the owner)
    role = f"shipyard_app_{uuid.uuid4().hex[:8]}"
    raw_sql(db_url, f"CREATE ROLE {role} LOGIN", *(g.format(role=role) for g in APP_GRANTS))
    app_url = sa.engine.make_url(db_url).set(username=role, password=None).render_as_string(hide_password=False)
    try:
        meta = SqlMetadataStore(app_url)
        try:  # everything Shipyard does, with only those grants
            meta.create_run(RunRecord(id="a" * 32, name="r", experiment="e", status=RunStatus.RUNNING,
                                      start_time=1.0, end_time=None, user="u", host="h", pid=1))
            meta.log_params("a" * 32, {"lr": "0.1"})
            meta.log_metrics("a" * 32, [Metric("acc", 0.5, 0, 1.0)])
            meta.log_metrics("a" * 32, [Metric("acc", 0.9, 1, 2.0)])
            meta.set_tags("a" * 32, {"k": "1"})
            meta.set_tags("a" * 32, {"k": "2"})
            meta.end_run("a" * 32, RunStatus.FINISHED, 3.0)
            for _ in range(2):
                meta.register_version(NewVersion(model="iris", manifest_digest="sha256:" + "a" * 64, flavor="sklearn",
                                                 size=1, run_id="a" * 32, env_digest=None, created_by="app"))
            meta.set_alias("iris", "production", 1, "app", "")
            meta.set_alias("iris", "production", 2, "app", "")
            meta.remove_alias("iris", "production", "app", "")
            meta.record_trust("iris", 1, ["pickle"], "app", "ours")
            assert meta.immutability_problems() == []
        finally:
            meta.close()
        for attack in ("ALTER TABLE model_versions RENAME TO mvx",
                       "DROP TRIGGER model_versions_immutable ON model_versions",
                       "ALTER TABLE audit_events DISABLE TRIGGER USER", "DROP TABLE aliases",
                       "UPDATE model_versions SET metrics = '{}'", "DELETE FROM audit_events"):
            with pytest.raises(psycopg.Error):
                raw_sql(app_url, attack)
    finally:
        raw_sql(db_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_store_verify_says_which_versions_it_checks_on_their_manifest_only(project: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"))
    register_constant(env, "iris", 1)
    db = project / ".shipyard" / "shipyard.db"
    digest = sqlite3.connect(db).execute("SELECT manifest_digest FROM model_versions").fetchone()[0]
    raw_sql(f"sqlite:///{db}",  # a version as an older Shipyard registered it: no record digest in its event
            "INSERT INTO registered_models (name, last_version, created_at) VALUES ('old', 1, 0)",
            "INSERT INTO model_versions (model, version, manifest_digest, flavor, size, signature, metrics, params, "
            f"description, created_at, created_by) VALUES ('old', 1, '{digest}', 'sklearn', 1, '{{}}', '{{}}', "
            "'{}', '', 0, 'alice')",
            "INSERT INTO audit_events (at, actor, action, model, name, old, new, reason) "
            f"VALUES (0, 'alice', 'version.register', 'old', '1', NULL, '{digest}', '')")
    done = shipyard("store", "verify", env=env, cwd=project)
    assert "note: 1 version(s) registered before versions carried a record digest are checked on their manifest " \
           "only, e.g. old@1" in " ".join(done.stdout.split())
    assert json.loads(shipyard("store", "verify", "--json", env=env, cwd=project).stdout)["manifest_only"] == ["old@1"]


def test_verify_names_a_registry_table_that_was_altered(services: Services, tmp_path: Path) -> None:
    _register(services, tmp_path, "iris", 1)
    raw_sql(services.settings.db_url, "ALTER TABLE model_versions DROP COLUMN description")  # the owner may
    (problem,) = check_versions(services.meta, services.store)
    assert problem.startswith("database: the registry's tables cannot be read (altered?): ")
