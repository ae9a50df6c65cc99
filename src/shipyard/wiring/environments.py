"""The composition root's part for environments that travel: ``verify`` (uv environments, the current one, an
image) and ``build`` (container images). Re-exported by ``shipyard.wiring``, which holds the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.wiring import (
    Services,
    current_environment,
    model_lock,
    settings_from_environment,
    version_environment,
)

if TYPE_CHECKING:
    from shipyard.adapters.environments.venvs import Child
    from shipyard.core.environments.golden import Check, Tolerance
    from shipyard.core.environments.lock import Lock
    from shipyard.core.registry.records import ModelVersion


MAX_EXAMPLES_BYTES = 256 * 1024 * 1024  # golden examples verify reads (as much as the model's process may answer)


# --- Container images (shipyard build, verify --image) ------------------------------------------------------

def image_lock(svc: Services, mv: ModelVersion) -> Lock:
    """The model's lock for its image: complete, or refused naming the package it lacks."""
    return model_lock(svc, mv).complete(f"build {mv.ref}")


def outside_store(svc: Services, output: Path) -> None:
    """Refuse a build context ``--output`` inside the object store (or its cache): it holds only objects."""
    store = svc.settings.store_path.resolve()
    if output.resolve() == store or store in output.resolve().parents:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError(f"--output {output} is inside the object store {store}: give a folder "
                                "outside it (the store holds only objects named by their digest)")


def build_image(svc: Services, ref: str, environ: Mapping[str, str], *, base: str | None = None,
                tag: str | None = None, output: Path | None = None, push: str | None = None,
                engine: bool = True, progress: Callable[[str], None] = lambda _: None) -> Any:
    """``shipyard build``: the lock checked, the context written (``output``, or the project's
    ``.shipyard/images/NAME-V``), built and recorded where an engine answers, pushed on request."""
    import shutil

    from shipyard.adapters.images import build as images
    from shipyard.adapters.images.engine import detect

    mv = svc.registry.resolve(ref)
    env = version_environment(svc, mv)
    lock = image_lock(svc, mv)  # refused here, before anything is written
    found = detect(environ) if engine else None
    if output is not None:
        outside_store(svc, output)
    if output is None:
        output = svc.settings.home / "images" / f"{mv.model}-{mv.version}"
        if output.is_symlink() or output.is_file():  # not what Shipyard writes there: replaced, never followed
            output.unlink()
        elif output.exists():
            shutil.rmtree(output)  # Shipyard's own folder: the last context written for this version
    result = images.build_image(svc.registry, mv, lock.text(), env=env, engine=found, context_dir=output,
                                site_cache=verify_cache_dir(environ).parent / "image-site", base=base, tag=tag,
                                push=push, progress=progress, push_auth=push_credentials(svc) if push else None)
    if result.image_id is not None:  # an image was built: its SLSA provenance, signed when a key is set
        from shipyard.wiring.signing import record_image_provenance

        record_image_provenance(svc, mv, result.to_dict())
    return result


def push_credentials(svc: Services) -> Callable[[], tuple[str, str]] | None:
    """deploy.push_credentials of shipyard.yaml, resolved when the push asks (None: the engine's own login)."""
    from shipyard.config import CONFIG_FILE

    if not (svc.settings.project_root / CONFIG_FILE).is_file():
        return None
    from shipyard.wiring.deploy import deploy_spec

    creds = deploy_spec(svc).push_credentials
    if creds is None:
        return None

    def resolve() -> tuple[str, str]:
        from shipyard.core.secrets import is_reference
        from shipyard.wiring.secrets import secret

        user = secret(svc, creds.username, "deploy.push_credentials.username") if is_reference(creds.username) \
            else creds.username
        return user, secret(svc, creds.password, "deploy.push_credentials.password")

    return resolve
# --- verify: a version's golden examples in another environment -------------------------------------------------

def verify_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where verify keeps its environments: ``$SHIPYARD_CACHE_DIR/envs``, else the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/shipyard/envs``."""
    env = os.environ if environ is None else environ
    if env.get("SHIPYARD_CACHE_DIR"):  # absolute: the model's process runs in a folder of its own
        return Path(env["SHIPYARD_CACHE_DIR"]).expanduser().absolute() / "envs"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base.absolute() / "shipyard" / "envs"


def check_overrides(overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--with`` values, each checked as a PEP 508 requirement (a one-line error otherwise)."""
    from shipyard.core.environments.lock import parse_overrides

    parse_overrides(overrides)
    return tuple(o.strip() for o in overrides)


def check_python(python: str | None) -> str | None:
    """A ``--python`` value: a version (``3.12``), an interpreter name or a path; never an option, an empty
    word or one with whitespace or control characters (it is passed to uv and shown in one-line reasons)."""
    from shipyard.errors import InvalidInputError

    if python is not None and (not python or python.startswith("-") or len(python) > 255
                               or any(c.isspace() or not c.isprintable() for c in python)):
        raise InvalidInputError(f"--python {python[:80]!r}: give a version like 3.12, or the path of a Python")
    return python


@dataclass(frozen=True)
class VerifyRequest:
    overrides: tuple[str, ...] = ()
    python: str | None = None
    find_links: tuple[Path, ...] = ()
    current: bool = False


def verify_early(ref: str, request: VerifyRequest, environ: Mapping[str, str] | None = None
                 ) -> tuple[str, Child | None]:
    """(the hint of this request, a model process started in the environment it used last time, or None).

    Started before the registry is opened, so the flavor's imports (seconds for scikit-learn) overlap with
    opening it; ``verify_version`` uses it only if the environment it computes is that one.
    """
    import json

    from shipyard.adapters.environments.venvs import early

    settings = settings_from_environment(environ)
    hint = json.dumps([settings.db_url, str(settings.store_path), settings.actor, ref, list(request.overrides),
                       request.python, [str(p.resolve()) for p in request.find_links]])
    return hint, None if request.current else early(verify_cache_dir(environ), hint)


def golden_examples(svc: Services, mv: ModelVersion) -> dict[str, Any]:
    """``mv``'s golden examples (re-hashed), read as untrusted: a file that is not JSON, nested past the
    parser's bound, or not an object with ``inputs`` and ``outputs`` is one line, never a traceback."""
    import json

    from shipyard.core.artifacts.tree import read_verified
    from shipyard.errors import IntegrityError, NotFoundError

    examples: Any = None
    if mv.examples_digest is not None:
        raw = read_verified(svc.store, mv.examples_digest, limit=MAX_EXAMPLES_BYTES,
                            what=f"the golden examples {mv.examples_digest} of {mv.ref}",
                            too_large=": register it with fewer examples")
        try:
            examples = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(f"the golden examples of {mv.ref} are not JSON Shipyard wrote "
                                 f"({type(exc).__name__}: {str(exc)[:120]}); register the model again") from None
        if not isinstance(examples, dict):
            raise IntegrityError(f"the golden examples of {mv.ref} are a JSON {type(examples).__name__}, not "
                                 "the object Shipyard writes; register the model again")
    if not examples or "inputs" not in examples or "outputs" not in examples:
        raise NotFoundError(f"{mv.ref} has no golden examples to verify: register it with "
                            "log_model(..., examples=X[:5]) (its outputs on them are stored as the expected answers)")
    return dict(examples)


def verify_version(svc: Services, ref: str | ModelVersion, request: VerifyRequest,
                   on_line: Callable[[str], None] = lambda _: None, environ: Mapping[str, str] | None = None,
                   record: bool = True, early: Child | None = None, hint: str | None = None
                   ) -> tuple[ModelVersion, Check]:
    """Run ``ref``'s golden examples in a fresh environment (or the current one) and record the outcome.

    ``early`` and ``hint``: from ``verify_early`` (the caller closes ``early``)."""
    from shipyard._version import __version__
    from shipyard.core.environments.golden import Tolerance
    from shipyard.wiring.signing import require_signature

    mv = ref if not isinstance(ref, str) else svc.registry.resolve(ref)
    require_signature(svc, mv, "load")  # signing.require_signed: a verify loads the version, and records a pass
    examples = golden_examples(svc, mv)
    tolerance = Tolerance.of(examples)
    if request.current:
        check = _verify_current(svc, mv, examples, tolerance)
    else:
        check = _verify_venv(svc, mv, examples, tolerance, request, on_line, environ, early, hint)
    if record:
        svc.registry.record_result(mv, "verify", check.to_record(__version__), check.summary())
    return mv, check


def _verify_current(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance) -> Check:
    import platform

    from shipyard.adapters.environments.child import as_inputs
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.environments.capture import to_bytes
    from shipyard.core.environments.golden import FAIL, PASS, Check, compare
    from shipyard.errors import InvalidInputError, MissingExtraError

    env = Digest.of_bytes(to_bytes(current_environment(svc.settings)))
    where = str(env)
    try:
        model = svc.registry.load(mv.ref)  # trust-checked, re-hashed: an untrusted version raises here
    except (InvalidInputError, MissingExtraError) as exc:  # does not load here (a module missing): the verdict
        return Check("current", FAIL, where, platform.python_version(), reason=f"the model did not load: {exc}")
    flavor_ = svc.registry.flavors(mv.flavor)
    try:
        got = flavor_.to_json(flavor_.predict(model, as_inputs(examples["inputs"])))
    except Exception as exc:  # the model's own failure is the verdict, not a crash of verify
        from shipyard.adapters.flavors import first_line

        return Check("current", FAIL, where, platform.python_version(),
                     reason=f"the model failed to answer: {type(exc).__name__}: {first_line(exc)}")
    verdict = compare(examples["outputs"], got, tolerance)
    return Check("current", PASS if verdict.passed else FAIL, where, platform.python_version(), verdict=verdict)


def _verify_venv(svc: Services, mv: ModelVersion, examples: Mapping[str, Any], tolerance: Tolerance,
                 request: VerifyRequest, on_line: Callable[[str], None], environ: Mapping[str, str] | None,
                 early: Child | None = None, hint: str | None = None) -> Check:
    import platform
    import tempfile
    from dataclasses import replace

    from shipyard.adapters.environments.venvs import Child, EnvCache, EnvSpec, NotInstalled, remember
    from shipyard.core.artifacts.tree import materialize
    from shipyard.core.environments.golden import FAIL, NOT_INSTALLED, PASS, Check, compare
    from shipyard.core.registry.service import SavedModel
    from shipyard.core.registry.trust import untrusted_error
    from shipyard.errors import IntegrityError

    with tempfile.TemporaryDirectory(prefix="shipyard-verify-model-") as tmp:
        folder = Path(tmp) / "model"
        materialize(svc.store, mv.manifest_digest, folder)  # every file re-hashed against its digest
        saved = SavedModel.read(folder)
        if saved.flavor != mv.flavor:
            raise IntegrityError(f"{mv.ref} was registered as {mv.flavor} but its files say {saved.flavor}")
        # Trust is decided here, by the registry's rules; the child gets exactly that set and its flavor
        # refuses anything outside it before deserializing (what the version needs is read there, where
        # the flavor's libraries are imported anyway: the same check Registry.load makes)
        granted = svc.registry.trusted(mv)
        lock = model_lock(svc, mv).complete(f"verify {mv.ref}", request.overrides)
        python = check_python(request.python) or (".".join(lock.python.split(".")[:2]) if lock.python[:1].isdigit()
                                    else platform.python_version())
        spec = EnvSpec(python, tuple(lock.requirements(request.overrides)), request.overrides,
                       tuple(p.resolve() for p in request.find_links))
        root = verify_cache_dir(environ)
        env = EnvCache(root).ensure(spec, on_line)
        if isinstance(env, NotInstalled):
            return Check("venv", NOT_INSTALLED, env.key, python, request.overrides, reason=env.reason)
        if hint is not None:
            remember(root, hint, env.key, saved.flavor)
        warm = early is not None and early.key == env.key and early.flavor == saved.flavor
        with early if warm and early is not None else Child(env.python, env.key, saved.flavor) as child:
            result = child.answer(folder, saved.flavor_meta, granted.items(), examples["inputs"])
        if result.untrusted:  # refused there: is it untrusted here too (then say how to trust it, as load does)?
            needed = svc.registry.requirements(folder)
            if needed - granted:
                raise untrusted_error(mv.ref, needed, granted)
            # trusted by this registry's rules, refused by the flavor there: that environment cannot read it
            found = ", ".join(f"{k} {v}" for k, v in (result.packages or {}).items() if k != "python")
            result = replace(result, stage="refused", error=f"the {saved.flavor} flavor there ({found}) does not "
                             f"accept what this registry trusts: {result.error}")
    ran = Check("venv", FAIL, env.key, env.python_version, request.overrides, reused=env.reused,
                packages=dict(result.packages or {}))
    if not result.ok:
        what = {"load": "the model did not load", "predict": "the model failed to answer",
                "import": "the flavor did not import", "refused": "the model did not load"}.get(result.stage,
                                                                                                "the model failed")
        return replace(ran, reason=f"{what}: {result.error}")
    verdict = compare(examples["outputs"], result.outputs, tolerance)
    return replace(ran, status=PASS if verdict.passed else FAIL, verdict=verdict)


def image_environment(image: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The environment record inside a container image (`env check --target IMAGE`), captured there."""
    from shipyard.adapters.images.engine import engine_for
    from shipyard.core.environments.image import check_image_name
    from shipyard.errors import InvalidInputError

    try:
        check_image_name(image, "--target")
    except ValueError as exc:
        raise InvalidInputError(f"{exc}, nor `current` or an environment record file") from None
    return engine_for(environ).environment(image)


def verify_image(svc: Services, ref: str | ModelVersion, image: str, environ: Mapping[str, str],
                 ready_timeout: float | None = None, record: bool = True) -> tuple[ModelVersion, Check]:
    """``verify --image``: the golden examples posted to the image's ``/v2/models/NAME/infer`` in a throwaway
    container, the answers compared with the stored outputs; the outcome recorded with the version."""
    from shipyard._version import __version__
    from shipyard.adapters.images.probe import READY_TIMEOUT, ContainerFailed, run_in_image
    from shipyard.core.environments.golden import FAIL, PASS, Check, Tolerance, compare
    from shipyard.core.environments.image import answer_outputs, check_image_name, infer_request
    from shipyard.errors import InvalidInputError

    try:
        check_image_name(image, "--image")
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    mv = ref if not isinstance(ref, str) else svc.registry.resolve(ref)
    examples = golden_examples(svc, mv)
    try:
        request = infer_request(examples["inputs"], mv.signature)
    except (TypeError, ValueError) as exc:  # ragged rows, a table: not one tensor
        raise InvalidInputError(f"the golden inputs of {mv.ref} cannot be sent as one tensor ({exc}); "
                                "verify it without --image") from None
    try:
        answer = run_in_image(image, mv.model, request, environ, ready_timeout or READY_TIMEOUT)
        got = answer_outputs(answer.body)
    except ContainerFailed as exc:
        check = Check("image", FAIL, image, None, reason=exc.reason)
    except ValueError as exc:
        check = Check("image", FAIL, image, None, reason=f"the answer is not what the model returns: {exc}")
    else:
        served = f"{answer.body.get('model_name')}@{answer.body.get('model_version')}"
        if served != mv.ref:  # another version's image: its answers say nothing about this one
            raise InvalidInputError(f"the image {image} serves {served[:80]}, not {mv.ref}: verify {served[:80]} "
                                    f"--image {image}, or build {mv.ref} (`shipyard build {mv.ref}`)")
        verdict = compare(examples["outputs"], got, Tolerance.of(examples))
        check = Check("image", PASS if verdict.passed else FAIL, f"{image} {answer.image_id}", None, verdict=verdict)
    if record:
        svc.registry.record_result(mv, "verify", {**check.to_record(__version__), "image": image},
                                   check.summary())
    return mv, check
