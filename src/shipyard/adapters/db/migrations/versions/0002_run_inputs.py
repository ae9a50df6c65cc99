"""Run inputs (what a run read, by digest) and lookups from a digest to the run that produced it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False),
    )
    op.create_index("ix_run_inputs_digest", "run_inputs", ["digest"])
    op.create_index("ix_run_artifacts_digest", "run_artifacts", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_run_artifacts_digest", "run_artifacts")
    op.drop_table("run_inputs")
