"""``import shipyard.pytorch`` as MLflow's ``import mlflow.pytorch``: the module ``shipyard.interfaces.api.pytorch``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import pytorch

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.pytorch import *  # noqa: F403

sys.modules[__name__] = pytorch
