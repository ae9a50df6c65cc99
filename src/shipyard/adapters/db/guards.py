"""Are the database's immutability triggers (migrations 0001 and 0003) still in place?

The triggers refuse any SQL that rewrites a version, an audit event or an alias without its event.
Whoever owns the tables can still drop or disable them, or rename a table away (its triggers go
with it) and put an unguarded copy in its place; SQLite has no DDL triggers to stop that, and
PostgreSQL's event triggers need a superuser. ``store verify`` asks this module, so such a change
is named instead of going unnoticed.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from shipyard.adapters.db.engine import migrate_new

# (trigger, table) as the migrations create them on PostgreSQL; on SQLite, verify compares each
# trigger's SQL with that of a new in-memory database migrated by the same code
POSTGRESQL_TRIGGERS = (
    ("model_versions_immutable", "model_versions"),
    ("audit_events_immutable", "audit_events"),
    *((f"{table}_no_truncate", table) for table in ("model_versions", "audit_events", "registered_models", "aliases")),
    ("registered_models_forward_only", "registered_models"),
    ("aliases_audited", "aliases"),
)
MISSING = "the database's immutability triggers are missing (dropped or the table was replaced): "
DISABLED = "the database's immutability triggers are disabled: "
CHANGED = "the database's immutability triggers were replaced by others of the same name: "

_PG_TRIGGERS = """
SELECT t.tgname, c.relname, t.tgenabled, p.prosrc
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND n.nspname = current_schema()
"""


def trigger_problems(conn: sa.Connection) -> list[str]:
    """One line per kind of problem (missing, disabled, changed), naming each trigger and its table."""
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(_PG_TRIGGERS).all()
        found = {(r[0], r[1]) for r in rows}
        # 'D' = disabled; a trigger whose function no longer raises guards nothing either
        disabled = {(r[0], r[1]) for r in rows if r[2] == "D" or "RAISE EXCEPTION" not in r[3]}
        expected = POSTGRESQL_TRIGGERS
        changed: set[tuple[str, str]] = set()
    else:
        want = _sqlite_triggers()
        have = {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")}
        found = {(name, have[name][0]) for name in have}
        expected = tuple((name, table) for name, (table, _) in want.items())
        changed = {(name, table) for name, (table, sql) in want.items() if name in have and have[name] != (table, sql)}
        disabled = set()
    problems = []
    for heading, bad in ((MISSING, [p for p in expected if p not in found]),
                         (DISABLED, [p for p in expected if p in disabled]),
                         (CHANGED, [p for p in expected if p in changed and p in found])):
        if bad:
            problems.append(heading + ", ".join(f"{name} on {table}" for name, table in bad))
    return problems


@functools.cache
def _sqlite_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, SQL) of every trigger in a new database, migrated in memory by this Shipyard."""
    engine = sa.create_engine("sqlite://")
    try:
        migrate_new(engine)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'").all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}
