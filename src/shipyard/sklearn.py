"""``import shipyard.sklearn`` as MLflow's ``import mlflow.sklearn``: the module ``shipyard.interfaces.api.sklearn``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import sklearn

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.sklearn import *  # noqa: F403

sys.modules[__name__] = sklearn
