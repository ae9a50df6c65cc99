"""``shipyard import mlflow URI``: bring an MLflow tracking store over (the I/O around ``core.importing.mlflow``).

Runs are written in chunks, each chunk one transaction; artifacts are stored by digest before the rows that
name them. Registered versions get their MLflow files plus a ``shipyard-model.json`` describing them (flavor,
lineage), registered in MLflow's order. Nothing of MLflow's is changed. A re-run adds only what is new:
runs are matched by id (MLflow's own), versions by the MLflow name and number kept in their description.
"""

from __future__ import annotations

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
    lineage,
    plan_aliases,
    run_id_for,
    sklearn_meta,
    to_run,
    valid_model_name,
    version_description,
)
from shipyard.errors import InvalidInputError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.adapters.mlflow_store.locations import ArtifactRoot
    from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services

CHUNK = 1000  # runs per transaction
MAX_STEP = 2**31 - 1  # the step column is a 32-bit INTEGER on every backend
MAX_MLMODEL_BYTES = 1024 * 1024
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

    return MlflowFileStore(path)


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
    from shipyard.wiring import from_environment

    opened: list[Services] = []

    def services() -> Services:
        opened.append(from_environment(anywhere=True))
        return opened[0]

    try:
        return import_mlflow(services, uri, artifacts, dry_run, step)
    finally:
        for s in opened:
            s.close()


_LEFT_BEHIND = {
    "registered_model_tags": "Shipyard's models have no tags (a version's description says where it came from)",
    "model_version_tags": "Shipyard's versions have no tags: they are immutable records",
    "inputs": "MLflow's dataset records name no bytes; log the data with `shipyard data add` to track it",
    "trace_info": "traces (GenAI) are not tracked by Shipyard",
    "logged_model_params": "a logged model's params stay on its run",
    "logged_model_metrics": "a logged model's metrics stay on its run",
}


class _Import:
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
        self.versions = self.source.versions()
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

    # -- registered models -------------------------------------------------------------------------------------
    def models(self) -> None:
        versions = self.versions
        aliases = self.source.aliases()
        by_model: dict[str, list[MlVersion]] = {}
        for v in versions:
            by_model.setdefault(v.model, []).append(v)
        for name, vs in by_model.items():
            if not valid_model_name(name):
                self.report.skip(f"model {name[:80]!r}", "not a valid Shipyard model name (letters, digits, '.', "
                                 "'_' or '-', starting with a letter or digit)")
                continue
            self._model(name, sorted(vs, key=lambda v: v.version), [a for a in aliases if a.model == name])

    def _model(self, name: str, versions: list[MlVersion], aliases: list[MlAlias]) -> None:
        report = self.report
        imported = self._imported_versions(name)  # MLflow version -> Shipyard version
        flagged: set[int] = set()
        for v in versions:
            if v.version in imported:
                report.skipped["versions"] += 1
                if imported[v.version][1]:
                    flagged.add(v.version)
                continue
            number, flag = self._version(v)
            if number is not None:
                imported[v.version] = (number, bool(flag))
                if flag:
                    flagged.add(v.version)
        plan = plan_aliases(name, versions, aliases, flagged)
        for what, why in plan.refused:
            report.skip(what, why)
        current = self._aliases(name)
        for alias, ml_version in sorted(plan.aliases.items()):
            if ml_version not in imported:
                report.skip(f"alias {name}@{alias}", f"MLflow version {ml_version} was not imported")
                continue
            target = imported[ml_version][0]
            if current.get(alias) == target:
                report.skipped["aliases"] += 1
                continue
            if alias in current:
                report.skip(f"alias {name}@{alias}", f"already names {name}@{current[alias]} here (MLflow: "
                            f"version {ml_version}); left as it is: move it with `shipyard alias set`")
                continue
            if not self.dry_run:
                self.svc.meta.set_alias(name, alias, target, self.svc.registry.actor,
                                        f"imported from MLflow {name} (version {ml_version})")
            report.added["aliases"] += 1
            report.stage_aliases += [f"{name}: {n}" for n in plan.notes if n.endswith(f" alias {alias}")]

    def _imported_versions(self, name: str) -> dict[int, tuple[int, bool]]:
        """MLflow version -> (Shipyard version, flagged) of what an earlier import brought over."""
        from shipyard.wiring import saved_model

        try:
            existing: list[ModelVersion] = self.svc.meta.list_versions(name)
        except NotFoundError:
            return {}
        out: dict[int, tuple[int, bool]] = {}
        for mv in existing:
            if not mv.description.startswith("Imported from MLflow"):
                continue
            try:
                origin = saved_model(self.svc, mv).flavor_meta.get("mlflow")
            except ShipyardError:
                continue
            if isinstance(origin, dict) and origin.get("name") == name and isinstance(origin.get("version"), int):
                out[origin["version"]] = (mv.version, bool(origin.get("modified_after_registration")))
        return out

    def _aliases(self, name: str) -> dict[str, int]:
        return next((dict(m.aliases) for m in self.svc.meta.list_models() if m.name == name), {})

    def _version(self, v: MlVersion) -> tuple[int | None, str]:
        """Register MLflow's ``v``; its Shipyard number (None: not carried, reported) and its flag."""
        from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
        from shipyard.core.boundedyaml import load_yaml
        from shipyard.core.registry.records import NewVersion
        from shipyard.core.registry.service import MODEL_FILE, SavedModel

        report = self.report
        what = f"MLflow {v.model}/{v.version}"
        if v.status and v.status != "READY":
            report.skip(what, f"its registration is {v.status.lower()} in MLflow")
            return None, ""
        folder = self._version_folder(v, what)
        if folder is None:
            return None, ""
        try:
            with open(folder / "MLmodel", "rb") as f:
                raw = f.read(MAX_MLMODEL_BYTES + 1)
            if len(raw) > MAX_MLMODEL_BYTES or (folder / "MLmodel").is_symlink():
                raise InvalidInputError("its MLmodel is larger than 1 MiB, or a link")
            mlmodel = load_yaml(raw, f"{what} MLmodel")
        except FileNotFoundError:
            report.skip(what, f"no MLmodel file in {folder}")
            return None, ""
        except (ShipyardError, OSError) as exc:
            report.skip(what, str(exc)[:200])
            return None, ""
        meta, why = sklearn_meta(mlmodel if isinstance(mlmodel, dict) else {})
        if meta is None:
            report.skip(what, why)
            return None, ""
        if os.path.lexists(folder / MODEL_FILE):
            report.skip(what, f"its folder already holds a {MODEL_FILE}")
            return None, ""
        flag = self._modified_after(folder, v)
        meta["mlflow"] = lineage(v, flag)
        run_id = run_id_for(v.run_id) if v.run_id else None
        if run_id is not None and run_id not in self.present:
            report.skip(f"{what}: its run {v.run_id}", "not imported (deleted or absent in MLflow): the version "
                        "is registered without a producing run")
            run_id = None
        number = self._next_number(v.model)
        ref = f"{v.model}@{number}"
        if flag:
            report.flagged.append(f"{ref} (MLflow {v.model}/{v.version}): {flag}")
        if meta["serializer"] != "skops" or self._needs_trust(folder, meta):
            report.trust_needed.append(ref)
        report.versions.append({"ref": ref, "mlflow": f"{v.model}/{v.version}", "run_id": run_id,
                                "flagged": bool(flag)})
        report.added["versions"] += 1
        if self.dry_run:
            return number, flag
        description = SavedModel("sklearn", meta, {}).to_bytes()
        with self.svc.registry.writing():
            from shipyard.core.artifacts.tree import put_path

            stored = put_path(self.svc.store, folder)
            files = list(stored.manifest or ())
            files.append(ManifestEntry(MODEL_FILE, self.svc.store.put_bytes(description), len(description), 0o644))
            manifest = Manifest.of(files)
            digest = self.svc.store.put_bytes(manifest.to_bytes())
            created = self.svc.meta.register_version(NewVersion(
                model=v.model, manifest_digest=digest, flavor="sklearn", size=manifest.size, run_id=run_id,
                env_digest=None, description=version_description(v, flag),
                created_by=(v.user or self.svc.registry.actor)[:255]))
        if created.version != number:  # someone registered meanwhile: the report names what was made
            report.versions[-1]["ref"] = created.ref
        return created.version, flag

    def _next_number(self, model: str) -> int:
        """The number the next registration of ``model`` gets (a dry run counts the ones it did not make)."""
        try:
            last = self.svc.meta.get_version(model, None).version
        except NotFoundError:
            last = 0
        number = max(last, self.numbered.get(model, 0)) + 1
        self.numbered[model] = number
        return number

    def _version_folder(self, v: MlVersion, what: str) -> Path | None:
        location = v.storage_location or v.source
        if location.startswith("runs:/"):
            run, _, rest = location.removeprefix("runs:/").partition("/")
            parts = [p for p in rest.split("/") if p]
            if ".." in parts or run not in self.run_artifacts:
                self.report.skip(what, f"its source {location[:120]} names no run of this store")
                return None
            location = self.run_artifacts[run].rstrip("/") + "/" + "/".join(parts)
        elif location.startswith("models:/"):
            self.report.skip(what, f"its source {location[:120]} names a logged model MLflow gave no folder for")
            return None
        exp = self.run_exp.get(v.run_id or "", "0")
        if (location, exp) in self.located:
            return self.located[(location, exp)]
        folder = self._folder(location, exp, what)
        if folder is None:
            self.report.skip(what, f"its files are not at {location[:120]}")
        return folder

    def _modified_after(self, folder: Path, v: MlVersion) -> str:
        """Why ``v``'s files cannot be trusted to be what was registered ("" when nothing says so): MLflow
        keeps no digest, so a file modified after the version's creation time is the evidence."""
        from datetime import UTC, datetime

        from shipyard.adapters.mlflow_store.locations import scan

        newest, name = scan(folder).newest
        if v.created_ms and newest * 1000 > v.created_ms + 1:
            when = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            made = datetime.fromtimestamp(v.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"{name} was modified at {when}, after the version was registered ({made})"
        return ""

    def _needs_trust(self, folder: Path, meta: dict[str, Any]) -> bool:
        """Whether loading the skops file needs more than Shipyard's allowlist (reads the file, runs nothing)."""
        from shipyard.wiring import flavor

        try:
            return bool(flavor("sklearn").requires(folder, meta).items())
        except ShipyardError:
            return True
