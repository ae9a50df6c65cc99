"""Alembic environment: always run with a connection handed over by ``shipyard.adapters.db.engine``."""

from __future__ import annotations

from alembic import context

from shipyard.adapters.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
