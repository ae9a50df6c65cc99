"""Write a self-contained build context for a model version's image.

Everything the image installs is in the context: the dependencies are installed here by uv for the
image's Python and platform (``uv pip install --target``), so the build itself downloads nothing
(production builds stay hermetic; the engine may have no network at all). The installed folder is
cached by the digest of what it installs, so a new version of the same model reuses it (hardlinked).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from shipyard.core.environments import image
from shipyard.errors import BackendUnavailableError, IntegrityError

INSTALL_TIMEOUT = 900  # seconds for uv to install the dependencies (a cold cache downloads them)
SITE_CACHE_FORMAT = "1"
_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class Context:
    path: Path
    dockerfile: str
    requirements: str  # the model's lock
    runtime: tuple[str, ...]  # Shipyard's own serving requirements, pinned
    site_digest: str  # what the dependency layer installs (python, platform, both requirement lists)
    site_cached: bool
    deps_image: str  # the local tag of deps/ built


def shipyard_runtime(exclude: Sequence[str] = ("uv",), extras: Sequence[str] = ("serve",)) -> list[str]:
    """Shipyard's own requirements for serving (its core plus the ``extras``: ``serve``; a registry-mode image
    adds ``postgres`` and ``s3``), pinned at the versions installed here. ``uv`` is left out: the server never
    builds environments."""
    out: dict[str, str] = {}
    wanted = {f'extra=="{e}"' for e in extras}
    for line in metadata.requires("shipyard") or ():
        spec, _, marker = line.partition(";")
        if marker.strip() and marker.replace(" ", "").replace("'", '"') not in wanted:
            continue
        match = _REQ_NAME.match(spec.strip())
        if match is None:
            continue
        name = match.group(0).lower().replace("_", "-")
        if name in exclude:
            continue
        rest = spec.strip()[match.end():].lstrip()
        features = rest[:rest.index("]") + 1] if rest.startswith("[") and "]" in rest else ""  # psycopg[binary]
        try:
            out[name] = f"{name}{features}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            out[name] = spec.strip()
    return [out[k] for k in sorted(out)]


def _uv() -> str:
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise BackendUnavailableError("uv is not installed here: `pip install uv` (Shipyard installs the "
                                      "image's dependencies with it)") from exc


def site_platform(machine: str) -> str:
    return f"{'aarch64' if machine in ('aarch64', 'arm64') else 'x86_64'}-manylinux_2_28"


def site_digest(requirements: str, runtime: Sequence[str], python: str, machine: str) -> str:
    """What a dependency folder installs (its cache key): Python, platform, the pins and Shipyard's runtime."""
    pins = [ln.strip() for ln in requirements.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    key = hashlib.sha256("\0".join([SITE_CACHE_FORMAT, python, site_platform(machine), *pins, "", *runtime]).encode())
    return f"sha256:{key.hexdigest()}"


def install_site(dest: Path, requirements: str, runtime: Sequence[str], python: str, machine: str,
                 cache: Path) -> tuple[str, bool]:
    """Install ``requirements`` and ``runtime`` for ``python`` on ``machine`` into ``dest`` (from the cache when
    the same set was installed before). Returns the set's digest and whether the cache had it."""
    platform = site_platform(machine)
    digest = site_digest(requirements, runtime, python, machine)
    cached = cache / digest.removeprefix("sha256:")[:32]
    hit = cached.is_dir()
    if not hit:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="site-", dir=cache) as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text(requirements + "\n" + "\n".join(runtime) + "\n")
            target = Path(tmp) / "site"
            cmd = [_uv(), "pip", "install", "--quiet", "--target", str(target), "--python-version", python,
                   "--python-platform", platform, "--only-binary", ":all:", "-r", str(reqs)]
            same_python = python == f"{sys.version_info[0]}.{sys.version_info[1]}"
            if same_python:  # bytecode written here is valid there: the server starts without compiling
                cmd.append("--compile-bytecode")
            _run(cmd, "install the image's dependencies")
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(target / "bin")  # console scripts name this machine's interpreter
            try:
                os.rename(target, cached)
            except OSError:  # another build of the same set finished first: its copy is the same
                if not cached.is_dir():
                    raise
    _link_tree(cached, dest)
    return digest, hit


def _run(cmd: Sequence[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailableError(f"could not {what}: uv took more than {INSTALL_TIMEOUT} s") from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        reason = " ".join(lines[-3:])[:600] or f"exit status {done.returncode}"
        raise BackendUnavailableError(f"could not {what}: {reason}")


def _link_tree(src: Path, dest: Path) -> None:
    """A copy of ``src`` at ``dest`` made of hard links where the filesystem allows (the cache is read-only)."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, copy_function=link)


def copy_shipyard(dest: Path) -> None:
    """Shipyard's package (this very code) into ``dest/shipyard``, without caches."""
    from shipyard import _version

    source = Path(_version.__file__).resolve().parent
    shutil.copytree(source, dest / "shipyard", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_context(dest: Path, spec: image.ImageSpec, requirements: str, runtime: Sequence[str], machine: str,
                  site_cache: Path, write_model: Callable[[Path], None]) -> Context:
    """The build context in ``dest`` (new or empty): ``deps/`` (its Dockerfile and site/), ``app/``,
    ``model/`` (``write_model(folder)`` writes the one-version registry there), the Dockerfile."""
    digest, hit, deps_image = _deps_and_app(dest, requirements, runtime, spec.python, machine, site_cache, spec.base)
    (dest / "app" / "entrypoint.py").write_text(image.ENTRYPOINT)
    model = dest / "model"
    model.mkdir()
    write_model(model)
    text = image.dockerfile(spec, deps_image)
    (dest / "Dockerfile").write_text(text)
    (dest / ".dockerignore").write_text("deps\nrequirements.txt\nshipyard-requirements.txt\n")
    return Context(dest, text, requirements, tuple(runtime), digest, hit, deps_image)


def write_env_context(dest: Path, python: str, requirements: str, runtime: Sequence[str], machine: str,
                      site_cache: Path, base: image.Base, lock: str, key: str) -> Context:
    """The context of an environment image in ``dest`` (new or empty): ``deps/`` (as a model image's: the
    same dependencies image serves both), ``app/`` (Shipyard) and the Dockerfile; no model."""
    from shipyard import _version
    from shipyard.core.deploy import envimage

    digest, hit, deps_image = _deps_and_app(dest, requirements, runtime, python, machine, site_cache, base)
    text = envimage.dockerfile(deps_image, lock, key, base.image, _version.__version__)
    (dest / "Dockerfile").write_text(text)
    (dest / ".dockerignore").write_text("deps\nrequirements.txt\nshipyard-requirements.txt\n")
    return Context(dest, text, requirements, tuple(runtime), digest, hit, deps_image)


def _deps_and_app(dest: Path, requirements: str, runtime: Sequence[str], python: str, machine: str,
                  site_cache: Path, base: image.Base) -> tuple[str, bool, str]:
    """What a model image's context and an environment image's share, written into the new or empty ``dest``:
    the requirements, ``deps/`` (its site and Dockerfile: one dependencies image serves both) and ``app/``
    (Shipyard). Returns the site's digest, whether it came from the cache, and the dependencies image's tag."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise IntegrityError(f"{dest} is not empty: give --output a new or empty folder")
    (dest / "requirements.txt").write_text(requirements)
    (dest / "shipyard-requirements.txt").write_text("\n".join(runtime) + "\n")
    deps = dest / "deps"
    digest, hit = install_site(deps / "site", requirements, runtime, python, machine, site_cache)
    (deps / "Dockerfile").write_text(image.deps_dockerfile(base, digest))
    app = dest / "app"
    app.mkdir()
    copy_shipyard(app)
    return digest, hit, image.deps_tag(digest, base.image)


def check_same(expected: str, actual: str, what: str) -> None:
    if expected != actual:
        raise IntegrityError(f"{what}: copied as {actual}, registered as {expected}; run `shipyard store verify`")
