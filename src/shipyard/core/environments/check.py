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
_ARCH = re.compile(r"(sm|compute)_(\d+)(\d)([af]?)")
_CU_TAG = re.compile(r"cu(\d+)(\d)")


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
          packages: Collection[str] | None = None) -> list[Mismatch]:
    """What keeps ``target_env`` from running a model registered from ``model_env``. ``packages``: the names
    the model's lock pins (its ML-critical ones are compared; GPU checks are made for a framework among
    them); None compares every ML-critical package of ``model_env``."""
    model_pkgs, target_pkgs = packages_of(model_env), packages_of(target_env)
    wanted = set(model_pkgs) if packages is None else set(packages)
    found = [*_python(model_env, target_env), *_machine(model_env, target_env)]
    found += _gpu(model_env, target_env, wanted)
    for name in sorted(n for n in wanted if is_critical_package(n) and n in model_pkgs):
        want, have = str(model_pkgs[name].get("version")), target_pkgs.get(name, {}).get("version")
        if have is None:
            found.append(Mismatch(f"package {name}", want, None, f"install {name}=={want}"))
        elif str(have) != want:
            found.append(Mismatch(f"package {name}", want, str(have), f"install {name}=={want} there"))
    return found


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
    devices = target_gpu.get("devices") or [] if isinstance(target_gpu, Mapping) else []
    driver = _driver(target_gpu)
    for module, build in sorted(cuda_builds(model_env).items()):
        if FRAMEWORK_PACKAGES[module] not in wanted:
            continue
        cuda, archs = build["cuda"], build["arch"]
        need = min_driver(cuda)
        driver_text = need or f"for CUDA {cuda}"
        if not devices:
            if used_gpu(model_env):  # trained on a GPU: on the CPU it would be another model in practice
                why = target_env.get("gpu_absent") or "no GPU was recorded"
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
            for cap in sorted({str(d.get("compute_capability")) for d in devices if d.get("compute_capability")}):
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
    frameworks = env.get("frameworks") or {}
    pkgs = packages_of(env)
    for module, package in FRAMEWORK_PACKAGES.items():
        fw = frameworks.get(module)
        if isinstance(fw, Mapping) and fw.get("cuda"):
            arch = fw.get("arch")
            out[module] = {"cuda": str(fw["cuda"]), "arch": [str(a) for a in arch] if isinstance(arch, list) else []}
            continue
        tag = local_tag(str(pkgs.get(package, {}).get("version") or ""))
        m = _CU_TAG.fullmatch(tag or "")
        if m:
            out[module] = {"cuda": f"{int(m.group(1))}.{m.group(2)}", "arch": []}
    return out


def used_gpu(env: Mapping[str, Any]) -> bool:
    """Whether the environment had a GPU: nvidia-smi listed one, or a framework saw a device."""
    gpu = env.get("gpu")
    if isinstance(gpu, Mapping) and gpu.get("devices"):
        return True
    return any(isinstance(fw, Mapping) and fw.get("devices") for fw in (env.get("frameworks") or {}).values())


def min_driver(cuda: str) -> str | None:
    """The oldest Linux driver CUDA runtime ``cuda`` ("12.1") runs on; None for a release this table lacks."""
    m = re.match(r"(\d+)\.(\d+)", cuda)
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    return MIN_DRIVER_BY_MAJOR.get(major) or MIN_DRIVER_BY_RELEASE.get((major, minor))


def runs_on(archs: Collection[str], capability: str) -> bool:
    """Whether a build for ``archs`` (``torch.cuda.get_arch_list()``) has code for a GPU of compute capability
    ``capability`` ("8.6"): a cubin ``sm_XY`` runs on X.Z for Z >= Y (an ``sm_XYa`` only on X.Y), and PTX
    ``compute_XY`` is compiled by the driver for any capability >= X.Y (CUDA C++ Programming Guide, "Binary
    Compatibility" and "PTX Compatibility")."""
    m = re.fullmatch(r"(\d+)\.(\d+)", capability.strip())
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


def _driver(gpu: Any) -> str | None:
    if not isinstance(gpu, Mapping):
        return None
    driver = gpu.get("driver")
    if isinstance(driver, list):  # several drivers: the oldest decides
        driver = min(driver, key=_version) if driver else None
    return str(driver) if driver else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def _get(env: Mapping[str, Any], section: str, key: str) -> str | None:
    value = env.get(section)
    if isinstance(value, Mapping):
        value = value.get(key)
    return str(value) if value else None


def _minor(version: str | None) -> str | None:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _arch_name(machine: str | None) -> str | None:
    return MACHINE_ALIASES.get(machine.lower(), machine.lower()) if machine else None
