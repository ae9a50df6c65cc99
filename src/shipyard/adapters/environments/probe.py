"""Read the environment this process runs in, as a ``core.environments.capture`` record (schema v2).

Only the standard library is imported here (``packaging`` if present, for each package's dependencies),
so the probe also runs in a bare virtual environment.
A framework is looked at only if the program already imported it: looking never changes an environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.core.environments.capture import (
    FRAMEWORKS,
    NVIDIA_SMI_QUERY,
    SCHEMA,
    arch_list,
    cudnn_version,
    direct_url_source,
    gpu_section,
    local_tag,
    nccl_version,
    normalize,
    parse_cpuinfo,
    parse_nvidia_smi,
)
from shipyard.core.workspace.atomic import as_atomic

NVIDIA_SMI_TIMEOUT = 5.0
DRIVER_VERSION_FILE = "/proc/driver/nvidia/version"
CACHE_NAME = "environment-cache.json"
# what the probe records changed (2: each package's "requires"; 3: a VCS source's subdirectory): an older cache
# is a miss
CACHE_VERSION = 3
MAX_CACHE_BYTES = 16 * 1024 * 1024  # thousands of distributions fit; a larger file is damaged or hostile


def capture(cache_dir: Path | None = None) -> dict[str, Any]:
    """The record of this environment. With ``cache_dir``, the slow part (packages, CPU model and flags,
    GPU) is reused while ``cache_key`` is unchanged; the rest is cheap and always read live."""
    static = _cached_static(cache_dir) if cache_dir is not None else _static()
    return {**static, "schema": SCHEMA, "python": python(), "os": os_info(),
            "cpu": {**static["cpu"], "count": os.cpu_count()}, "frameworks": frameworks()}


def python() -> dict[str, Any]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable, "prefix": sys.prefix}


def os_info() -> dict[str, Any]:
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "libc": "-".join(platform.libc_ver()).strip("-") or None}


def cache_key() -> dict[str, Any]:
    """What the cached part depends on: the interpreter, every distribution's metadata folder (and .pth
    file) in each folder on sys.path, with its mtime and inode (installing, upgrading, reinstalling or
    removing a package changes them), and the NVIDIA driver (its version file changes when the driver
    does; nvidia-smi appearing on or leaving PATH too). Python, OS and CPU count are read live."""
    folders = []
    for entry in sys.path:
        if not os.path.isdir(entry or "."):
            continue
        dists = []
        with contextlib.suppress(OSError), os.scandir(entry or ".") as it:
            for e in it:
                if e.name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                    s = e.stat()
                    dists.append([e.name, s.st_mtime_ns, s.st_ino])
        # the entries, not the folder's own mtime: a script's folder (sys.path[0]) changes with every file
        # a run writes there, which must not throw the cache away
        folders.append([os.path.abspath(entry or "."), sorted(dists)])
    driver: list[Any] | None = None
    with contextlib.suppress(OSError):
        d = os.stat(DRIVER_VERSION_FILE)
        driver = [d.st_mtime_ns, d.st_ino]
    return {"schema": SCHEMA, "probe": CACHE_VERSION, "prefix": sys.prefix, "executable": sys.executable,
            "version": sys.version, "path": folders, "driver": driver, "nvidia-smi": shutil.which("nvidia-smi")}


def _cached_static(cache_dir: Path) -> dict[str, Any]:
    key = cache_key()
    path = cache_dir / CACHE_NAME
    # the cache is a file like any other in the project: read within a bound (the standard library only, so no
    # boundedyaml), anything odd is a miss
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError), \
            os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
        raw = f.read(MAX_CACHE_BYTES + 1)
        entry = json.loads(raw) if len(raw) <= MAX_CACHE_BYTES else {}
        if entry.get("key") == key:
            return dict(entry["record"])
    record = _static()
    # a read-only project still captures, only without the cache; no fsync: a lost cache is only a miss
    with contextlib.suppress(OSError), as_atomic(path, durable=False) as tmp, open(tmp, "x") as f:
        f.write(json.dumps({"key": key, "record": record}, sort_keys=True))
    return record


def _static() -> dict[str, Any]:
    return {"cpu": cpu(), **gpu(), "packages": packages()}


def packages() -> dict[str, dict[str, Any]]:
    """Every distribution importable here, as ``import`` finds it: the first on sys.path wins. Each lists
    in ``requires`` the distributions it depends on here (markers evaluated, extras left out); without
    ``packaging`` (a bare environment) ``requires`` is left out, never guessed."""
    requires = _requires_reader()
    found: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():
        meta = dist.metadata
        name = meta["Name"]
        if not name or normalize(name) in found:
            continue
        direct = None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            direct = dist.read_text("direct_url.json")
        entry: dict[str, Any] = {"version": meta["Version"], "source": direct_url_source(direct)}
        if requires is not None:
            entry["requires"] = requires(meta.get_all("Requires-Dist") or [])
        found[normalize(name)] = entry
    return dict(sorted(found.items()))


def requires_of(name: str, version: str) -> list[str] | None:
    """The dependencies (as in ``packages``) of distribution ``name`` if this environment has it at
    ``version``; else None. A lock of a record captured before ``requires`` existed asks this."""
    requires = _requires_reader()
    if requires is None:
        return None
    try:
        dist = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if dist.version != version:
        return None
    return requires(dist.metadata.get_all("Requires-Dist") or [])


def _requires_reader() -> Callable[[list[str]], list[str]] | None:
    try:
        from packaging.markers import default_environment
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return None
    here = {**{k: str(v) for k, v in default_environment().items()}, "extra": ""}  # ``extra == "x"`` never holds
    parsed: dict[str, str | None] = {}

    def names(lines: list[str]) -> list[str]:
        out = set()
        for line in lines:
            if line not in parsed:
                parsed[line] = None
                with contextlib.suppress(InvalidRequirement, ValueError, KeyError):  # an odd line is left out
                    req = Requirement(line)
                    if req.marker is None or req.marker.evaluate(here):
                        parsed[line] = normalize(req.name)
            if parsed[line]:
                out.add(parsed[line])
        return sorted(n for n in out if n)

    return names


def cpu() -> dict[str, Any]:
    info: dict[str, Any] = {"model": None, "flags": []}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        info = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    if not info.get("model"):
        info["model"] = platform.processor() or None
    return info


def gpu() -> dict[str, Any]:
    """``{"gpu": facts from nvidia-smi}``; without it, or when it fails, ``{"gpu": None, "gpu_absent": why}``:
    recorded as absent, never guessed."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"gpu": None, "gpu_absent": "nvidia-smi is not on PATH"}
    try:
        done = subprocess.run([smi, *NVIDIA_SMI_QUERY[1:]], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"gpu": None, "gpu_absent": f"nvidia-smi failed: {exc}"}
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip()[:200]
        return {"gpu": None, "gpu_absent": f"nvidia-smi exited {done.returncode}: {why}"}
    try:
        return {"gpu": gpu_section(parse_nvidia_smi(done.stdout)), "gpu_absent": None}
    except ValueError as exc:
        return {"gpu": None, "gpu_absent": str(exc)}


def frameworks() -> dict[str, dict[str, Any]]:
    found = {}
    for mod in FRAMEWORKS:
        loaded = sys.modules.get(mod)
        if loaded is not None:
            version = str(getattr(loaded, "__version__", ""))
            found[mod] = {"version": version, "tag": local_tag(version), **_build_info(mod, loaded)}
    return found


def _build_info(name: str, module: Any) -> dict[str, Any]:
    info: dict[str, Any] = {}
    with contextlib.suppress(Exception):  # a broken driver or a partial build must not break a run
        if name == "torch":
            info["cuda"] = getattr(module.version, "cuda", None)
            info["cudnn"] = cudnn_version(module.backends.cudnn.version()) if info["cuda"] else None
            info["nccl"] = nccl_version(module.cuda.nccl.version()) if info["cuda"] else None
            info["arch"] = arch_list(module.cuda.get_arch_list())
            if info["cuda"] and module.cuda.is_available():
                count = module.cuda.device_count()
                info["devices"] = [{"name": module.cuda.get_device_name(i),
                                    "capability": ".".join(map(str, module.cuda.get_device_capability(i)))}
                                   for i in range(count)]
        elif name == "tensorflow":
            build = module.sysconfig.get_build_info()
            info["cuda"], info["cudnn"] = build.get("cuda_version"), build.get("cudnn_version")
            info["arch"] = arch_list(str(build.get("cuda_compute_capabilities", "")).split(",")
                                     if isinstance(build.get("cuda_compute_capabilities"), str)
                                     else build.get("cuda_compute_capabilities"))
        elif name == "jax":
            info["backend"] = module.default_backend()
    return info


if __name__ == "__main__":  # ``python -m shipyard.adapters.environments.probe``: the record as JSON
    sys.stdout.write(json.dumps(capture(), sort_keys=True, indent=1) + "\n")
