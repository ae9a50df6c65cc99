"""numpy/pandas data as JSON lists and signature entries, shared by array-based flavors."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_json(data: Any) -> Any:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return {"columns": [str(c) for c in data.columns], "data": np.asarray(data).tolist()}
    return np.asarray(data).tolist()


def schema(data: Any) -> dict[str, Any]:
    arr = np.asarray(data)
    entry: dict[str, Any] = {"dtype": str(arr.dtype), "shape": [-1, *arr.shape[1:]]}
    if hasattr(data, "columns"):
        entry["columns"] = [str(c) for c in data.columns]
    return entry


def as_array(data: Any) -> Any:
    """numpy view of lists, arrays or tensors."""
    if hasattr(data, "detach"):
        return data.detach().numpy()
    return np.asarray(data, dtype=np.float32) if not isinstance(data, np.ndarray) else data
