"""``shipyard.data``: MLflow's ``mlflow.data.from_pandas`` / ``from_numpy`` forms, for ``log_input``.

A dataset's digest is the SHA-256 of every byte of it (MLflow hashes a sample of its first rows): each numpy
array is hashed in the ``.npy`` form (dtype, shape and data), each DataFrame column by name, dtype and values, so
two datasets that differ anywhere have different digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.artifacts.digest import PREFIX
from shipyard.errors import InvalidInputError

DEFAULT_NAME = "dataset"


@dataclass(frozen=True, slots=True)
class Dataset:
    """What ``log_input`` records: a name and the digest of the data (``sha256:<hex>``); ``source`` (where it
    came from, as given), ``targets`` (the label column or array's name) and ``profile`` (rows, elements) say
    more about it."""

    name: str
    digest: str
    source: str | None = None
    targets: str | None = None
    profile: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": self.digest, "source": self.source, "targets": self.targets,
                "profile": dict(self.profile)}


def from_pandas(df: Any, source: Any = None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> Dataset:
    """A dataset of the DataFrame ``df`` (``targets``: its label column), hashed over every value."""
    if not (hasattr(df, "columns") and hasattr(df, "dtypes")):
        raise InvalidInputError(f"from_pandas takes a pandas DataFrame, not {type(df).__name__}")
    if targets is not None and targets not in df.columns:
        raise InvalidInputError(f"from_pandas: targets {targets!r} is not a column of the DataFrame")
    _no_digest(digest)
    rows, cols = df.shape
    return Dataset(name or DEFAULT_NAME, frame_digest(df), _source(source), targets,
                   {"num_rows": int(rows), "num_elements": int(rows * cols)})


def from_numpy(features: Any, source: Any = None, targets: Any = None, name: str | None = None,
               digest: str | None = None) -> Dataset:
    """A dataset of the array ``features`` (or a dict of named arrays) and optional ``targets``, hashed over
    every byte of both."""
    _no_digest(digest)
    parts = {"features": features} if targets is None else {"features": features, "targets": targets}
    h = hashlib.sha256()
    rows = elements = 0
    for part, value in parts.items():
        arrays = dict(value) if isinstance(value, Mapping) else {"": value}
        for key in sorted(arrays):
            a = _array(arrays[key], f"{part} {key}".strip())
            h.update(f"{part}:{key}\n".encode())
            _hash_array(h, a)
            if part == "features":
                rows, elements = max(rows, len(a) if a.ndim else 1), elements + a.size
    return Dataset(name or DEFAULT_NAME, PREFIX + h.hexdigest(), _source(source),
                   None if targets is None else "targets", {"num_rows": rows, "num_elements": elements})


def dataset_of(value: Any) -> Dataset:
    """``log_input``'s argument when it is not a Dataset: a pandas DataFrame or a numpy array."""
    if hasattr(value, "columns") and hasattr(value, "dtypes"):
        return from_pandas(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return from_numpy(value)
    raise InvalidInputError(f"log_input takes shipyard.data.from_pandas(...) or from_numpy(...), a numpy array, a "
                            f"pandas DataFrame or a path, not {type(value).__name__}")


def frame_digest(df: Any) -> str:
    h = hashlib.sha256(f"columns:{len(df.columns)}\n".encode())
    for column in df.columns:
        series = df[column]
        h.update(f"{json.dumps(str(column))}:{series.dtype}\n".encode())
        values = series.to_numpy()
        if values.dtype.kind in "biufcmM":  # numbers, booleans and times: their bytes
            _hash_array(h, values)
        else:  # text and objects: every value, as JSON
            h.update(json.dumps([None if v is None else str(v) if not isinstance(v, int | float | bool) else v
                                 for v in values.tolist()], allow_nan=True).encode())
    return PREFIX + h.hexdigest()


def _array(value: Any, what: str) -> Any:
    import numpy as np

    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"from_numpy: {what} is not an array ({str(exc)[:120]})") from None
    if a.dtype.kind == "O":
        raise InvalidInputError(f"from_numpy: {what} holds Python objects: give numbers or text")
    return a


def _hash_array(h: Any, a: Any) -> None:
    import numpy as np

    class _Hashing:
        def write(self, data: Any) -> int:
            h.update(data)
            return len(data)

    np.lib.format.write_array(_Hashing(), np.ascontiguousarray(a), allow_pickle=False)


def _no_digest(digest: str | None) -> None:
    if digest is not None:
        raise InvalidInputError("Shipyard computes a dataset's digest itself, over every byte: leave digest= out")


def _source(source: Any) -> str | None:
    return None if source is None else str(source)[:1024]
