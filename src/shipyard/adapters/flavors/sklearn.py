"""scikit-learn models: skops by default (safe to load); pickle/joblib only when trusted.

skops loads only the types of Shipyard's allowlist (anything from scikit-learn, NumPy or SciPy
that skops itself does not already trust) plus the types a user trusted for the version. The
list is computed here from the file; nothing the model folder says about its own types is used.
A pickle or joblib file runs any code it names, so it loads only when the version is trusted
with ``--pickle`` (``log_model`` does that for what it saved itself), and only after Registry.load
has re-hashed it against the registered digests.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import first_line, model_file, require, tensors
from shipyard.core.registry.trust import TrustSet, refuse_untrusted
from shipyard.errors import InvalidInputError

SERIALIZERS = ("skops", "pickle", "joblib")
FILES = {"skops": "model.skops", "pickle": "model.pkl", "joblib": "model.joblib"}
ALLOWED_ROOTS = frozenset({"sklearn", "numpy", "scipy"})
"""Top-level packages whose types a skops file may use without the user trusting them."""


def allowed(type_name: str) -> bool:
    """Whether ``type_name`` (as skops reports it) is on Shipyard's allowlist."""
    return type_name.partition(".")[0] in ALLOWED_ROOTS


class SklearnFlavor:
    name = "sklearn"

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        serializer = options.get("serializer", "skops")
        if serializer not in SERIALIZERS:
            raise InvalidInputError(f"unknown serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")
        if not hasattr(model, "predict"):
            raise InvalidInputError(f"a {type(model).__name__} has no predict(): not a scikit-learn model")
        path = folder / FILES[serializer]
        meta: dict[str, Any] = {"serializer": serializer, "file": path.name}
        if serializer == "skops":
            path.write_bytes(_skops().dumps(model))
        elif serializer == "joblib":
            import joblib

            joblib.dump(model, path)
        else:
            path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        import sklearn

        meta["sklearn_version"] = sklearn.__version__
        return meta

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        serializer, path = _file(folder, meta)
        if serializer != "skops":
            return TrustSet(pickle=True)
        return TrustSet.of(types=(t for t in _skops_types(path) if not allowed(t)))

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        serializer, path = _file(folder, meta)
        if serializer == "skops":
            found = _skops_types(path)
            refuse_untrusted(path.name, TrustSet.of(types=(t for t in found if not allowed(t))), trusted)
            try:
                return _skops().load(path, trusted=found)
            except Exception as exc:  # skops raises its own and builtin errors for files it cannot rebuild
                raise InvalidInputError(f"skops cannot load {path.name}: {first_line(exc)}") from exc
        refuse_untrusted(path.name, TrustSet(pickle=True), trusted)
        if serializer == "joblib":
            import joblib

            return joblib.load(path)
        with open(path, "rb") as f:
            return pickle.load(f)

    def predict(self, model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    def to_json(self, data: Any) -> Any:
        return tensors.to_json(data)

    def schema(self, data: Any) -> dict[str, Any]:
        return tensors.schema(data)


def _file(folder: Path, meta: Mapping[str, Any]) -> tuple[str, Path]:
    serializer = meta.get("serializer", "skops")
    if serializer not in SERIALIZERS:
        raise InvalidInputError(f"unknown serializer {str(serializer)[:40]!r} in the model description")
    return str(serializer), model_file(folder, meta, FILES[serializer])


def _skops_types(path: Path) -> list[str]:
    """The types skops would have to trust to load ``path``: read from its schema, nothing imported."""
    try:
        return sorted(_skops().get_untrusted_types(file=path))
    except Exception as exc:  # a hostile file can fail skops' reader in many ways; none of them is a bug here
        raise InvalidInputError(f"{path.name} is not a readable skops file: {first_line(exc)}") from exc



def _skops() -> Any:
    return require("skops.io", "saving scikit-learn models with skops", "sklearn")

FLAVOR = SklearnFlavor
