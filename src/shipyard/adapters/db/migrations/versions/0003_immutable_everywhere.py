"""The database refuses every statement that would rewrite history, and audits every alias move.

0001 refused UPDATE and DELETE on versions and audit events. That left doors open:

- SQLite's ``INSERT OR REPLACE`` / ``REPLACE INTO`` deletes the conflicting row without firing DELETE
  triggers, so a version could be swapped for another model. A BEFORE INSERT trigger now refuses a
  key that already exists (it fires before the conflict is resolved, so it also catches an UPSERT).
- PostgreSQL's ``TRUNCATE`` fires no row trigger: a BEFORE TRUNCATE statement trigger refuses it.
- ``registered_models`` may only move ``last_version`` forward; a row is never deleted or renamed.
- ``aliases`` move by design, but only to an existing version of their model, and only when the
  newest alias event in ``audit_events`` (append-only) records exactly that move: ``alias.set`` with
  ``old`` = the current version (NULL for a new alias) and ``new`` = the new one, or ``alias.remove``
  with ``old`` = the current version for a DELETE. Shipyard writes the audit event first, then moves
  the alias; a move made with raw SQL is refused unless it leaves the same immutable record.

Errors carry codes, not just text: SQLite's RAISE(ABORT) is SQLITE_CONSTRAINT_TRIGGER, and the
PostgreSQL functions raise SQLSTATE ``SY001`` (immutable) and ``SY002`` (alias move without its audit).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

IMMUTABLE = ("model_versions", "audit_events")
APPEND_ONLY = ("model_versions", "audit_events", "registered_models", "aliases")  # no TRUNCATE
MESSAGE = "shipyard: rows of this table are immutable"
ALIAS_MESSAGE = ("shipyard: an alias moves only to an existing version of its model, "
                 "after the audit event that records the move")
SQLSTATE_IMMUTABLE = "SY001"
SQLSTATE_UNAUDITED = "SY002"

# the newest alias event of (model, alias): every alias row must agree with it
_LATEST = ("SELECT id FROM audit_events WHERE model = {r}.model AND name = {r}.alias "
           "AND action IN ('alias.set', 'alias.remove') ORDER BY id DESC LIMIT 1")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()


def _sqlite() -> None:
    for table, key in (("model_versions", "model = NEW.model AND version = NEW.version"),
                       ("audit_events", "id = NEW.id")):
        # REPLACE deletes the old row without firing DELETE triggers: refuse the key before it gets there
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key}) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE} ({table})'); END"
        )
    # Shipyard inserts a model with ON CONFLICT DO NOTHING: a second insert of a name is skipped, never replaced
    op.execute(
        "CREATE TRIGGER registered_models_no_replace BEFORE INSERT ON registered_models "
        "WHEN EXISTS (SELECT 1 FROM registered_models WHERE name = NEW.name) "
        "BEGIN SELECT RAISE(IGNORE); END"
    )
    op.execute(
        "CREATE TRIGGER registered_models_forward_only BEFORE UPDATE ON registered_models "
        "WHEN NEW.name IS NOT OLD.name OR NEW.created_at IS NOT OLD.created_at "
        "OR NEW.last_version < OLD.last_version "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE} (registered_models)'); END"
    )
    op.execute(
        "CREATE TRIGGER registered_models_no_delete BEFORE DELETE ON registered_models "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE} (registered_models)'); END"
    )
    target = "EXISTS (SELECT 1 FROM model_versions v WHERE v.model = NEW.model AND v.version = NEW.version)"
    # on INSERT the "old" version is the row a REPLACE or an UPSERT would overwrite (NULL for a new alias)
    current = "(SELECT CAST(a.version AS TEXT) FROM aliases a WHERE a.model = NEW.model AND a.alias = NEW.alias)"
    for event, old in (("INSERT", current), ("UPDATE", "CAST(OLD.version AS TEXT)")):
        changed = "NEW.model IS NOT OLD.model OR NEW.alias IS NOT OLD.alias OR " if event == "UPDATE" else ""
        op.execute(
            f"CREATE TRIGGER aliases_audited_{event.lower()} BEFORE {event} ON aliases "
            f"WHEN {changed}NOT {target} OR NOT EXISTS (SELECT 1 FROM audit_events e "
            f"WHERE e.id = ({_LATEST.format(r='NEW')}) AND e.action = 'alias.set' "
            f"AND e.old IS {old} AND e.new = CAST(NEW.version AS TEXT)) "
            f"BEGIN SELECT RAISE(ABORT, '{ALIAS_MESSAGE}'); END"
        )
    op.execute(
        "CREATE TRIGGER aliases_audited_delete BEFORE DELETE ON aliases "
        f"WHEN NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.id = ({_LATEST.format(r='OLD')}) "
        "AND e.action = 'alias.remove' AND e.old = CAST(OLD.version AS TEXT)) "
        f"BEGIN SELECT RAISE(ABORT, '{ALIAS_MESSAGE}'); END"
    )


def _postgresql() -> None:
    # the same function 0001 created, now with a SQLSTATE the engine can match instead of its text
    op.execute(
        "CREATE OR REPLACE FUNCTION shipyard_immutable() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{MESSAGE} (%)', TG_TABLE_NAME USING ERRCODE = '{SQLSTATE_IMMUTABLE}'; END $$"
    )
    # (PostgreSQL has no REPLACE; ON CONFLICT DO UPDATE fires the UPDATE triggers of 0001)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION shipyard_immutable()"
        )
    op.execute(
        "CREATE OR REPLACE FUNCTION shipyard_models_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'DELETE' OR NEW.name IS DISTINCT FROM OLD.name OR NEW.created_at IS DISTINCT FROM OLD.created_at "
        "OR NEW.last_version < OLD.last_version THEN "
        f"RAISE EXCEPTION '{MESSAGE} (%)', TG_TABLE_NAME USING ERRCODE = '{SQLSTATE_IMMUTABLE}'; END IF; "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER registered_models_forward_only BEFORE UPDATE OR DELETE ON registered_models "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_models_forward_only()"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION shipyard_alias_audited() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "DECLARE e audit_events%ROWTYPE; BEGIN "
        "IF TG_OP = 'DELETE' THEN "
        f"  SELECT * INTO e FROM audit_events WHERE id = ({_LATEST.format(r='OLD')}); "
        "  IF e.action IS DISTINCT FROM 'alias.remove' OR e.old IS DISTINCT FROM OLD.version::text THEN "
        f"    RAISE EXCEPTION '{ALIAS_MESSAGE}' USING ERRCODE = '{SQLSTATE_UNAUDITED}'; END IF; "
        "  RETURN OLD; END IF; "
        "IF TG_OP = 'UPDATE' AND (NEW.model IS DISTINCT FROM OLD.model OR NEW.alias IS DISTINCT FROM OLD.alias) "
        "   OR NOT EXISTS (SELECT 1 FROM model_versions v WHERE v.model = NEW.model AND v.version = NEW.version) THEN "
        f"  RAISE EXCEPTION '{ALIAS_MESSAGE}' USING ERRCODE = '{SQLSTATE_UNAUDITED}'; END IF; "
        f"SELECT * INTO e FROM audit_events WHERE id = ({_LATEST.format(r='NEW')}); "
        "IF e.action IS DISTINCT FROM 'alias.set' OR e.new IS DISTINCT FROM NEW.version::text "
        "   OR e.old IS DISTINCT FROM (CASE WHEN TG_OP = 'UPDATE' THEN OLD.version::text ELSE "
        "     (SELECT a.version::text FROM aliases a WHERE a.model = NEW.model AND a.alias = NEW.alias) END) THEN "
        f"  RAISE EXCEPTION '{ALIAS_MESSAGE}' USING ERRCODE = '{SQLSTATE_UNAUDITED}'; END IF; "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER aliases_audited BEFORE INSERT OR UPDATE OR DELETE ON aliases "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_alias_audited()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS aliases_audited ON aliases")
        op.execute("DROP TRIGGER IF EXISTS registered_models_forward_only ON registered_models")
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS shipyard_alias_audited()")
        op.execute("DROP FUNCTION IF EXISTS shipyard_models_forward_only()")
        return
    for name in ("model_versions_no_replace", "audit_events_no_replace", "registered_models_no_replace",
                 "registered_models_forward_only", "registered_models_no_delete", "aliases_audited_insert",
                 "aliases_audited_update", "aliases_audited_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
