"""``import shipyard.data`` as MLflow's ``import mlflow.data``: the module ``shipyard.interfaces.api.data``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import data

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.data import *  # noqa: F403

sys.modules[__name__] = data
