"""``shipyard.models``: MLflow's ``mlflow.models`` for scripts that build a signature before logging a model.

``infer_signature(model_input, model_output)`` gives the schema of both, as Shipyard records a version's signature
(dtype, shape, a DataFrame's columns), and keeps the first rows of ``model_input``: Shipyard reads a version's
signature from golden examples, so ``log_model(..., signature=sig)`` without ``input_example`` takes those rows as
the examples (the model's own answers on them are stored beside them, and ``shipyard verify`` checks them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidInputError

EXAMPLE_ROWS = 5  # rows of the input a signature keeps, as golden examples when log_model gets no input_example


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """The schema of a model's input and output (``inputs``, ``outputs``: dtype, shape with -1 for the batch,
    columns), and ``example``: the first rows of the input it was inferred from."""

    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    example: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs, "params": self.params}


def infer_signature(model_input: Any, model_output: Any = None, params: dict[str, Any] | None = None) -> ModelSignature:
    """The signature of a model that takes ``model_input`` and answers ``model_output`` (as MLflow's)."""
    from shipyard.wiring import data_schema

    if model_input is None:
        raise InvalidInputError("infer_signature needs the model's input: pass a few rows of the training data")
    try:
        inputs = data_schema(model_input)
        outputs = data_schema(model_output) if model_output is not None else None
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"infer_signature cannot read that data ({exc}): pass an array, a list of rows, "
                                "a DataFrame or a sparse matrix") from exc
    rows = model_input.iloc[:EXAMPLE_ROWS] if hasattr(model_input, "iloc") else model_input[:EXAMPLE_ROWS]
    return ModelSignature(inputs, outputs, dict(params) if params else None, rows)


def examples_of(signature: Any, input_example: Any) -> Any:
    """The golden examples ``log_model``/``save_model`` keep: ``input_example``, else the rows a signature from
    ``infer_signature`` kept; any other signature alone is refused, with what to do instead."""
    if input_example is not None or signature is None:
        return input_example
    if isinstance(signature, ModelSignature) and signature.example is not None:
        return signature.example
    raise InvalidInputError("Shipyard reads a model's signature from example rows: pass input_example= (a few rows "
                            "of the training data), or a signature from shipyard.models.infer_signature(X, y)")
