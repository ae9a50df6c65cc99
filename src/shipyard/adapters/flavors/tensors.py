"""numpy/pandas/scipy data as JSON and signature entries, shared by array-based flavors.

Golden examples are JSON (never a pickle): dense inputs are nested lists, a DataFrame is
``{"columns", "data"}``, a scipy sparse matrix is its CSR parts ``{"format": "csr", "shape",
"indptr", "indices", "values"}``. ``from_json`` reads them back as untrusted input: every part is
checked (types, bounds, monotone row pointers) before scipy sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shipyard.core.serving.oip import is_number
from shipyard.errors import InvalidInputError

SPARSE_FORMAT = "csr"
SPARSE_KEYS = frozenset({"format", "shape", "indptr", "indices", "values"})
MAX_SPARSE_VALUES = 10_000_000  # stored values of one sparse input: what a 16 MiB request could hold, and more
MAX_SPARSE_WIDTH = 2 ** 31 - 1  # columns: scipy's int32 indices


def is_sparse(data: Any) -> bool:
    """A scipy sparse matrix or array (told without importing scipy)."""
    return hasattr(data, "tocsr") and hasattr(data, "nnz") and hasattr(data, "shape")


def is_sparse_json(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("format") == SPARSE_FORMAT


def sparse_to_json(data: Any) -> dict[str, Any]:
    csr = data.tocsr()
    if not csr.has_canonical_format:  # sorted indices, no duplicates: the same matrix always writes the same JSON
        csr = csr.copy()
        csr.sum_duplicates()
    return {"format": SPARSE_FORMAT, "shape": [int(d) for d in csr.shape], "indptr": csr.indptr.tolist(),
            "indices": csr.indices.tolist(), "values": csr.data.tolist()}


def to_json(data: Any) -> Any:
    if is_sparse(data):
        return sparse_to_json(data)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return {"columns": [str(c) for c in data.columns], "data": np.asarray(data).tolist()}
    return np.asarray(data).tolist()


def is_strings(arr: Any) -> bool:
    """Whether a numpy array holds text: a unicode/bytes dtype, or objects that are all ``str``."""
    if arr.dtype.kind in "US":
        return True
    return bool(arr.dtype == object and arr.size and all(isinstance(v, str) for v in arr.flat))


def schema(data: Any) -> dict[str, Any]:
    """A signature entry: dtype and shape (-1 for the batch); ``"str"`` for text (OIP BYTES); a sparse
    matrix also says ``"sparse": true`` and its format, a DataFrame its columns."""
    if is_sparse(data):
        return {"dtype": str(data.dtype), "shape": [-1, *(int(d) for d in data.shape[1:])], "sparse": True,
                "format": SPARSE_FORMAT}
    arr = np.asarray(data) if not isinstance(data, list | tuple) or not _text_leaf(data) else \
        np.asarray(data, dtype=object)
    entry: dict[str, Any] = {"dtype": "str" if is_strings(arr) else str(arr.dtype), "shape": [-1, *arr.shape[1:]]}
    if hasattr(data, "columns"):
        entry["columns"] = [str(c) for c in data.columns]
        if hasattr(data, "dtypes"):  # each column's own type: text columns say "str"
            entry["column_dtypes"] = {str(c): _column_dtype(data[c]) for c in data.columns}
    return entry


def _column_dtype(column: Any) -> str:
    arr = np.asarray(column)
    return "str" if is_strings(arr) else str(arr.dtype)


def _text_leaf(data: Any) -> bool:
    """Whether the first value of nested lists is a string."""
    first = data
    for _ in range(32):
        if not isinstance(first, list | tuple) or not first:
            break
        first = first[0]
    return isinstance(first, str)


def from_json(data: Any) -> Any:
    """Golden inputs (or a request's) as the model takes them: a CSR matrix for the sparse form, a
    DataFrame for ``{"columns", "data"}`` where pandas is installed, a numpy array otherwise (text as
    an object array: a fixed-width unicode array would pay the longest string for every value)."""
    if is_sparse_json(data):
        return sparse_from_json(data)
    if isinstance(data, Mapping) and "columns" in data and "data" in data:
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            return data["data"]
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, list | tuple) and _text_leaf(data):
        return np.asarray(data, dtype=object)
    try:
        return np.asarray(data)
    except ValueError:  # ragged rows: the model gets them as they are
        return data


def _int_array(values: Any, field: str) -> Any:
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise InvalidInputError(f"{field}: must be a list of integers")
    try:
        return np.asarray(values, dtype=np.int64)
    except OverflowError:
        raise InvalidInputError(f"{field}: an integer is out of range") from None


def sparse_from_json(data: Mapping[str, Any], width: int | None = None, where: str = "sparse input") -> Any:
    """A ``scipy.sparse.csr_matrix`` from its JSON parts, checked first (one line naming the part on any
    fault). ``width``: the columns the model takes; ``shape`` may then be left out."""
    unknown = sorted(str(k)[:40] for k in data if k not in SPARSE_KEYS)
    if unknown:
        raise InvalidInputError(f"{where}: unknown key {unknown[0]!r}; a sparse input has indptr, indices, values "
                                "and shape")
    indptr = _int_array(data.get("indptr"), f"{where}.indptr")
    indices = _int_array(data.get("indices"), f"{where}.indices")
    raw = data.get("values")
    if not isinstance(raw, list) or not all(is_number(v) for v in raw):  # a 400-digit integer too: FP64's range
        raise InvalidInputError(f"{where}.values: must be a list of finite numbers within FP64's range")
    if len(raw) > MAX_SPARSE_VALUES:
        raise InvalidInputError(f"{where}.values: {len(raw)} values is more than the limit of {MAX_SPARSE_VALUES}")
    values = np.asarray(raw, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{where}.values: must be finite numbers")
    rows = len(indptr) - 1
    shape = data.get("shape")
    if shape is None and width is not None:
        shape = [rows, width]
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(type(d) is int and 0 <= d <= MAX_SPARSE_WIDTH for d in shape)):
        raise InvalidInputError(f"{where}.shape: must be [rows, columns], two non-negative integers")
    if rows < 1 or shape[0] != rows:
        raise InvalidInputError(f"{where}.indptr: needs one more entry than rows ({shape[0]} rows, "
                                f"{len(indptr)} entries)")
    if width is not None and shape[1] != width:
        raise InvalidInputError(f"{where}.shape: has {shape[1]} columns, the model takes {width}")
    if len(indices) != len(values):
        raise InvalidInputError(f"{where}: {len(indices)} indices but {len(values)} values; give one index per value")
    if indptr[0] != 0 or indptr[-1] != len(values) or (np.diff(indptr) < 0).any():
        raise InvalidInputError(f"{where}.indptr: must start at 0, never decrease, and end at the number of values "
                                f"({len(values)})")
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[1]):
        raise InvalidInputError(f"{where}.indices: every index must be a column, from 0 to {shape[1] - 1}")
    import scipy.sparse as sp  # type: ignore[import-untyped]

    return sp.csr_matrix((values, indices, indptr), shape=(shape[0], shape[1]))


def as_array(data: Any) -> Any:
    """numpy view of lists, arrays or tensors."""
    if hasattr(data, "detach"):
        return data.detach().numpy()
    if is_sparse(data):
        return data.toarray().astype(np.float32)
    return np.asarray(data, dtype=np.float32) if not isinstance(data, np.ndarray) else data
