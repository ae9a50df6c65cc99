"""``shipyard deploy`` (and ``shipyard promote``'s render): a registered version's manifests for one
environment, from the registry (version, pushed image, fingerprint, the alias's stable version), the
project's ``deploy:`` section and git (the repository Argo CD reads), written confined to the GitOps folder.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from shipyard.core.deploy.argocd import Source
    from shipyard.core.deploy.config import DeploySpec
    from shipyard.core.deploy.manifests import Options
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services

HEAD_BYTES = 256  # enough of a file to read its generated-by header


@dataclass(frozen=True)
class Rendered:
    """One environment's files, by path relative to the GitOps folder's root, and what they deploy."""

    model: str
    version: int
    env: str
    image: str
    record_digest: str
    files: dict[str, bytes]
    format: str = "kubernetes"
    strategy: str = "deployment"
    stable_version: int | None = None
    objects: tuple[dict[str, Any], ...] = ()  # the environment's objects as `kubectl kustomize` builds them
    model_source: str = "baked"  # registry: the server loads the version from the registry (no model in the image)

    def documents(self) -> list[dict[str, Any]]:
        """The objects the overlay builds to (patch merged, image pinned, namespace set): what ``--apply``
        sends; the Argo CD Application is not among them (it goes to Argo CD's namespace, once)."""
        return [dict(o) for o in self.objects]

    def write(self, folder: Path) -> list[str]:
        """Write the files under ``folder`` (created if missing) and remove the files an earlier render
        generated there that this one no longer has (in the overlay, the base, ``argocd/``); returns the
        paths that changed on disk (written with new bytes, or removed), sorted: empty when nothing did.

        Each file is written to a temp name and renamed; no folder on the way may be a link, and no path
        leaves ``folder``. Files of another model (by their header) are a ConflictError: one GitOps folder
        holds one model."""
        from shipyard.core.deploy.layout import ARGOCD, BASE, overlay_dir
        from shipyard.core.workspace.atomic import as_atomic_at
        from shipyard.core.workspace.paths import Confined

        folder.mkdir(parents=True, exist_ok=True)
        changed: list[str] = []
        with Confined(folder) as box:
            for rel in self.files:
                fd, name = box.parent_fd(rel, "a rendered file")
                self._check_owner(fd, name, rel, folder)
            for rel, data in sorted(self.files.items()):
                fd, name = box.parent_fd(rel, "a rendered file")
                if _read(fd, name, len(data) + 1) == data:
                    continue
                with as_atomic_at(fd, name) as out:
                    out.write(data)
                changed.append(rel)
            dirs = {overlay_dir(self.env), ARGOCD}
            if any(p.startswith(f"{BASE}/") for p in self.files):
                dirs.add(BASE)
            for d in sorted(dirs):
                fd, _ = box.parent_fd(f"{d}/x", "a rendered folder")
                changed.extend(self._remove_stale(fd, d))
        return sorted(changed)

    def _check_owner(self, fd: int, name: str, rel: str, folder: Path) -> None:
        from shipyard.core.deploy.layout import generated_by

        head = _read(fd, name, HEAD_BYTES)
        if head is None:
            return
        owner = generated_by(head)
        if owner is None:
            raise ConflictError(f"{folder / rel} exists and shipyard deploy did not write it: move it away, or "
                                "render into another folder (--output, or deploy.folder in shipyard.yaml)")
        if owner != self.model:
            raise ConflictError(f"{folder} holds the manifests of model {owner!r}, not {self.model!r}: one GitOps "
                                "folder holds one model; render into another (--output, or deploy.folder)")

    def _remove_stale(self, fd: int, d: str) -> list[str]:
        from shipyard.core.deploy.argocd import APPSET_FILE
        from shipyard.core.deploy.layout import ARGOCD, generated_by

        removed = []
        with os.scandir(fd) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".yaml") and e.is_file(follow_symlinks=False))
        appset = f"{ARGOCD}/{APPSET_FILE}" in self.files
        for name in names:
            rel = f"{d}/{name}"
            if rel in self.files:
                continue
            if d == ARGOCD and not appset and name != APPSET_FILE:
                continue  # another environment's Application: not this render's to remove
            head = _read(fd, name, HEAD_BYTES)
            if head is not None and generated_by(head) == self.model:
                os.unlink(name, dir_fd=fd)
                removed.append(rel)
        return removed


def _read(fd: int, name: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of the regular file ``name`` in folder ``fd``; None if absent. A link or a
    non-regular file where a rendered file goes is refused."""
    try:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInputError(f"{name} is a symbolic link where shipyard deploy writes a file: remove it "
                                    "(a link could lead outside the GitOps folder)") from None
        raise
    with os.fdopen(f, "rb") as fh:
        if not stat.S_ISREG(os.fstat(f).st_mode):
            raise InvalidInputError(f"{name} is not a regular file where shipyard deploy writes one: remove it")
        return fh.read(limit)


def deploy_spec(svc: Services) -> DeploySpec:
    from shipyard.core.deploy.config import deploy_config
    from shipyard.core.project.loader import load_config

    return deploy_config(load_config(svc.settings.project_root).deploy)


def has_gitops_repository(root: Path, spec: DeploySpec) -> bool:
    """Whether ``promote`` has a GitOps repository to commit to: ``deploy.repo``, or the project's git origin."""
    from shipyard.adapters.vcs.git import remote_url

    return bool(spec.repo) or remote_url(root) is not None


def environment_of_alias(svc: Services, model: str, alias: str) -> str | None:
    """The deploy environment whose alias ``alias`` is, when ``model`` has been promoted through git (``promote``
    moves that alias only after a push); None otherwise, or when shipyard.yaml cannot be read."""
    from shipyard.core.registry.records import PROMOTE_ACTION
    from shipyard.errors import ShipyardError

    try:
        if not any(e.action == PROMOTE_ACTION for e in svc.registry.history(model)):
            return None
        spec = deploy_spec(svc)
        root = svc.settings.project_root
        followed = [e for e, s in sorted(spec.environments.items()) if (s.alias or e) == alias]
        return followed[0] if followed and has_gitops_repository(root, spec) else None
    except (ShipyardError, OSError, ValueError):
        return None


def write_target(svc: Services, output: Path | None) -> Path:
    """Where ``shipyard deploy`` writes: ``output``, or deploy.folder in the project; either checked as it resolves
    (through links): never inside a ``.git``/``.shipyard``-like folder or a Python package folder, never the store
    or Shipyard's data, and deploy.folder never outside the project."""
    from shipyard.core.workspace.paths import reserved_reason

    folder = output if output is not None else gitops_folder(svc)
    where = "--output" if output is not None else "deploy.folder"
    resolved = Path(os.path.abspath(folder)).resolve()
    reason = reserved_reason(resolved.as_posix())  # every component, from the root: "inside /x/.git/"
    for place, owner in ((svc.settings.home, "Shipyard's data"), (svc.settings.store_path, "the object store")):
        if reason is None and resolved.is_relative_to(Path(os.path.abspath(place)).resolve()):
            reason = f"it is inside {owner} ({place})"
    root = svc.settings.project_root.resolve()
    if reason is None and output is None and not resolved.is_relative_to(root):
        reason = f"it is outside the project {root} (a link?)"
    if reason is not None:
        shown = f"{folder} (= {resolved})" if resolved != Path(os.path.abspath(folder)) else str(folder)
        raise ConfigError(f"{where} {shown}: {reason}: write the manifests to a folder of their own")
    return folder


def gitops_folder(svc: Services, spec: DeploySpec | None = None) -> Path:
    """Where ``shipyard deploy`` writes by default: deploy.folder, in the project (a separate ``deploy.repo``
    is cloned and written by ``shipyard promote``)."""
    from shipyard.core.workspace.paths import declared_path

    spec = spec or deploy_spec(svc)
    return svc.settings.project_root / declared_path(spec.folder, "deploy.folder")


def pushed_image(svc: Services, mv: ModelVersion) -> str:
    """The newest pushed, digest-pinned image recorded by ``shipyard build --push`` for ``mv``."""
    from shipyard.core.deploy.promotion import pushed_image as newest_pushed
    from shipyard.core.registry.records import BUILD_ACTION

    pushed, _ = newest_pushed(record for _, record in svc.registry.results(mv, BUILD_ACTION))
    if pushed is not None:
        return pushed
    raise NotFoundError(f"no pushed image is recorded for {mv.ref}: run `shipyard build {mv.ref} --push "
                        "REGISTRY/REPO` (it records the digest), or pass --image REPO@sha256:...")


# --- registry mode: the environment image, once per lock ------------------------------------------------------

def environment_key(svc: Services, mv: ModelVersion, base: str | None = None) -> tuple[str, str]:
    """(the digest of ``mv``'s lock, the key of the environment image it runs in: lock, base and Shipyard)."""
    from shipyard._version import __version__
    from shipyard.core.deploy import envimage
    from shipyard.core.environments import image
    from shipyard.wiring import version_environment
    from shipyard.wiring.environments import image_lock

    env = version_environment(svc, mv)
    try:
        python, chosen = image.python_minor(env), image.choose_base(env, base)
    except ValueError as exc:
        raise InvalidInputError(f"{mv.ref}: {exc}") from None
    lock = envimage.lock_digest(python, image_lock(svc, mv).requirements())
    return lock, envimage.env_key(lock, chosen.image, __version__)


def earlier_env_image(svc: Services, key: str) -> tuple[str, dict[str, Any]] | None:
    """(NAME@V, its record) of the newest environment image recorded for ``key`` by any version, preferring a
    pushed one; found by the build events' summaries, then read (re-hashed) from the store."""
    from shipyard.core.deploy import envimage
    from shipyard.core.registry.records import BUILD_ACTION

    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for event in svc.registry.meta.audit_events(None):
        if event.action != BUILD_ACTION or not str(event.reason).startswith(envimage.SUMMARY) \
                or (event.model, event.name) in seen or not str(event.name).isdigit():
            continue
        seen.add((event.model, event.name))
        try:
            mv = svc.registry.resolve(f"{event.model}@{event.name}")
        except NotFoundError:
            continue
        for _, record in svc.registry.results(mv, BUILD_ACTION):
            if record.get("env_key") == key:
                found.append((mv.ref, record))
    best = envimage.same_environment([r for _, r in found], key)
    for ref, record in reversed(found):
        if record is best:
            return ref, record
    return None


def pushed_env_image(svc: Services, mv: ModelVersion) -> tuple[str | None, frozenset[str]]:
    """The pushed environment image a registry-mode ``mv`` runs in: recorded for ``mv`` itself, else for
    another version with the same lock (and base and Shipyard); (None, {}) when none was pushed."""
    from shipyard.core.deploy.promotion import pushed_image as newest_pushed
    from shipyard.core.registry.records import BUILD_ACTION

    pushed, known = newest_pushed((r for _, r in svc.registry.results(mv, BUILD_ACTION)), "registry")
    if pushed is not None:
        return pushed, known
    try:
        _, key = environment_key(svc, mv)
    except (NotFoundError, InvalidInputError):
        return None, frozenset()
    found = earlier_env_image(svc, key)
    return newest_pushed([found[1]], "registry") if found is not None else (None, frozenset())


def build_env_image(svc: Services, ref: str, environ: Any, *, base: str | None = None, output: Path | None = None,
                    push: str | None = None, engine: bool = True, progress: Any = lambda _: None) -> Any:
    """``shipyard build REF --model-source registry``: the environment image of the version's lock (context in
    ``output``, or ``.shipyard/images/env-KEY``), reused when a version with the same lock built it already."""
    import shutil

    from shipyard.adapters.images import build as images
    from shipyard.adapters.images.engine import detect
    from shipyard.core.environments import image
    from shipyard.wiring import version_environment
    from shipyard.wiring.environments import image_lock, outside_store, push_credentials, verify_cache_dir

    mv = svc.registry.resolve(ref)
    env = version_environment(svc, mv)
    lock = image_lock(svc, mv)  # refused here (a package the flavor needs is not pinned), before anything is written
    try:
        python = image.python_minor(env)
    except ValueError as exc:
        raise InvalidInputError(f"cannot build the environment image of {mv.ref}: {exc}") from None
    found = detect(environ) if engine else None
    if output is not None:
        outside_store(svc, output)
    else:
        _, key = environment_key(svc, mv, base)
        output = svc.settings.home / "images" / f"env-{key[:12]}"
        if output.is_symlink() or output.is_file():  # not what Shipyard writes there: replaced, never followed
            output.unlink()
        elif output.exists():
            shutil.rmtree(output)  # Shipyard's own folder: the last context written for this environment
    return images.build_env_image(svc.registry, mv, python, lock.requirements(), env=env, engine=found,
                                  context_dir=output, site_cache=verify_cache_dir(environ).parent / "image-site",
                                  base=base, push=push, earlier=lambda key: earlier_env_image(svc, key),
                                  reuse=engine, progress=progress,
                                  push_auth=push_credentials(svc) if push else None)


def with_store(svc: Services, spec: DeploySpec) -> DeploySpec:
    """``spec`` with deploy.registry's store, endpoint and region taken from the project's ``store:`` where it
    does not name them (an S3 store only: a folder means nothing inside a pod)."""
    from shipyard.core.project.loader import load_config

    reg = spec.registry
    if reg is None or reg.store is not None:
        return spec
    store = load_config(svc.settings.project_root).store
    if store is None or not store.url.startswith("s3://"):
        return spec
    fill = {"store": store.url, "endpoint_url": reg.endpoint_url or store.endpoint_url,
            "region": reg.region or store.region}
    from pydantic import ValidationError

    from shipyard.core.deploy.config import RegistrySource
    from shipyard.errors import ConfigError

    try:  # validated as if written under deploy.registry: what goes into a manifest is checked the same way
        filled = RegistrySource.model_validate({**reg.model_dump(), **fill})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ())) or "store"
        raise ConfigError(f"shipyard.yaml: store: cannot go into deploy.registry ({where}: "
                          f"{str(problem.get('msg', 'invalid')).removeprefix('Value error, ')}); fix store:, or give "
                          "deploy.registry.store and endpoint_url") from None
    return spec.model_copy(update={"registry": filled})


def env_image(svc: Services, mv: ModelVersion) -> str:
    """The pushed environment image a registry-mode server of ``mv`` runs (its own, or its lock's)."""
    pushed, _ = pushed_env_image(svc, mv)
    if pushed is not None:
        return pushed
    raise NotFoundError(f"no pushed environment image is recorded for {mv.ref}'s lock: run `shipyard build "
                        f"{mv.ref} --model-source registry --push REGISTRY/REPO`, or pass --image REPO@sha256:...")


def is_gpu(svc: Services, mv: ModelVersion) -> bool:
    """Whether ``mv`` was registered from a CUDA build of its framework (its environment fingerprint)."""
    from shipyard.core.environments.image import gpu_build
    from shipyard.wiring import version_environment

    try:
        return gpu_build(version_environment(svc, mv)) is not None
    except NotFoundError:  # registered without a record: nothing says it needs a GPU
        return False


def stable_version(svc: Services, model: str, alias: str) -> int | None:
    """The version at ``alias`` now, or None (no such alias yet: a first deploy)."""
    from shipyard.core.registry.refs import ALIAS_RE

    if not ALIAS_RE.match(alias):
        return None
    try:
        return svc.registry.resolve(f"{model}@{alias}").version
    except NotFoundError:
        return None


def source(svc: Services, spec: DeploySpec, folder: Path | None) -> Source:
    """Where Argo CD reads the folder: deploy.repo, or the project's git ``origin`` and the folder's path in it.
    The URL is named without the credentials it may carry (GitLab CI's clone URL holds a token): it goes into
    committed manifests."""
    from shipyard.adapters.deploy.gitops import redact

    where = git_location(svc, spec, folder)
    return replace(where, repo_url=redact(where.repo_url))


def git_location(svc: Services, spec: DeploySpec, folder: Path | None) -> Source:
    """As ``source``, with the URL as written (credentials and all): what git itself is given to push to."""
    from shipyard.adapters.vcs.git import remote_url, toplevel
    from shipyard.core.deploy.argocd import Source
    from shipyard.core.workspace.paths import declared_path

    if spec.repo:
        return Source(spec.repo, declared_path(spec.folder, "deploy.folder"), spec.branch)
    default = gitops_folder(svc, spec)
    where = folder if folder is not None else default
    if folder is not None and (not folder.exists() or toplevel(folder) is None):
        where = default  # written outside any repository (a look at --output): named as deploy.folder would be
    start = where if where.exists() else svc.settings.project_root
    url, top = remote_url(start), toplevel(start)
    if url is None or top is None:
        raise ConfigError("the Argo CD Application needs the GitOps repository's URL: set deploy.repo in "
                          "shipyard.yaml, or add a git remote: git remote add origin URL")
    try:
        rel = Path(os.path.abspath(where)).resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{where} is not inside the git repository {top}: set deploy.repo in shipyard.yaml "
                          "to the repository Argo CD reads") from None
    return Source(url, rel, spec.branch)


def render_environment(svc: Services, ref: str, env: str, *, image: str | None = None,
                       options: Options | None = None, folder: Path | None = None,
                       spec: DeploySpec | None = None, stable: int | Literal["alias"] | None = "alias",
                       policy: bool = True) -> Rendered:
    """Render ``ref`` (NAME@V, NAME@ALIAS) for ``env``: ``image`` (REPO@sha256:...) or the pushed one recorded
    by ``shipyard build --push``; ``options`` are the flags' overrides; ``folder`` where the files will be
    written when not deploy.folder (it sets the Application's path in the repository); ``spec`` the deploy
    configuration when not shipyard.yaml's (the demo's); ``stable`` the stable version to render with, by
    default the one the environment's alias names now (a re-promotion keeps the one it was rendered with);
    ``policy``: ask the policy bundle (action deploy, recorded; a PolicyDeniedError when it denies) before
    rendering (``promote`` asked it already, as action promote)."""
    from shipyard.core.deploy.analysis import analysis_template
    from shipyard.core.deploy.layout import applied_objects, render_tree
    from shipyard.core.deploy.manifests import Target, pinned_image, plan

    spec = spec or deploy_spec(svc)
    try:
        env_spec = spec.environment(env)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    mv = svc.registry.resolve(ref)
    if image is not None:
        try:
            pinned_image(image)
        except ValueError as exc:
            raise InvalidInputError(f"--image: {exc}") from None
    registry_mode = (options.model_source if options is not None and options.model_source else
                     spec.model_source_of(env)) == "registry"
    if registry_mode:
        spec = with_store(svc, spec)
    chosen = image or (env_image(svc, mv) if registry_mode else pushed_image(svc, mv))
    if policy:
        from shipyard.wiring.policy import gate

        gate(svc, mv, "deploy", env, image=chosen)
    target = Target(model=mv.model, version=mv.version, env=env, image=chosen, record_digest=mv.record_digest(),
                    gpu=is_gpu(svc, mv), stable_version=stable_version(svc, mv.model, env_spec.alias or env)
                    if stable == "alias" else stable)
    from shipyard.wiring.monitoring import monitoring_spec

    try:
        current = plan(spec, target, options, monitoring=monitoring_spec(svc.settings.project_root))
        others = [plan(spec, replace(target, env=e)) for e in sorted(spec.environments) if e != env] \
            if spec.argocd.application_set else []
    except ValueError as exc:
        raise InvalidInputError(str(exc).splitlines()[0]) from None
    files = render_tree(current, source(svc, spec, folder), analysis_template, others)
    return Rendered(model=mv.model, version=mv.version, env=env, image=chosen, record_digest=target.record_digest,
                    files=files, format=current.format, strategy=current.strategy,
                    stable_version=target.stable_version, model_source=current.model_source,
                    objects=tuple(applied_objects(current, analysis_template)))

