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
    ``{"columns", "data"}`` where pandas is), the JSON lists otherwise."""
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


def main(request_path: str) -> int:
    with open(request_path, "rb") as f:
        request = json.loads(f.read(MAX_REQUEST_BYTES))
    out: dict[str, Any] = {"ok": False}
    stage = "load"
    try:
        from shipyard.adapters.flavors import get_flavor
        from shipyard.core.registry.trust import TrustSet

        stage = "import"
        flavor = get_flavor(request["flavor"])
        stage = "load"
        model = flavor.load(Path(request["folder"]), request["flavor_meta"], TrustSet.from_items(request["trusted"]))
        stage = "predict"
        out = {"ok": True, "outputs": flavor.to_json(flavor.predict(model, as_inputs(request["inputs"])))}
    except Exception as exc:  # any library's error: reported as one line, the parent decides
        out = {"ok": False, "stage": stage, "error": _line(exc),
               "untrusted": type(exc).__name__ == "UntrustedModelError"}
    out["packages"] = _packages()
    with open(request["result"], "w") as f:
        try:
            json.dump(out, f, allow_nan=True)
        except (TypeError, ValueError) as exc:
            f.seek(0)
            f.truncate()
            json.dump({"ok": False, "stage": "predict", "error": f"the answers are not JSON: {_line(exc)}"}, f)
    return 0 if out["ok"] else 1
