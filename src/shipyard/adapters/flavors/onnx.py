"""ONNX models through onnxruntime (CPU): a format that carries no code, so it is safe to load."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.adapters.flavors import model_file, require, tensors
from shipyard.core.registry.trust import TrustSet
from shipyard.errors import InvalidInputError

FILE = "model.onnx"
_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
           "tensor(int32)": "int32", "tensor(bool)": "bool"}


def _ort() -> Any:
    return require("onnxruntime", "ONNX models", "onnx")


class OnnxFlavor:
    name = "onnx"

    def save(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        """``model`` is ONNX bytes, a path to a .onnx file, or an ``onnx.ModelProto``."""
        if hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        elif isinstance(model, bytes | bytearray):
            data = bytes(model)
        elif isinstance(model, str | Path) and Path(model).is_file():
            data = Path(model).read_bytes()
        else:
            raise InvalidInputError("an ONNX model is given as bytes, a .onnx file path, or an onnx.ModelProto")
        (folder / FILE).write_bytes(data)
        session = self._session(folder / FILE)  # refuse a file onnxruntime cannot run, before registering it
        return {"file": FILE, "inputs": [i.name for i in session.get_inputs()],
                "outputs": [o.name for o in session.get_outputs()]}

    @staticmethod
    def _session(source: Any) -> Any:
        """An inference session from a path, ONNX bytes or a ModelProto."""
        ort = _ort()
        if hasattr(source, "SerializeToString"):
            source = source.SerializeToString()
        try:
            return ort.InferenceSession(source if isinstance(source, bytes) else str(source),
                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for invalid models
            raise InvalidInputError(f"onnxruntime cannot load this model: {str(exc).splitlines()[0]}") from exc

    def requires(self, folder: Path, meta: Mapping[str, Any]) -> TrustSet:
        model_file(folder, meta, FILE)
        return TrustSet()  # an ONNX graph carries no code: nothing to trust

    def packages(self, meta: Mapping[str, Any]) -> tuple[str, ...]:
        return ("onnxruntime", "numpy")

    def load(self, folder: Path, meta: Mapping[str, Any], trusted: TrustSet) -> Any:
        return self._session(model_file(folder, meta, FILE))

    def predict(self, model: Any, inputs: Any) -> Any:
        if not hasattr(model, "get_inputs"):  # the object given to save_model, before it became a session
            model = self._session(model)
        first = model.get_inputs()[0]
        array = tensors.as_array(inputs).astype(_DTYPES.get(first.type, "float32"), copy=False)
        return model.run(None, {first.name: array})[0]

    def to_json(self, data: Any) -> Any:
        return tensors.to_json(data)

    def schema(self, data: Any) -> dict[str, Any]:
        return tensors.schema(data)

FLAVOR = OnnxFlavor
