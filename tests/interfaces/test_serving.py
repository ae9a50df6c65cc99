"""The model server over real HTTP on 127.0.0.1: OIP v2, /predict, errors, metrics."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.conftest import cli_env, register_constant, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serve") / ".shipyard"
    env = cli_env(SHIPYARD_HOME=str(home))
    script = ("import shipyard\nfrom sklearn.datasets import load_iris\n"
              "from sklearn.linear_model import LogisticRegression\n"
              "x, y = load_iris(return_X_y=True)\nwith shipyard.start_run():\n"
              "    v = shipyard.log_model(LogisticRegression(max_iter=300).fit(x, y), 'iris', examples=x[:5])\n"
              "shipyard.set_alias('iris', 'production', v.version)\n")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    with serving(env, "iris@production") as url:
        yield url


def _rows(n: int = 3) -> list[list[float]]:
    x, _ = load_iris(return_X_y=True)
    return x[:n].tolist()


def _expected(n: int = 3) -> list[int]:
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=300).fit(x, y).predict(x[:n]).tolist()


def test_health_and_metadata(server: str) -> None:
    assert httpx.get(f"{server}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server}/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    meta = httpx.get(f"{server}/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"] and meta["inputs"][0]["shape"] == [-1, 4]
    assert httpx.get(f"{server}/v2/models/other").status_code == 404


def test_oip_infer_matches_the_model(server: str) -> None:
    rows = _rows()
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": rows}]}
    r = httpx.post(f"{server}/v2/models/iris/infer", json=body)
    assert r.status_code == 200 and r.headers["x-model-version"] == "1"
    out = r.json()
    assert out["id"] == "r1" and out["model_name"] == "iris"
    assert out["outputs"][0]["shape"] == [3] and out["outputs"][0]["data"] == _expected()
    flat = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": [v for row in rows for v in row]}]}
    assert httpx.post(f"{server}/v2/models/iris/versions/1/infer", json=flat).json()["outputs"] == out["outputs"]
    assert httpx.post(f"{server}/v2/models/iris/versions/7/infer", json=flat).status_code == 404


def test_plain_predict(server: str) -> None:
    r = httpx.post(f"{server}/predict", json={"instances": _rows(2)})
    assert r.status_code == 200
    assert r.json() == {"predictions": _expected(2), "model": "iris", "version": "1"}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/predict", {"instances": []}, "instances"),
    ("/predict", {"instances": [[1, 2, 3, 4], [1, 2]]}, "same number of features"),
    ("/predict", {"instances": [["a", 2, 3, 4]]}, "instances[0]"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2]}]},
     "inputs[0].data"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": "1x4", "datatype": "FP64", "data": [1]}]},
     "inputs[0].shape"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]},
     "inputs[0].datatype"),
    ("/v2/models/iris/infer", [1, 2], "request body"),
])
def test_bad_payloads_get_400_naming_the_field(server: str, path: str, body: object, field: str) -> None:
    r = httpx.post(f"{server}{path}", json=body)
    assert r.status_code == 400 and field in r.json()["error"]
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200  # still serving


def test_rows_of_the_wrong_width_get_422(server: str) -> None:
    r = httpx.post(f"{server}/predict", json={"instances": [[1.0, 2.0]]})
    assert r.status_code == 422 and "the model takes 4" in r.json()["error"]
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
    r = httpx.post(f"{server}/v2/models/iris/infer", json=body)
    assert r.status_code == 422 and r.json()["error"].startswith("inputs[0].shape")


FLAKY = """
class Flaky:
    def load(self, folder):
        self.loaded_from = folder.name

    def predict(self, rows):
        if rows[0][0] < 0:
            raise ValueError("negative input")
        return [row[0] * 2 for row in rows]
"""


def test_a_python_model_that_raises_fails_only_that_request(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(FLAKY)
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), PYTHONPATH=str(tmp_path))
    register = ("import shipyard, flaky\nwith shipyard.start_run():\n"
                "    shipyard.log_model(flaky.Flaky(), 'flaky', flavor='python', examples=[[1.0, 2.0]])\n")
    subprocess.run([sys.executable, "-c", register], env=env, check=True, timeout=60)
    with serving(env, "flaky") as url:
        ok = httpx.post(f"{url}/predict", json={"instances": [[1.5, 0.0]]})
        assert ok.status_code == 200 and ok.json()["predictions"] == [3.0]
        bad = httpx.post(f"{url}/predict", json={"instances": [[-1.0, 0.0]]}, headers={"x-request-id": "abc"})
        assert bad.status_code == 500 and bad.json()["request_id"] == "abc"
        assert "negative input" in bad.json()["error"]
        assert httpx.post(f"{url}/predict", json={"instances": [[2.0, 0.0]]}).json()["predictions"] == [4.0]


def test_not_json_and_too_large(server: str) -> None:
    assert httpx.post(f"{server}/predict", content=b"{nope").status_code == 400
    big = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 900_000 + b"[1,2,3,4]]}"
    assert httpx.post(f"{server}/predict", content=big, timeout=30).status_code == 413


def test_metrics_count_requests_by_outcome(server: str) -> None:
    httpx.post(f"{server}/predict", json={"instances": _rows(1)})
    text = httpx.get(f"{server}/metrics").text
    ok = [line for line in text.splitlines()
          if line.startswith('shipyard_inference_requests_total{model="iris",outcome="ok",version="1"}')]
    assert ok and float(ok[0].split()[-1]) >= 1
    assert "shipyard_inference_request_duration_seconds_bucket" in text
    assert 'shipyard_model_load_seconds{model="iris",version="1"}' in text


def test_inference_log_lands_in_the_store_and_api_key_is_required(tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), SERVE_KEY="s3cret")
    register_constant(env, "logged", 7)
    with serving(env, "logged", "--log-payloads", "--api-key", "env:SERVE_KEY") as url:
        assert httpx.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]}).status_code == 401
        wrong = httpx.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401
        for i in range(5):
            r = httpx.post(f"{url}/predict", json={"instances": [[float(i), 2.0]]},
                           headers={"authorization": "Bearer s3cret", "x-request-id": f"req-{i}"})
            assert r.status_code == 200
    runs = json.loads(subprocess.run([sys.executable, "-m", "shipyard", "runs", "list", "--json"], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    serve_run = next(r for r in runs if r["experiment"] == "serving")
    assert serve_run["status"] == "finished"
    logs = [a for a in serve_run["artifacts"] if a["path"].startswith("inference-logs/")]
    assert len(logs) == 1
    digest = logs[0]["digest"]
    blob = (tmp_path / ".shipyard" / "objects" / "sha256" / digest[7:9] / digest[9:]).read_text()
    records = [json.loads(line) for line in blob.splitlines()]
    ok = [r for r in records if r["outcome"] == "ok"]
    assert [r["request_id"] for r in ok] == [f"req-{i}" for i in range(5)]
    assert ok[3]["inputs"] == [[3.0, 2.0]] and ok[3]["outputs"] == [7] and ok[3]["version"] == "1"


def _tensor(datatype: str, data: list[object], shape: list[int] | None = None) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": shape or [1, 4], "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/predict", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("/v2/models/iris/infer", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ("/v2/models/iris/infer", json.dumps(_tensor("FP64", [functools.reduce(lambda v, _: [v], range(200), 1.0)],
                                                 [1, 1])).encode(), "nested deeper than 32 levels"),
    ("/v2/models/iris/infer", json.dumps(_tensor("INT8", [100000, 1, 2, 3])).encode(), "inputs[0].data[0]"),
    ("/v2/models/iris/infer", json.dumps(_tensor("UINT8", [1, -5, 2, 3])).encode(), "inputs[0].data[1]"),
    ("/v2/models/iris/infer", json.dumps(_tensor("INT64", [1, 2, 2**70, 3])).encode(), "out of range for INT64"),
    ("/v2/models/iris/infer", b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
                              b'"data": [1, 2, 3, 1' + b"0" * 400 + b"]}]}", "out of range for FP64"),
    ("/predict", b'{"instances": [[1, 2, 3, 1' + b"0" * 400 + b"]]}", "instances[0]"),
], ids=["deep-predict", "deep-infer", "deep-tensor", "int8", "uint8", "int64", "fp64", "huge-predict"])
def test_input_edges_get_400_naming_the_problem(server: str, path: str, body: bytes, field: str) -> None:
    r = httpx.post(f"{server}{path}", content=body, timeout=30)
    assert r.status_code == 400 and field in r.json()["error"], r.text
    assert httpx.get(f"{server}/v2/health/live").status_code == 200


def test_api_key_scheme_and_what_it_guards(tmp_path: Path) -> None:
    """Bearer in any case or x-api-key; no bare key; metadata and /openapi.json behind the key; --public opens."""
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), SERVE_KEY="s3cret")
    register_constant(env, "guarded", 7)
    row = {"instances": [[1.0, 2.0]]}
    with serving(env, "guarded", "--no-log", "--api-key", "env:SERVE_KEY") as url:
        for header in ("Bearer s3cret", "bearer s3cret", "BEARER  s3cret"):
            assert httpx.post(f"{url}/predict", json=row, headers={"authorization": header}).status_code == 200
        assert httpx.post(f"{url}/predict", json=row, headers={"x-api-key": "s3cret"}).status_code == 200
        for header in ("s3cret", "Basic s3cret", "Bearer", "Bearer wrong", "Token s3cret"):
            assert httpx.post(f"{url}/predict", json=row, headers={"authorization": header}).status_code == 401
        for path in ("/v2", "/v2/models/guarded", "/openapi.json", "/v2/models/guarded/versions/1/infer"):
            r = httpx.get(f"{url}{path}")
            assert r.status_code == 401 and "API key" in r.json()["error"], path
        assert httpx.get(f"{url}/v2/models/guarded", headers={"authorization": "Bearer s3cret"}).status_code == 200
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/guarded/ready", "/metrics"):
            assert httpx.get(f"{url}{path}").status_code == 200, path
    with serving(env, "guarded", "--no-log", "--api-key", "env:SERVE_KEY", "--public", "none") as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/v2/health/live").status_code == 401
        assert httpx.get(f"{url}/v2/health/live", headers={"x-api-key": "s3cret"}).status_code == 200
    refused = subprocess.run([sys.executable, "-m", "shipyard", "serve", "guarded", "--api-key", "env:SERVE_KEY",
                              "--public", "health,secrets"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "unknown secrets" in refused.stderr and "Traceback" not in refused.stderr
    keyless = subprocess.run([sys.executable, "-m", "shipyard", "serve", "guarded", "--public", "none"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert keyless.returncode == 2 and "there is no key" in keyless.stderr and "Traceback" not in keyless.stderr


_X4 = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("POST", "/v2/models/iris/infer", b"{nope", 400, "not valid JSON"),
    ("POST", "/v2/models/iris/infer", b'{"id": "r1"}', 400, "inputs: must be a non-empty list"),
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [{**_X4, "shape": [2, 4]}]}).encode(), 400,
     "inputs[0].data: has 4 elements but shape [2, 4] needs 8"),
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [{**_X4, "datatype": "FP128"}]}).encode(), 400,
     "inputs[0].datatype"),
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [{**_X4, "datatype": "INT64"}]}).encode(), 400,
     "inputs[0].data[0]"),
    ("POST", "/predict", b'{"instances": [[1, 2, 3, 4], [1, 2]]}', 400, "same number of features"),
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [{**_X4, "shape": [1, 3], "data": [1, 2, 3]}]}).encode(),
     422, "rows have 3 features, the model takes 4"),
    ("POST", "/predict", b'{"instances": [[1.0, 2.0]]}', 422, "the model takes 4"),
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [_X4, _X4]}).encode(), 422,
     "iris takes exactly one input tensor, not 2"),
    ("POST", "/v2/models/iris/infer", json.dumps(_tensor("BYTES", ["a", "b", "c", "d"])).encode(), 422,
     "BYTES is not supported by iris"),
    ("POST", "/v2/models/other/infer", json.dumps({"inputs": [_X4]}).encode(), 404, "unknown model 'other'"),
    ("POST", "/v2/models/iris/versions/7/infer", json.dumps({"inputs": [_X4]}).encode(), 404, "version 7"),
    ("GET", "/v2/models/iris/versions/7", b"", 404, "version 7"),
    ("GET", "/v2/nowhere", b"", 404, "Not Found"),
    ("GET", "/v2/models/iris/infer", b"", 405, "Method Not Allowed"),
], ids=["not-json", "no-inputs", "data-vs-shape", "unknown-datatype", "data-vs-datatype", "ragged-rows",
        "wrong-width", "wrong-width-predict", "two-tensors", "bytes-for-numbers", "unknown-model",
        "unknown-version", "unknown-version-metadata", "unknown-path", "wrong-method"])
def test_each_kind_of_bad_request_gets_its_status_and_a_json_error(server: str, method: str, path: str,
                                                                    body: bytes, status: int, says: str) -> None:
    """The table the README gives: 400 malformed, 422 valid but not for this model, 404, 405, 413."""
    r = httpx.request(method, f"{server}{path}", content=body or None, headers={"x-request-id": "bad-1"})
    assert r.status_code == status and says in r.json()["error"], r.text
    assert r.json()["request_id"] == "bad-1"
    if status == 405:
        assert "POST" in r.headers["allow"]
