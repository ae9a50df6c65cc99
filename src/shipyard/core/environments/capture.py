"""Capture the environment a run or model version was made in, as canonical JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from importlib import metadata
from typing import Any

SCHEMA = "shipyard.environment/v1"
FRAMEWORKS = ("torch", "tensorflow", "jax", "sklearn", "xgboost", "lightgbm", "onnxruntime", "numpy")


def capture() -> dict[str, Any]:
    """Python, OS, installed distributions and the builds of frameworks already imported.

    Never imports a framework itself: an environment is read, not changed, by looking at it.
    """
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[_normalize(name)] = dist.version
    frameworks = {}
    for mod in FRAMEWORKS:
        loaded = sys.modules.get(mod)
        if loaded is not None:
            frameworks[mod] = {"version": str(getattr(loaded, "__version__", "")), **_build_info(mod, loaded)}
    return {
        "schema": SCHEMA,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
               "libc": "-".join(platform.libc_ver()).strip("-")},
        "cpu": {"count": os.cpu_count()},
        "packages": dict(sorted(packages.items())),
        "frameworks": frameworks,
    }


def _build_info(name: str, module: Any) -> dict[str, Any]:
    if name != "torch":
        return {}
    version = getattr(module, "version", None)
    cuda = getattr(version, "cuda", None)
    info: dict[str, Any] = {"cuda": cuda}
    with contextlib.suppress(Exception):  # a broken driver must not break a run
        if cuda and module.cuda.is_available():
            info["gpu"] = module.cuda.get_device_name(0)
    return info


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def to_bytes(env: dict[str, Any]) -> bytes:
    return json.dumps(env, sort_keys=True, separators=(",", ":")).encode()


def summary(env: dict[str, Any]) -> str:
    py = env.get("python", {})
    osinfo = env.get("os", {})
    return f"Python {py.get('version')} on {osinfo.get('system')} {osinfo.get('machine')}, " \
           f"{len(env.get('packages', {}))} packages"
