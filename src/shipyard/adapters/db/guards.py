"""Are the database's immutability triggers (migrations 0001 and 0003) still in place?

The triggers refuse any SQL that rewrites a version, an audit event or an alias without its event.
Whoever owns the tables can still drop or disable them, or rename a table away (its triggers go
with it) and put an unguarded copy in its place; SQLite has no DDL triggers to stop that, and
PostgreSQL's event triggers need a superuser. ``store verify`` asks this module, so such a change
is named instead of going unnoticed.
"""

from __future__ import annotations

import sqlalchemy as sa

# (trigger, table) as the migrations create them, per dialect
SQLITE_TRIGGERS = (
    *((f"{table}_no_{event}", table) for table in ("model_versions", "audit_events")
      for event in ("update", "delete", "replace")),
    ("registered_models_no_replace", "registered_models"),
    ("registered_models_forward_only", "registered_models"),
    ("registered_models_no_delete", "registered_models"),
    ("aliases_audited_insert", "aliases"),
    ("aliases_audited_update", "aliases"),
    ("aliases_audited_delete", "aliases"),
)
POSTGRESQL_TRIGGERS = (
    ("model_versions_immutable", "model_versions"),
    ("audit_events_immutable", "audit_events"),
    *((f"{table}_no_truncate", table) for table in ("model_versions", "audit_events", "registered_models", "aliases")),
    ("registered_models_forward_only", "registered_models"),
    ("aliases_audited", "aliases"),
)
MISSING = "the database's immutability triggers are missing (dropped or the table was replaced): "
DISABLED = "the database's immutability triggers are disabled: "

_PG_TRIGGERS = """
SELECT t.tgname, c.relname, t.tgenabled, p.prosrc
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND n.nspname = current_schema()
"""


def trigger_problems(conn: sa.Connection) -> list[str]:
    """One line per kind of problem (missing, disabled), naming each trigger and its table; empty when intact."""
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(_PG_TRIGGERS).all()
        found = {(r[0], r[1]) for r in rows}
        # 'D' = disabled; a trigger whose function no longer raises guards nothing either
        disabled = sorted({(r[0], r[1]) for r in rows if r[2] == "D" or "RAISE EXCEPTION" not in r[3]})
        expected = POSTGRESQL_TRIGGERS
    else:
        found = {(r[0], r[1]) for r in conn.exec_driver_sql(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%RAISE(%'")}
        disabled = []
        expected = SQLITE_TRIGGERS
    missing = [pair for pair in expected if pair not in found]
    problems = []
    if missing:
        problems.append(MISSING + ", ".join(f"{name} on {table}" for name, table in missing))
    wanted = [pair for pair in disabled if pair in expected]
    if wanted:
        problems.append(DISABLED + ", ".join(f"{name} on {table}" for name, table in wanted))
    return problems
