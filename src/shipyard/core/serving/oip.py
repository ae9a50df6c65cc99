"""Open Inference Protocol v2 payloads: read infer requests, write infer responses (no I/O, no numpy).

A request's tensors arrive as JSON (`{"name", "shape", "datatype", "data"}`); a wrong field is an
``InvalidInputError`` whose message names it (``inputs[0].shape``), which the server answers 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shipyard.errors import InvalidInputError

DATATYPES = frozenset({"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                       "FP16", "FP32", "FP64", "BYTES"})
MAX_ELEMENTS = 10_000_000
MAX_DEPTH = 32  # nested lists in a tensor's data: more than any real shape, far less than a stack overflow
MAX_DIMS = MAX_DEPTH  # a shape's length (numpy's own limit is 32 or 64): multiplying out a few million
# dimensions costs minutes of CPU under the GIL, and a product past 4,300 digits cannot even be printed
INT_RANGES = {f"{kind}{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if kind == "INT" else (0, 2 ** bits - 1)
              for kind in ("INT", "UINT") for bits in (8, 16, 32, 64)}
FLOAT_MAX = {"FP16": 65504.0, "FP32": 3.4028234663852886e38, "FP64": 1.7976931348623157e308}


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]  # flat, row-major

    def rows(self) -> list[list[Any]]:
        """The tensor as rows (first dimension) of flat features: what tabular models take."""
        if len(self.shape) == 1:
            return [[v] for v in self.data]
        width = math.prod(self.shape[1:])
        return [self.data[i * width:(i + 1) * width] for i in range(self.shape[0])]


def parse_infer(body: Any) -> tuple[str | None, list[Tensor]]:
    """(request id, input tensors) of an OIP v2 infer request body."""
    if not isinstance(body, dict):
        raise InvalidInputError("request body: expected a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("id: must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("inputs: must be a non-empty list of tensors")
    return request_id, [_tensor(t, i) for i, t in enumerate(inputs)]


def _tensor(t: Any, i: int) -> Tensor:
    where = f"inputs[{i}]"
    if not isinstance(t, dict):
        raise InvalidInputError(f"{where}: must be an object with name, shape, datatype and data")
    name, shape, datatype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{where}.name: must be a non-empty string")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise InvalidInputError(f"{where}.shape: must be a non-empty list of non-negative integers")
    if len(shape) > MAX_DIMS:
        raise InvalidInputError(f"{where}.shape: has {len(shape)} dimensions; the limit is {MAX_DIMS}")
    if max(shape) > MAX_ELEMENTS:
        raise InvalidInputError(f"{where}.shape: a dimension is larger than the limit of {MAX_ELEMENTS} elements")
    if datatype not in DATATYPES:
        raise InvalidInputError(f"{where}.datatype: must be one of {', '.join(sorted(DATATYPES))}")
    if shape[0] < 1 or (len(shape) > 1 and math.prod(shape[1:]) < 1):
        raise InvalidInputError(f"{where}.shape: needs at least one row of at least one value, not {shape}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise InvalidInputError(f"{where}.shape: {count} elements is more than the limit of {MAX_ELEMENTS}")
    if not isinstance(data, list):
        raise InvalidInputError(f"{where}.data: must be a list")
    flat = _flatten(data, where)
    if len(flat) != count:
        raise InvalidInputError(f"{where}.data: has {len(flat)} elements but shape {shape} needs {count}")
    check = _CHECKS[datatype]
    if not all(check(v) for v in flat):
        bad = next(i for i, v in enumerate(flat) if not check(v))
        raise InvalidInputError(f"{where}.data[{bad}]: {_why(flat[bad], datatype)}")
    return Tensor(name, tuple(shape), datatype, flat)


def _flatten(data: list[Any], where: str, depth: int = 1) -> list[Any]:
    if not data or not isinstance(data[0], list):
        if any(isinstance(v, list | dict) for v in data):
            raise InvalidInputError(f"{where}.data: mixes nested lists and values")
        return data
    if depth >= MAX_DEPTH:
        raise InvalidInputError(f"{where}.data: nested deeper than {MAX_DEPTH} levels")
    out: list[Any] = []
    for row in data:
        if not isinstance(row, list):
            raise InvalidInputError(f"{where}.data: mixes nested lists and values")
        out.extend(_flatten(row, where, depth + 1))
    return out


def is_number(v: Any, limit: float = FLOAT_MAX["FP64"]) -> bool:
    """A JSON number (not a bool) whose magnitude a float of range ``limit`` can hold."""
    if type(v) is float:
        return -limit <= v <= limit  # false for nan and infinities too
    return type(v) is int and -limit <= v <= limit


def _integer_in(low: int, high: int) -> Any:
    return lambda v: type(v) is int and low <= v <= high


def _float_within(limit: float) -> Any:
    return lambda v: is_number(v, limit)


_CHECKS: dict[str, Any] = {
    "BOOL": lambda v: isinstance(v, bool),
    "BYTES": lambda v: isinstance(v, str),
    **{dtype: _float_within(limit) for dtype, limit in FLOAT_MAX.items()},
    **{dtype: _integer_in(low, high) for dtype, (low, high) in INT_RANGES.items()},
}


def _why(value: Any, datatype: str) -> str:
    """Why ``value`` is not a ``datatype`` element, in words."""
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    if datatype in INT_RANGES and type(value) is int:
        low, high = INT_RANGES[datatype]
        return f"{shown} is out of range for {datatype} ({low} to {high})"
    if datatype in FLOAT_MAX and type(value) in (int, float) and value == value:
        return f"{shown} is out of range for {datatype} (finite, at most {FLOAT_MAX[datatype]:.6g} in magnitude)"
    kind = {"BOOL": "true or false", "BYTES": "a string"}.get(
        datatype, "an integer" if datatype in INT_RANGES else "a finite number")
    return f"{shown} is not {datatype} ({kind})"


INPUT_NAME = "input-0"  # the name metadata gives the one input tensor (a request may name it as it likes)
OUTPUT_NAME = "predict"  # the name of the one output tensor, in metadata and in every response
PROBA_NAME = "probabilities"  # predict_proba's answer, for a model that has one, when a request names it
OUTPUT_NAMES = (OUTPUT_NAME, PROBA_NAME)
MAX_OUTPUTS = 8
SPARSE_INPUTS = frozenset({"indptr", "indices", "values"})  # a sparse model's CSR parts, as three tensors
_NUMPY = {"bool": "BOOL", "float16": "FP16", "float32": "FP32", "float64": "FP64",
          **{f"{kind.lower()}{bits}": f"{kind}{bits}" for kind in ("INT", "UINT") for bits in (8, 16, 32, 64)}}
_KINDS: dict[str, Any] = {"BOOL": (bool,), "BYTES": (str,), **{d: (int,) for d in INT_RANGES},
                          **{d: (float, int) for d in FLOAT_MAX}}


def datatype(dtype: object) -> str | None:
    """The OIP datatype of a signature's numpy dtype name (``int64`` -> ``INT64``); None if there is none.

    The one mapping from signatures to OIP: model metadata and inference responses both go through it.
    Strings and Python objects (``<U6``, ``object``, ``str``) are BYTES.
    """
    if not isinstance(dtype, str) or not dtype:
        return None
    name = dtype.lstrip("<>|=")
    if name in ("object", "str", "O") or name.startswith(("U", "S", "str")):
        return "BYTES"
    return _NUMPY.get(name)


def signature_datatype(entry: object) -> str | None:
    """The OIP datatype of a signature entry (``{"dtype": ..., "shape": ...}``), None if it records none."""
    return datatype(entry.get("dtype")) if isinstance(entry, dict) else None


def signature_shape(entry: object, default: list[int]) -> list[int]:
    """The shape a signature entry records (-1 for the batch dimension), or ``default``."""
    shape = entry.get("shape") if isinstance(entry, dict) else None
    if isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return list(shape)
    return default


def model_metadata(name: str, versions: list[str], platform: str, signature: dict[str, object],
                   input_datatype: str, probabilities: int | None = None) -> dict[str, Any]:
    """OIP model metadata (``GET /v2/models/NAME``), from the signature recorded at registration.

    A version registered without examples has no signature: its output is then reported as FP64 of
    shape [-1], and responses carry the datatype of the values the model returns. ``probabilities``: the
    number of classes (-1 if unknown) of a model that answers probabilities, listed as a second output.
    A sparse model's input says so in its ``parameters`` (``{"sparse": true}``): send its CSR parts as
    three tensors ``indptr``, ``indices`` and ``values``, or dense rows.
    """
    inputs, outputs = signature.get("inputs"), signature.get("outputs")
    entry: dict[str, Any] = {"name": INPUT_NAME, "datatype": input_datatype,
                             "shape": signature_shape(inputs, [-1, -1])}
    if isinstance(inputs, dict) and inputs.get("sparse") is True:
        entry["parameters"] = {"sparse": True, "format": "csr"}
    listed = [{"name": OUTPUT_NAME, "datatype": signature_datatype(outputs) or "FP64",
               "shape": signature_shape(outputs, [-1])}]
    if probabilities is not None:
        listed.append({"name": PROBA_NAME, "datatype": "FP64", "shape": [-1, probabilities]})
    return {"name": name, "versions": versions, "platform": platform, "inputs": [entry], "outputs": listed}


def parse_outputs(body: Any) -> tuple[str, ...]:
    """The output tensors an infer request asks for (``"outputs": [{"name": ...}]``), in order, each once;
    ``predict`` alone when it names none."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if outputs is None:
        return (OUTPUT_NAME,)
    if not isinstance(outputs, list) or not outputs or len(outputs) > MAX_OUTPUTS:
        raise InvalidInputError(f"outputs: must be a list of 1 to {MAX_OUTPUTS} objects such as "
                                f'{{"name": "{PROBA_NAME}"}}')
    names: list[str] = []
    for i, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUT_NAMES:
            raise InvalidInputError(f"outputs[{i}].name: must be one of {', '.join(OUTPUT_NAMES)}")
        if name not in names:
            names.append(name)
    return tuple(names)


def output_tensor(name: str, values: list[Any], declared: str | None = None) -> dict[str, Any]:
    """One output tensor from a model's predictions (nested lists, one per row).

    ``declared`` is the datatype the signature gives the output (see ``datatype``): the tensor carries
    it when the values are of its kind, else the datatype of the values themselves.
    """
    shape, flat = _shape_and_flat(values)
    if declared is None or (flat and not isinstance(flat[0], _KINDS.get(declared, ()))) \
            or (flat and isinstance(flat[0], bool) and declared != "BOOL"):
        declared = datatype_of(flat)
    return {"name": name, "shape": shape, "datatype": declared, "data": flat}


def _shape_and_flat(values: list[Any]) -> tuple[list[int], list[Any]]:
    """The shape of nested lists (as deep as the first element goes) and their values, row-major."""
    shape = [len(values)]
    flat = values
    while flat and isinstance(flat[0], list):
        shape.append(len(flat[0]))
        flat = [v for row in flat for v in row]
    return shape, flat


def datatype_of(flat: list[Any]) -> str:
    """The datatype of values the signature says nothing about, read from the first one."""
    if not flat:
        return "FP64"
    v = flat[0]
    if isinstance(v, bool):
        return "BOOL"
    if isinstance(v, int):
        return "INT64"
    if isinstance(v, float):
        return "FP64"
    return "BYTES"
