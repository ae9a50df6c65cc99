"""The one error tree: every ShipyardError class is documented, has its exit code, and is drawn in errors.py."""

from __future__ import annotations

import importlib
import pkgutil
import re

import shipyard
from shipyard import errors
from shipyard.errors import ShipyardError

NOT_IMPORTED = ("shipyard.__main__", "shipyard.examples", "shipyard.adapters.db.migrations")  # scripts, not modules
NOT_IMPORTED += ("shipyard.lightning", "shipyard.interfaces.api.lightning")  # define no errors; import lightning (s)


def import_everything() -> None:
    """So that error classes defined anywhere in the package are subclasses the walk can see."""
    for module in pkgutil.walk_packages(shipyard.__path__, "shipyard."):
        if module.name.startswith(NOT_IMPORTED):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra that is not installed here
            continue


def subclasses(cls: type[ShipyardError]) -> list[type[ShipyardError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


def test_every_error_is_in_the_tree_with_a_docstring_and_an_exit_code() -> None:
    import_everything()
    classes = subclasses(ShipyardError)
    assert len(classes) >= 9  # the walk found the tree
    drawing = errors.__doc__ or ""
    for cls in [ShipyardError, *classes]:
        assert cls.__module__ == "shipyard.errors", f"{cls.__qualname__} is defined outside errors.py"
        assert (cls.__dict__.get("__doc__") or "").strip(), f"{cls.__name__} has no docstring"
        assert type(cls.exit_code) is int and cls.exit_code > 0, f"{cls.__name__}.exit_code is not an int"
        assert re.search(rf"^\s*(?:[│ ]*[├└]── )?{cls.__name__}\b", drawing, re.MULTILINE), \
            f"{cls.__name__} is not drawn in errors.py's tree"
        assert cls.__name__ in errors.__all__
