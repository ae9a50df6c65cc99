"""PyTorch models through the registry: TorchScript and state_dict + class, on the CPU build."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

import shipyard
from shipyard.errors import InvalidInputError
from tests.conftest import cli_env, serving

torch = pytest.importorskip("torch")
from tests.torch_models import TinyNet  # noqa: E402

X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)


def _net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(features=4, classes=3)


def test_state_dict_and_torchscript_round_trip(project) -> None:  # type: ignore[no-untyped-def]
    net = _net()
    expected = net(torch.as_tensor(X)).detach().numpy()
    with shipyard.start_run():
        v1 = shipyard.log_model(net, "tiny-torch", flavor="torch", examples=X[:2],
                                init_kwargs={"features": 4, "classes": 3})
        v2 = shipyard.log_model(torch.jit.script(net), "tiny-torch", flavor="torch", examples=X[:2])
    for ref in (f"tiny-torch@{v1.version}", f"tiny-torch@{v2.version}"):
        loaded = shipyard.load_model(ref)
        np.testing.assert_allclose(loaded(torch.as_tensor(X)).detach().numpy(), expected, rtol=1e-6)
    assert shipyard.get_model_version("tiny-torch@1").signature["outputs"]["shape"] == [-1, 3]


def test_a_local_class_is_refused_with_a_way_out(project) -> None:  # type: ignore[no-untyped-def]
    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with shipyard.start_run(), pytest.raises(InvalidInputError, match=r"torch\.jit\.script"):
        shipyard.log_model(Local(), "local", flavor="torch")


def test_a_torch_model_is_served(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), PYTHONPATH=str(repo))
    code = ("import torch, shipyard, numpy as np\nfrom tests.torch_models import TinyNet\ntorch.manual_seed(0)\n"
            "with shipyard.start_run():\n"
            "    shipyard.log_model(TinyNet(), 'served-torch', flavor='torch', examples=np.zeros((1, 4), 'float32'))\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    with serving(env, "served-torch") as url:
        r = httpx.post(f"{url}/v2/models/served-torch/infer", json={"inputs": [
            {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X[:2].tolist()}]})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == [2, 3]
        np.testing.assert_allclose(np.asarray(out["data"]).reshape(2, 3),
                                   _net()(torch.as_tensor(X[:2])).detach().numpy(), rtol=1e-5)


def test_an_onnx_export_is_registered_loaded_and_served_by_onnxruntime(project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net = _net()
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():  # the TorchScript-based exporter needs no onnxscript; torch calls it legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 4),), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    with shipyard.start_run():
        v = shipyard.log_model(path, "tiny-onnx", flavor="onnx", examples=X[:2])
    session = shipyard.load_model(f"tiny-onnx@{v.version}")
    got = session.run(None, {"x": X})[0]
    np.testing.assert_allclose(got, net(torch.as_tensor(X)).detach().numpy(), rtol=1e-5, atol=1e-6)
    with shipyard.start_run(), pytest.raises(InvalidInputError, match="onnxruntime cannot load"):
        shipyard.log_model(b"not a model", "broken-onnx", flavor="onnx")
