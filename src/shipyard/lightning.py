"""``from shipyard.lightning import ShipyardLogger``: the PyTorch Lightning logger (``pip install
'shipyard[lightning]'``); it lives in ``shipyard.interfaces.api.lightning``."""

from shipyard.interfaces.api.lightning import ShipyardLogger

__all__ = ["ShipyardLogger"]
