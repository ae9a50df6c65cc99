"""MLflow's ``mlflow.exceptions`` as ``shipyard.exceptions``: ``except mlflow.exceptions.MlflowException``
catches every error Shipyard raises on purpose (``shipyard.errors.ShipyardError`` and its tree)."""

from __future__ import annotations

from shipyard.errors import ShipyardError

__all__ = ["MlflowException", "RestException"]

MlflowException = ShipyardError
RestException = ShipyardError  # MLflow's error from a tracking server: Shipyard's API has one tree for all
