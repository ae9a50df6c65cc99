"""``SqlMetadataStore``: the MetadataStore port over SQLite or PostgreSQL.

Everything goes through SQLAlchemy (``SqlaStore``), except the reads of runs from a SQLite file that is
already at the head revision: those go through the stdlib's ``sqlite3`` (``SqliteReader``), with the same
statements (``runquery``), and SQLAlchemy is imported only when the command first writes or reads the
registry. A command that lists or compares runs then starts without SQLAlchemy and alembic (their import
and the schema check cost more than the reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from shipyard.adapters.db import runquery
from shipyard.adapters.db.sqlite_reader import SqliteReader

if TYPE_CHECKING:
    from shipyard.adapters.db.sqla_store import SqlaStore
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
    from shipyard.core.registry.records import AuditEvent, ModelSummary, ModelVersion, NewVersion


class SqlMetadataStore(runquery.RunReads):
    """Runs and the registry in one database; open with a SQLAlchemy URL."""

    def __init__(self, url: str, engine: Any = None) -> None:
        self.url = url
        self._reader = SqliteReader.open(url) if engine is None else None
        self._sqla: SqlaStore | None = None
        if self._reader is None:  # checked, created or migrated now, its errors raised here
            self._sqla = self._open(engine)

    def _open(self, engine: Any = None) -> SqlaStore:
        from shipyard.adapters.db.sqla_store import SqlaStore

        return SqlaStore(self.url, engine)

    @property
    def sqla(self) -> SqlaStore:
        """The SQLAlchemy store, opened on first use."""
        if self._sqla is None:
            self._sqla = self._open()
        return self._sqla

    @property
    def engine(self) -> Any:
        return self.sqla.engine

    @property
    def dialect(self) -> str:
        return "sqlite" if self._reader is not None else self.sqla.dialect

    def read(self) -> AbstractContextManager[Any]:
        """A SQLAlchemy connection in a read transaction (checks and tests that look at the rows)."""
        return self.sqla.read()

    def write(self) -> AbstractContextManager[Any]:
        """A SQLAlchemy connection in a write transaction, committed on success."""
        return self.sqla.write()

    # runs: reads (runquery.RunReads), the same statements through the sqlite3 reader or SQLAlchemy
    def fetching(self) -> AbstractContextManager[runquery.Fetch]:
        return self._reader.fetching() if self._reader is not None else self.sqla.fetching()

    # runs: writes
    def create_run(self, run: RunRecord) -> None:
        self.sqla.create_run(run)

    def end_run(self, run_id: str, status: RunStatus, end_time: float) -> None:
        self.sqla.end_run(run_id, status, end_time)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        self.sqla.log_params(run_id, params)

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self.sqla.log_metrics(run_id, metrics)

    def existing_runs(self, run_ids: Sequence[str]) -> set[str]:
        return self.sqla.existing_runs(run_ids)

    def import_runs(self, runs: Sequence[tuple[RunRecord, Sequence[Metric]]]) -> None:
        self.sqla.import_runs(runs)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.sqla.set_tags(run_id, tags)

    def add_artifact(self, run_id: str, artifact: ArtifactRecord) -> None:
        self.sqla.add_artifact(run_id, artifact)

    def add_inputs(self, run_id: str, inputs: Mapping[str, Digest]) -> None:
        self.sqla.add_inputs(run_id, inputs)

    # registry
    def register_version(self, new: NewVersion) -> ModelVersion:
        return self.sqla.register_version(new)

    def import_version(self, version: ModelVersion, trusted: Sequence[str], actor: str,
                       reason: str) -> ModelVersion:
        return self.sqla.import_version(version, trusted, actor, reason)

    def get_version(self, model: str, version: int | None) -> ModelVersion:
        return self.sqla.get_version(model, version)

    def resolve_alias(self, model: str, alias: str) -> int:
        return self.sqla.resolve_alias(model, alias)

    def list_models(self) -> list[ModelSummary]:
        return self.sqla.list_models()

    def list_versions(self, model: str) -> list[ModelVersion]:
        return self.sqla.list_versions(model)

    def set_alias(self, model: str, alias: str, version: int, actor: str, reason: str) -> AuditEvent:
        return self.sqla.set_alias(model, alias, version, actor, reason)

    def remove_alias(self, model: str, alias: str, actor: str, reason: str) -> AuditEvent:
        return self.sqla.remove_alias(model, alias, actor, reason)

    def audit_events(self, model: str | None) -> list[AuditEvent]:
        return self.sqla.audit_events(model)

    def immutability_problems(self) -> list[str]:
        return self.sqla.immutability_problems()

    def record_trust(self, model: str, version: int, items: Sequence[str], actor: str, reason: str) -> AuditEvent:
        return self.sqla.record_trust(model, version, items, actor, reason)

    def record_result(self, model: str, version: int, action: str, record: Digest, actor: str,
                      summary: str) -> AuditEvent:
        return self.sqla.record_result(model, version, action, record, actor, summary)

    def latest_trust(self, model: str, version: int) -> AuditEvent | None:
        return self.sqla.latest_trust(model, version)

    # store maintenance
    def referenced_digests(self) -> Iterable[Digest]:
        return self.sqla.referenced_digests()

    def writers_lock(self, exclusive: bool = False) -> AbstractContextManager[None]:
        return self.sqla.writers_lock(exclusive)

    def gc_lock(self) -> AbstractContextManager[None]:
        return self.sqla.gc_lock()

    def import_lock(self) -> AbstractContextManager[None]:
        return self.sqla.import_lock()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._sqla is not None:
            self._sqla.close()
