"""``import shipyard.models`` as MLflow's ``import mlflow.models``: the module ``shipyard.interfaces.api.models``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import models

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.models import *  # noqa: F403

sys.modules[__name__] = models
