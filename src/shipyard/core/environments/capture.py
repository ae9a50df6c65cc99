"""The environment record a run or model version references: schema, pure parsers, diff (no I/O here).

The live environment is read by ``adapters.environments.probe``; this module only shapes and compares
what it read. A record is canonical JSON (keys sorted), stored content-addressed, so runs made in the
same environment share one. Version 1 records (``shipyard.environment/v1``) still display and diff.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

SCHEMA_V1 = "shipyard.environment/v1"
SCHEMA = "shipyard.environment/v2"
SCHEMAS = (SCHEMA_V1, SCHEMA)
FRAMEWORKS = ("torch", "tensorflow", "jax", "sklearn", "xgboost", "lightgbm", "onnxruntime", "numpy")
NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                    "--format=csv,noheader")

# Packages whose version changes what a model computes or whether it loads at all: listed first in a diff.
CRITICAL_PACKAGES = frozenset({
    "torch", "torchvision", "torchaudio", "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "keras", "jax",
    "jaxlib", "numpy", "scipy", "scikit-learn", "transformers", "onnxruntime", "onnxruntime-gpu", "onnx",
    "xgboost", "lightgbm", "triton", "pandas", "safetensors", "tokenizers",
})


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


_DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")


def is_name(name: str) -> bool:
    """A PEP 508 distribution name (letters, digits, ``.``, ``_``, ``-``), at most 200 characters."""
    return bool(_DIST_NAME.fullmatch(name))


def is_critical_package(name: str) -> bool:
    name = normalize(name)
    return name in CRITICAL_PACKAGES or name.startswith(("nvidia-", "cuda-", "jax-cuda", "cupy"))


# -- parsers: each takes what a tool prints or a framework returns, as documented -----------------------

def _na(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") or value in ("N/A", "Not Supported") else value


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader``: one
    line per GPU, e.g. ``NVIDIA H100 80GB HBM3, 535.129.03, 9.0, 81559 MiB``; ``[N/A]`` stays unknown."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            raise ValueError(f"unexpected nvidia-smi line {line!r}: expected name, driver, compute_cap, memory")
        name, driver, cap, memory = ", ".join(parts[:-3]), *parts[-3:]
        mem = _na(memory)
        mib = int(mem.split()[0]) if mem and mem.split()[0].isdigit() else None
        gpus.append({"name": _na(name), "driver": _na(driver), "compute_capability": _na(cap), "memory_mib": mib})
    return gpus


def gpu_section(gpus: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record's ``gpu`` section from parsed ``nvidia-smi`` lines."""
    drivers = sorted({g["driver"] for g in gpus if g.get("driver")})
    return {"source": "nvidia-smi", "driver": drivers[0] if len(drivers) == 1 else (drivers or None),
            "count": len(gpus), "devices": [dict(g) for g in gpus]}


def cudnn_version(code: int | None) -> str | None:
    """``torch.backends.cudnn.version()``: 90100 → "9.1.0" (cuDNN 9: M*10000+m*100+p), 8902 → "8.9.2"."""
    if not code:
        return None
    major, rest = (code // 10000, code % 10000) if code >= 10000 else (code // 1000, code % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def nccl_version(value: Sequence[int] | int | None) -> str | None:
    """``torch.cuda.nccl.version()``: a tuple (2, 21, 5) in recent builds, an int code (2708) in old ones."""
    if value is None or value == 0:
        return None
    if isinstance(value, int):
        major, rest = (value // 10000, value % 10000) if value >= 10000 else (value // 1000, value % 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return ".".join(str(int(v)) for v in value)


def arch_list(archs: Iterable[str] | None) -> list[str]:
    """``torch.cuda.get_arch_list()``: e.g. ["sm_80", "sm_90", "compute_90"], de-duplicated and sorted."""
    return sorted({a.strip() for a in archs or () if a and a.strip()},
                  key=lambda a: (a.split("_")[0], int(re.sub(r"\D", "", a) or 0), a))


def local_tag(version: str) -> str | None:
    """The build tag after '+': ``2.3.0+cu121`` → "cu121", ``2.3.0+cpu`` → "cpu", ``2.3.0`` → None."""
    return version.split("+", 1)[1] or None if "+" in version else None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Linux ``/proc/cpuinfo``: the first processor's model name and flags (x86 ``flags``, ARM ``Features``)."""
    model = flags = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if model is None and key in ("model name", "Model", "cpu model", "Processor"):
            model = value.strip()
        elif flags is None and key in ("flags", "Features"):
            flags = value.split()
        if model is not None and flags is not None:
            break
    return {"model": model, "flags": sorted(set(flags or ()))}


def direct_url_source(text: str | None) -> dict[str, Any]:
    """A distribution's source from its PEP 610 ``direct_url.json`` (None: installed from an index); a VCS
    install from a folder of its repository keeps that ``subdirectory``. Anything that is not that shape
    (a file any installer, or anyone, may have written) is a source of kind "unknown"."""
    if not text:
        return {"kind": "index"}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {"kind": "unknown"}
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return {"kind": "unknown"}
    url = data["url"]
    if "vcs_info" in data:
        vcs = data["vcs_info"] if isinstance(data["vcs_info"], dict) else {}
        found = {"kind": "vcs", "url": url, "vcs": vcs.get("vcs"), "commit": vcs.get("commit_id")}
        if isinstance(data.get("subdirectory"), str):
            found["subdirectory"] = data["subdirectory"]
        return found
    if url.startswith("file:"):
        dir_info = data.get("dir_info")
        return {"kind": "local path", "url": url,
                "editable": isinstance(dir_info, dict) and dir_info.get("editable") is True}
    return {"kind": "url", "url": url}


# -- reading a record, any version ------------------------------------------------------------------

def to_bytes(env: Mapping[str, Any]) -> bytes:
    return json.dumps(env, sort_keys=True, separators=(",", ":")).encode()


SECTIONS = ("python", "os", "cpu", "gpu", "frameworks", "packages")  # each a JSON object (gpu: or null)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def record_problem(record: Any) -> str | None:
    """What makes ``record`` (JSON read from a file or the store: untrusted) not an environment record's
    shape, in a few words; None when its sections are what the readers expect (their values may still be
    anything: each reader takes only what it understands)."""
    if not isinstance(record, dict):
        return f"a JSON {_json_type(record)}, not an object"
    if "schema" in record and record["schema"] not in SCHEMAS:
        return f"schema {str(record['schema'])[:40]!r}, not one of {', '.join(SCHEMAS)}"
    for section in SECTIONS:
        value = record.get(section)
        if value is not None and not isinstance(value, dict):
            return f"its {section} is a JSON {_json_type(value)}, not an object"
    for name, value in (record.get("packages") or {}).items():
        if not isinstance(value, (dict, str)):  # v2: an object; v1: the version
            return f"its package {name[:60]!r} is a JSON {_json_type(value)}"
    devices = (record.get("gpu") or {}).get("devices")
    if devices is not None and (not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices)):
        return "its gpu devices are not a JSON array of objects"
    for name, value in (record.get("frameworks") or {}).items():
        if not isinstance(value, dict):
            return f"its framework {name[:60]!r} is a JSON {_json_type(value)}, not an object"
    return None


def packages_of(env: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name → {"version", "source"}; a v1 record's plain versions become entries of unknown source."""
    out: dict[str, dict[str, Any]] = {}
    packages = env.get("packages")
    if not isinstance(packages, Mapping):  # a damaged record: readers that need it say so (``record_problem``)
        return out
    for name, value in packages.items():
        out[name] = dict(value) if isinstance(value, Mapping) else {"version": value, "source": None}
    return out


def source_text(source: Mapping[str, Any] | None) -> str:
    if not source:
        return "-"
    kind = str(source.get("kind", "-"))
    if kind == "vcs":
        return f"{source.get('url')}@{source.get('commit')}"
    if kind in ("local path", "url"):
        return f"{kind} {source.get('url')}" + (" (editable)" if source.get("editable") else "")
    return kind


def summary(env: Mapping[str, Any]) -> str:
    py = env.get("python", {})
    osinfo = env.get("os", {})
    gpu = env.get("gpu")
    gpus = f", {gpu.get('count')} GPU" if isinstance(gpu, Mapping) and gpu.get("count") else ""
    return f"Python {py.get('version')} on {osinfo.get('system')} {osinfo.get('machine')}, " \
           f"{len(env.get('packages', {}))} packages{gpus}"


# -- diff --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One difference between two records: ``a``/``b`` are None where one side lacks the entry."""

    what: str  # "python", "gpu driver", "torch cuda", "package numpy", ...
    a: str | None
    b: str | None
    critical: bool

    @property
    def kind(self) -> str:
        return "added" if self.a is None else "removed" if self.b is None else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


def _text(value: Any) -> str | None:
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def facts(env: Mapping[str, Any]) -> dict[str, tuple[str | None, bool]]:
    """Everything a diff compares, flattened: label → (value, ML-critical)."""
    py, osinfo, cpu = env.get("python") or {}, env.get("os") or {}, env.get("cpu") or {}
    out: dict[str, tuple[str | None, bool]] = {
        "python": (_text(py.get("version")), True),
        "python implementation": (_text(py.get("implementation")), True),
        "os": (_text(osinfo.get("system")), False), "os release": (_text(osinfo.get("release")), False),
        "architecture": (_text(osinfo.get("machine")), True), "libc": (_text(osinfo.get("libc")), False),
        "cpu model": (_text(cpu.get("model")), False), "cpu count": (_text(cpu.get("count")), False),
    }
    if env.get("schema") != SCHEMA_V1:  # v1 never looked for a GPU: absent there is unknown, not "none"
        gpu = env.get("gpu")
        devices = gpu.get("devices", []) if isinstance(gpu, Mapping) else []
        out["gpu driver"] = (_text(gpu.get("driver")) if isinstance(gpu, Mapping) else "none", True)
        out["gpu count"] = (_text(len(devices)), True)
        out["gpu model"] = (_text(sorted({str(d.get("name")) for d in devices})), True)
        out["gpu compute capability"] = (_text(sorted({str(d.get("compute_capability")) for d in devices})), True)
        flags = cpu.get("flags")
        out["cpu flags"] = (_text(flags), False)
    for name, fw in sorted((env.get("frameworks") or {}).items()):
        for key, value in sorted(fw.items()):
            if key != "version":  # the version is the package's; the build facts are the framework's own
                out[f"{name} {key}"] = (_text(value), True)
    for name, pkg in packages_of(env).items():
        out[f"package {name}"] = (_text(pkg.get("version")), is_critical_package(name))
    return out


V2_ONLY = ("gpu ", "cpu flags", "cpu model")  # what a v1 record never looked at


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """What differs from ``a`` to ``b``: ML-critical changes first, then the rest, each group in order."""
    fa, fb = facts(a), facts(b)
    # A framework is looked at only when the program imported it: one side not looking is not a change.
    only = set(a.get("frameworks") or {}) ^ set(b.get("frameworks") or {})
    fa = {k: v for k, v in fa.items() if k.split(" ", 1)[0] not in only or k.startswith("package ")}
    fb = {k: v for k, v in fb.items() if k.split(" ", 1)[0] not in only or k.startswith("package ")}
    if SCHEMA_V1 in (a.get("schema"), b.get("schema")):  # facts v1 never recorded: unknown on one side, not changed
        fa, fb = ({k: v for k, v in f.items() if not k.startswith(V2_ONLY)} for f in (fa, fb))
    changes = []
    for label in list(fa) + [k for k in fb if k not in fa]:
        va, ca = fa.get(label, (None, False))
        vb, cb = fb.get(label, (None, False))
        if label == "cpu flags" and va and vb:  # a long list: say only which flags each side lacks
            left, right = set(va.split()), set(vb.split())
            va, vb = " ".join(sorted(left - right)) or None, " ".join(sorted(right - left)) or None
            label = "cpu flags (only on one side)"
        if va != vb:
            changes.append(Change(label, va, vb, ca or cb))
    # A change of source with the same version (index → local path) still changes what runs.
    pa, pb = packages_of(a), packages_of(b)
    for name in sorted(set(pa) & set(pb)):
        sa, sb = pa[name].get("source"), pb[name].get("source")
        if sa and sb and sa != sb and pa[name].get("version") == pb[name].get("version"):
            changes.append(Change(f"package {name} source", source_text(sa), source_text(sb),
                                  is_critical_package(name)))
    return sorted(changes, key=lambda c: not c.critical)  # stable: each group keeps its order
