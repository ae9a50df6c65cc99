"""The registry service: register folders as immutable versions, resolve references, move aliases."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.artifacts.tree import materialize, put_path, read_verified
from shipyard.core.environments.capture import is_name, normalize
from shipyard.core.registry.records import RESULT_ACTIONS, AuditEvent, ModelSummary, ModelVersion, NewVersion
from shipyard.core.registry.refs import ModelRef, check_alias, check_model_name, check_new_alias, check_version
from shipyard.core.registry.trust import IN_PROCESS_REASON, TRUST_ACTION, TrustSet, untrusted_error
from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError, UntrustedModelError
from shipyard.ports import Flavor, MetadataStore, ObjectStore, Progress, no_progress

MODEL_FILE = "shipyard-model.json"
EXAMPLES_FILE = "examples.json"
MODEL_FORMAT = "shipyard.model/v1"
MAX_DESCRIPTION_BYTES = 1024 * 1024
MAX_DESCRIPTION_DEPTH = 32
MAX_REQUIREMENTS = 200  # distribution names a model's own code needs (``log_model(requirements=...)``)


def check_requirements(names: Iterable[Any]) -> tuple[str, ...]:
    """The distribution names a model's code needs, PEP 503-normalized, each once, in order; anything that is
    not a plain PEP 508 name (a version or a URL belongs in the lock, not here) is refused."""
    if isinstance(names, str):
        raise InvalidInputError(f"requirements is a list of package names, not the string {names[:60]!r}")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not is_name(name):
            raise InvalidInputError(f"requirement {str(name)[:60]!r} is not a package name: give names "
                                    "only (e.g. \"pandas\"): versions come from the environment it is registered from")
        norm = normalize(name)
        if norm not in out:
            out.append(norm)
        if len(out) > MAX_REQUIREMENTS:
            raise InvalidInputError(f"more than {MAX_REQUIREMENTS} requirements: list what the model's code imports")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SavedModel:
    """What ``shipyard-model.json`` in a saved model folder says."""

    flavor: str
    flavor_meta: dict[str, Any]
    signature: dict[str, Any]
    requirements: tuple[str, ...] = ()  # distributions the model's own code needs, beyond its flavor's

    def to_bytes(self) -> bytes:
        body = {"format": MODEL_FORMAT, "flavor": self.flavor, "flavor_meta": self.flavor_meta,
                "signature": self.signature}
        if self.requirements:  # left out when empty: a model saved before requirements existed reads the same
            body["requirements"] = list(self.requirements)
        return json.dumps(body, indent=2, sort_keys=True).encode()

    @classmethod
    def read(cls, folder: Path, where: str | None = None) -> SavedModel:
        """Parse ``shipyard-model.json``: bounded in size and nesting, its shape checked; one-line errors, which
        name the folder by ``where`` when given (a reference, rather than a temporary folder)."""
        path = folder / MODEL_FILE
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_DESCRIPTION_BYTES + 1)
        except FileNotFoundError:
            mlflows = " (it is an MLflow model: `shipyard import mlflow` makes versions of MLflow's registered " \
                      "ones)" if (folder / "MLmodel").is_file() else ""
            raise InvalidInputError(f"{where or folder} is not a saved model: it has no {MODEL_FILE}{mlflows}") \
                from None
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: bytes, path: str) -> SavedModel:
        """``shipyard-model.json``'s bytes (read within ``MAX_DESCRIPTION_BYTES + 1``), from ``path``."""
        try:
            if len(raw) > MAX_DESCRIPTION_BYTES:
                raise ValueError(f"larger than {MAX_DESCRIPTION_BYTES // 1024} KiB")
            body = json.loads(raw)
            if _depth(body) > MAX_DESCRIPTION_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DESCRIPTION_DEPTH} levels")
            if not isinstance(body, dict):
                raise ValueError(f"a JSON {type(body).__name__}, not an object")
            if body.get("format") != MODEL_FORMAT:
                raise ValueError(f"format is {str(body.get('format'))[:40]!r}, not {MODEL_FORMAT!r}")
            flavor, meta, signature = body.get("flavor"), body.get("flavor_meta", {}), body.get("signature", {})
            if not isinstance(flavor, str):
                raise ValueError("flavor is not a string")
            if not isinstance(meta, dict) or not isinstance(signature, dict):
                raise ValueError("flavor_meta and signature must be JSON objects")
            requirements = body.get("requirements", [])
            if not isinstance(requirements, list):
                raise ValueError("requirements must be a JSON list of package names")
            try:
                names = check_requirements(requirements)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
            return cls(flavor, meta, signature, names)
        except RecursionError:
            raise InvalidInputError(f"{path} is not a Shipyard model description: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise InvalidInputError(f"{path} is not a Shipyard model description: {_first_line(exc)}") from exc


def _depth(value: object) -> int:
    """How deeply ``value`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DESCRIPTION_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class Registry:
    """Versions, aliases and trust, as seen by ``actor``.

    A trust decision counts only for the actor who made it and for those who list that actor among
    their ``reviewers``: someone else's decision (a teammate's ``models trust``, or the automatic one
    of their ``log_model``) never makes this actor's process run their pickle.
    """

    def __init__(self, meta: MetadataStore, store: ObjectStore, flavors: Callable[[str], Flavor],
                 actor: str, env_digest: Callable[[], Digest | None] = lambda: None,
                 reviewers: Iterable[str] = (), where: str = "",
                 writing: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext) -> None:
        self.meta = meta
        # held from storing a version's objects to recording it, so gc on a shared store never deletes them
        # in between (``MetadataStore.writers_lock``); a store of this project's own needs none
        self.writing = writing
        self.where = where  # "in /path/.shipyard" or "at postgresql://...", for not-found messages
        self.store = store
        self.flavors = flavors
        self.actor = actor
        self.reviewers = frozenset(reviewers)
        self._env_digest = env_digest

    def register(self, name: str, folder: Path, run_id: str | None = None,
                 metrics: Mapping[str, float] | None = None, params: Mapping[str, str] | None = None,
                 description: str = "", version: int | None = None,
                 progress: Progress = no_progress, trust_as_registrant: bool = False) -> ModelVersion:
        """Store ``folder`` (a saved model) and record it as the next version of ``name``.

        The objects are stored first and the version row is written in one transaction after,
        so a crash leaves at most unreferenced objects (collected by gc), never half a version.
        ``trust_as_registrant`` (``log_model``: the folder was just written from an object of this
        program) also trusts what loading it needs: a "trust" audit event by this actor, written in
        the registration's transaction. A folder that could never load (an unknown flavor or
        serializer, a missing or linked model file) is refused before anything is stored.
        """
        check_model_name(name)
        if version is not None:
            check_version(version)
        saved = SavedModel.read(folder)
        flavor = self.flavors(saved.flavor)  # an unknown flavor fails before anything is stored
        # so does a folder that could never load (unknown serializer, missing or linked model file)
        needed = self._requires(str(folder), flavor, folder, saved)
        trusted = needed if trust_as_registrant else TrustSet()
        with self.writing():
            stored = put_path(self.store, folder, progress)
            examples = next((e for e in stored.manifest or () if e.path == EXAMPLES_FILE), None)
            return self.meta.register_version(NewVersion(
                model=name, manifest_digest=stored.digest, flavor=saved.flavor, size=stored.size,
                run_id=run_id, env_digest=self._env_digest(), signature=saved.signature,
                examples_digest=examples.digest if examples else None, metrics=dict(metrics or {}),
                params=dict(params or {}), description=description, created_by=self.actor,
                requested_version=version, trusted=tuple(trusted.items()), trust_reason=IN_PROCESS_REASON,
            ))

    def requirements(self, folder: Path) -> TrustSet:
        """What loading the saved model in ``folder`` would need trusted (it reads files, runs nothing)."""
        saved = SavedModel.read(folder)
        return self._requires(str(folder), self.flavors(saved.flavor), folder, saved)

    def trust(self, ref: str | ModelRef, items: TrustSet, reason: str) -> AuditEvent:
        """Record that loading ``ref``'s version may run ``items`` (replacing any earlier decision)."""
        if not reason.strip():
            raise InvalidInputError("say why you trust this version (-m REASON): the reason goes in the audit log")
        mv = self.resolve(ref)
        return self.meta.record_trust(mv.model, mv.version, items.items(), self.actor, reason.strip())

    def accepts(self, actor: str) -> bool:
        """Whether ``actor``'s trust decisions count here: this actor's own, or a listed reviewer's."""
        return actor == self.actor or actor in self.reviewers

    def trust_event(self, mv: ModelVersion) -> AuditEvent | None:
        """The decision in force for this actor: the newest "trust" event by it or a reviewer, or None."""
        latest = self.meta.latest_trust(mv.model, mv.version)
        if latest is None or self.accepts(latest.actor):
            return latest  # the common case: one query
        return next((e for e in reversed(self._trust_events(mv)) if self.accepts(e.actor)), None)

    def others_trust(self, mv: ModelVersion) -> AuditEvent | None:
        """The newest trust decision for ``mv`` by someone whose decisions do not count here, or None."""
        latest = self.meta.latest_trust(mv.model, mv.version)
        if latest is None or not self.accepts(latest.actor):
            return latest
        return next((e for e in reversed(self._trust_events(mv)) if not self.accepts(e.actor)), None)

    def _trust_events(self, mv: ModelVersion) -> list[AuditEvent]:
        return [e for e in self.meta.audit_events(mv.model) if e.action == TRUST_ACTION and e.name == str(mv.version)]

    def trusted(self, mv: ModelVersion) -> TrustSet:
        return _items(self.trust_event(mv))

    def _requires(self, where: str, flavor: Flavor, folder: Path, saved: SavedModel) -> TrustSet:
        try:
            return flavor.requires(folder, saved.flavor_meta)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where} cannot be loaded: {exc}") from exc

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``ref`` names; not found, the one-line error names the registry it looked in
        (every caller says the same: ``load_model``, ``get_model_version``, ``serve``, ``models show``)."""
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.run_id is not None:
            return self._from_run(r)
        try:
            version = r.version
            if r.alias is not None:
                version = self.meta.resolve_alias(r.name, r.alias)
            return self.meta.get_version(r.name, version)
        except NotFoundError as exc:
            if not self.where:
                raise
            raise NotFoundError(not_found_in(str(exc), self.where)) from exc

    def _from_run(self, r: ModelRef) -> ModelVersion:
        """The version registered from the model run ``r.run_id`` logged at ``r.path`` (the same files); the
        first one if it was registered more than once. Every way of failing says what there is instead."""
        run = self.meta.get_run(r.run_id or "")
        logged = next((a for a in run.artifacts if a.path == r.path), None)
        registered = [mv for m in self.meta.list_models() for mv in self.meta.list_versions(m.name)
                      if mv.run_id == run.id]
        registered.sort(key=lambda mv: (mv.created_at, mv.model, mv.version))
        found = [mv for mv in registered if logged is not None and mv.manifest_digest == logged.digest]
        if not found and logged is not None and logged.is_dir:  # imported from MLflow: its files plus ours
            found = [mv for mv in registered if self._holds_with_description(mv, logged.digest)]
        if found:
            return found[0]
        if logged is None:
            shown = ", ".join(mv.ref for mv in registered[:5])
            instead = f"; it registered {shown}: use that reference" if registered else \
                ": log one there with log_model(..., artifact_path=PATH)"
            raise NotFoundError(f"run {run.id[:8]} logged no model at {r.path!r}{instead}")
        raise NotFoundError(f"the model run {run.id[:8]} logged at {r.path!r} is not registered: register it with "
                            f"register_model('{r}', NAME) (or log_model(..., registered_model_name=NAME)), then "
                            "use NAME@VERSION")

    def _holds_with_description(self, mv: ModelVersion, digest: Digest) -> bool:
        """Whether ``mv`` holds exactly the folder ``digest`` plus its ``shipyard-model.json`` (a version
        ``shipyard import mlflow`` registered from the model a run logged)."""
        from shipyard.core.artifacts.tree import load_manifest
        from shipyard.errors import ShipyardError

        try:
            ours, theirs = load_manifest(self.store, mv.manifest_digest), load_manifest(self.store, digest)
        except ShipyardError:
            return False
        return tuple(e for e in ours.entries if e.path != MODEL_FILE) == theirs.entries

    def load(self, ref: str | ModelRef) -> Any:
        """The model object behind ``ref``, its bytes re-hashed against the store before loading.

        Anything beyond the flavor's allowlist (a pickle, a class to import, stored code, other
        skops types) must have been trusted for this version (``trust``), or nothing is loaded.
        """
        mv = self.resolve(ref)
        granted = self.trusted(mv)

        def check(saved: SavedModel, needed: TrustSet) -> None:
            if needed - granted:
                other = self.others_trust(mv)
                by = other.actor if other is not None and not (needed - granted - _items(other)) else None
                raise untrusted_error(mv.ref, needed, granted, by=by)

        return self._load(mv.ref, lambda into: materialize(self.store, mv.manifest_digest, into), check,
                          registered_as=mv.flavor)

    def load_logged(self, r: ModelRef) -> Any:
        """The model a run logged at ``r.path`` that no version holds (MLflow loads ``runs:/RUN_ID/model`` so),
        its bytes re-hashed against the store. Trust is given to versions: such a model loads within its
        flavor's allowlist only, and one that needs more is registered, then trusted."""
        run = self.meta.get_run(r.run_id or "")
        logged = next((a for a in run.artifacts if a.path == r.path), None)
        if logged is None:
            self._from_run(r)  # raises the error that says what the run has instead
            raise NotFoundError(f"run {run.id[:8]} logged no model at {r.path!r}")

        return self._load(str(r), lambda into: materialize(self.store, logged.digest, into), _untrusted(str(r)))

    def load_folder(self, folder: Path) -> Any:
        """A saved model's folder (``save_model``'s), loaded as MLflow loads a path: copied first (it cannot
        change between its check and its load) and within its flavor's allowlist only, as a folder grants itself
        no trust: one that needs more is registered, then trusted."""
        import shutil

        where = str(folder)
        if not folder.is_dir():
            raise NotFoundError(f"no saved model folder at {where}")

        def special(parent: str, names: list[str]) -> list[str]:  # a FIFO or a device would block or be read
            return [n for n in names if not (os.path.islink(p := os.path.join(parent, n)) or os.path.isdir(p)
                                             or os.path.isfile(p))]

        return self._load(where, lambda into: shutil.copytree(folder, into, symlinks=True, dirs_exist_ok=True,
                                                              ignore=special), _untrusted(where))

    def _load(self, where: str, fill: Callable[[Path], object], check: Callable[[SavedModel, TrustSet], None],
              registered_as: str | None = None) -> Any:
        """The model saved in the folder ``fill`` writes into a private one, once ``check`` passed (it raises to
        refuse)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
            folder = Path(tmp)
            fill(folder)
            saved = SavedModel.read(folder, where)
            if registered_as is not None and saved.flavor != registered_as:
                raise IntegrityError(f"{where} was registered as {registered_as} but its files say {saved.flavor}")
            flavor = self.flavors(saved.flavor)
            needed = self._requires(where, flavor, folder, saved)
            check(saved, needed)
            return flavor.load(folder, saved.flavor_meta, needed)

    def record_result(self, mv: ModelVersion, action: str, record: Mapping[str, Any], summary: str) -> AuditEvent:
        """Record a check of ``mv`` (``verify``, ``build``): ``record`` is stored as an object and named by
        an audit event, so "did this version pass verify in the image we deploy?" has an answer that
        no one can rewrite later."""
        if action not in RESULT_ACTIONS:
            raise ValueError(f"not a check: {action!r}")
        with self.writing():
            digest = self.store.put_bytes(json.dumps(dict(record), sort_keys=True, separators=(",", ":")).encode())
            shown = summary if len(summary) <= 500 else summary[:499] + "…"  # a cut line says it was cut
            return self.meta.record_result(mv.model, mv.version, action, digest, self.actor, shown)

    def results(self, mv: ModelVersion, action: str) -> list[tuple[AuditEvent, dict[str, Any]]]:
        """The recorded checks of ``mv`` of one kind, oldest first, each with its record (re-hashed on read)."""
        out = []
        for event in self.meta.audit_events(mv.model):
            if event.action == action and event.name == str(mv.version) and event.new:
                try:
                    body = json.loads(read_verified(self.store, Digest.parse(event.new)))
                except (IntegrityError, InvalidInputError, NotFoundError, ValueError):
                    continue  # collected, damaged or never ours: the event alone still says what happened
                if isinstance(body, dict):
                    out.append((event, body))
        return out

    def examples(self, mv: ModelVersion) -> dict[str, Any] | None:
        if mv.examples_digest is None:
            return None
        return dict(json.loads(read_verified(self.store, mv.examples_digest)))

    def versions(self, name: str) -> list[ModelVersion]:
        return self.meta.list_versions(check_model_name(name))

    def models(self) -> list[ModelSummary]:
        return self.meta.list_models()

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> AuditEvent:
        return self.meta.set_alias(check_model_name(name), check_new_alias(alias), check_version(version), self.actor,
                                   reason)

    def remove_alias(self, name: str, alias: str, reason: str = "") -> AuditEvent:
        return self.meta.remove_alias(check_model_name(name), check_alias(alias), self.actor, reason)

    def history(self, name: str | None = None) -> list[AuditEvent]:
        if name is not None:
            check_model_name(name)
            if not any(m.name == name for m in self.meta.list_models()):
                raise NotFoundError(f"model {name!r} not found; `shipyard models list` shows registered models")
        return self.meta.audit_events(name)


def not_found_in(message: str, where: str) -> str:
    """``model 'x' not found; HINT`` -> ``model 'x' not found (registry WHERE); HINT``, naming `models list`."""
    what, _, hint = message.partition("; ")
    if "shipyard models list" not in hint:
        hint = f"{hint}; `shipyard models list` shows what it holds" if hint else \
            "`shipyard models list` shows what it holds"
    return f"{what} (registry {where}); {hint}"


def _untrusted(where: str) -> Callable[[SavedModel, TrustSet], None]:
    """The check of a model no version holds (a run's files, a folder): nothing beyond its flavor's allowlist."""

    def check(saved: SavedModel, needed: TrustSet) -> None:
        if needed:
            raise UntrustedModelError(
                f"{where} needs {needed.describe()} to load, and only a registered version can be trusted: "
                f"register_model('{where}', NAME), then `shipyard models trust NAME@VERSION`")

    return check


def _items(event: AuditEvent | None) -> TrustSet:
    if event is None:
        return TrustSet()
    try:
        return TrustSet.from_items(event.trusted)
    except InvalidInputError:  # not a decision Shipyard wrote: it trusts nothing
        return TrustSet()
