"""The bounds of scikit-learn's tree storage in a loaded model, checked before anything predicts with it.

skops rebuilds a ``sklearn.tree._tree.Tree`` from the node arrays in the file, and scikit-learn walks those
arrays without bounds checks (its Cython is compiled with ``boundscheck=False``): a child index past the last
node, or a feature index past the columns the estimator takes, makes ``predict`` read outside its memory (a
segfault, or another buffer's bytes in a prediction). A file someone else wrote may say anything, so a model
holding trees loads only if every tree is well formed: each split node's children come after it and exist,
each leaf has none, and each split reads a column the tree and its estimator take. An ensemble's members take
the ensemble's columns (or, in a bagging ensemble, the columns it lists for each, which it takes itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError

MAX_OBJECTS = 1_000_000  # objects visited in one model: a forest of 1,000 trees holds some tens of thousands
LEAF = -1  # scikit-learn's _TREE_LEAF


def check_trees(model: Any) -> None:
    """Raise InvalidInputError if a tree in ``model`` (an estimator, a pipeline, an ensemble...) is malformed."""
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    stack: list[tuple[Any, int | None]] = [(model, None)]  # (object, the columns its owner validates X to)
    while stack:
        obj, width = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, str | bytes | int | float | bool):
            continue
        seen.add(id(obj))
        if len(seen) > MAX_OBJECTS:
            raise InvalidInputError(f"the model holds more than {MAX_OBJECTS:,} objects: not loaded")
        if isinstance(obj, Tree):
            _check_tree(obj, width)
            continue
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend((item, width) for item in obj.ravel())
            continue
        if isinstance(obj, dict):
            stack.extend((item, width) for item in obj.values())
            continue
        if isinstance(obj, list | tuple | set | frozenset):
            stack.extend((item, width) for item in obj)
            continue
        state = getattr(obj, "__dict__", None)
        if not isinstance(state, dict):
            continue
        own = state.get("n_features_in_")
        if isinstance(own, int | np.integer):
            width = int(own)
        members = state.get("estimators_")
        if width is not None and members is not None and isinstance(obj, _unchecked_ensembles()):
            stack.extend(_members(obj, members, width))
            stack.extend((item, width) for key, item in state.items() if key != "estimators_")
        else:  # an estimator checks the columns it is given itself (n_features_in_), as do other ensembles' members
            stack.extend((item, width) for item in state.values())


def _unchecked_ensembles() -> tuple[type, ...]:
    """The ensembles that call their members' trees on their own checked input, unchecked again (forests,
    gradient boosting, bagging and isolation forests): each member must take the ensemble's columns."""
    found: list[type] = []
    for module, name in (("sklearn.ensemble._forest", "BaseForest"), ("sklearn.ensemble._gb", "BaseGradientBoosting"),
                         ("sklearn.ensemble._bagging", "BaseBagging")):
        try:
            found.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):  # another scikit-learn layout: its public classes, at least
            import sklearn.ensemble as public

            found.extend(getattr(public, n) for n in ("RandomForestClassifier", "RandomForestRegressor",
                                                      "ExtraTreesClassifier", "ExtraTreesRegressor",
                                                      "GradientBoostingClassifier", "GradientBoostingRegressor",
                                                      "BaggingClassifier", "BaggingRegressor", "IsolationForest"))
    return tuple(found)


def _members(ensemble: Any, members: Any, width: int) -> list[tuple[Any, int | None]]:
    """An ensemble's members, each with the columns the ensemble gives it; one that says otherwise is refused."""
    flat = list(np.asarray(members, dtype=object).ravel()) if isinstance(members, np.ndarray) else \
        list(members) if isinstance(members, list | tuple) else [members]
    columns = getattr(ensemble, "estimators_features_", None)
    out: list[tuple[Any, int | None]] = []
    for i, member in enumerate(flat):
        given = width
        if columns is not None:  # bagging: member i sees X[:, columns[i]]
            try:
                picked = np.asarray(columns[i])
            except (IndexError, TypeError):
                raise InvalidInputError(f"{type(ensemble).__name__}'s member {i} has no column list") from None
            if picked.ndim != 1 or (picked.size and (picked.min() < 0 or picked.max() >= width)):
                raise InvalidInputError(f"{type(ensemble).__name__}'s member {i} reads columns it does not take")
            given = int(picked.size)
        declared = getattr(member, "n_features_in_", given)
        if declared != given:
            raise InvalidInputError(f"{type(ensemble).__name__}'s member {i} takes {declared} columns where the "
                                    f"ensemble gives it {given}: the model is malformed")
        out.append((member, given))
    return out


def _check_tree(tree: Any, width: int | None) -> None:
    count = int(tree.node_count)
    left = np.asarray(tree.children_left, dtype=np.int64)[:count]
    right = np.asarray(tree.children_right, dtype=np.int64)[:count]
    feature = np.asarray(tree.feature, dtype=np.int64)[:count]
    if count < 1 or len(left) != count or len(right) != count or len(feature) != count:
        raise InvalidInputError("a tree in the model has no nodes, or fewer than it says: the model is malformed")
    index = np.arange(count)
    leaf = left == LEAF
    if np.any(leaf != (right == LEAF)):
        raise InvalidInputError("a tree in the model has a node with one child: the model is malformed")
    split = ~leaf
    columns = int(tree.n_features) if width is None else min(int(tree.n_features), width)
    if np.any((left[split] <= index[split]) | (left[split] >= count) | (right[split] <= index[split])
              | (right[split] >= count)):
        raise InvalidInputError("a tree in the model points at nodes it does not have: the model is malformed")
    if np.any((feature[split] < 0) | (feature[split] >= columns)):
        raise InvalidInputError(f"a tree in the model splits on a column past the {columns} it takes: the model "
                                "is malformed")
