"""The model a server answers with: loaded once, verified by digest, asked through its flavor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.registry.records import ModelVersion
from shipyard.core.serving import oip
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

    @property
    def width(self) -> int | None:
        """Features per row, from the signature recorded at registration (None if unknown)."""
        inputs = self.version.signature.get("inputs")
        shape = inputs.get("shape") if isinstance(inputs, dict) else None
        if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
            return shape[1]
        return None

    @property
    def datatype(self) -> str:
        """The OIP datatype of the inputs recorded at registration (FP64 if unknown)."""
        return oip.signature_datatype(self.version.signature.get("inputs")) or "FP64"

    @property
    def output_datatype(self) -> str | None:
        """The OIP datatype of the outputs recorded at registration (None if unknown)."""
        return oip.signature_datatype(self.version.signature.get("outputs"))

    @property
    def takes_strings(self) -> bool:
        """Whether the model was registered with string (or object) inputs, so BYTES tensors can reach it."""
        return self.datatype == "BYTES"

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """This version's OIP model metadata, read from its signature (``oip.model_metadata``)."""
        return oip.model_metadata(self.name, versions, self.version.flavor, self.version.signature, self.datatype)

    def predict_rows(self, rows: Any) -> list[Any]:
        """Predictions for a 2-D array (or list) of rows, as plain JSON-ready values."""
        import numpy as np

        result = self.flavor.predict(self.model, rows if isinstance(rows, np.ndarray) else np.asarray(rows))
        return list(np.asarray(result).tolist())
