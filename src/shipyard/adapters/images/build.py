"""``shipyard build``: a model version's build context, built into an image where an engine answers.

Order matters for what the user sees: the lock is checked first (a model whose flavor needs a package
the lock does not pin is refused before anything is written), then the context is written, then built,
recorded with the version, and pushed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard._version import __version__
from shipyard.adapters.images.context import Context, shipyard_runtime, write_context
from shipyard.adapters.images.engine import Engine
from shipyard.adapters.images.registry import write_registry
from shipyard.core.environments import image
from shipyard.core.registry.records import BUILD_ACTION, ModelVersion
from shipyard.core.registry.service import Registry
from shipyard.errors import InvalidInputError, NotFoundError


@dataclass
class BuildResult:
    model: str
    version: int
    context: Path
    base: image.Base
    tag: str
    site_cached: bool
    deps_image: str
    commands: list[list[str]]  # what builds the context by hand: deps/, then the model's image
    engine: str | None = None
    image_id: str | None = None
    size: int | None = None
    pushed: str | None = None  # REGISTRY/REPO@sha256:...
    deps_built: bool | None = None  # whether the dependencies image had to be built (None: no engine)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "context": str(self.context),
                "base": self.base.image, "base_reason": self.base.reason, "notes": list(self.base.notes),
                "tag": self.tag, "engine": self.engine, "image_id": self.image_id, "size": self.size,
                "pushed": self.pushed, "built": self.image_id is not None, "commands": self.commands,
                "dependencies_cached": self.site_cached, "deps_image": self.deps_image,
                "deps_built": self.deps_built, "seconds": self.seconds}


def revision_of(registry: Registry, mv: ModelVersion) -> tuple[str | None, str | None]:
    """The producing run's git commit and repository, where it recorded them."""
    if mv.run_id is None:
        return None, None
    try:
        run = registry.meta.get_run(mv.run_id)
    except NotFoundError:
        return None, None
    return run.code.commit, run.code.repo


def claim_folder(folder: Path) -> bool:
    """Make sure ``folder`` is ours to write: new (made here: True) or an existing empty folder (False);
    anything else (a file, a link, a folder with anything in it) is refused before a byte is written."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InvalidInputError(f"{folder} is not a folder: give --output a new or empty folder")
    if folder.is_dir():
        try:
            if next(folder.iterdir(), None) is not None:
                raise InvalidInputError(f"{folder} is not empty: give --output a new or empty folder")
        except OSError as exc:
            raise InvalidInputError(f"cannot read --output {folder}: {exc.strerror or exc}") from None
        return False
    folder.mkdir(parents=True)
    return True


def release_folder(folder: Path, created: bool) -> None:
    """Undo a failed write into a folder ``claim_folder`` claimed: only what was written into it goes (the
    folder too when it was made here). Never more: the folder was checked empty, and it is not a link."""
    if folder.is_symlink() or not folder.is_dir():
        return
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def build_image(registry: Registry, mv: ModelVersion, requirements: str, *, env: Mapping[str, Any],
                engine: Engine | None, context_dir: Path, site_cache: Path, base: str | None = None,
                tag: str | None = None, push: str | None = None,
                progress: Callable[[str], None] = lambda _: None,
                push_auth: Callable[[], tuple[str, str]] | None = None) -> BuildResult:
    """Write ``mv``'s context into ``context_dir`` (new or empty) and build it with ``engine`` (None: only
    the context). ``requirements`` is the model's complete lock, as text. ``progress`` hears each step.
    ``push_auth`` gives the registry's (user, password) for ``push``, asked only when it pushes."""
    clock = time.perf_counter()
    try:
        chosen = image.choose_base(env, base)
        for name, what in ((tag, "--tag"), (push, "--push")):  # before anything is written or built
            if name is not None:
                image.check_image_name(name, what)
    except ValueError as exc:
        raise InvalidInputError(f"cannot build {mv.ref}: {exc}") from exc
    revision, source = revision_of(registry, mv)
    spec = image.ImageSpec(
        model=mv.model, version=mv.version, manifest_digest=str(mv.manifest_digest),
        env_digest=None if mv.env_digest is None else str(mv.env_digest), flavor=mv.flavor,
        python=image.python_minor(env), base=chosen,
        # the version's registration time, not now: a rebuild of the same version gives the same image
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mv.created_at)),
        shipyard_version=__version__, revision=revision, source=source)
    machine = str((env.get("os") or {}).get("machine") or "x86_64")
    tag = tag or image.default_tag(mv.model, mv.version)
    created = claim_folder(context_dir)
    progress(f"writing the build context in {context_dir} (dependencies installed for Python {spec.python})")
    try:
        ctx: Context = write_context(context_dir, spec, requirements, shipyard_runtime(), machine, site_cache,
                                     lambda folder: write_registry(folder, registry, mv))
    except BaseException:
        release_folder(context_dir, created)
        raise
    result = BuildResult(mv.model, mv.version, context_dir, chosen, tag, ctx.site_cached, ctx.deps_image,
                         image.build_commands(str(context_dir), tag, ctx.deps_image,
                                              engine.name if engine else "docker"),
                         seconds={"context": round(time.perf_counter() - clock, 3)})
    if engine is None:
        return result
    clock = time.perf_counter()
    progress(f"building {tag} with {engine.name} (the dependencies image {ctx.deps_image} first, once per lock)")
    built, result.deps_built = engine.build(context_dir, tag, ctx.deps_image)
    result.seconds["build"] = round(time.perf_counter() - clock, 3)
    result.engine, result.image_id, result.size = engine.name, built.image_id, built.size
    record: dict[str, Any] = {"image": tag, "image_id": built.image_id, "engine": engine.name,
                              "base": chosen.image, "size": built.size, "dependencies": ctx.site_digest,
                              "deps_image": ctx.deps_image,
                              "labels": built.labels}
    if push:
        clock = time.perf_counter()
        progress(f"pushing {tag} to {push}")
        digest = engine.push(tag, push, push_auth() if push_auth is not None else None)
        result.seconds["push"] = round(time.perf_counter() - clock, 3)
        repo = push.rsplit(":", 1)[0] if ":" in push.rsplit("/", 1)[-1] else push
        result.pushed = f"{repo}@{digest}"
        record["pushed"] = result.pushed
    summary = f"image {tag} {built.image_id}" + (f", pushed {result.pushed}" if result.pushed else "")
    registry.record_result(mv, BUILD_ACTION, record, summary)
    return result


@dataclass
class EnvBuildResult:
    """``shipyard build --model-source registry``: the environment image a version's lock runs in."""

    model: str
    version: int
    lock: str  # the lock's digest
    key: str  # the lock, base and Shipyard the image is made of
    tag: str
    base: image.Base
    context: Path | None = None  # None: an image built earlier for the same lock was reused
    commands: list[list[str]] = field(default_factory=list)
    deps_image: str | None = None
    site_cached: bool = False
    engine: str | None = None
    image_id: str | None = None
    size: int | None = None
    pushed: str | None = None
    reused_from: str | None = None  # NAME@V whose build made the image
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "model_source": "registry", "lock": self.lock,
                "env_key": self.key, "tag": self.tag, "base": self.base.image, "base_reason": self.base.reason,
                "context": None if self.context is None else str(self.context), "commands": self.commands,
                "deps_image": self.deps_image, "dependencies_cached": self.site_cached, "engine": self.engine,
                "image_id": self.image_id, "size": self.size, "pushed": self.pushed,
                "built": self.image_id is not None and self.reused_from is None, "reused_from": self.reused_from,
                "seconds": self.seconds}


def build_env_image(registry: Registry, mv: ModelVersion, python: str, requirements: list[str], *,
                    env: Mapping[str, Any], engine: Engine | None, context_dir: Path, site_cache: Path,
                    base: str | None = None, push: str | None = None,
                    earlier: Callable[[str], tuple[str, Mapping[str, Any]] | None] = lambda _: None,
                    reuse: bool = True, progress: Callable[[str], None] = lambda _: None,
                    push_auth: Callable[[], tuple[str, str]] | None = None) -> EnvBuildResult:
    """The environment image of ``mv``'s lock (``requirements``, pinned, for ``python``): Shipyard and the
    locked dependencies, no model. ``earlier(key)``: (NAME@V, its build record) of an image already built (and
    pushed, when ``push``) for the same lock, base and Shipyard; it is recorded for ``mv`` too, and nothing is
    built (``reuse`` False, as ``--context-only`` asks: never). Otherwise the context is written into
    ``context_dir`` (new or empty) and, with an ``engine``, built, recorded with ``mv`` (``model_source:
    registry``, the lock's digest) and pushed on request."""
    from shipyard.adapters.images.context import write_env_context
    from shipyard.core.deploy import envimage

    clock = time.perf_counter()
    try:
        chosen = image.choose_base(env, base)
        if push is not None:
            image.check_image_name(push, "--push")
    except ValueError as exc:
        raise InvalidInputError(f"cannot build the environment image of {mv.ref}: {exc}") from exc
    lock = envimage.lock_digest(python, requirements)
    key = envimage.env_key(lock, chosen.image, __version__)
    tag = envimage.env_tag(key)
    result = EnvBuildResult(mv.model, mv.version, lock, key, tag, chosen)
    found = earlier(key) if reuse else None
    if found is not None and not _reusable(found[1], tag, push, engine):
        found = None
    if found is not None:
        ref, record = found
        result.reused_from, result.image_id = ref, record.get("image_id")
        result.engine, result.pushed = record.get("engine"), record.get("pushed")
        if (mv.model, mv.version) != _ref_parts(ref):
            registry.record_result(mv, BUILD_ACTION, envimage.record(
                lock=lock, key=key, tag=tag, base_image=chosen.image, deps_image=str(record.get("deps_image")),
                image_id=result.image_id, engine=result.engine, pushed=result.pushed, reused_from=ref),
                envimage.summary(tag, result.image_id, result.pushed, ref))
        progress(f"{tag} was built for {ref} with the same lock: reused, nothing built")
        return result
    machine = str((env.get("os") or {}).get("machine") or "x86_64")
    created = claim_folder(context_dir)
    progress(f"writing the environment image's context in {context_dir} (no model: it is loaded from the registry)")
    try:
        ctx = write_env_context(context_dir, python, envimage.lock_text(python, requirements),
                                shipyard_runtime(extras=("serve", "postgres", "s3")), machine, site_cache,
                                chosen, lock, key)
    except BaseException:
        release_folder(context_dir, created)
        raise
    result.context, result.deps_image, result.site_cached = context_dir, ctx.deps_image, ctx.site_cached
    result.commands = image.build_commands(str(context_dir), tag, ctx.deps_image, engine.name if engine else "docker")
    result.seconds["context"] = round(time.perf_counter() - clock, 3)
    if engine is None:
        return result
    clock = time.perf_counter()
    progress(f"building {tag} with {engine.name}")
    built, _ = engine.build(context_dir, tag, ctx.deps_image)
    result.seconds["build"] = round(time.perf_counter() - clock, 3)
    result.engine, result.image_id, result.size = engine.name, built.image_id, built.size
    if push:
        clock = time.perf_counter()
        progress(f"pushing {tag} to {push}")
        digest = engine.push(tag, push, push_auth() if push_auth is not None else None)
        result.seconds["push"] = round(time.perf_counter() - clock, 3)
        result.pushed = f"{_repository(push)}@{digest}"
    registry.record_result(mv, BUILD_ACTION, envimage.record(
        lock=lock, key=key, tag=tag, base_image=chosen.image, deps_image=ctx.deps_image, image_id=built.image_id,
        engine=engine.name, pushed=result.pushed), envimage.summary(tag, built.image_id, result.pushed))
    return result


def _repository(push: str) -> str:
    return push.rsplit(":", 1)[0] if ":" in push.rsplit("/", 1)[-1] else push


def _reusable(record: Mapping[str, Any], tag: str, push: str | None, engine: Engine | None) -> bool:
    """Whether an earlier build of the same environment stands for this one: pushed to the repository asked
    for, or (no push asked) still in the engine."""
    pushed = record.get("pushed")
    if push is not None:
        return isinstance(pushed, str) and pushed.split("@", 1)[0] == _repository(push)
    return isinstance(pushed, str) or (engine is not None and engine.has(tag))


def _ref_parts(ref: str) -> tuple[str, int]:
    name, _, version = ref.partition("@")
    return name, int(version) if version.isdigit() else -1
