"""``shipyard import mlflow``, its second half: registered models, their versions and aliases.

Each MLflow version whose model Shipyard can load (MLflow's sklearn flavor: skops, pickle or cloudpickle; its onnx
flavor) is
registered with MLflow's files plus a ``shipyard-model.json`` (flavor, and the MLflow origin as lineage), in
MLflow's order; a version whose files changed after its registration (MLflow keeps no digest: a file's
modification time after the version's creation time says so) is flagged, and gets no alias.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.importing.mlflow import (
    MlAlias,
    MlVersion,
    Report,
    fits_time,
    lineage,
    model_meta,
    plan_aliases,
    run_id_for,
    valid_model_name,
    version_description,
)
from shipyard.errors import InvalidInputError, NotFoundError, PolicyDeniedError, ShipyardError

if TYPE_CHECKING:
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services

MAX_MLMODEL_BYTES = 1024 * 1024
# files MLflow itself rewrites in a registered version's folder after registration: loading a version by
# `models:/NAME/V` (or serving it) writes registered_model_meta ({model_name, model_version}) into it, and no
# loader reads it; its time says nothing about the model's files
MLFLOW_REWRITES = frozenset({"registered_model_meta"})


class ModelImport:
    """The registry half of an import (``mlflow_import._Import`` holds the state it reads)."""

    svc: Services
    report: Report
    dry_run: bool
    versions: list[MlVersion]
    ml_aliases: list[MlAlias]
    numbered: dict[str, int]
    present: set[str]
    run_artifacts: dict[str, str]
    run_exp: dict[str, str]
    located: dict[tuple[str, str], Path | None]

    def _folder(self, uri: str, experiment_id: str, what: str) -> Path | None:
        raise NotImplementedError

    def models(self) -> None:
        versions = self.versions
        aliases = self.ml_aliases
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
        earlier = self._imported_versions(name)  # MLflow version -> what earlier imports made of that number
        imported: dict[int, tuple[int, bool]] = {}  # MLflow version -> (Shipyard version, flagged)
        flagged: set[int] = set()
        for v in versions:
            # the same MLflow version: its number and creation time (a model deleted and made again in MLflow
            # numbers its versions from 1 again: that is another version, imported as one)
            same = [(n, f) for n, f, created in earlier.get(v.version, []) if created in (None, v.created_ms)]
            if same:
                imported[v.version] = same[0]
                report.skipped["versions"] += 1
                if same[0][1]:
                    flagged.add(v.version)
                continue
            if v.version in earlier:
                report.skip(f"MLflow {name}/{v.version}", f"not the version imported before as {name}@"
                            f"{earlier[v.version][-1][0]} (another creation time: the model was made again in "
                            "MLflow): imported as a new version")
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
                            f"version {ml_version}, imported as {name}@{target}); left as it is: move it with "
                            "`shipyard alias set`")
                continue
            if not self.dry_run:
                from shipyard.wiring.policy import move_alias

                try:  # a protected alias (production) moves only as the project's policy allows, as `alias set`
                    move_alias(self.svc, name, alias, target, f"imported from MLflow {name} (version {ml_version})")
                except PolicyDeniedError as exc:
                    report.skip(f"alias {name}@{alias}", f"refused by the project's policy (`shipyard alias set "
                                f"{name} {alias} {target}` once it allows it): {exc}")
                    continue
            report.added["aliases"] += 1
            report.stage_aliases += [f"{name}: {n}" for n in plan.notes if n.endswith(f" alias {alias}")]

    def _imported_versions(self, name: str) -> dict[int, list[tuple[int, bool, int | None]]]:
        """MLflow version -> [(Shipyard version, flagged, MLflow creation time)] of what earlier imports brought
        over (more than one when the model was deleted and made again in MLflow, its numbers reused)."""
        from shipyard.wiring import saved_model

        try:
            existing: list[ModelVersion] = self.svc.meta.list_versions(name)
        except NotFoundError:
            return {}
        out: dict[int, list[tuple[int, bool, int | None]]] = {}
        for mv in existing:
            if not mv.description.startswith("Imported from MLflow"):
                continue
            try:
                origin = saved_model(self.svc, mv).flavor_meta.get("mlflow")
            except ShipyardError:
                continue
            if isinstance(origin, dict) and origin.get("name") == name and isinstance(origin.get("version"), int):
                created = origin.get("creation_timestamp")
                out.setdefault(origin["version"], []).append((mv.version, bool(origin.get(
                    "modified_after_registration")), created if isinstance(created, int) else None))
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
            # no link followed; O_NONBLOCK: a FIFO (a crafted store) would block the open forever
            fd = os.open(folder / "MLmodel", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise InvalidInputError("its MLmodel is not a regular file")
                raw = f.read(MAX_MLMODEL_BYTES + 1)
            if len(raw) > MAX_MLMODEL_BYTES:
                raise InvalidInputError("its MLmodel is larger than 1 MiB, or a link")
            mlmodel = load_yaml(raw, f"{what} MLmodel")
        except FileNotFoundError:
            report.skip(what, f"no MLmodel file in {folder}")
            return None, ""
        except (ShipyardError, OSError) as exc:
            report.skip(what, str(exc)[:200])
            return None, ""
        flavor, meta, why = model_meta(mlmodel if isinstance(mlmodel, dict) else {})
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
        trust = self._needs_trust(flavor, folder, meta) or (
            "--pickle" if meta.get("serializer", "skops") != "skops" else "")
        if trust:
            report.trust_needed.append(ref)
        report.versions.append({"ref": ref, "mlflow": f"{v.model}/{v.version}", "run_id": run_id,
                                "flagged": bool(flag), **({"trust": trust} if trust else {})})
        report.added["versions"] += 1
        if self.dry_run:
            return number, flag
        description = SavedModel(flavor, meta, {}).to_bytes()
        with self.svc.registry.writing():
            from shipyard.core.artifacts.tree import put_path

            try:
                stored = put_path(self.svc.store, folder)
            except (ShipyardError, OSError) as exc:  # a FIFO, a path too long, an unreadable file: not this one
                report.versions.pop()
                report.added["versions"] -= 1
                report.trust_needed[:] = [r for r in report.trust_needed if r != ref]
                report.flagged[:] = [f for f in report.flagged if not f.startswith(f"{ref} ")]
                self.numbered[v.model] = number - 1
                report.skip(what, f"its files cannot be stored: {str(exc)[:200]}")
                return None, ""
            files = list(stored.manifest or ())
            files.append(ManifestEntry(MODEL_FILE, self.svc.store.put_bytes(description), len(description), 0o644))
            manifest = Manifest.of(files)
            digest = self.svc.store.put_bytes(manifest.to_bytes())
            created = self.svc.meta.register_version(NewVersion(
                model=v.model, manifest_digest=digest, flavor=flavor, size=manifest.size, run_id=run_id,
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

        newest, name = scan(folder, unwatched=MLFLOW_REWRITES).newest
        if v.created_ms and newest * 1000 > v.created_ms + 1:
            when = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            if not fits_time(v.created_ms):  # the store's own value, untrusted: no datetime for it
                return f"{name} was modified at {when}; the version's creation time {str(v.created_ms)[:24]} " \
                       "is not a time"
            made = datetime.fromtimestamp(v.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"{name} was modified at {when}, after the version was registered ({made})"
        return ""

    def _needs_trust(self, name: str, folder: Path, meta: dict[str, Any]) -> str:
        """The ``shipyard models trust`` flags loading the model needs ("" for none: a skops file within
        Shipyard's allowlist); reads the file, runs nothing."""
        from shipyard.wiring import flavor

        try:
            needed = flavor(name).requires(folder, meta)
        except ShipyardError:
            return "--pickle"
        flags = (["--pickle"] if needed.pickle else []) + (["--code"] if needed.code else []) + [
            f"--type {t}" for t in sorted(needed.types)] + [f"--class {c}" for c in sorted(needed.classes)]
        return " ".join(flags)
