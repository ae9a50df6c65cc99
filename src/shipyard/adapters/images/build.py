"""``shipyard build``: a model version's build context, built into an image where an engine answers.

Order matters for what the user sees: the lock is checked first (a model whose flavor needs a package
the lock does not pin is refused before anything is written), then the context is written, then built,
recorded with the version, and pushed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping
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


def _new_or_empty(folder: Path) -> bool:
    """Check that ``folder`` is new or an empty folder (never a link, a file or a folder holding anything:
    a failed build removes what it wrote there, and only that). True when it does not exist yet."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InvalidInputError(f"--output {folder} is not a folder: give a new or empty folder")
    if not folder.exists():
        return True
    try:
        with os.scandir(folder) as found:
            if next(found, None) is not None:
                raise InvalidInputError(f"--output {folder} is not empty: give a new or empty folder")
    except OSError as exc:
        raise InvalidInputError(f"cannot read --output {folder}: {exc.strerror or exc}") from exc
    return False


def _undo(folder: Path, created: bool) -> None:
    """Remove what a failed build wrote into ``folder``: the folder itself where it made it, else its contents
    (it was empty)."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    with contextlib.suppress(OSError), os.scandir(folder) as found:
        for entry in list(found):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def build_image(registry: Registry, mv: ModelVersion, requirements: str, *, env: Mapping[str, Any],
                engine: Engine | None, context_dir: Path, site_cache: Path, base: str | None = None,
                tag: str | None = None, push: str | None = None) -> BuildResult:
    """Write ``mv``'s context into ``context_dir`` (new or empty) and build it with ``engine`` (None: only
    the context). ``requirements`` is the model's complete lock, as text."""
    clock = time.perf_counter()
    try:
        chosen = image.choose_base(env, base)
    except ValueError as exc:
        raise InvalidInputError(f"cannot build {mv.ref}: {exc}") from exc
    revision, source = revision_of(registry, mv)
    spec = image.ImageSpec(
        model=mv.model, version=mv.version, manifest_digest=str(mv.manifest_digest),
        env_digest=None if mv.env_digest is None else str(mv.env_digest), flavor=mv.flavor,
        python=image.python_minor(env), base=chosen, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        shipyard_version=__version__, revision=revision, source=source)
    machine = str((env.get("os") or {}).get("machine") or "x86_64")
    tag = tag or image.default_tag(mv.model, mv.version)
    try:
        image.check_image_name(tag, "--tag")  # before a context is written: the engine would refuse it after
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    created = _new_or_empty(context_dir)
    try:
        ctx: Context = write_context(context_dir, spec, requirements, shipyard_runtime(), machine, site_cache,
                                     lambda folder: write_registry(folder, registry, mv))
    except BaseException:
        _undo(context_dir, created)
        raise
    result = BuildResult(mv.model, mv.version, context_dir, chosen, tag, ctx.site_cached, ctx.deps_image,
                         image.build_commands(str(context_dir), tag, ctx.deps_image,
                                              engine.name if engine else "docker"),
                         seconds={"context": round(time.perf_counter() - clock, 3)})
    if engine is None:
        return result
    clock = time.perf_counter()
    built, result.deps_built = engine.build(context_dir, tag, ctx.deps_image)
    result.seconds["build"] = round(time.perf_counter() - clock, 3)
    result.engine, result.image_id, result.size = engine.name, built.image_id, built.size
    record: dict[str, Any] = {"image": tag, "image_id": built.image_id, "engine": engine.name,
                              "base": chosen.image, "size": built.size, "dependencies": ctx.site_digest,
                              "deps_image": ctx.deps_image,
                              "labels": built.labels}
    if push:
        clock = time.perf_counter()
        digest = engine.push(tag, push)
        result.seconds["push"] = round(time.perf_counter() - clock, 3)
        repo = push.rsplit(":", 1)[0] if ":" in push.rsplit("/", 1)[-1] else push
        result.pushed = f"{repo}@{digest}"
        record["pushed"] = result.pushed
    summary = f"image {tag} {built.image_id}" + (f", pushed {result.pushed}" if result.pushed else "")
    registry.record_result(mv, BUILD_ACTION, record, summary)
    return result
