"""Shared plumbing of the SQL metadata store: transactions, dialect upserts, error translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from shipyard.adapters.db import engine as engines


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
