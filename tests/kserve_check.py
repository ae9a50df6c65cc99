"""Check KServe objects against the typed models of the ``kserve`` SDK (run by tests/k8s_validators.py with the
separate venv that holds the SDK; reads a JSON list of objects from the file named by argv[1] and prints a JSON
list: null for a valid object, else the path and reason of the first error).

The SDK's models are generated from KServe's OpenAPI: each class lists its fields' types (``openapi_types``) and
JSON names (``attribute_map``), and its setters refuse a missing required field or a value outside an enum. The
walk below refuses an unknown field (the API server would drop it) or a value of the wrong type, then builds
each model so that its own checks run. ``kserve/__init__`` (the model server: fastapi, grpc, ...) is not run.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import sysconfig
import types
from typing import Any

_pkg = types.ModuleType("kserve")
_pkg.__path__ = [f"{sysconfig.get_paths()['purelib']}/kserve"]
sys.modules["kserve"] = _pkg

import kserve.models as kmodels  # noqa: E402
import kubernetes.client.models as k8smodels  # noqa: E402

LIST = re.compile(r"^(?:list|List)\[(.+)\]\Z")
DICT = re.compile(r"^(?:dict\(([^,]+), (.+)\)|Dict\[([^,]+), (.+)\])\Z")
PRIMITIVE: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
                                          "datetime": (str,), "date": (str,), "ResourceQuantity": (str, int, float)}


class Invalid(Exception):
    pass


def model_class(name: str) -> Any:
    for module in (kmodels, k8smodels):
        cls = getattr(module, name, None)
        if cls is not None:
            return cls
    raise Invalid(f"no model {name}")


def check(value: Any, typ: str, path: str) -> Any:
    if typ == "object":
        return value
    if typ in PRIMITIVE:
        if not isinstance(value, PRIMITIVE[typ]) or (typ != "bool" and isinstance(value, bool)):
            raise Invalid(f"{path}: {value!r} is not {typ}")
        return value
    if m := LIST.match(typ):
        if not isinstance(value, list):
            raise Invalid(f"{path}: expected a list")
        return [check(v, m[1], f"{path}/{i}") for i, v in enumerate(value)]
    if m := DICT.match(typ):
        if not isinstance(value, dict):
            raise Invalid(f"{path}: expected a mapping")
        return {k: check(v, m[2] or m[4], f"{path}/{k}") for k, v in value.items()}
    cls = model_class(typ)
    if not isinstance(value, dict):
        raise Invalid(f"{path}: expected an object ({typ})")
    by_json = {j: a for a, j in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        if key not in by_json:
            raise Invalid(f"{path}/{key}: unknown field of {typ}")
        attr = by_json[key]
        kwargs[attr] = check(v, cls.openapi_types[attr], f"{path}/{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{path}: {exc}") from None


def validate(doc: Any) -> str | None:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if doc.get("apiVersion") != "serving.kserve.io/v1beta1" or kind != "InferenceService":
        return f"not a serving.kserve.io/v1beta1 InferenceService: {doc.get('apiVersion')}/{kind}"
    try:
        check(doc, "V1beta1InferenceService", "")
        if not doc.get("metadata", {}).get("name"):
            raise Invalid("/metadata/name: missing")
        if "predictor" not in doc.get("spec", {}):
            raise Invalid("/spec/predictor: missing")
    except Invalid as exc:
        return str(exc)
    return None


def main() -> None:
    with open(sys.argv[1]) as f:
        docs = json.load(f)
    sys.stdout.write(json.dumps([validate(d) for d in docs]))


if __name__ == "__main__":
    importlib.invalidate_caches()
    main()
