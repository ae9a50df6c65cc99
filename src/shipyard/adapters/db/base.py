"""Shared plumbing of the SQL metadata store: transactions, dialect upserts, error translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from shipyard.adapters.db import engine as engines
from shipyard.errors import InvalidInputError

# what a user calls a column that holds text they supplied (the default is "table.column")
FIELD_NAMES = {
    ("audit_events", "actor"): "SHIPYARD_ACTOR (the actor recorded in the audit log)",
    ("model_versions", "created_by"): "SHIPYARD_ACTOR (the actor recorded in the audit log)",
    ("runs", "user"): "SHIPYARD_ACTOR (the run's user)",
    ("runs", "host"): "the host name",
    ("runs", "name"): "the run name",
    ("runs", "experiment"): "the experiment name",
    ("runs", "git_branch"): "the git branch name",
    ("registered_models", "name"): "the model name",
    ("model_versions", "model"): "the model name",
    ("aliases", "model"): "the model name",
    ("audit_events", "model"): "the model name",
    ("aliases", "alias"): "the alias name",
    ("audit_events", "name"): "the alias name",
    ("model_versions", "flavor"): "the flavor name",
    ("params", "key"): "a param key",
    ("tags", "key"): "a tag key",
    ("metrics", "key"): "a metric key",
    ("latest_metrics", "key"): "a metric key",
    ("run_artifacts", "path"): "an artifact path",
    ("run_inputs", "path"): "an input path",
}


def fits(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row``, once every text value fits its column; else one line naming the field and its limit.

    PostgreSQL would refuse an over-long value without naming the column, and SQLite would store it;
    both now give the same error, before anything is written.
    """
    for key, value in row.items():
        length = getattr(table.c[key].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            field = FIELD_NAMES.get((table.name, key), f"{table.name}.{key}")
            raise InvalidInputError(
                f"{field} is {len(value)} characters long; the limit is {length}: {value[:40]!r}... is too long"
            )
    return dict(row)


class SqlBase:
    def __init__(self, url: str, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else engines.create(url)
        self._reader = self.engine.execution_options(**engines.READ)
        self.dialect = self.engine.dialect.name
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        self._insert = dialect.insert

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with engines.translate(self.url), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with engines.translate(self.url), self._reader.connect() as conn:
            yield conn

    def upsert(self, table: sa.Table) -> Any:
        return self._insert(table)

    def close(self) -> None:
        self.engine.dispose()
