"""``SqlaStore``: the whole MetadataStore port through SQLAlchemy, on SQLite or PostgreSQL."""

from __future__ import annotations

from shipyard.adapters.db.imports import SqlImports
from shipyard.adapters.db.locks import SqlLocks
from shipyard.adapters.db.registry import SqlRegistry
from shipyard.adapters.db.runs import SqlRuns


class SqlaStore(SqlRuns, SqlRegistry, SqlLocks, SqlImports):
    """Runs and the registry in one database; open with a SQLAlchemy URL (migrated to head on first use)."""
