"""Can a target environment run a model? Its environment record against the target's, pure (no I/O).

Each ``Mismatch`` is one line that says what to change. The checks: the NVIDIA driver is new enough for
the CUDA runtime the model's framework was built with; the target GPU's architecture is one the build
has code for; Python (major.minor) and the machine architecture are the same; the ML-critical packages
the model's lock pins have the same versions.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.core.environments.capture import is_critical_package, local_tag, packages_of

# The oldest Linux x86_64 driver each CUDA runtime runs on. From CUDA 11 on, any runtime of a major release
# runs on the major's minimum driver (minor version compatibility). Source: NVIDIA CUDA Toolkit Release
# Notes, "CUDA Toolkit and Minimum Required Driver Version for CUDA Minor Version Compatibility"
# (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html): CUDA 12.x >= 525.60.13, CUDA 11.x
# >= 450.80.02; and NVIDIA's CUDA Compatibility guide, "Minor Version Compatibility"
# (https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html): CUDA 13.x >= 580
# (580.65.06 is the driver CUDA 13.0 shipped with). Before CUDA 11 each minor release needed its own driver
# (same guide, "CUDA Toolkit 10.x Minimum Required Driver Versions").
MIN_DRIVER_BY_MAJOR = {13: "580.65.06", 12: "525.60.13", 11: "450.80.02"}
MIN_DRIVER_BY_RELEASE = {(10, 2): "440.33", (10, 1): "418.39", (10, 0): "410.48"}
# the distribution whose version says a framework's build (``frameworks`` in a record is keyed by module)
FRAMEWORK_PACKAGES = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jaxlib"}
MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# Both records are untrusted (a target file, a pulled model's record): a value is read only when it has the
# shape these patterns give, numbers of a few digits (int() of thousands of digits raises), text of one line.
_ARCH = re.compile(r"(sm|compute)_(\d{1,3})(\d)([af]?)")
_CU_TAG = re.compile(r"cu(\d{1,3})(\d)")
_DRIVER = re.compile(r"\d{1,6}(\.\d{1,6}){0,3}")
_CAPABILITY = re.compile(r"(\d{1,3})\.(\d{1,3})")
MAX_TEXT = 100  # a value quoted in a mismatch line
MAX_ARCHS = 64  # torch.cuda.get_arch_list() names about ten


@dataclass(frozen=True)
class Mismatch:
    """What differs (``what``), the model's side and the target's, and what to change, as one line."""

    what: str
    model: str | None
    target: str | None
    fix: str

    def line(self) -> str:
        return f"{self.what}: the model has {self.model or 'none'}, the target {self.target or 'none'}; {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


def check(model_env: Mapping[str, Any], target_env: Mapping[str, Any],
          packages: Collection[str] | None = None, roots: Collection[str] = ()) -> list[Mismatch]:
    """What keeps ``target_env`` from running a model registered from ``model_env``. ``packages``: the names
    the model's lock pins (its ML-critical ones are compared; GPU checks are made for a framework among
    them); None compares every ML-critical package of ``model_env``. ``roots``: what the model's flavor and
    its own code need (the lock's roots), compared whether ML-critical or not."""
    model_pkgs, target_pkgs = packages_of(model_env), packages_of(target_env)
    wanted = set(model_pkgs) if packages is None else set(packages)
    found = [*_python(model_env, target_env), *_machine(model_env, target_env)]
    found += _gpu(model_env, target_env, wanted)
    compared = {n for n in wanted if is_critical_package(n)} | set(roots)
    for name in sorted(n for n in compared if n in model_pkgs):
        want = _text(model_pkgs[name].get("version"))
        have = _text(target_pkgs[name].get("version")) if name in target_pkgs else None
        if want is None:
            continue  # the model's record says no version: nothing to compare
        if have is None:
            found.append(Mismatch(f"package {_text(name)}", want, None, f"install {_text(name)}=={want}"))
        elif have != want:
            found.append(Mismatch(f"package {_text(name)}", want, have, f"install {_text(name)}=={want} there"))
    return found


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A scalar of a record as one printable line of at most ``limit`` characters (no line break or escape
    sequence reaches the terminal); None for what is absent or not a string or number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = "".join(c for c in str(value) if c.isprintable()).strip()
    return (text if len(text) <= limit else text[:limit - 3] + "...") or None


def _python(model_env: Mapping[str, Any], target_env: Mapping[str, Any]) -> list[Mismatch]:
    want, have = _minor(_get(model_env, "python", "version")), _minor(_get(target_env, "python", "version"))
    if want and want != have:
        return [Mismatch("python", want, have, f"run it on Python {want} (e.g. `uv venv --python {want}`, or a "
                                               f"python:{want} base image)")]
    return []


def _machine(model_env: Mapping[str, Any], target_env: Mapping[str, Any]) -> list[Mismatch]:
    want, have = _arch_name(_get(model_env, "os", "machine")), _arch_name(_get(target_env, "os", "machine"))
    if want and want != have:
        return [Mismatch("architecture", want, have, f"run it on an {want} machine: compiled packages (numpy, "
                                                     "torch, ...) are built for one architecture")]
    return []


def _gpu(model_env: Mapping[str, Any], target_env: Mapping[str, Any], wanted: Collection[str]) -> list[Mismatch]:
    """Driver and architecture checks for each CUDA build among the model's frameworks."""
    found = []
    target_gpu = target_env.get("gpu")
    devices = _devices(target_gpu)
    driver = _driver(target_gpu)
    for module, build in sorted(cuda_builds(model_env).items()):
        if FRAMEWORK_PACKAGES[module] not in wanted:
            continue
        cuda, archs = build["cuda"], build["arch"]
        need = min_driver(cuda)
        driver_text = need or f"for CUDA {cuda}"
        if not devices:
            if used_gpu(model_env):  # trained on a GPU: on the CPU it would be another model in practice
                why = _text(target_env.get("gpu_absent"), 200) or "no GPU was recorded"
                found.append(Mismatch(f"{module} GPU", f"CUDA {cuda}", f"no NVIDIA GPU ({why})",
                                      f"run it on a machine with an NVIDIA GPU and driver >= {driver_text}"))
            continue
        if driver is None:
            found.append(Mismatch(f"{module} CUDA driver", f"CUDA {cuda}", "an unknown driver",
                                  f"install NVIDIA driver >= {driver_text}"))
        elif need is not None and _version(driver) < _version(need):
            found.append(Mismatch(f"{module} CUDA driver", f"CUDA {cuda} (needs driver >= {need})", f"driver {driver}",
                                  f"upgrade the NVIDIA driver to >= {need}, or use a {module} build for an older CUDA"))
        if archs:
            caps = {_text(d.get("compute_capability")) for d in devices}
            for cap in sorted(c for c in caps if c is not None and _CAPABILITY.fullmatch(c)):
                if not runs_on(archs, cap):
                    sm = f"sm_{cap.replace('.', '')}"
                    found.append(Mismatch(
                        f"{module} GPU architecture", " ".join(archs), f"compute capability {cap} ({sm})",
                        f"use a {module} build compiled for {sm} (or with PTX for an older architecture), or run it "
                        "on a GPU the build supports"))
    return found


def cuda_builds(env: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """module -> {"cuda": "12.1", "arch": [...]} for each framework built for CUDA: as the record's framework
    section says, else from the package's local version tag (``2.3.0+cu121``; no architectures then)."""
    out: dict[str, dict[str, Any]] = {}
    frameworks = env.get("frameworks")
    frameworks = frameworks if isinstance(frameworks, Mapping) else {}
    pkgs = packages_of(env)
    for module, package in FRAMEWORK_PACKAGES.items():
        fw = frameworks.get(module)
        cuda = _text(fw.get("cuda"), 20) if isinstance(fw, Mapping) else None
        if isinstance(fw, Mapping) and cuda:
            arch = fw.get("arch")
            archs = [a for a in (_text(a, 20) for a in arch[:MAX_ARCHS]) if a] if isinstance(arch, list) else []
            out[module] = {"cuda": cuda, "arch": archs}
            continue
        tag = local_tag(_text(pkgs.get(package, {}).get("version")) or "")
        m = _CU_TAG.fullmatch(tag or "")
        if m:
            out[module] = {"cuda": f"{int(m.group(1))}.{m.group(2)}", "arch": []}
    return out


def used_gpu(env: Mapping[str, Any]) -> bool:
    """Whether the environment had a GPU: nvidia-smi listed one, or a framework saw a device."""
    if _devices(env.get("gpu")):
        return True
    frameworks = env.get("frameworks")
    return isinstance(frameworks, Mapping) and any(isinstance(fw, Mapping) and isinstance(fw.get("devices"), list)
                                                   and fw["devices"] for fw in frameworks.values())


def min_driver(cuda: str) -> str | None:
    """The oldest Linux driver CUDA runtime ``cuda`` ("12.1") runs on; None for a release this table lacks."""
    m = re.match(r"(\d{1,4})\.(\d{1,4})", cuda)
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    return MIN_DRIVER_BY_MAJOR.get(major) or MIN_DRIVER_BY_RELEASE.get((major, minor))


def runs_on(archs: Collection[str], capability: str) -> bool:
    """Whether a build for ``archs`` (``torch.cuda.get_arch_list()``) has code for a GPU of compute capability
    ``capability`` ("8.6"): a cubin ``sm_XY`` runs on X.Z for Z >= Y (an ``sm_XYa`` only on X.Y), and PTX
    ``compute_XY`` is compiled by the driver for any capability >= X.Y (CUDA C++ Programming Guide, "Binary
    Compatibility" and "PTX Compatibility")."""
    m = _CAPABILITY.fullmatch(capability.strip())
    if not m:
        return True  # an unknown capability is not a mismatch to report
    major, minor = int(m.group(1)), int(m.group(2))
    for arch in archs:
        a = _ARCH.fullmatch(arch.strip())
        if not a:
            continue
        kind, amajor, aminor, suffix = a.group(1), int(a.group(2)), int(a.group(3)), a.group(4)
        if kind == "compute" and (major, minor) >= (amajor, aminor):
            return True
        if kind == "sm" and major == amajor and (minor == aminor or (minor > aminor and not suffix)):
            return True
    return False


def _devices(gpu: Any) -> list[Mapping[str, Any]]:
    """The GPUs of a record's ``gpu`` section (nvidia-smi's lines): only entries that are objects."""
    devices = gpu.get("devices") if isinstance(gpu, Mapping) else None
    return [d for d in devices if isinstance(d, Mapping)] if isinstance(devices, list) else []


def _driver(gpu: Any) -> str | None:
    """The driver version, "535.129.03"; None when unknown (absent, "N/A", or not a version)."""
    if not isinstance(gpu, Mapping):
        return None
    driver = gpu.get("driver")
    found = [_text(d) for d in (driver if isinstance(driver, list) else [driver])]
    versions = [d for d in found if d is not None and _DRIVER.fullmatch(d)]
    return min(versions, key=_version) if versions else None  # several drivers: the oldest decides


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d{1,9}", text)[:4])


def _get(env: Mapping[str, Any], section: str, key: str) -> str | None:
    value = env.get(section)
    return _text(value.get(key)) if isinstance(value, Mapping) else None


def _minor(version: str | None) -> str | None:
    m = re.match(r"(\d{1,4})\.(\d{1,4})", version or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _arch_name(machine: str | None) -> str | None:
    return MACHINE_ALIASES.get(machine.lower(), machine.lower()) if machine else None
