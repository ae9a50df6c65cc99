"""SQLAlchemy tables of the metadata database (the migrations create the same)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("experiment", String(255), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("start_time", Float, nullable=False, index=True),
    Column("end_time", Float),
    Column("user", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("git_commit", String(64)),
    Column("git_branch", String(255)),
    Column("git_dirty", Boolean, nullable=False, default=False),
    Column("git_diff_digest", String(80)),
    Column("git_repo", Text),
    Column("env_digest", String(80)),
    Column("parent_id", String(32)),
)

params = Table(
    "params", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

metrics = Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", Integer, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

# the latest value of each metric of each run: what run searches filter and sort on
latest_metrics = Table(
    "latest_metrics", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", Integer, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

run_artifacts = Table(
    "run_artifacts", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(80), nullable=False),
    Column("size", Integer, nullable=False),
    Column("is_dir", Boolean, nullable=False),
    Index("ix_run_artifacts_digest", "digest"),
)

# what a run read: the digests of its inputs (lineage walks from outputs back through these)
run_inputs = Table(
    "run_inputs", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(80), nullable=False, index=True),
)

registered_models = Table(
    "registered_models", metadata,
    Column("name", String(128), primary_key=True),
    Column("last_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("model", String(128), ForeignKey("registered_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("manifest_digest", String(80), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("env_digest", String(80)),
    Column("signature", JSON, nullable=False),
    Column("examples_digest", String(80)),
    Column("metrics", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False),
)

aliases = Table(
    "aliases", metadata,
    Column("model", String(128), ForeignKey("registered_models.name"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("model", String(128), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("old", String(80)),
    Column("new", String(80)),
    Column("reason", Text, nullable=False),
)

# Tables whose rows are write-once: the database itself refuses UPDATE, DELETE, REPLACE and TRUNCATE on
# them (triggers of migrations 0001 and 0003; 0003 also guards registered_models and audits aliases).
IMMUTABLE_TABLES = ("model_versions", "audit_events")
IMMUTABLE_MESSAGE = "shipyard: rows of this table are immutable"
