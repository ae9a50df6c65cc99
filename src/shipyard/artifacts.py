"""``import shipyard.artifacts`` as MLflow's ``import mlflow.artifacts``: the module
``shipyard.interfaces.api.artifacts``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import artifacts

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.artifacts import *  # noqa: F403

sys.modules[__name__] = artifacts
