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
        inputs = self.version.signature.get("inputs")
        dtype = str(inputs.get("dtype")) if isinstance(inputs, dict) else ""
        if self.takes_strings:
            return "BYTES"
        return {"float64": "FP64", "float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32",
                "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}.get(dtype, "FP64")

    @property
    def takes_strings(self) -> bool:
        """Whether the model was registered with string (or object) inputs, so BYTES tensors can reach it."""
        inputs = self.version.signature.get("inputs")
        dtype = str(inputs.get("dtype")) if isinstance(inputs, dict) else ""
        return dtype in ("object", "str") or dtype.lstrip("<>|=").startswith(("U", "S"))

    def predict_rows(self, rows: Any) -> list[Any]:
        """Predictions for a 2-D array (or list) of rows, as plain JSON-ready values."""
        import numpy as np

        result = self.flavor.predict(self.model, rows if isinstance(rows, np.ndarray) else np.asarray(rows))
        return list(np.asarray(result).tolist())
