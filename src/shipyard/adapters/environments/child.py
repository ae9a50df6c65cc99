"""The process ``shipyard verify`` starts in a model's environment: load, answer the golden inputs, write JSON.

It runs as ``python -I`` with only the flavor loaders of Shipyard importable (see ``venvs.run_child``), so
it must need nothing beyond the standard library and the flavor's own packages. It loads only what the
parent's trust decision lists. Whatever goes wrong is written as one line, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 256 * 1024 * 1024
_REPORTED = ("numpy", "scipy", "scikit-learn", "skops", "pandas", "torch", "onnxruntime")


def as_inputs(data: Any) -> Any:
    """Golden inputs as the server feeds them: a numpy array where numpy is installed (a DataFrame for
    ``{"columns", "data"}`` where pandas is, a scipy CSR matrix for the sparse form), the JSON lists otherwise."""
    if isinstance(data, dict) and data.get("format") == "csr":  # a sparse matrix's parts, checked as they are read
        from shipyard.adapters.flavors.tensors import sparse_from_json

        return sparse_from_json(data, where="the golden inputs")
    if isinstance(data, dict) and "columns" in data and "data" in data:
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            return data["data"]
        return pd.DataFrame(data["data"], columns=data["columns"])
    try:
        import numpy as np
    except ImportError:
        return data
    try:
        return np.asarray(data)
    except ValueError:  # ragged rows: the model gets them as they are
        return data


def _packages() -> dict[str, str]:
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in _REPORTED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _line(exc: BaseException) -> str:
    if isinstance(exc, ImportError) and isinstance(exc.__cause__, ImportError):  # MissingExtraError: the module
        exc = exc.__cause__
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def _preload(flavor: str) -> None:
    """Import the flavor and its libraries before the request comes (nothing of a model is read here)."""
    try:
        from shipyard.adapters.flavors import get_flavor

        get_flavor(flavor)
        if flavor == "sklearn":  # skops.io and the allowlist's types are most of what loading takes
            from shipyard.adapters.flavors.sklearn import _data_types, _sklearn_bases, _skops

            _skops()
            _data_types()
            _sklearn_bases()
    except Exception:  # the request reports any failure with its stage; this only warms the imports
        return


def main(flavor: str) -> int:
    """Import ``flavor``, then read a request's path on stdin (none: exit), answer it, write the result."""
    _preload(flavor)
    packages = _packages()
    request_path = sys.stdin.readline().strip()
    if not request_path:
        return 0
    with open(request_path, "rb") as f:
        request = json.loads(f.read(MAX_REQUEST_BYTES))
    out: dict[str, Any] = {"ok": False}
    stage = "import"
    try:
        from shipyard.adapters.flavors import get_flavor
        from shipyard.core.registry.trust import TrustSet

        flavor_ = get_flavor(request["flavor"])
        stage = "load"
        model = flavor_.load(Path(request["folder"]), request["flavor_meta"], TrustSet.from_items(request["trusted"]))
        stage = "predict"
        out = {"ok": True, "outputs": flavor_.to_json(flavor_.predict(model, as_inputs(request["inputs"])))}
    except Exception as exc:  # any library's error: reported as one line, the parent decides
        out = {"ok": False, "stage": stage, "error": _line(exc),
               "untrusted": type(exc).__name__ == "UntrustedModelError"}
    out["packages"] = packages
    with open(request["result"], "w") as f:
        try:
            json.dump(out, f, allow_nan=True)
        except (TypeError, ValueError, RecursionError) as exc:
            f.seek(0)
            f.truncate()
            json.dump({"ok": False, "stage": "predict", "error": f"the answers are not JSON: {_line(exc)}"}, f)
    return 0 if out["ok"] else 1
