"""``import shipyard.exceptions`` as MLflow's ``import mlflow.exceptions``: the module
``shipyard.interfaces.api.exceptions``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import exceptions

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.exceptions import *  # noqa: F403

sys.modules[__name__] = exceptions
