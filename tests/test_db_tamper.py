"""A registered version keeps loading the same model, whatever is done to the database or the store.

Issue 7, finding 3: SQL that would swap a version for another model is refused by the database
(SQLite and PostgreSQL). Tampering below SQL is named by ``store verify``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from shipyard.core.artifacts.digest import Digest
from shipyard.core.registry.integrity import check_versions
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
    assert check_versions(services.meta, services.store) == [
        f"iris@1: points to manifest {other}, but was registered with {registered}"]


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
