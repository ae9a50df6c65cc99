"""``import shipyard.pyfunc`` as MLflow's ``import mlflow.pyfunc``: the module ``shipyard.interfaces.api.pyfunc``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import pyfunc

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.pyfunc import *  # noqa: F403

sys.modules[__name__] = pyfunc
