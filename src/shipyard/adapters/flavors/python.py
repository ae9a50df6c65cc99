"""Any Python object with ``predict(inputs)`` (and optionally ``load(folder)``): the flavor for everything else.

The object is pickled, and a pickle runs any code it names: a version loads only when it is
trusted with ``--pickle`` (``log_model`` trusts what it pickled itself), and Registry.load re-hashes
every file against the registered digests before this flavor unpickles it. Its class must be
importable where it is loaded (like MLflow's pyfunc): either installed, or stored with the version by
``log_model(..., code_paths=["src/mypkg"])`` (``code``), which then also needs ``--code`` trusted.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import code, model_file
from shipyard.core.registry.trust import TrustSet, refuse_untrusted
from shipyard.errors import InvalidInputError

FILE = "model.pkl"


class PythonFlavor:
    name = "python"
    takes_code_paths = True

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        if not callable(getattr(model, "predict", None)):
            raise InvalidInputError(f"a {type(model).__name__} has no predict(inputs) method")
        planned = code.plan(options.get("code_paths"), code.root_of(options))  # checked before anything is written
        try:
            (folder / FILE).write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"cannot pickle the {type(model).__name__}: {exc}") from exc
        cls = type(model)
        meta: dict[str, Any] = {"file": FILE, "class": f"{cls.__module__}.{cls.__qualname__}"}
        stored = code.save(planned, folder)
        if stored:
            meta["code_paths"] = stored
        return meta

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        model_file(folder, meta, FILE)
        return TrustSet(pickle=True, code=code.stored(folder) is not None)

    def packages(self, meta: Mapping[str, Any]) -> tuple[str, ...]:
        return ()  # a pickle needs only its class's code: the model's own requirements say what that is

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        refuse_untrusted("this pickled model", self.requires(folder, meta), trusted)
        code.activate(folder)  # the project code stored with it, first on sys.path
        try:
            model = pickle.loads(model_file(folder, meta, FILE).read_bytes())
        except (ModuleNotFoundError, AttributeError) as exc:
            raise InvalidInputError(f"cannot load {meta.get('class')}: {exc}; make its module importable, or "
                                    "log the model with code_paths=[...] naming its module") from exc
        if callable(getattr(model, "load", None)):
            model.load(folder)
        return model

    def predict(self, model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    def predict_proba(self, model: Any, inputs: Any) -> Any:
        return model.predict_proba(inputs)

    def to_json(self, data: Any) -> Any:
        if hasattr(data, "tocsr") and hasattr(data, "nnz"):  # a scipy sparse matrix (numpy is there with it)
            from shipyard.adapters.flavors import tensors

            return tensors.sparse_to_json(data)
        return data.tolist() if hasattr(data, "tolist") else list(data)

    def from_json(self, data: Any) -> Any:
        """Golden or request inputs as the object takes them (numpy where it is installed, else the lists)."""
        try:
            from shipyard.adapters.flavors import tensors
        except ImportError:
            return data
        return tensors.from_json(data)

    def schema(self, data: Any) -> dict[str, Any]:
        """The dtype and shape numpy reads from ``data`` (what the server reports and answers with)."""
        try:
            from shipyard.adapters.flavors import tensors

            return tensors.schema(data)
        except (ImportError, ValueError, TypeError):  # no numpy, or ragged rows: describe the rows by hand
            rows = self.to_json(data)
            width = len(rows[0]) if rows and isinstance(rows[0], list) else None
            return {"dtype": _dtype(rows), "shape": [-1, width] if width is not None else [-1]}


def _dtype(rows: list[Any]) -> str:
    """The numpy name of the type of the first value in ``rows`` (lists of values, or values)."""
    first = rows[0] if rows else 0.0
    while isinstance(first, list) and first:
        first = first[0]
    if isinstance(first, bool):
        return "bool"
    return {int: "int64", float: "float64", str: "str"}.get(type(first), "object")

FLAVOR = PythonFlavor
