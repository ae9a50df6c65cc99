"""The model a server answers with: loaded once, verified by digest, asked through its flavor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.registry.records import ModelVersion
from shipyard.ports import Flavor


@dataclass
class ServedModel:
    version: ModelVersion
    flavor: Flavor
    model: Any
    load_seconds: float

    @property
    def name(self) -> str:
        return self.version.model

    def predict_rows(self, rows: list[list[Any]]) -> list[Any]:
        import numpy as np

        result = self.flavor.predict(self.model, np.asarray(rows))
        return list(np.asarray(result).tolist())
