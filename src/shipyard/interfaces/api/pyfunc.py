"""``shipyard.pyfunc``: MLflow's ``mlflow.pyfunc.load_model`` form, for any flavor."""

from __future__ import annotations

from typing import Any

from shipyard.interfaces.api import fluent
from shipyard.interfaces.api.client import PathLike


def load_model(model_uri: str, suppress_warnings: bool = False, dst_path: PathLike | None = None,
               model_config: Any = None) -> Any:
    """The model behind ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``NAME@VERSION``, as
    ``shipyard.load_model`` returns it: the flavor's own object (a scikit-learn estimator answers
    ``predict``), not a ``PyFuncModel`` wrapper."""
    if model_config is not None:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError("model_config is not supported: models load as they were saved")
    return fluent.load_model(model_uri)
