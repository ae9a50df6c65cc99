"""``shipyard import mlflow URI``: bring an MLflow tracking store over (the I/O around ``core.importing.mlflow``).

Runs are written in chunks, each chunk one transaction; artifacts are stored by digest before the rows that
name them. Registered versions get their MLflow files plus a ``shipyard-model.json`` describing them (flavor,
lineage), registered in MLflow's order. Nothing of MLflow's is changed. A re-run adds only what is new:
runs are matched by id (MLflow's own), versions by the MLflow name and number kept in their description.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.core.importing.mlflow import (
    MAX_KEY,
    MlAlias,
    MlExperiment,
    MlLoggedModel,
    MlRun,
    MlVersion,
    Report,
    experiment_name,
    run_id_for,
    to_run,
)
from shipyard.errors import InvalidInputError, ShipyardError
from shipyard.wiring.mlflow_models import ModelImport

if TYPE_CHECKING:
    from shipyard.adapters.mlflow_store.locations import ArtifactRoot
    from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord
    from shipyard.wiring import Services

CHUNK = 1000  # runs per transaction
DELETED_STAGE = "Deleted_Internal"  # a model version deleted in MLflow (its row and folder stay)
MAX_STEP = 2**31 - 1  # the step column is a 32-bit INTEGER on every backend
Step = Callable[[str, int, int], None]  # (what, done, total): the CLI draws a progress bar with it


def _no_step(what: str, done: int, total: int) -> None:
    return None


class Source(Protocol):
    where: str

    def default_artifacts(self) -> tuple[Path, Path]: ...
    def experiments(self) -> list[MlExperiment]: ...
    def runs(self) -> list[MlRun]: ...
    def details(self, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]],
                                                       dict[str, list[Metric]], list[tuple[str, str]]]: ...
    def versions(self) -> list[MlVersion]: ...
    def aliases(self) -> list[MlAlias]: ...
    def logged_models(self) -> list[MlLoggedModel]: ...
    def counts(self) -> dict[str, int]: ...
    def close(self) -> None: ...


def open_source(uri: str) -> Source:
    """The MLflow store ``uri`` names: a database URL, a SQLite file, or a file store folder (``./mlruns``)."""
    from shipyard.adapters.mlflow_store.database import MlflowDatabase

    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres", "mysql", "mssql"):
            raise InvalidInputError(f"{uri[:120]} is not an MLflow store Shipyard reads: give a folder (./mlruns), "
                                    "a file:// URL, sqlite:///mlflow.db or postgresql://...")
        return MlflowDatabase(uri.replace("postgres://", "postgresql://", 1))
    path = Path(uri.removeprefix("file://"))
    if not os.path.lexists(path):
        raise InvalidInputError(f"{path} does not exist: give MLflow's store (the ./mlruns folder, or "
                                "sqlite:///mlflow.db)")
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\0":
                raise InvalidInputError(f"{path} is neither an MLflow store folder nor a SQLite database")
        return MlflowDatabase(f"sqlite:///{path.resolve()}")
    from shipyard.adapters.mlflow_store.files import MlflowFileStore

    try:
        return MlflowFileStore(path)
    except InvalidInputError:
        if (path / "mlflow.db").is_file():  # the folder `mlflow ui` ran in: its database is the store
            raise InvalidInputError(f"{path} is not an MLflow file store, but it holds MLflow's database: give "
                                    f"sqlite:///{(path / 'mlflow.db').resolve()}") from None
        if (path / "mlruns").is_dir():
            raise InvalidInputError(f"{path} is not an MLflow file store: give the store in it, "
                                    f"{path / 'mlruns'}") from None
        raise


def import_mlflow(svc: Services | Callable[[], Services], uri: str, artifacts: Path | None = None,
                  dry_run: bool = False, step: Step = _no_step) -> Report:
    """Import the MLflow store at ``uri`` into ``svc``'s project; return what was done and what was not.
    ``svc`` may be a function that opens the services: it is called once the source reads as MLflow's, so
    a wrong URI leaves no ``.shipyard`` folder behind."""
    from shipyard.adapters.mlflow_store.locations import ArtifactRoot

    if artifacts is not None and not artifacts.is_dir():
        raise InvalidInputError(f"--artifacts {artifacts}: not a folder; give the folder MLflow's artifacts are in")
    source = open_source(uri)
    try:
        report = Report(source.where)
        root, base = source.default_artifacts()
        if artifacts is not None:
            root = base = artifacts.resolve()
        where = ArtifactRoot(root, base)
        services = svc() if callable(svc) else svc
        job = _Import(services, source, where, report, dry_run, step)
        # one import at a time: each reads what is already there (runs, versions, aliases) under the lock, so two
        # imports of the same store never add a run or a version twice (a dry run writes nothing: no lock)
        with contextlib.nullcontext() if dry_run else services.meta.import_lock():
            job.prepare()
            job.runs()
            job.models()
        left = {k: v for k, v in source.counts().items() if v}
        for table, n in left.items():
            report.skip(f"{n} {table.replace('_', ' ')}", _LEFT_BEHIND.get(table, "Shipyard has no place for them"))
        return report
    finally:
        source.close()


def import_here(uri: str, artifacts: Path | None = None, dry_run: bool = False, step: Step = _no_step) -> Report:
    """``shipyard import mlflow``: into the project around the working folder, or ``./.shipyard`` outside any
    (as the tracking API records, and as MLflow records in ``./mlruns``)."""
    import tempfile

    from shipyard.config import working_folder
    from shipyard.wiring import build, settings_from_environment

    opened: list[Services] = []
    scratch = tempfile.TemporaryDirectory(prefix="shipyard-dry-run-")

    def services() -> Services:
        settings = settings_from_environment(anywhere=True)
        if dry_run and not settings.home.exists() and "SHIPYARD_DB_URL" not in os.environ:
            # a dry run where there is no store yet: everything is new, and nothing is made here to say so
            settings = settings_from_environment({**os.environ, "SHIPYARD_HOME": f"{scratch.name}/.shipyard"},
                                                 anywhere=True)
        opened.append(build(settings, working_folder()))
        return opened[0]

    try:
        return import_mlflow(services, uri, artifacts, dry_run, step)
    finally:
        for s in opened:
            s.close()
        scratch.cleanup()


_LEFT_BEHIND = {
    "registered_model_tags": "Shipyard's models have no tags (a version's description says where it came from)",
    "model_version_tags": "Shipyard's versions have no tags: they are immutable records",
    "inputs": "MLflow's dataset records name no bytes; log the data with `shipyard data add` to track it",
    "trace_info": "traces (GenAI) are not tracked by Shipyard",
    "logged_model_params": "a logged model's params stay on its run",
    "logged_model_metrics": "a logged model's metrics stay on its run",
}


class _Import(ModelImport):
    def __init__(self, svc: Services, source: Source, where: ArtifactRoot, report: Report, dry_run: bool,
                 step: Step) -> None:
        self.svc, self.source, self.where, self.report = svc, source, where, report
        self.dry_run, self.step = dry_run, step
        self.exp_ids: dict[str, MlExperiment] = {}
        self.run_artifacts: dict[str, str] = {}  # MLflow run id -> its artifact uri
        self.run_exp: dict[str, str] = {}  # MLflow run id -> its experiment id
        self.present: set[str] = set()  # Shipyard run ids there after the import (for version lineage)
        self.located: dict[tuple[str, str], Path | None] = {}
        self.new: list[MlRun] = []
        self.logged: dict[str, list[MlLoggedModel]] = {}
        self.versions: list[MlVersion] = []
        self.ml_aliases: list[MlAlias] = []
        self.numbered: dict[str, int] = {}  # model -> the last number this import gave

    # -- runs --------------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Read what is new and find every folder it names, before anything is written: a location that
        escapes the artifact root (``..``, a link out) stops the import here, with nothing changed."""
        report = self.report
        exps = self.source.experiments()
        self.exp_ids = {e.id: e for e in exps}
        heads = self.source.runs()
        for e in exps:
            if e.tags:
                report.skip(f"{len(e.tags)} tags of experiment {e.name[:80]!r}", "Shipyard's experiments are names "
                            "on runs, with no tags of their own")
        live = []
        deleted_exps = {e.id for e in exps if e.deleted}
        gone = 0
        for r in heads:
            self.run_artifacts[r.id] = r.artifact_uri
            self.run_exp[r.id] = r.experiment_id
            if r.deleted or r.experiment_id in deleted_exps:
                gone += 1
            elif r.experiment_id not in self.exp_ids:
                report.skip(f"run {r.id}", f"its experiment {r.experiment_id!r} is not in the store")
            else:
                live.append(r)
        if gone:
            report.skip(f"{gone} deleted runs", "deleted in MLflow (in its trash): not imported")
        with_runs = {r.experiment_id for r in live}
        for e in exps:
            if not e.deleted and e.id not in with_runs:
                report.skip(f"experiment {e.name[:80]!r}", "it has no runs: Shipyard's experiments are names on runs")
        seen: dict[str, MlRun] = {}
        unique = []
        for r in live:  # two MLflow runs may map to one id of Shipyard's (a copied run folder, an upper-case id)
            first = seen.setdefault(run_id_for(r.id), r)
            if first is r:
                unique.append(r)
            else:
                report.skip(f"run {r.id} (experiment {r.experiment_id})", f"the same run id as run {first.id} "
                            f"(experiment {first.experiment_id}): imported once")
        live = unique
        ids = [run_id_for(r.id) for r in live]
        existing = self.svc.meta.existing_runs(ids)
        self.present = set(existing)
        new = [r for r, i in zip(live, ids, strict=True) if i not in existing]
        report.skipped["runs"] += len(live) - len(new)
        self.new = new
        self.logged = self._logged_models_by_run()
        for r in new:
            self._folder(r.artifact_uri, r.experiment_id, f"artifacts of run {r.id}")
            for m in self.logged.get(r.id, []):
                self._folder(m.artifact_location, m.experiment_id, f"logged model {m.id} of run {r.id}")
        self.versions = []
        versions = self.source.versions()
        for what, why in getattr(self.source, "refused", ()):  # the file store's unreadable meta.yaml files
            report.skip(what, why)
        for v in versions:
            if v.stage == DELETED_STAGE:  # MLflow keeps a deleted version's row (SQL) and folder, marked so
                report.skip(f"MLflow {v.model}/{v.version}", "deleted in MLflow: not imported")
            else:
                self.versions.append(v)
        self.ml_aliases = self.source.aliases()
        for v in self.versions:
            if v.status in ("", "READY"):
                self._version_folder(v, f"MLflow {v.model}/{v.version}")

    def runs(self) -> None:
        report, new, models = self.report, self.new, self.logged
        touched: set[str] = set()
        for start in range(0, len(new), CHUNK):
            chunk = new[start:start + CHUNK]
            params, tags, metrics, refused = self.source.details([r.id for r in chunk])
            for what, why in refused:
                report.skip(what, why)
            batch: list[tuple[RunRecord, Sequence[Metric]]] = []
            for r in chunk:
                run = dataclasses.replace(r, params=params.get(r.id, {}), tags=tags.get(r.id, {}))
                exp = self.exp_ids[r.experiment_id]
                record = to_run(run, experiment_name(exp), report)
                history = metrics.get(r.id, [])
                if any(len(m.key) > MAX_KEY or m.value != m.value or not 0 <= m.step <= MAX_STEP for m in history):
                    kept = [m for m in history if len(m.key) <= MAX_KEY and m.value == m.value
                            and 0 <= m.step <= MAX_STEP]
                    report.skip(f"{len(history) - len(kept)} metric values of run {r.id}", "NaN, a step outside "
                                f"0..{MAX_STEP}, or a key longer than {MAX_KEY} characters: Shipyard records none")
                    history = kept
                record = dataclasses.replace(record, artifacts=self._run_artifacts(r, models.get(r.id, [])))
                batch.append((record, history))
                touched.add(exp.id)
                report.added["params"] += len(record.params)
                report.added["tags"] += len(record.tags)
                report.added["metrics"] += len(history)
                report.added["artifacts"] += len(record.artifacts)
            if not self.dry_run:
                with self.svc.registry.writing():
                    self.svc.meta.import_runs(batch)
            self.present.update(rec.id for rec, _ in batch)
            report.added["runs"] += len(batch)
            self.step("runs", start + len(chunk), len(new))
        report.added["experiments"] = len(touched)
        running = sum(1 for r in new if r.status.upper() in ("RUNNING", "SCHEDULED"))
        if running:
            report.skip(f"{running} runs still running in MLflow", "imported as running, with what they had "
                        "logged so far; a later import does not update a run it already holds")

    def _logged_models_by_run(self) -> dict[str, list[MlLoggedModel]]:
        out: dict[str, list[MlLoggedModel]] = {}
        for m in self.source.logged_models():
            if m.run_id and not m.deleted:
                out.setdefault(m.run_id, []).append(m)
        return out

    def _run_artifacts(self, run: MlRun, logged: list[MlLoggedModel]) -> tuple[ArtifactRecord, ...]:
        """The run's artifact folder, each top-level entry one output; then its MLflow 3 logged models,
        each under its name (``model``), so ``runs:/ID/model`` names the same files as in MLflow."""
        from shipyard.core.lineage.records import ArtifactRecord

        out: list[ArtifactRecord] = []
        folder = self._folder(run.artifact_uri, run.experiment_id, f"artifacts of run {run.id}")
        if folder is not None:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_symlink():
                    self.report.skip(f"run {run.id} artifact {entry.name[:80]}", "a symbolic link: never followed")
                    continue
                stored = self._store(Path(entry.path), f"run {run.id} artifact {entry.name[:80]}")
                if stored is not None:
                    out.append(ArtifactRecord(entry.name, *stored))
        names = {a.path for a in out}
        for m in logged:
            what = f"logged model {m.id} ({m.name[:80]}) of run {run.id}"
            if not m.name or "/" in m.name or m.name in (".", "..") or m.name in names:
                self.report.skip(what, "its name is not a free artifact name of the run")
                continue
            folder = self._folder(m.artifact_location, m.experiment_id, what)
            stored = self._store(folder, what) if folder is not None else None
            if stored is not None:
                out.append(ArtifactRecord(m.name, *stored))
                names.add(m.name)
        return tuple(out)

    def _folder(self, uri: str, experiment_id: str, what: str) -> Path | None:
        """The folder ``uri`` names inside the artifact root (found once, reported once); one that escapes
        it is an error naming it."""
        from shipyard.adapters.mlflow_store.locations import scan

        key = (uri, experiment_id)
        if key in self.located:
            return self.located[key]
        found = self.where.locate(uri, experiment_id)
        if found.escape:
            raise InvalidInputError(f"{what}: {found.why}; nothing was imported")
        if found.folder is None and found.why:
            self.report.skip(what, found.why)
        if found.folder is not None:
            for link in scan(found.folder).links:
                if not self.where.within(os.path.realpath(found.folder / link)):
                    raise InvalidInputError(f"{what}: {link[:120]} is a link out of the artifact root "
                                            f"{self.where.root}; nothing was imported")
        self.located[key] = found.folder
        return found.folder

    def _store(self, path: Path, what: str) -> tuple[Any, int, bool] | None:
        """Put ``path`` (a file, or a folder as a manifest; links inside are skipped and reported)."""
        from shipyard.adapters.mlflow_store.locations import scan
        from shipyard.core.artifacts.digest import Digest
        from shipyard.core.artifacts.tree import put_path

        if path.is_dir():
            for link in scan(path).links:
                self.report.skip(f"{what}: {link[:120]}", "a symbolic link: never followed, not carried")
        if self.dry_run:
            return Digest.of_bytes(b""), 0, path.is_dir()
        try:
            stored = put_path(self.svc.store, path)
        except (ShipyardError, OSError) as exc:
            self.report.skip(what, f"cannot be stored: {str(exc)[:200]}")
            return None
        return stored.digest, stored.size, stored.is_dir
