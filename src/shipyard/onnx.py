"""``import shipyard.onnx`` as MLflow's ``import mlflow.onnx``: the module ``shipyard.interfaces.api.onnx``."""

import sys
from typing import TYPE_CHECKING

from shipyard.interfaces.api import onnx

if TYPE_CHECKING:  # its names, for type checkers
    from shipyard.interfaces.api.onnx import *  # noqa: F403

sys.modules[__name__] = onnx
