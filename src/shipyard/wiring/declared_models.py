"""The models shipyard.yaml declares (``models:``): ``shipyard run`` registers a new version of each one whose
stage output changed, as DVC's ``artifacts:`` name a model, with no wrapper script.

A declared model is a stage output (``path``: the output, or a file inside an output folder). After a
successful pipeline run, for each declaration: the stage producing it, the digest ``shipyard.lock`` records for
it and the stage run that recorded those bytes (the version's lineage: ``lineage`` and ``reproduce`` follow it).
The digest is compared with the one the newest version already registered from that output recorded; the
same bytes register nothing (a run from the cache, a re-run that wrote the same bytes).

Which files are loaded, and what the registered version trusts (invariant 7: a file runs no code on load
unless the user trusted it). The rule: a model declared in ``models:`` is loaded as the pipeline wrote it.
``shipyard run`` runs the project's commands, and a pickle a stage wrote is unpickled with the same trust as
those commands: that is code execution the pipeline chose, whatever the command did to make the file (it may
train the model, or only copy or download one: ``cp incoming/model.pkl model.pkl`` unpickles whatever
``incoming/`` held, as ``python train.py`` runs whatever train.py holds). So a pickle (``model.pkl``, joblib, a
TorchScript file) is loaded only when its bytes are exactly what a stage's command wrote in a run this actor
started (or a reviewer it lists in ``SHIPYARD_TRUSTED_ACTORS``), recorded in this registry's database: they
are read from the store by the digest that run recorded (re-hashed on the way; a declared output with
``cache: false`` is refused before anything runs: it is never stored). A run someone else recorded, a
stage-cache entry (from a remote, say) naming a run this database does not hold, and a ``frozen`` stage (its
outputs are never made by this run) are refused or skipped: re-run the stage with ``--force``. The object
is then saved through its flavor's normal path (scikit-learn: skops), as ``log_model`` in the stage would
have, and registered with what loading that needs trusted (a ``python`` model stays a pickle: trusted as ``log_model``
trusts it). An ONNX file carries no code. A saved model folder (``shipyard.save_model`` in the stage, or a
folder the stage copied) is registered as it is and is NOT trusted: it loads without a decision only when its
format guarantees it runs nothing (skops with known types, safetensors, ONNX); a pickle or stored code in it
needs ``shipyard models trust``, since nothing in this process made those bytes.

Two ``shipyard run`` at once never register the same bytes twice: each registration asks for the number after
the newest version it saw, and the registry assigns numbers in one transaction (the model's row locked), so
the second is refused there, re-reads the registry, and finds the first's version of the same bytes.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.artifacts.digest import Digest, hash_stream
from shipyard.core.artifacts.tree import copy_verified, load_manifest, materialize
from shipyard.core.lineage.records import RunRecord, RunStatus
from shipyard.core.project.model import ModelDef
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.service import MODEL_FILE, SavedModel
from shipyard.core.workspace.paths import Confined
from shipyard.errors import (
    ConfigError,
    ConflictError,
    ImmutableError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    ShipyardError,
)

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.core.pipelines.runner import Outcome, PipelineRunner
    from shipyard.ports import ObjectStore
    from shipyard.wiring import Services

FLAVORS = ("sklearn", "onnx", "torch", "python")
PICKLES = (".pkl", ".pickle", ".joblib")
FILES = {"sklearn": PICKLES, "python": (".pkl", ".pickle"), "onnx": (".onnx",), "torch": (".pt", ".pth")}
MAX_EXAMPLES_BYTES = 16 * 1024 * 1024
MAX_EXAMPLE_ROWS = 1000
MAX_REFERENCE_BYTES = 64 * 1024 * 1024  # reference: (training data, or a sample) read for its profile
MAX_REFERENCE_ROWS = 1_000_000
MAX_TRIES = 5  # registrations lost to another `shipyard run` before this one gives up (each re-checks first)
DONE = ("ran", "cached", "up-to-date")


@dataclass(frozen=True, slots=True)
class Registered:
    ref: str
    stage: str
    path: str


@dataclass
class Declared:
    """What ``register_declared`` did: versions registered, models whose output had not changed, problems
    (one line each: the model was not registered)."""

    registered: list[Registered] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # not yet: the stage whose metrics go with it did not run
    by_stage: dict[str, list[str]] = field(default_factory=dict)  # problems and waiting lines by producing stage
                                                                  # ("": a model no stage produces)

    def note(self, stage: str, line: str, problem: bool) -> None:
        (self.problems if problem else self.waiting).append(line)
        self.by_stage.setdefault(stage, []).append(line)


class _NotYet(Exception):
    """Not an error: the model is registered by a later run (one that runs its metrics stage, or its stage)."""


def register_declared(settings: Settings, runner: PipelineRunner, outcomes: Sequence[Outcome]) -> Declared:
    """Register a new version of each declared model whose producing stage finished in ``outcomes`` and whose
    bytes differ from the newest version registered from that output. A model that cannot be registered is
    a line in ``problems``; the others are registered all the same, and nothing of the pipeline is undone."""
    from shipyard.core.project.loader import load_config
    from shipyard.wiring import build

    result = Declared()
    config = load_config(runner.ws.root)
    if not config.models:
        return result
    finished = {o.stage for o in outcomes if o.result in DONE}
    svc = build(settings, runner.ws.root)
    try:
        for name, decl in config.models.items():
            producer = ""
            try:
                producer, out = producing_output(runner, name, decl)
                if producer not in finished:
                    continue  # not part of this run (a run of other stages), or it failed
                done = _register_one(svc, runner, name, decl, producer, out, finished)
            except ShipyardError as exc:
                result.note(producer, f"model {name}: {exc}; not registered", problem=True)
                continue
            except _NotYet as exc:
                result.note(producer, f"model {name} is not registered yet: {exc}", problem=False)
                continue
            if done is None:
                result.unchanged.append(name)
                continue
            result.registered.append(Registered(done.ref, producer, decl.path))
            try:  # as log_model does for a stage's run: the version's SLSA provenance (signed if signing.key is set)
                from shipyard.wiring.signing import record_version_provenance

                record_version_provenance(svc, done, svc.meta.get_run(done.run_id or ""))
            except ShipyardError as exc:
                result.note(producer, f"model {name}: registered as {done.ref}, but its provenance was not "
                                      f"recorded: {exc}", problem=True)
    finally:
        svc.close()
    return result


def producing_output(runner: PipelineRunner, name: str, decl: ModelDef) -> tuple[str, str]:
    """The stage whose output is ``decl.path``, or holds it, and that output's path."""
    for stage in runner.pipeline.stages.values():
        for out in stage.outs:
            if decl.path == out or decl.path.startswith(out + "/"):
                return stage.name, out
    raise ConfigError(f"no stage produces {decl.path}: set its path: to a stage's output, or to a file inside "
                      "an output folder")


def _register_one(svc: Services, runner: PipelineRunner, name: str, decl: ModelDef, producer: str, out: str,
                  finished: set[str]) -> ModelVersion | None:
    if decl.flavor not in FLAVORS:
        raise ConfigError(f"unknown flavor {decl.flavor!r}: use one of {', '.join(FLAVORS)}")
    entry = runner.lock.stages.get(producer)
    if entry is None or out not in entry.outs:
        raise NotFoundError(f"shipyard.lock has no run of stage {producer} recording {out}")
    if entry.run is None:  # recorded without a run (`init --from-dvc`): no lineage to register it with
        raise _NotYet(f"stage {producer}'s output was recorded without a run (converted from DVC?); "
                      f"`{_force(runner, producer, decl.metrics)}` runs it and registers the model")
    run = _producing_run(svc, entry.run, out, entry.outs[out].digest, producer)
    digest = digest_in(svc.store, run, decl.path)
    if digest is None:
        raise NotFoundError(f"stage {producer}'s output {out} holds no {decl.path}")
    metrics = dict(run.metrics)
    if decl.metrics is not None:
        metrics.update(_metrics_of(svc, runner, decl.metrics, finished))
    examples = load_examples(runner.ws.root, decl.examples) if decl.examples else None
    reference = load_examples(runner.ws.root, decl.reference, "reference") if decl.reference else None
    description = "\n".join(x for x in (decl.desc or "", f"labels: {', '.join(decl.labels)}" if decl.labels else "")
                            if x)
    for _ in range(MAX_TRIES):
        latest, registered = newest_from(svc, name, decl.path)
        if registered == digest:
            return None
        with tempfile.TemporaryDirectory(prefix="shipyard-declared-") as tmp:
            folder, trust, model = _saved_folder(svc, runner, decl, run, out, digest, examples, Path(tmp))
            profile = None if reference is None else _profile(decl, model, reference)  # before: a bad one
            try:                                                                          # registers nothing
                mv = svc.registry.register(name, folder, run_id=run.id, metrics=metrics, params=run.params,
                                           description=description, version=latest + 1, trust_as_registrant=trust)
            except (ImmutableError, ConflictError):
                continue  # another run registered a version meanwhile: check again whether it holds these bytes
        if profile is not None:
            from shipyard.wiring.monitoring import record_profile

            record_profile(svc, mv, profile)
        return mv
    raise ConflictError(f"other registrations of {name} kept coming first ({MAX_TRIES} tries); run again")


def _producing_run(svc: Services, run_id: str, out: str, digest: Digest, stage: str) -> RunRecord:
    """The run shipyard.lock names for ``stage``, which must have recorded ``digest`` for ``out``: a stage-cache
    entry (from a remote, say) naming a run that never recorded these bytes gives no lineage and no trust."""
    try:
        run = svc.meta.get_run(run_id)
    except NotFoundError:
        raise NotFoundError(f"the run that produced {out} (run {run_id[:8]}, from the stage cache) is not in this "
                            f"registry's database: run `shipyard run --force {stage}` to make it here") from None
    recorded = next((a.digest for a in run.artifacts if a.path == out), None)
    if run.status != RunStatus.FINISHED or recorded != digest:
        raise IntegrityError(f"run {run_id[:8]} did not record {out} as shipyard.lock has it ({digest.short()}): "
                             f"run `shipyard run --force {stage}`")
    return run


def digest_in(store: ObjectStore, run: RunRecord, path: str) -> Digest | None:
    """The digest ``run`` recorded for ``path``: one of its outputs, or a file inside an output folder."""
    for art in run.artifacts:
        if art.path == path:
            return art.digest
        if art.is_dir and path.startswith(art.path.rstrip("/") + "/") and store.has(art.digest):
            rel = path[len(art.path.rstrip("/")) + 1:]
            return next((e.digest for e in load_manifest(store, art.digest) if e.path == rel), None)
    return None


def newest_from(svc: Services, name: str, path: str) -> tuple[int, Digest | None]:
    """The newest version number of ``name`` (0: none), and the digest of ``path`` that the newest version
    registered from that output recorded (None: no version came from it)."""
    try:
        versions = svc.registry.versions(name)
    except NotFoundError:
        return 0, None
    latest = max((v.version for v in versions), default=0)
    for mv in sorted(versions, key=lambda v: v.version, reverse=True):
        if mv.run_id is None:
            continue
        with contextlib.suppress(NotFoundError):
            found = digest_in(svc.store, svc.meta.get_run(mv.run_id), path)
            if found is not None:
                return latest, found
    return latest, None


def _metrics_of(svc: Services, runner: PipelineRunner, stage: str, finished: set[str]) -> dict[str, float]:
    check_metrics_stage(runner, stage)
    entry = runner.lock.stages.get(stage)
    if entry is not None and entry.run is None:  # DVC's results, converted: up to date, but no run to read
        raise _NotYet(f"its metrics stage {stage}'s results were recorded without a run (converted from DVC?); "
                      f"`shipyard run --force {stage}` runs it and registers the model")
    if stage not in finished or entry is None or entry.run is None:
        raise _NotYet(f"its metrics stage {stage} did not run with it: `shipyard run {stage}` registers it")
    return dict(svc.meta.get_run(entry.run).metrics)


def _force(runner: PipelineRunner, producer: str, metrics: str | None) -> str:
    """The command that runs ``producer`` and, when it has one that is not up to date from a run, the model's
    metrics stage: both, so the model registers in one step (not a hint that leads to another hint)."""
    stages = [producer]
    if metrics is not None and metrics != producer and metrics in runner.pipeline.stages:
        stages.append(metrics)
    return f"shipyard run --force {' '.join(stages)}"


def check_metrics_stage(runner: PipelineRunner, stage: str) -> None:
    """``metrics:`` names a stage of the pipeline (a foreach/matrix group's name is not one: its members are)."""
    if stage in runner.pipeline.stages:
        return
    members = sorted(s for s in runner.pipeline.stages if s.startswith(f"{stage}@"))
    if members:
        shown = " or ".join(members[:3]) + (" or ..." if len(members) > 3 else "")
        raise ConfigError(f"metrics: {stage!r} is a foreach group, not a stage: name the member that evaluates "
                          f"this model, e.g. {shown}")
    raise ConfigError(f"metrics: {stage!r} is not a stage of shipyard.yaml: name the stage that evaluates it")


def check_declarations(runner: PipelineRunner) -> None:
    """What can be checked before anything runs (one line, nothing run): each model's ``metrics:`` stage, and
    that its output is stored (``cache: false`` keeps no digest on the stage's run, so it could never register)."""
    from shipyard.core.project.loader import load_config

    for name, decl in load_config(runner.ws.root).models.items():
        try:
            if decl.metrics is not None:
                check_metrics_stage(runner, decl.metrics)
            for stage in runner.pipeline.stages.values():
                out = next((o for o in stage.uncached if decl.path == o or decl.path.startswith(o + "/")), None)
                if out is not None:
                    raise ConfigError(f"path: {decl.path} is an output of stage {stage.name} with cache: false, "
                                      "which is never stored, so no version could be registered from it: remove "
                                      f"cache: false from {out}")
        except ConfigError as exc:
            raise ConfigError(f"model {name}: {exc}; nothing was run") from None


# -- the model's bytes, checked, then saved through its flavor ----------------------------------------------

def _profile(decl: ModelDef, model: Any, data: Any) -> Any:
    """The reference profile of ``data`` (``reference:``), with the model's answers on it when this process
    holds the model (a saved folder or an ONNX file: the inputs alone, nothing loaded for it)."""
    from shipyard.wiring import flavor as get_flavor
    from shipyard.wiring.monitoring import profile_reference

    answers = None
    if model is not None:
        try:
            answers = get_flavor(decl.flavor).predict(model, data)
        except ShipyardError:
            raise
        except Exception as exc:  # the model's own error on this data: nothing is registered
            raise InvalidInputError(f"reference: the model cannot answer on {decl.reference} "
                                    f"({type(exc).__name__}: {_line(exc)})") from exc
    return profile_reference(data, answers)


def _saved_folder(svc: Services, runner: PipelineRunner, decl: ModelDef, run: RunRecord, out: str, digest: Digest,
                  examples: Any, tmp: Path) -> tuple[Path, bool, Any]:
    """A saved model folder for the declared output, whether its registration trusts what it needs (only
    when this process made it from the stage's own output, see the module's docstring; never a stage's
    folder), and the model object when this process loaded one (None: a saved folder, an ONNX file)."""
    from shipyard.adapters.flavors.code import ROOT_OPTION
    from shipyard.core.registry.saving import save_model
    from shipyard.wiring import flavor as get_flavor

    source = tmp / "source"
    own = svc.registry.accepts(run.user)
    is_dir = next((a.is_dir for a in run.artifacts if a.path == decl.path), False)
    if is_dir:
        _folder_bytes(svc.store, runner.ws.root, decl.path, digest, source)
        if (source / MODEL_FILE).is_file():  # shipyard.save_model(...) in the stage: registered as it is
            saved = SavedModel.read(source)
            if saved.flavor != decl.flavor:
                raise ConfigError(f"{decl.path} holds a {saved.flavor} model, but flavor: says {decl.flavor}")
            if examples is not None:
                raise ConfigError(f"{decl.path} is a saved model folder with its own golden examples: remove "
                                  "examples: from the declaration, or pass them to save_model in the stage")
            return source, False, None  # registered as it is: pickle or code in it needs `shipyard models trust`
        raise ConfigError(f"{decl.path} is a folder without {MODEL_FILE}: save it with shipyard.save_model(model, "
                          f"{decl.path!r}, flavor={decl.flavor!r}) in the stage, or declare the model file itself")
    suffix = Path(decl.path).suffix.lower()
    if suffix not in FILES[decl.flavor]:
        raise ConfigError(f"a {decl.flavor} model is declared as a {', '.join(FILES[decl.flavor])} file or a saved "
                          f"model folder, not {Path(decl.path).name}")
    source.mkdir()
    file = source / Path(decl.path).name
    _file_bytes(svc.store, runner.ws.root, decl.path, digest, file)
    if decl.flavor == "onnx":
        model: Any = file  # ONNX carries no code: the flavor reads the file
    elif not own:
        raise InvalidInputError(f"{decl.path} was written by a run of {run.user}, not you: loading it would run "
                                f"code you did not run; run `shipyard run --force {run.tags.get('shipyard.stage')}`")
    else:
        model = _load_own(file, decl, runner.ws.root)
    folder = tmp / "model"
    flavor = get_flavor(decl.flavor)
    options: dict[str, Any] = {}
    if decl.code_paths:  # stored with the version (code/), importable wherever it loads: serve, reproduce
        if not getattr(flavor, "takes_code_paths", False):
            raise ConfigError(f"the {decl.flavor} flavor takes no code_paths: its models load without project code")
        # relative to the project root, wherever `shipyard run` was started (a subfolder too)
        options["code_paths"] = list(decl.code_paths)
        options[ROOT_OPTION] = str(runner.ws.root)
    try:
        save_model(flavor, model, folder, examples, options)
    except ShipyardError:
        raise
    except Exception as exc:  # the model's own error on the examples (their width, their type)
        what = f"cannot predict the examples in {decl.examples}" if examples is not None else "cannot be saved"
        raise InvalidInputError(f"the model {what}: {type(exc).__name__}: {_line(exc)}") from exc
    return folder, True, None if decl.flavor == "onnx" else model


def _file_bytes(store: ObjectStore, root: Path, path: str, digest: Digest, dest: Path) -> None:
    """``dest``: the bytes named ``digest``, from the store (re-hashed), or from the working tree when the
    output is not stored (``cache: false``), hashed and compared."""
    if store.has(digest):
        copy_verified(store, digest, dest, 0o600)
        return
    live = Confined(root, project=True).check(path, "model path")
    try:
        with open(live, "rb") as src, open(dest, "wb") as f:
            while chunk := src.read(1 << 20):
                f.write(chunk)
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with open(dest, "rb") as f:
        if hash_stream(f) != digest:
            raise IntegrityError(f"{path} changed since its stage recorded it: run the pipeline again")


def _folder_bytes(store: ObjectStore, root: Path, path: str, digest: Digest, dest: Path) -> None:
    if not store.has(digest):
        raise NotFoundError(f"the folder {path} is not in the store (cache: false?): a declared model folder "
                            "must be a cached output")
    materialize(store, digest, dest)


@contextlib.contextmanager
def _importable(root: Path, decl: ModelDef) -> Iterator[None]:
    """The project (and its ``code_paths``) importable while the stage's own pickle is loaded: its classes live
    there, as they did when the stage wrote it."""
    # as code_paths are stored (``src/mypkg`` as ``code/mypkg``, ``code/`` importable): each one's parent folder
    extra = list(dict.fromkeys([str(root), *(str((root / p).parent) for p in decl.code_paths)]))
    sys.path[:0] = extra
    try:
        yield
    finally:
        for p in extra:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def _load_own(file: Path, decl: ModelDef, root: Path) -> Any:
    """The object in the verified copy ``file`` of the user's own stage output (see the module's docstring)."""
    try:
        with _importable(root, decl):
            if file.suffix == ".joblib":
                import joblib

                return joblib.load(file)
            if decl.flavor == "torch":
                from shipyard.adapters.flavors import require

                return require("torch", "PyTorch models", "torch").jit.load(str(file), map_location="cpu")
            with open(file, "rb") as f:
                return pickle.load(f)  # the digest-checked output of this actor's own stage run
    except ImportError as exc:
        raise InvalidInputError(f"cannot load {decl.path}: {_line(exc)}; list the folder its code is in under "
                                "code_paths:") from exc
    except Exception as exc:  # whatever the stage wrote: a truncated or foreign file fails here
        raise InvalidInputError(f"cannot load {decl.path}: {type(exc).__name__}: {_line(exc)}") from exc


# -- golden examples ----------------------------------------------------------------------------------------

def load_examples(root: Path, path: str, what: str = "examples") -> Any:
    """The golden inputs in the project file ``path``: .npy (no pickles), .npz (a scipy sparse matrix, as
    ``save_npz`` writes it), .csv (numbers, or one text column; an optional header), .json (a list of rows).
    At most ``MAX_EXAMPLES_BYTES`` read (an .npz's members too, uncompressed) and ``MAX_EXAMPLE_ROWS`` rows;
    ``what="reference"``: a model's reference data, the same formats, up to ``MAX_REFERENCE_*``."""
    max_bytes, max_rows = (MAX_REFERENCE_BYTES, MAX_REFERENCE_ROWS) if what == "reference" else \
        (MAX_EXAMPLES_BYTES, MAX_EXAMPLE_ROWS)
    import io

    import numpy as np

    file = Confined(root, project=True).check(path, f"{what} file")
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".json"):
        raise ConfigError(f"{what} {path}: use a .npy, .npz, .csv or .json file")
    try:
        with open(file, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {path} cannot be read: {exc.strerror or exc}") from exc
    too_large = ConfigError(f"{what} file {path} is larger than {max_bytes >> 20} MiB: "
                            + ("give a sample" if what == "reference" else "golden examples are a few rows"))
    if len(raw) > max_bytes:
        raise too_large
    try:
        if suffix == ".npy":
            data: Any = np.load(io.BytesIO(raw), allow_pickle=False)
        elif suffix == ".npz":
            import zipfile

            import scipy.sparse as sp  # type: ignore[import-untyped]

            with zipfile.ZipFile(io.BytesIO(raw)) as zf:  # a member reads no more than its declared size
                if sum(i.file_size for i in zf.infolist()) > max_bytes:
                    raise too_large
            data = sp.load_npz(io.BytesIO(raw)).tocsr()  # np.load underneath, allow_pickle=False
        elif suffix == ".json":
            from shipyard.core.boundedyaml import load_json

            rows = load_json(raw, path)
            if not isinstance(rows, list):
                raise ValueError("not a JSON list of rows")
            data = np.asarray(rows) if rows and not isinstance(rows[0], str) else rows
        else:
            data = _csv(raw.decode())
    except ShipyardError:
        raise
    except Exception as exc:  # numpy's and scipy's readers raise many kinds for a bad file
        raise ConfigError(f"{what} file {path} cannot be read: {_line(exc)}") from exc
    count = data.shape[0] if hasattr(data, "shape") and len(data.shape) else len(data)
    if count == 0 or count > max_rows:
        raise ConfigError(f"{what} file {path} has {count} rows: give 1 to {max_rows}")
    return data


def _csv(text: str) -> Any:
    import csv

    import numpy as np

    rows = [r for r in csv.reader(text.splitlines()) if r]
    if rows and not _numeric(rows[0]) and len(rows) > 1 and all(_numeric(r) for r in rows[1:]):
        rows = rows[1:]  # a header
    if rows and all(_numeric(r) for r in rows):
        return np.asarray([[float(x) for x in r] for r in rows])
    if rows and all(len(r) == 1 for r in rows):
        return [r[0] for r in rows]  # text, one per row
    raise ValueError("rows are neither all numbers nor one text column")


def _numeric(row: list[str]) -> bool:
    try:
        [float(x) for x in row]
    except ValueError:
        return False
    return True


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


# -- reproduce: the model a re-run wrote ----------------------------------------------------------------------

def rerun_model(root: Path, mv: ModelVersion, work: Path) -> Any | None:
    """For a version registered from a declared output: the model the re-run in ``work`` wrote there (the
    re-run is this user's own run of the recorded command, so its output is theirs to load); None for a
    version that is not declared in the project's shipyard.yaml."""
    from shipyard.core.project.loader import load_config
    from shipyard.wiring import flavor as get_flavor

    decl = load_config(root).models.get(mv.model)
    if decl is None:
        return None
    file = Confined(work).check(decl.path, "model path")
    if file.is_dir():
        saved = SavedModel.read(file)
        flavor = get_flavor(saved.flavor)
        return flavor.load(file, saved.flavor_meta, flavor.requires(file, saved.flavor_meta))
    if decl.flavor == "onnx":
        return get_flavor("onnx").load(file.parent, {"file": file.name}, get_flavor("onnx").requires(
            file.parent, {"file": file.name}))
    return _load_own(file, decl, work)
