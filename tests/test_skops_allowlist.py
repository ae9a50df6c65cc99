"""The skops allowlist: scikit-learn classes and NumPy/SciPy data types, never a function a file names."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import BaggingClassifier, GradientBoostingClassifier, IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from shipyard.adapters.flavors import get_flavor
from shipyard.adapters.flavors.sklearn import allowed
from shipyard.core.registry.saving import save_model
from shipyard.core.registry.trust import TrustSet
from shipyard.errors import InvalidInputError, UntrustedModelError
from shipyard.wiring import Services

X, Y = load_iris(return_X_y=True)
RUNSTRING = "numpy.testing._private.utils.runstring"  # its body is exec(astr, dict)


def _json(value: object) -> dict[str, Any]:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value),
            "is_json": True}


def _runstring_payload(good: Path, evil: Path, code: str) -> Path:
    """The attack report's file: a LogisticRegression whose state adds a reduce-call of runstring(code, {})."""
    shutil.copytree(good, evil)
    with zipfile.ZipFile(good / "model.skops") as z:
        files = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(files["schema.json"])
    empty = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
             "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": []}}
    schema["content"]["content"]["evil"] = {
        "__class__": "runstring", "__module__": "numpy.testing._private.utils",
        "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [_json(code), empty]}}
    keys = schema["content"]["key_types"]["content"]
    keys.append(keys[0])
    files["schema.json"] = json.dumps(schema).encode()
    (evil / "model.skops").unlink()
    with zipfile.ZipFile(evil / "model.skops", "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    return evil


def test_a_numpy_function_named_by_a_skops_file_needs_trust(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    good = tmp_path / "good"
    save_model(get_flavor("sklearn"), LogisticRegression(max_iter=300).fit(X, Y), good)
    evil = _runstring_payload(good, tmp_path / "evil", f"open({str(marker)!r}, 'w').write('x')")

    registry = services.registry
    assert registry.requirements(evil) == TrustSet.of(types=[RUNSTRING])  # register says what it needs
    registry.register("victim", evil)
    with pytest.raises(UntrustedModelError, match=rf"^victim@1 is not trusted to load: .*type {RUNSTRING};"):
        registry.load("victim@1")
    with pytest.raises(UntrustedModelError):  # the flavor's own check, should a caller skip the registry's
        get_flavor("sklearn").load(evil, {"serializer": "skops", "file": "model.skops"}, TrustSet())
    assert not marker.exists()


@pytest.mark.parametrize("name", [
    RUNSTRING, "numpy.load", "numpy.memmap", "numpy.sum", "numpy.ndarray.tofile", "sklearn.base.clone",
    "sklearn.base.BaseEstimator.fit", "sklearn.utils._testing.assert_run_python_script_without_output",
    "sklearn.externals.array_api_compat.torch.Tensor", "sklearn.__main__.X", "scipy.io.loadmat", "posix.system",
    "sklearn.linear_model.LogisticRegression",  # a re-export: skops would import that path, not the class's own
])
def test_the_allowlist_holds_no_function_and_no_whole_package(name: str) -> None:
    assert not allowed(name)


@pytest.mark.parametrize("name", [
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.tree._tree.Tree", "scipy.sparse._csr.csr_matrix",
    "sklearn.metrics._dist_metrics.EuclideanDistance64", "numpy.dtype",
])
def test_the_allowlist_has_estimators_and_data_types(name: str) -> None:
    assert allowed(name)


@pytest.mark.parametrize("name", [  # index structures scikit-learn walks unchecked, and Shipyard does not check
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
])
def test_unchecked_index_structures_need_trust(name: str) -> None:
    assert not allowed(name)


def test_ordinary_models_load_without_trust_and_functions_need_it(services: Services, tmp_path: Path) -> None:
    fitted = {
        "logistic": LogisticRegression(max_iter=300).fit(X, Y),
        "scaled": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, Y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y),
        "tree": DecisionTreeClassifier(random_state=0).fit(X, Y),
        "dummy": DummyClassifier().fit(X, Y),
        "neighbors": KNeighborsClassifier(algorithm="brute").fit(X, Y),
        "boosted": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, Y),
        "bagged": BaggingClassifier(DecisionTreeClassifier(), n_estimators=3, max_features=2, random_state=0).fit(X, Y),
        "log1p": make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=300)).fit(X, Y),
    }
    for name, model in fitted.items():
        save_model(get_flavor("sklearn"), model, tmp_path / name)
        services.registry.register(name, tmp_path / name)
        np.testing.assert_array_equal(services.registry.load(f"{name}@1").predict(X), model.predict(X))

    # a ufunc (np.log1p) is elementwise math that skops itself trusts; any other function is code
    ordered = make_pipeline(FunctionTransformer(np.sort), DummyClassifier()).fit(X, Y)
    save_model(get_flavor("sklearn"), ordered, tmp_path / "sorted")
    services.registry.register("sorted", tmp_path / "sorted")
    with pytest.raises(UntrustedModelError, match=r"type numpy\.sort; .*--type numpy\.sort -m REASON"):
        services.registry.load("sorted@1")
    services.registry.trust("sorted@1", TrustSet.of(types=["numpy.sort"]), "our own pipeline")
    assert services.registry.load("sorted@1").predict(X[:2]).shape == (2,)


def _tampered_tree(good: Path, evil: Path, **nodes: int) -> Path:
    """``good``'s saved tree model with its root's fields set to ``nodes`` (e.g. left_child=50_000_000)."""
    shutil.copytree(good, evil)
    with zipfile.ZipFile(good / "model.skops") as z:
        files = {n: z.read(n) for n in z.namelist()}
    for name, data in files.items():
        if name.endswith(".npy"):
            import io

            array = np.load(io.BytesIO(data), allow_pickle=False)
            if array.dtype.names and "left_child" in array.dtype.names:
                for key, value in nodes.items():
                    array[key][0] = value
                out = io.BytesIO()
                np.save(out, array)
                files[name] = out.getvalue()
    (evil / "model.skops").unlink()
    with zipfile.ZipFile(evil / "model.skops", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return evil


@pytest.mark.parametrize("nodes", [
    {"left_child": 50_000_000, "right_child": 50_000_000},  # children past the last node: predict read past them
    {"left_child": 0},  # a cycle: the root its own child
    {"right_child": -1},  # one child only
    {"feature": 4},  # iris has 4 columns: 0-3
])
def test_a_tree_whose_nodes_point_outside_it_is_never_loaded(services: Services, tmp_path: Path,
                                                             nodes: dict[str, int]) -> None:
    """scikit-learn walks a tree's node arrays without bounds checks: a skops file (an MLflow store's, anyone's)
    whose tree points outside them crashed the process on predict (a segfault), or read other memory."""
    for name, model in (("tree", DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)),
                        ("forest", RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0).fit(X, Y))):
        save_model(get_flavor("sklearn"), model, tmp_path / name)
        evil = _tampered_tree(tmp_path / name, tmp_path / f"evil-{name}-{len(list(tmp_path.iterdir()))}", **nodes)
        mv = services.registry.register(f"evil-{name}", evil)
        with pytest.raises(InvalidInputError, match=r"model.skops is not loaded: a tree in the model .* malformed"):
            services.registry.load(mv.ref)


def test_ensemble_members_take_the_ensembles_columns(services: Services, tmp_path: Path) -> None:
    """A forest calls its trees on its own checked input, unchecked: a member claiming more columns is refused;
    an isolation forest's members take the columns it lists for each, and load."""
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y)
    forest.estimators_[1].n_features_in_ = 9
    save_model(get_flavor("sklearn"), forest, tmp_path / "forest")
    services.registry.register("lying-forest", tmp_path / "forest")
    with pytest.raises(InvalidInputError, match="member 1 takes 9 columns where the ensemble gives it 4"):
        services.registry.load("lying-forest@1")
    isolation = IsolationForest(n_estimators=3, max_features=2, random_state=0).fit(X)
    save_model(get_flavor("sklearn"), isolation, tmp_path / "isolation")
    services.registry.register("isolation", tmp_path / "isolation")
    assert (services.registry.load("isolation@1").predict(X) == isolation.predict(X)).all()
