"""The model a server answers with: loaded once, verified by digest, asked through its flavor.

Rows reach it as a 2-D numpy array (numbers), a 1-D object array (text, for a model registered on
strings) or a scipy CSR matrix (for a model whose signature says ``sparse``: dense rows are converted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.registry.records import ModelVersion
from shipyard.core.serving import oip
from shipyard.errors import InvalidInputError
from shipyard.ports import Flavor

MAX_CLASSES = 10_000  # class labels reported beside probabilities (a model with more says none)
MAX_PROBA_VALUES = 2_000_000  # probabilities in one answer (rows x classes): ~40 MB of JSON at most


def is_sparse(rows: Any) -> bool:
    """A scipy sparse matrix (told without importing scipy)."""
    return hasattr(rows, "tocsr") and hasattr(rows, "nnz")


def count(rows: Any) -> int:
    """How many rows: a sparse matrix has no ``len``."""
    shape = getattr(rows, "shape", None)
    return int(shape[0]) if shape else len(rows)


def features(rows: Any) -> int | None:
    """Values per row of 2-D rows (None for 1-D rows: text, one string a row)."""
    shape = getattr(rows, "shape", None)
    if shape is not None:
        return int(shape[1]) if len(shape) == 2 else None
    return len(rows[0]) if rows and isinstance(rows[0], list | tuple) else None


def rows_json(rows: Any) -> Any:
    """Rows as JSON-ready values, for the inference log: a sparse matrix as its CSR parts."""
    if is_sparse(rows):
        csr = rows.tocsr()
        return {"format": "csr", "shape": [int(d) for d in csr.shape], "indptr": csr.indptr.tolist(),
                "indices": csr.indices.tolist(), "values": csr.data.tolist()}
    return rows.tolist() if hasattr(rows, "tolist") else rows


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
    def _inputs(self) -> dict[str, Any]:
        inputs = self.version.signature.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    @property
    def width(self) -> int | None:
        """Features per row, from the signature recorded at registration (None if unknown)."""
        shape = self._inputs.get("shape")
        if isinstance(shape, list) and len(shape) == 2 and type(shape[1]) is int and shape[1] > 0:
            return shape[1]
        return None

    @property
    def rank(self) -> int:
        """Dimensions of the inputs recorded at registration: 1 for text (one string a row), else 2."""
        shape = self._inputs.get("shape")
        return len(shape) if isinstance(shape, list) and shape else 2

    @property
    def sparse(self) -> bool:
        """Whether the model was registered on a sparse matrix: its rows are handed to it as CSR."""
        return self._inputs.get("sparse") is True

    @property
    def datatype(self) -> str:
        """The OIP datatype of the inputs recorded at registration (FP64 if unknown)."""
        return oip.signature_datatype(self._inputs) or "FP64"

    @property
    def output_datatype(self) -> str | None:
        """The OIP datatype of the outputs recorded at registration (None if unknown)."""
        return oip.signature_datatype(self.version.signature.get("outputs"))

    @property
    def takes_strings(self) -> bool:
        """Whether the model was registered with string (or object) inputs, so BYTES tensors can reach it."""
        return self.datatype == "BYTES"

    @property
    def has_proba(self) -> bool:
        """Whether the model answers probabilities (``predict_proba``), and its flavor can ask for them."""
        return callable(getattr(self.flavor, "predict_proba", None)) and \
            callable(getattr(self.model, "predict_proba", None))

    @property
    def classes(self) -> list[Any] | None:
        """The class labels the probabilities' columns stand for (``classes_``), when the model says."""
        labels = getattr(self.model, "classes_", None)
        if labels is None or not hasattr(labels, "__len__") or len(labels) > MAX_CLASSES:
            return None
        values = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        return values if all(isinstance(v, str | int | float | bool) for v in values) else None

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """This version's OIP model metadata, read from its signature (``oip.model_metadata``)."""
        classes = self.classes
        probabilities = (len(classes) if classes is not None else -1) if self.has_proba else None
        return oip.model_metadata(self.name, versions, self.version.flavor, self.version.signature, self.datatype,
                                  probabilities)

    def from_json(self, data: Any) -> Any:
        """Stored golden inputs (JSON) as the model takes them: through the flavor (a CSR matrix for the sparse
        form, a DataFrame for a table), else a numpy array."""
        read = getattr(self.flavor, "from_json", None)
        if callable(read):
            return read(data)
        import numpy as np

        return np.asarray(data)

    def _prepared(self, rows: Any) -> Any:
        import numpy as np

        if is_sparse(rows):
            return rows
        if isinstance(rows, dict | list):  # JSON: golden examples as stored (a sparse model's CSR parts, text)
            rows = self.from_json(rows)
            if not isinstance(rows, np.ndarray):  # a CSR matrix or a DataFrame, as the flavor reads them
                return rows
        array = rows if isinstance(rows, np.ndarray) else np.asarray(rows)
        if self.sparse and array.ndim == 2 and array.dtype.kind in "biuf":  # dense rows for a sparse model
            import scipy.sparse as sp  # type: ignore[import-untyped]

            return sp.csr_matrix(array)
        return array

    def predict_rows(self, rows: Any) -> list[Any]:
        """Predictions for rows (an array, a list, or a sparse matrix), as plain JSON-ready values."""
        import numpy as np

        result = self.flavor.predict(self.model, self._prepared(rows))
        return list(np.asarray(result).tolist())

    def proba_rows(self, rows: Any) -> list[Any]:
        """Probabilities for rows (one list per row, a column per class), as plain JSON-ready values."""
        import numpy as np

        result = getattr(self.flavor, "predict_proba")(self.model, self._prepared(rows))  # noqa: B009 (optional)
        array = np.asarray(result, dtype=np.float64)
        if array.size > MAX_PROBA_VALUES:  # more classes than ``classes`` tells: the answer is still bounded
            raise InvalidInputError(f"probabilities for {count(rows)} rows would be {array.size} values, more than "
                                    f"the limit of {MAX_PROBA_VALUES}; send fewer rows at once")
        return list(array.tolist())
