"""scikit-learn models: skops by default (safe to load); pickle/joblib only after digest checks.

Registry.load re-hashes every file against the store before a flavor sees it, so a pickle is
only ever unpickled from bytes whose digest matches the registered version.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import require, tensors
from shipyard.errors import IntegrityError, InvalidInputError

SERIALIZERS = ("skops", "pickle", "joblib")
FILES = {"skops": "model.skops", "pickle": "model.pkl", "joblib": "model.joblib"}


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
            sio = _skops()
            data = sio.dumps(model)
            path.write_bytes(data)
            meta["trusted_types"] = sorted(sio.get_untrusted_types(data=data))
        elif serializer == "joblib":
            import joblib

            joblib.dump(model, path)
        else:
            path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        import sklearn

        meta["sklearn_version"] = sklearn.__version__
        return meta

    def load(self, folder: Path, meta: Mapping[str, Any]) -> Any:
        serializer = meta.get("serializer", "skops")
        path = folder / str(meta.get("file", FILES.get(serializer, "")))
        if serializer == "skops":
            sio = _skops()
            found = set(sio.get_untrusted_types(file=path))
            unexpected = found - set(meta.get("trusted_types", ()))
            if unexpected:
                raise IntegrityError(
                    f"{path.name} contains types that were not recorded at registration: {sorted(unexpected)}"
                )
            return sio.load(path, trusted=sorted(found))
        if serializer == "joblib":
            import joblib

            return joblib.load(path)
        if serializer == "pickle":
            with open(path, "rb") as f:
                return pickle.load(f)
        raise InvalidInputError(f"unknown serializer {serializer!r} in the model description")

    def predict(self, model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    def to_json(self, data: Any) -> Any:
        return tensors.to_json(data)

    def schema(self, data: Any) -> dict[str, Any]:
        return tensors.schema(data)


def _skops() -> Any:
    return require("skops.io", "saving scikit-learn models with skops", "sklearn")

FLAVOR = SklearnFlavor
