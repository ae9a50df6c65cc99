"""Ports: the small interfaces the core calls and the adapters implement."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:  # annotations only: importing ports must stay cheap, it is on every command's path
    from pathlib import Path

    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
    from shipyard.core.lineage.search import Condition
    from shipyard.core.pipelines.jobs import StageJob
    from shipyard.core.registry.records import AuditEvent, ModelSummary, ModelVersion, NewVersion
    from shipyard.core.registry.trust import TrustSet

Progress = Callable[[int], None]
"""Called with a number of bytes (or items) just processed; interfaces draw progress bars with it."""


def no_progress(_: int) -> None:
    """The null progress callback."""


class ObjectStore(Protocol):
    """Write-once bytes named by their SHA-256."""

    def put_file(self, path: Path, progress: Progress = no_progress, expect: Digest | None = None) -> Digest: ...
    def put_many(self, paths: Sequence[str], known: Sequence[Digest | None] | None = None, hardlink: bool = False,
                 progress: Progress = no_progress, expect: Sequence[Digest | None] | None = None) -> list[Digest]:
        """Store many files with one durability barrier; ``known`` digests already stored are skipped."""
        ...
    def put_bytes(self, data: bytes) -> Digest: ...
    def has(self, digest: Digest) -> bool: ...
    def open(self, digest: Digest) -> BinaryIO: ...
    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        """Every stored object as (digest, size, mtime)."""
        ...
    def delete(self, digest: Digest) -> None: ...
    def clean_temp(self, older_than: float) -> int: ...
    def get_ref(self, name: str) -> bytes | None:
        """A small named value kept beside the objects (e.g. a stage-cache entry)."""
        ...
    def put_ref(self, name: str, data: bytes) -> None: ...
    def fetch(self, digests: Sequence[Digest], progress: Progress = no_progress,
              sizes: Mapping[Digest, int] | None = None) -> None:
        """Make ``digests`` readable here before a batch of ``open`` calls: a read-through store downloads the
        ones it lacks, in parallel, each re-hashed as it enters its cache; a store holding everything itself
        does nothing. An absent object is left for ``open`` to report. ``sizes``: the most bytes each may
        have (a verified manifest's sizes); a larger one is refused as soon as the excess shows."""
        ...
    def refetch(self, digest: Digest) -> bool:
        """A copy of ``digest`` read from here failed verification: replace it from another copy and return
        True (the reader then reads again), or return False when there is no other copy to take."""
        ...


class Remote(Protocol):
    """Objects (and small named refs) kept elsewhere: a folder or S3-compatible storage."""

    url: str

    def missing(self, digests: Sequence[Digest]) -> list[Digest]:
        """Those of ``digests`` the remote does not hold."""
        ...

    def sizes(self, digests: Sequence[Digest]) -> dict[Digest, int]:
        """The size of each of ``digests`` the remote holds (absent ones are left out)."""
        ...

    def read(self, digest: Digest) -> Iterator[bytes]:
        """An object's bytes as the remote holds them, in chunks (NotFoundError if absent)."""
        ...

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress,
               replace: bool = True) -> None:
        """Send objects, re-hashing each as it streams: a corrupt local object raises IntegrityError and
        is never published on the remote; a reader never sees half an object. ``replace``: an object the
        remote holds already is written again (a damaged copy is mended, an old one becomes new for gc's
        grace period); False: for objects believed absent, it may be left as it is (a conditional put)."""
        ...

    def clean_temp(self, older_than: float) -> int:
        """Remove what interrupted uploads left, older than ``older_than`` seconds; return how many."""
        ...

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress,
                 sizes: Mapping[Digest, int] | None = None) -> None:
        """Fetch into ``store``; every object is re-hashed before it enters the store. ``sizes``: the most
        bytes each object may have (from the lock or a verified manifest); a larger one is refused as soon
        as the excess shows, before it fills the disk (IntegrityError)."""
        ...

    def get_ref(self, name: str) -> bytes | None: ...
    def put_ref(self, name: str, data: bytes) -> None: ...

    def stats(self, digests: Sequence[Digest]) -> dict[Digest, tuple[int, float]]:
        """``(size, last modified)`` of each of ``digests`` the remote holds (absent ones are left out)."""
        ...

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        """Every object the remote holds as (digest, size, last modified); other keys are skipped."""
        ...

    def delete(self, digest: Digest) -> None:
        """Remove one object (absent: nothing to do)."""
        ...


class Executor(Protocol):
    """Runs a stage's command somewhere (a local subprocess, a Ray task) and streams its output."""

    def run(self, job: StageJob, on_line: Callable[[str], None]) -> int:
        """Run ``job`` to completion; return its exit code (negative: killed by that signal)."""
        ...

    def cancel(self) -> None:
        """Stop every running job (Ctrl-C)."""
        ...


class StateCache(Protocol):
    """Remembers (inode, size, mtime) -> digest for workspace files, so unchanged files are not re-hashed."""

    def lookup(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, Digest]]:
        """``{path: (inode, size, mtime_ns, digest)}`` for the paths it knows."""
        ...

    def under(self, folder: str) -> dict[str, tuple[int, int, int, Digest]]:
        """Everything it knows below ``folder`` (one range scan instead of many lookups)."""
        ...

    def remember(self, entries: Iterable[tuple[str, int, int, int, Digest]]) -> None:
        """Record ``(path, inode, size, mtime_ns, digest)`` entries."""
        ...

    def tree(self, folder: str) -> tuple[str, Digest] | None:
        """``(signature, digest)`` last recorded for a folder: its stat signature and manifest digest."""
        ...

    def remember_tree(self, folder: str, signature: str, digest: Digest) -> None: ...

    def parts(self, folder: str) -> tuple[Digest, dict[str, str]] | None:
        """``(digest, {sub-folder prefix: signature of its own files})`` last recorded for a folder that was
        the version ``digest`` (``scan.Tree.parts``): which sub-folders changed since, without reading them all."""
        ...

    def remember_parts(self, folder: str, digest: Digest, parts: dict[str, str]) -> None: ...


class NoStateCache:
    """The null stat cache: every file is hashed."""

    def lookup(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, Digest]]:
        return {}

    def under(self, folder: str) -> dict[str, tuple[int, int, int, Digest]]:
        return {}

    def remember(self, entries: Iterable[tuple[str, int, int, int, Digest]]) -> None:
        return None

    def tree(self, folder: str) -> tuple[str, Digest] | None:
        return None

    def remember_tree(self, folder: str, signature: str, digest: Digest) -> None:
        return None

    def parts(self, folder: str) -> tuple[Digest, dict[str, str]] | None:
        return None

    def remember_parts(self, folder: str, digest: Digest, parts: dict[str, str]) -> None:
        return None


class MetadataStore(Protocol):
    """Runs, model versions, aliases and the audit trail, with atomic version numbering."""

    # runs
    def create_run(self, run: RunRecord) -> None: ...
    def end_run(self, run_id: str, status: RunStatus, end_time: float) -> None: ...
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...
    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def add_artifact(self, run_id: str, artifact: ArtifactRecord) -> None: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def add_inputs(self, run_id: str, inputs: Mapping[str, Digest]) -> None: ...
    def producers(self, digest: Digest) -> list[RunRecord]: ...
    def metric_history(self, run_id: str, key: str) -> list[Metric]: ...
    def metric_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]: ...
    def search_runs(self, conditions: Sequence[Condition], limit: int, order_by: str | None,
                    lineage: bool = True) -> list[RunRecord]:
        """Runs matching ``conditions``; without ``lineage``, their inputs and artifacts are left out (faster)."""
        ...
    def existing_runs(self, run_ids: Sequence[str]) -> set[str]:
        """Those of ``run_ids`` recorded here."""
        ...
    def import_runs(self, runs: Sequence[tuple[RunRecord, Sequence[Metric]]]) -> None:
        """Record runs made elsewhere, whole (params, tags, artifacts and every metric value), in one transaction."""
        ...
    # registry
    def register_version(self, new: NewVersion) -> ModelVersion: ...
    def import_version(self, version: ModelVersion, trusted: Sequence[str], actor: str,
                       reason: str) -> ModelVersion:
        """Record a version registered elsewhere, number and fields unchanged, with what it is trusted for."""
        ...
    def get_version(self, model: str, version: int | None) -> ModelVersion: ...
    def resolve_alias(self, model: str, alias: str) -> int: ...
    def list_models(self) -> list[ModelSummary]: ...
    def list_versions(self, model: str) -> list[ModelVersion]: ...
    def set_alias(self, model: str, alias: str, version: int, actor: str, reason: str) -> AuditEvent: ...
    def remove_alias(self, model: str, alias: str, actor: str, reason: str) -> AuditEvent: ...
    def audit_events(self, model: str | None) -> list[AuditEvent]: ...
    def immutability_problems(self) -> list[str]:
        """One line per missing or disabled guard of the write-once tables; empty when intact."""
        ...
    def record_trust(self, model: str, version: int, items: Sequence[str], actor: str, reason: str) -> AuditEvent:
        """Append a "trust" audit event: ``items`` are all that loading ``model@version`` may run."""
        ...
    def record_result(self, model: str, version: int, action: str, record: Digest, actor: str,
                      summary: str) -> AuditEvent:
        """An audit event for a check of the version (``verify``, ``build``) whose record is the object
        ``record``; ``summary`` is one line for the audit log."""
        ...

    def latest_trust(self, model: str, version: int) -> AuditEvent | None:
        """The newest "trust" event of ``model@version`` (its ``trusted`` items), or None."""
        ...
    # store maintenance
    def referenced_digests(self) -> Iterable[Digest]:
        """Every object digest the metadata references: what gc must keep."""
        ...

    def writers_lock(self, exclusive: bool = False) -> AbstractContextManager[None]:
        """A lock every machine using this database sees: held shared by a writer from storing objects
        to recording them, exclusive by gc while it re-reads the references and deletes."""
        ...

    def gc_lock(self) -> AbstractContextManager[None]:
        """Held by one gc at a time across every machine using this database; ConflictError if another
        holds it."""
        ...

    def import_lock(self) -> AbstractContextManager[None]:
        """Held by one import (``shipyard import mlflow``) at a time across every machine using this database;
        the next one waits, then reads what the first added."""
        ...

    def close(self) -> None: ...


class Flavor(Protocol):
    """Saves a model object into a folder and loads it back."""

    name: str

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        """Write the model's files into ``folder``; return flavor metadata to record."""
        ...

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        """What loading ``folder`` would run beyond Shipyard's allowlist; reads files, runs nothing."""
        ...

    def packages(self, meta: Mapping[str, Any]) -> tuple[str, ...]:
        """The distributions (PEP 503 names) that loading and predicting with files saved as ``meta`` says
        need installed; a model's own code declares the rest (``log_model(requirements=...)``)."""
        ...

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        """Load the model, running nothing outside the allowlist and ``trusted`` (refuse otherwise)."""
        ...

    def predict(self, model: Any, inputs: Any) -> Any: ...

    def to_json(self, data: Any) -> Any:
        """Inputs or outputs as JSON-ready lists, for golden examples."""
        ...

    def schema(self, data: Any) -> dict[str, Any]:
        """A signature entry (dtype, shape, column names) describing ``data``."""
        ...


class SecretStore(Protocol):
    """Reads one kind of secret reference (``env:``, ``file:``, ``vault:``); the core's resolver caches values."""

    scheme: str

    def read(self, path: str) -> str:
        """The value at ``path`` (the reference without its scheme); ConfigError when it is not there,
        BackendUnavailableError when the backend cannot be reached."""
        ...


class PolicyEngine(Protocol):
    """Evaluates the project's policy bundle, compiled once per process."""

    @property
    def digest(self) -> Digest:
        """The bundle's digest (its files' paths and bytes), recorded with each decision."""
        ...

    def decide(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        """The bundle's decision object for ``document`` (``{"allow": bool, "reasons": [...]}``)."""
        ...

    def run_tests(self) -> list[tuple[str, bool, str]]:
        """Each Rego unit test (``test_*`` rules of the bundle's ``*_test.rego``): (name, passed, detail)."""
        ...
