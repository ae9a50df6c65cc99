"""scikit-learn models: skops by default (safe to load); pickle/joblib only when trusted.

skops loads only the types it trusts itself, those of Shipyard's allowlist (scikit-learn classes
deriving from ``SKLEARN_BASES``, and a curated list of NumPy/SciPy data types: never a function,
never a whole package) and the types a user trusted for the version. The list is computed here
from the file; nothing the model folder says about its own types is used.
A pickle or joblib file runs any code it names, so it loads only when the version is trusted
with ``--pickle`` (``log_model`` does that for what it saved itself), and only after Registry.load
has re-hashed it against the registered digests.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from shipyard.adapters.flavors import code, first_line, model_file, require, tensors
from shipyard.adapters.flavors.sklearn_trees import check_trees
from shipyard.core.registry.trust import TrustSet, refuse_untrusted
from shipyard.errors import InvalidInputError

SERIALIZERS = ("skops", "pickle", "joblib")
TREE = "sklearn.tree._tree.Tree"  # as skops names it
FILES = {"skops": "model.skops", "pickle": "model.pkl", "joblib": "model.joblib"}
SKLEARN_BASES = (
    "sklearn.base:BaseEstimator", "sklearn.model_selection._split:BaseCrossValidator",
    "sklearn.model_selection._split:BaseShuffleSplit", "sklearn.metrics._dist_metrics:DistanceMetric",
    "sklearn.neural_network._stochastic_optimizers:BaseOptimizer", "sklearn.metrics._scorer:_BaseScorer",
    "sklearn.metrics._scorer:_PassthroughScorer", "sklearn.tree._tree:Tree", "sklearn.utils._bunch:Bunch",
    "sklearn.calibration:_CalibratedClassifier",
)
"""Classes of scikit-learn a skops file may name without trust: estimators, and their plain data parts
(tree storage, distance metrics, CV splitters, optimizers, scorers). Only classes: any function, method or other
callable needs ``--type``, because a file can call what it names. Tree storage is walked without bounds checks by
scikit-learn, so a loaded model's trees are checked (``sklearn_trees``); the other index structures
(HistGradientBoosting's TreePredictor, the neighbor searches' KDTree and BallTree) are not, so they need ``--type``
(as in MLflow, which asks trust for all four)."""
_NO_IMPORT = frozenset({"externals", "tests", "conftest", "__main__"})
"""Module name parts never imported to check a name (test helpers, vendored code that imports torch)."""


def allowed(type_name: str) -> bool:
    """Whether ``type_name`` (as skops reports it) is on Shipyard's allowlist: a NumPy/SciPy data type
    of the curated list, or a scikit-learn class deriving from one of ``SKLEARN_BASES``."""
    if type_name in _data_types():
        return True
    cls = _sklearn_class(type_name)
    return cls is not None and issubclass(cls, _sklearn_bases())


@functools.cache
def _data_types() -> frozenset[str]:
    """NumPy and SciPy types that hold data: arrays, dtypes, scalars, random states, sparse matrices.

    Never a whole package: ``numpy.memmap`` opens files, and NumPy's functions include ``exec`` wrappers.
    """
    import numpy as np
    import scipy.sparse as sp  # type: ignore[import-untyped]

    types: set[type] = {np.ndarray, np.ma.MaskedArray, np.dtype, np.random.RandomState, np.random.Generator}
    types.update(t for t in np.sctypeDict.values() if isinstance(t, type) and t.__module__ == "numpy")
    types.update(type(np.dtype(t)) for t in set(np.sctypeDict.values()))
    sparse_bases = tuple(b for b in (getattr(sp, "spmatrix", None), getattr(sp, "sparray", None)) if b is not None)
    types.update(obj for obj in vars(sp).values() if isinstance(obj, type) and issubclass(obj, sparse_bases))
    return frozenset(f"{t.__module__}.{t.__name__}" for t in types if not issubclass(t, np.memmap))


@functools.cache
def _sklearn_bases() -> tuple[type, ...]:
    bases = []
    for spec in SKLEARN_BASES:
        module_name, _, name = spec.partition(":")
        try:
            bases.append(getattr(importlib.import_module(module_name), name))
        except (ImportError, AttributeError):  # another scikit-learn version: that base does not exist there
            continue
    return tuple(b for b in bases if isinstance(b, type))


def _sklearn_class(type_name: str) -> type | None:
    """The scikit-learn class ``type_name`` names, found by importing its module (nothing is called), or None."""
    parts = type_name.split(".")
    if len(parts) < 2 or parts[0] != "sklearn" or any(p in _NO_IMPORT or p.startswith("test") for p in parts):
        return None
    module_name, name = ".".join(parts[:-1]), parts[-1]
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None
    # the name must be where the class is defined: skops imports that same path to rebuild it
    if not isinstance(obj, type) or f"{obj.__module__}.{obj.__name__}" != type_name:
        return None
    return obj


class SklearnFlavor:
    name = "sklearn"
    takes_code_paths = True  # a project's own transformer classes, stored with the version (``code``)

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        serializer = options.get("serializer", "skops")
        if serializer not in SERIALIZERS:
            raise InvalidInputError(f"unknown serializer {serializer!r}; use one of {', '.join(SERIALIZERS)}")
        if not hasattr(model, "predict"):
            raise InvalidInputError(f"a {type(model).__name__} has no predict(): not a scikit-learn model")
        planned = code.plan(options.get("code_paths"), code.root_of(options))  # checked before anything is written
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
        stored = code.save(planned, folder)
        if stored:
            meta["code_paths"] = stored
        return meta

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        serializer, path = _file(folder, meta)
        with_code = code.stored(folder) is not None  # project code runs when its classes are imported
        if serializer != "skops":
            return TrustSet(pickle=True, code=with_code)
        return TrustSet.of(code=with_code, types=(t for t in _skops_types(path) if not allowed(t)))

    def packages(self, meta: Mapping[str, Any]) -> tuple[str, ...]:
        serializer = meta.get("serializer", "skops")
        if serializer not in SERIALIZERS:
            raise InvalidInputError(f"unknown serializer {str(serializer)[:40]!r} in the model description")
        return ("scikit-learn", "numpy", "scipy", *{"skops": ("skops",), "joblib": ("joblib",)}.get(serializer, ()))

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        serializer, path = _file(folder, meta)
        if code.stored(folder) is not None:
            refuse_untrusted(f"{code.FOLDER}/", TrustSet(code=True), trusted)
            code.activate(folder)
        if serializer == "skops":
            found = _skops_types(path)
            refuse_untrusted(path.name, TrustSet.of(types=(t for t in found if not allowed(t))), trusted)
            try:  # skops gets only what the allowlist and the user trust, never the file's own list
                model = _skops().load(path, trusted=[t for t in found if t in trusted.types or allowed(t)])
            except Exception as exc:  # skops raises its own and builtin errors for files it cannot rebuild
                raise InvalidInputError(f"skops cannot load {path.name}: {first_line(exc)}") from exc
            if TREE in found:
                try:
                    check_trees(model)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"{path.name} is not loaded: {exc}") from None
            return model
        refuse_untrusted(path.name, TrustSet(pickle=True), trusted)
        if serializer == "joblib":
            import joblib

            return joblib.load(path)
        with open(path, "rb") as f:
            return pickle.load(f)

    def predict(self, model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    def predict_proba(self, model: Any, inputs: Any) -> Any:
        return model.predict_proba(inputs)

    def to_json(self, data: Any) -> Any:
        return tensors.to_json(data)

    def from_json(self, data: Any) -> Any:
        return tensors.from_json(data)

    def schema(self, data: Any) -> dict[str, Any]:
        return tensors.schema(data)


def _file(folder: Path, meta: Mapping[str, Any]) -> tuple[str, Path]:
    serializer = meta.get("serializer", "skops")
    if serializer not in SERIALIZERS:
        raise InvalidInputError(f"unknown serializer {str(serializer)[:40]!r} in the model description")
    return str(serializer), model_file(folder, meta, FILES[serializer])


_TYPES_SEEN: dict[tuple[int, ...], list[str]] = {}  # by file identity: `requires` then `load` read the zip once


def _skops_types(path: Path) -> list[str]:
    """The types skops would have to trust to load ``path``: read from its schema, nothing imported.

    skops reads and checks the whole file for this (a 100 MiB model: 0.13 s), so the answer is kept for the
    same file, as long as nothing changed it (device, inode, size, mtime and ctime: a write changes ctime)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _TYPES_SEEN:
        return list(_TYPES_SEEN[key])
    try:
        found = sorted(_skops().get_untrusted_types(file=path))
    except Exception as exc:  # a hostile file can fail skops' reader in many ways; none of them is a bug here
        raise InvalidInputError(f"{path.name} is not a readable skops file: {first_line(exc)}") from exc
    if len(_TYPES_SEEN) >= 16:
        _TYPES_SEEN.clear()
    _TYPES_SEEN[key] = found
    return list(found)


def _skops() -> Any:
    """``skops.io``, imported without the array libraries scikit-learn can dispatch to (torch, CuPy, Dask...).

    Importing ``skops.io`` calls scikit-learn's ``all_estimators()``, whose ``pkgutil.walk_packages``
    imports every scikit-learn *package* to list its modules, vendored ones included:
    ``sklearn.externals.array_api_compat.torch`` imports torch (over a second, and several hundred MB)
    wherever torch is installed. While skops is imported, those backend packages are refused, so
    ``walk_packages`` skips them (it ignores an ImportError); no estimator lives there. The refusal
    leaves nothing in ``sys.modules`` and is removed once skops is in, so scikit-learn still imports
    them if a program enables its array API dispatch.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    refuse = _RefuseArrayBackends()
    sys.meta_path.insert(0, refuse)
    try:
        return require("skops.io", "saving scikit-learn models with skops", "sklearn")
    finally:
        sys.meta_path.remove(refuse)


class _RefuseArrayBackends(importlib.abc.MetaPathFinder):
    """Refuses ``sklearn.externals.array_api_compat.<backend>`` for every backend but NumPy (see ``_skops``)."""

    PREFIX = "sklearn.externals.array_api_compat."
    KEEP = frozenset({"numpy", "common", "_internal"})

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if fullname.startswith(self.PREFIX) and fullname[len(self.PREFIX):].split(".")[0] not in self.KEEP:
            raise ModuleNotFoundError(f"{fullname} is not imported while skops.io loads", name=fullname)
        return None


FLAVOR = SklearnFlavor
