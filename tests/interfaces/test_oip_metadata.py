"""OIP model metadata, the stored signature and the inference response agree, for every flavor.

Each model is registered with examples (so it has a signature), served by a real ``shipyard serve``
on 127.0.0.1, asked for its metadata (``/v2/models/NAME`` and ``/v2/models/NAME/versions/1``) and
then for an inference: names, datatypes and shapes must be the same three times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.core.serving import oip
from tests.conftest import cli_env, serving

REPO = Path(__file__).resolve().parents[2]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ONNX = HAS_TORCH and all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))

LABELER = """
class Labeler:
    def predict(self, rows):
        return ["big" if row[0] > 5 else "small" for row in rows]
"""

REGISTER = """
import json, sys, warnings
import numpy as np
import shipyard
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
import labeler

x, y = load_iris(return_X_y=True)
names = np.asarray(load_iris().target_names)[y]
with shipyard.start_run():
    shipyard.log_model(LogisticRegression(max_iter=300).fit(x, y), "classifier", examples=x[:5])
    shipyard.log_model(LogisticRegression(max_iter=300).fit(x, names), "named-classifier", examples=x[:5])
    shipyard.log_model(LinearRegression().fit(x[:, :3], x[:, 3]), "regressor", examples=x[:5, :3])
    shipyard.log_model(labeler.Labeler(), "python-labeler", flavor="python", examples=x[:5].tolist())
    if "torch" in sys.argv:
        import torch
        from tests.torch_models import TinyNet
        torch.manual_seed(0)
        net = TinyNet(features=4, classes=3)
        shipyard.log_model(net, "torch-net", flavor="torch", examples=x[:5].astype("float32"),
                           init_kwargs={"features": 4, "classes": 3})
    if "onnx" in sys.argv:
        path = sys.argv[1] + "/net.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (torch.zeros(1, 4),), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
        shipyard.log_model(path, "onnx-net", flavor="onnx", examples=x[:5].astype("float32"))
models = ["classifier", "named-classifier", "regressor", "python-labeler"] + [
    m for m in ("torch-net", "onnx-net") if m.split("-")[0] in sys.argv]
with open(sys.argv[1] + "/signatures.json", "w") as f:
    json.dump({m: shipyard.get_model_version(m + "@1").signature for m in models}, f)
"""

# what each flavor's output is, independently of the code under test: a regression check on the mapping
MODELS = [
    pytest.param("classifier", 4, "FP64", "INT64", [-1], id="sklearn-classifier"),
    pytest.param("named-classifier", 4, "FP64", "BYTES", [-1], id="sklearn-classifier-strings"),
    pytest.param("regressor", 3, "FP64", "FP64", [-1], id="sklearn-regressor"),
    pytest.param("python-labeler", 4, "FP64", "BYTES", [-1], id="python"),
    pytest.param("torch-net", 4, "FP32", "FP32", [-1, 3], id="torch",
                 marks=pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")),
    pytest.param("onnx-net", 4, "FP32", "FP32", [-1, 3], id="onnx",
                 marks=pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxruntime are not installed")),
]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, Any]]:
    """(environment, signatures by model name) of a store holding one model of each flavor."""
    tmp = tmp_path_factory.mktemp("oip")
    (tmp / "labeler.py").write_text(LABELER)
    path = os.pathsep.join([str(tmp), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = cli_env(SHIPYARD_HOME=str(tmp / ".shipyard"), PYTHONPATH=path)
    flags = [f for f, present in (("torch", HAS_TORCH), ("onnx", HAS_ONNX)) if present]
    subprocess.run([sys.executable, "-c", REGISTER, str(tmp), *flags], env=env, check=True, timeout=300)
    return env, json.loads((tmp / "signatures.json").read_text())


def _agrees(response_shape: list[int], declared: list[int]) -> bool:
    return len(response_shape) == len(declared) and all(d in (-1, r) for r, d in zip(response_shape, declared,
                                                                                       strict=True))


@pytest.mark.parametrize(("name", "width", "input_type", "output_type", "output_shape"), MODELS)
def test_metadata_signature_and_response_agree(registered: tuple[dict[str, str], dict[str, Any]], name: str,
                                               width: int, input_type: str, output_type: str,
                                               output_shape: list[int]) -> None:
    env, signatures = registered
    signature = signatures[name]
    # the signature, as stored
    assert oip.signature_datatype(signature["inputs"]) == input_type
    assert oip.signature_datatype(signature["outputs"]) == output_type
    assert signature["outputs"]["shape"] == output_shape and signature["inputs"]["shape"] == [-1, width]
    with serving(env, name) as url:
        meta = httpx.get(f"{url}/v2/models/{name}").json()
        assert httpx.get(f"{url}/v2/models/{name}/versions/1").json() == meta
        assert httpx.get(f"{url}/v2/models/{name}/versions/9").status_code == 404
        assert httpx.get(f"{url}/v2/models/{name}/versions/1/ready").json() == {"name": name, "ready": True}
        # the metadata, from the signature
        assert meta["name"] == name and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": oip.INPUT_NAME, "datatype": input_type, "shape": [-1, width]}]
        assert meta["outputs"][0] == {"name": oip.OUTPUT_NAME, "datatype": output_type, "shape": output_shape}
        # a classifier also answers probabilities, one column per class, when a request names them
        proba = [{"name": oip.PROBA_NAME, "datatype": "FP64", "shape": [-1, 3]}] if "classifier" in name else []
        assert meta["outputs"][1:] == proba
        # the response, as the metadata says
        rows = [[5.1, 3.5, 1.4, 0.2, 0.0][:width], [6.7, 3.0, 5.2, 2.3, 0.0][:width]]
        body = {"inputs": [{"name": "x", "shape": [2, width], "datatype": input_type, "data": rows}]}
        r = httpx.post(f"{url}/v2/models/{name}/infer", json=body)
        assert r.status_code == 200, r.text
        (out,) = r.json()["outputs"]
        declared = meta["outputs"][0]
        assert out["name"] == declared["name"] and out["datatype"] == declared["datatype"]
        assert _agrees(out["shape"], declared["shape"]) and out["shape"][0] == 2
        assert len(out["data"]) == 2 * (out["shape"][1] if len(out["shape"]) > 1 else 1)
        kinds = {"INT64": int, "FP64": float, "FP32": float, "BYTES": str}
        assert all(isinstance(v, kinds[output_type]) and not isinstance(v, bool) for v in out["data"])


def test_the_one_mapping_from_numpy_dtypes() -> None:
    assert [oip.datatype(d) for d in ("int64", "float32", "<U6", "object", "bool", "uint8", "|S3")] == \
        ["INT64", "FP32", "BYTES", "BYTES", "BOOL", "UINT8", "BYTES"]
    assert oip.datatype("complex128") is None and oip.datatype(None) is None
    # a response carries the declared datatype when the values are of its kind, else their own
    assert oip.output_tensor("predict", [[1.0, 2.0]], "FP32")["datatype"] == "FP32"
    assert oip.output_tensor("predict", ["a"], "FP64")["datatype"] == "BYTES"
    assert oip.output_tensor("predict", [[[1, 2], [3, 4]]], "INT64")["shape"] == [1, 2, 2]
