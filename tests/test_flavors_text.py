"""Flavors for real inputs: a sparse TF-IDF model, a text Pipeline and a python model whose class lives in the
project, registered with examples, served over HTTP (/predict and OIP v2: BYTES, sparse rows, probabilities,
bad inputs), verified, loaded without PYTHONPATH, and a sparse model reproduced from its pipeline stage.

One server serves all three as versions of one model: text@1 the primary, sparse@2 a canary that a chosen
``x-request-id`` reaches (and OIP's versioned route), python@3 the shadow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from typer.testing import CliRunner

import shipyard
from shipyard.core.environments.image import answer_outputs, infer_request
from shipyard.core.registry.saving import save_model
from shipyard.core.serving.routing import in_canary
from shipyard.errors import InvalidInputError, UntrustedModelError
from shipyard.interfaces.cli.app import app
from shipyard.wiring import flavor, from_environment
from tests.conftest import cli_env, serving_process

runner = CliRunner()
TEXTS = ["a good movie", "a bad movie", "great film, good cast", "awful film", "good plot", "bad plot, bad cast",
         "great fun", "awful and bad", "good good good", "not great, bad"]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
ASKED = ["good fun film", "bad awful cast", "unknown words only"]
PACKAGE = "flavtext_keywords"  # the project's own package: never importable from the tests' sys.path
KEYWORDS = '''\
class KeywordModel:
    """Says 1 when a text has more good words than bad ones."""

    def __init__(self, good, bad):
        self.good, self.bad = set(good), set(bad)

    def score(self, text):
        words = text.replace(",", " ").split()
        return sum(w in self.good for w in words) - sum(w in self.bad for w in words)

    def predict(self, texts):
        return [int(self.score(t) > 0) for t in texts]

    def predict_proba(self, texts):
        return [[0.0, 1.0] if self.score(t) > 0 else [1.0, 0.0] for t in texts]
'''


@dataclass
class Served:
    root: Path
    env: dict[str, str]
    url: str
    text: Any
    sparse: Any
    vectorizer: TfidfVectorizer
    canary_id: str
    primary_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("texts")
    (root / "src" / PACKAGE).mkdir(parents=True)
    (root / "src" / PACKAGE / "__init__.py").write_text("from .model import KeywordModel\n")
    (root / "src" / PACKAGE / "model.py").write_text(KEYWORDS)
    (root / "src" / PACKAGE / "__pycache__").mkdir()
    (root / "src" / PACKAGE / "__pycache__" / "junk.pyc").write_bytes(b"not stored")
    cache = root / "cache"
    text = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)
    vectorizer = TfidfVectorizer().fit(TEXTS)
    x = vectorizer.transform(TEXTS)
    sparse = LogisticRegression().fit(x, LABELS)
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_CACHE_DIR", str(cache))
        mp.chdir(root)
        sys.path.insert(0, str(root / "src"))
        try:
            keywords = __import__(PACKAGE).KeywordModel(["good", "great", "fun"], ["bad", "awful"])
            client = shipyard.Client(root)
            try:
                run = client.start_run("train")
                client.log_model(run.id, text, "reviews", examples=TEXTS[:3])
                client.log_model(run.id, sparse, "reviews", examples=x[:4])
                client.log_model(run.id, keywords, "reviews", flavor="python", examples=TEXTS[:3],
                                 code_paths=[f"src/{PACKAGE}"])
            finally:
                client.close()
        finally:
            sys.path[:] = saved_path
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]
            os.chdir(saved_cwd)
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"), SHIPYARD_CACHE_DIR=str(cache))
    canary_id = next(f"r{i}" for i in range(1000) if in_canary(f"r{i}", 50))
    primary_id = next(f"r{i}" for i in range(1000) if not in_canary(f"r{i}", 50))
    with serving_process(env, "reviews@1", "--canary", "reviews@2=50", "--shadow", "reviews@3", "--poll", "0",
                         "--no-log") as (url, _):
        yield Served(root, env, url, text, sparse, vectorizer, canary_id, primary_id)


def _post(s: Served, path: str, body: Any, canary: bool = False, **params: str) -> httpx.Response:
    headers = {"x-request-id": s.canary_id if canary else s.primary_id}  # the canary share is sticky by this id
    return httpx.post(f"{s.url}{path}", json=body, headers=headers, params=params, timeout=30)


def test_signatures_say_text_and_sparse(served: Served) -> None:
    svc = from_environment(served.env, served.root)
    try:
        text, sparse, python = (svc.registry.resolve(f"reviews@{v}").signature["inputs"] for v in (1, 2, 3))
    finally:
        svc.close()
    assert text == {"dtype": "str", "shape": [-1]} and python == text
    width = len(served.vectorizer.vocabulary_)
    assert sparse == {"dtype": "float64", "shape": [-1, width], "sparse": True, "format": "csr"}


def test_skops_allowlist_takes_the_text_pipeline_and_the_sparse_model(served: Served, tmp_path: Path) -> None:
    from shipyard.core.registry.trust import TrustSet

    sklearn = flavor("sklearn")
    for i, model in enumerate((served.text, served.sparse)):
        folder = tmp_path / str(i)
        save_model(sklearn, model, folder)
        assert sklearn.requires(folder, {"file": "model.skops"}) == TrustSet()  # nothing beyond the allowlist
        loaded = sklearn.load(folder, {"file": "model.skops"}, TrustSet())
        rows = ASKED if i == 0 else served.vectorizer.transform(ASKED)
        assert loaded.predict(rows).tolist() == model.predict(rows).tolist()


def test_metadata_lists_bytes_inputs_and_the_probabilities_output(served: Served) -> None:
    meta = httpx.get(f"{served.url}/v2/models/reviews").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "probabilities"]
    assert meta["outputs"][1] == {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}
    sparse = httpx.get(f"{served.url}/v2/models/reviews/versions/2").json()
    assert sparse["inputs"][0]["datatype"] == "FP64" and sparse["inputs"][0]["parameters"] == {"sparse": True,
                                                                                               "format": "csr"}


def test_predict_and_oip_take_text(served: Served) -> None:
    expected = served.text.predict(ASKED).tolist()
    r = _post(served, "/predict", {"instances": ASKED})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected and r.json()["version"] == "1"
    proba = _post(served, "/predict", {"instances": ASKED}, proba="1").json()
    assert proba["classes"] == [0, 1] and proba["predictions"] == expected
    assert np.allclose(proba["probabilities"], served.text.predict_proba(ASKED), rtol=1e-9)
    for shape, data in (([3], ASKED), ([3, 1], [[t] for t in ASKED])):
        body = {"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES", "data": data}]}
        out = _post(served, "/v2/models/reviews/infer", body).json()["outputs"]
        assert out == [{"name": "predict", "shape": [3], "datatype": "INT64", "data": expected}]
    body = {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ASKED}],
            "outputs": [{"name": "probabilities"}]}
    out = _post(served, "/v2/models/reviews/infer", body).json()["outputs"]
    assert [o["name"] for o in out] == ["probabilities"] and out[0]["shape"] == [3, 2]
    assert out[0]["parameters"] == {"classes": [0, 1]}
    assert np.allclose(np.reshape(out[0]["data"], (3, 2)), served.text.predict_proba(ASKED), rtol=1e-9)


def test_sparse_rows_are_taken_dense_by_row_and_as_csr(served: Served) -> None:
    x = served.vectorizer.transform(ASKED)
    expected = served.sparse.predict(x).tolist()
    csr = {"indptr": x.indptr.tolist(), "indices": x.indices.tolist(), "values": x.data.tolist()}
    by_row = [{"indices": x[i].indices.tolist(), "values": x[i].data.tolist()} for i in range(3)]
    for instances in (x.toarray().tolist(), by_row, csr, {**csr, "shape": list(x.shape)}):
        r = _post(served, "/predict", {"instances": instances}, canary=True)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected and r.json()["version"] == "2"
    proba = _post(served, "/predict", {"instances": by_row}, canary=True, proba="1").json()
    assert np.allclose(proba["probabilities"], served.sparse.predict_proba(x), rtol=1e-9)
    tensors = [{"name": "indptr", "shape": [4], "datatype": "INT64", "data": csr["indptr"]},
               {"name": "indices", "shape": [len(csr["indices"])], "datatype": "INT64", "data": csr["indices"]},
               {"name": "values", "shape": [len(csr["values"])], "datatype": "FP64", "data": csr["values"]}]
    dense = [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": x.toarray().ravel().tolist()}]
    for inputs in (tensors, dense):
        r = _post(served, "/v2/models/reviews/versions/2/infer",
                  {"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "probabilities"}]})
        assert r.status_code == 200, r.text
        predicted, probabilities = r.json()["outputs"]
        assert predicted["data"] == expected and probabilities["shape"] == [3, 2]
    # what `verify --image` posts for a sparse version's golden examples: the three CSR tensors
    svc = from_environment(served.env, served.root)
    try:
        mv = svc.registry.resolve("reviews@2")
        golden = svc.registry.examples(mv)
    finally:
        svc.close()
    assert golden is not None and golden["inputs"]["format"] == "csr" and golden["inputs"]["shape"][0] == 4
    r = _post(served, "/v2/models/reviews/versions/2/infer", infer_request(golden["inputs"], mv.signature))
    assert r.status_code == 200, r.text
    assert answer_outputs(r.json()) == golden["outputs"]


def test_bad_inputs_get_a_4xx_that_says_why_and_the_server_keeps_serving(served: Served) -> None:
    width = len(served.vectorizer.vocabulary_)
    csr = {"indptr": [0, 1], "indices": [0], "values": [0.5]}
    cases: list[tuple[str, Any, bool, int, str]] = [
        ("/predict", {"instances": [[1.0, 2.0]]}, False, 400, "instances[0]: must be a string"),
        ("/predict", {"instances": []}, False, 400, "one string per row"),
        ("/predict", {"instances": ASKED, "proba": 1}, False, 200, ""),  # an unknown key is no harm
        ("/v2/models/reviews/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
         False, 422, "send a BYTES tensor of strings"),
        ("/v2/models/reviews/infer", {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "BYTES",
                                                  "data": ["a", "b"]}]}, False, 422, "one string a row"),
        ("/v2/models/reviews/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
                                      "outputs": [{"name": "logits"}]}, False, 400, "outputs[0].name"),
        ("/predict", {"instances": {**csr, "indices": [width]}}, True, 400, "instances.indices: every index"),
        ("/predict", {"instances": {**csr, "indptr": [1, 0]}}, True, 400, "instances.indptr: must start at 0"),
        ("/predict", {"instances": {**csr, "values": ["x"]}}, True, 400, "instances.values: must be a list of fini"),
        ("/predict", {"instances": {**csr, "shape": [1, width + 1]}}, True, 422, f"the model takes {width}"),
        ("/predict", {"instances": [{"indices": [0, 1], "values": [1.0]}]}, True, 400, "the same length"),
        ("/predict", {"instances": [[1.0] * (width + 1)]}, True, 422, f"the model takes {width}"),
        ("/v2/models/reviews/versions/2/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
                                                             "data": ["a"]}]}, False, 422, "BYTES is not supported"),
    ]
    for path, body, canary, status, says in cases:
        r = _post(served, path, body, canary)
        assert r.status_code == status, (body, r.text)
        if status >= 400:
            assert says in r.json()["error"], (body, r.json())
    svc = from_environment(served.env, served.root)
    try:
        assert svc.registry.resolve("reviews@1").flavor == "sklearn"
    finally:
        svc.close()
    assert httpx.get(f"{served.url}/v2/health/live").status_code == 200
    assert _post(served, "/predict", {"instances": ASKED}).json()["predictions"] == served.text.predict(ASKED).tolist()


def test_every_sparse_form_and_probabilities_are_bounded_and_a_huge_value_is_a_400(served: Served) -> None:
    """Attack F9: 2 bytes of JSON a row in the CSR object or OIP's three tensors made a 120 MB answer; F19: a
    401-digit integer value was a 500 with a traceback. Each is one 400 line naming the field."""
    from shipyard.interfaces.serving.inference import MAX_SPARSE_ROWS
    from shipyard.interfaces.serving.model import MAX_PROBA_VALUES

    empty_rows = [0] * (MAX_SPARSE_ROWS + 2)
    one_value = [*empty_rows[:-1], 1]  # OIP tensors hold at least one value
    tensors = [{"name": "indptr", "shape": [len(one_value)], "datatype": "INT64", "data": one_value},
               {"name": "indices", "shape": [1], "datatype": "INT64", "data": [0]},
               {"name": "values", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    huge = 10 ** 400
    cases: list[tuple[str, Any, str]] = [
        ("/predict", {"instances": {"indptr": empty_rows, "indices": [], "values": []}},
         f"instances.indptr: {MAX_SPARSE_ROWS + 1} rows is more than the limit of {MAX_SPARSE_ROWS}"),
        ("/predict", {"instances": [{"indices": [], "values": []}] * (MAX_SPARSE_ROWS + 1)},
         f"instances: {MAX_SPARSE_ROWS + 1} rows is more than the limit"),
        ("/v2/models/reviews/versions/2/infer", {"inputs": tensors},
         f"inputs.indptr: {MAX_SPARSE_ROWS + 1} rows is more than the limit"),
        ("/predict", {"instances": {"indptr": [0, 1], "indices": [0], "values": [huge]}},
         "instances.values: must be a list of finite numbers within FP64's range"),
        ("/predict", {"instances": [{"indices": [0], "values": [huge]}]},
         "instances.values: must be a list of finite numbers within FP64's range"),
    ]
    for path, body, says in cases:
        r = _post(served, path, body, canary=True)
        assert r.status_code == 400, r.text[:300]
        assert says in r.json()["error"], r.json()
    rows = MAX_PROBA_VALUES // 2 + 1  # two classes: one value too many, refused before the model is asked
    r = _post(served, "/predict", {"instances": [""] * rows}, proba="1")
    assert r.status_code == 400 and f"more than the limit of {MAX_PROBA_VALUES}" in r.json()["error"], r.text[:300]
    assert _post(served, "/predict", {"instances": ASKED}, proba="1").status_code == 200


def test_a_model_without_predict_proba_says_so(tmp_path: Path) -> None:
    from shipyard.core.serving.oip import PROBA_NAME, parse_outputs

    assert parse_outputs({"outputs": [{"name": PROBA_NAME}, {"name": PROBA_NAME}]}) == (PROBA_NAME,)
    with pytest.raises(InvalidInputError, match="outputs: must be a list"):
        parse_outputs({"outputs": [{"name": "predict"}] * 9})


def test_the_python_model_loads_its_stored_code_without_pythonpath(served: Served, tmp_path: Path) -> None:
    body = {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ASKED}],
            "outputs": [{"name": "predict"}, {"name": "probabilities"}]}
    r = _post(served, "/v2/models/reviews/versions/3/infer", body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1, 0, 0] and r.json()["outputs"][1]["data"] == [0, 1, 1, 0, 1, 0]
    code = ("import json, sys, shipyard\nm = shipyard.load_model('reviews@3')\n"
            f"print(json.dumps([type(m).__module__, m.predict({ASKED!r}), sys.path[0]]))\n")
    env = {**served.env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # Shipyard's source, not the project
    assert str(served.root) not in env["PYTHONPATH"]
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    module, predicted, copy = json.loads(done.stdout)
    assert [module, predicted] == [f"{PACKAGE}.model", [1, 0, 0]]
    assert not Path(copy).exists()  # the process's private copy of the code is gone with it
    assert not (served.root / "cache" / "code").exists()  # nothing shared that a later process would trust


def test_verify_passes_for_all_three(served: Served, monkeypatch: pytest.MonkeyPatch,
                                     imports_restored: None) -> None:
    monkeypatch.chdir(served.root)
    for version in (1, 2, 3):
        result = runner.invoke(app, ["verify", f"reviews@{version}", "--current", "--json"], env=served.env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["passed"] is True


def test_code_paths_are_confined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "m.py").write_text("X = 1\n")
    (tmp_path / "outside.py").write_text("X = 2\n")
    (tmp_path / "proj" / "link").symlink_to(tmp_path / "outside.py")
    (tmp_path / "proj" / "pkg" / "inner").symlink_to(tmp_path)
    monkeypatch.chdir(tmp_path / "proj")
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    sklearn = flavor("sklearn")
    refused: list[tuple[Any, str]] = [
        (["../outside.py"], "no '..'"), (["link"], "is a link"), (["pkg"], "is a link"),
        ([str(tmp_path / "outside.py")], "outside the working folder"), (["nope"], "does not exist"),
        (["."], "not the whole working folder"), ("pkg", "a list of paths")]
    for i, (paths, says) in enumerate(refused):
        with pytest.raises(InvalidInputError, match=says):
            save_model(sklearn, model, tmp_path / f"saved-{i}", options={"code_paths": paths})
        assert not (tmp_path / f"saved-{i}" / "model.skops").exists()  # refused before anything was written
    client = shipyard.Client(tmp_path / "proj")
    try:
        run = client.start_run("train")
        with pytest.raises(InvalidInputError, match="does not take code_paths"):
            client.log_model(run.id, model, "m", flavor="onnx", code_paths=["pkg/m.py"])
        (tmp_path / "proj" / "pkg" / "inner").unlink()
        saved = shipyard.save_model(model, tmp_path / "folder", code_paths=["pkg/m.py"])
        assert (saved / "code" / "m.py").read_text() == "X = 1\n"
        mv = client.register_model(saved, "coded")  # registered, not logged: nothing trusted yet
        with pytest.raises(UntrustedModelError, match="--code"):
            client.load_model(mv.ref)
    finally:
        client.close()


def test_stored_code_is_imported_from_a_private_copy_never_a_planted_pyc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imports_restored: None) -> None:
    """A ``__pycache__/*.pyc`` planted where a shared cache of the code would be (its header matching the
    source) never runs: each process imports from its own fresh copy of exactly the version's files."""
    import importlib.util
    import py_compile
    import stat
    import struct

    from shipyard.adapters.flavors import code

    model = tmp_path / "model" / "code" / "flavtext_cached"
    model.mkdir(parents=True)
    (model / "__init__.py").write_text("V = 1\n")
    monkeypatch.setenv("SHIPYARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    digest = code._digest(model.parent, list(code._walk(model.parent, "code/")))
    for shared in (tmp_path / "cache" / "code" / digest, tmp_path / "cache" / "shipyard" / "code" / digest):
        (shared / "flavtext_cached").mkdir(parents=True)  # a copy of the intact source, and a pyc beside it
        source = shared / "flavtext_cached" / "__init__.py"
        source.write_text("V = 1\n")
        (tmp_path / "evil.py").write_text("V = 'planted'\n")
        pyc = Path(importlib.util.cache_from_source(str(source)))
        py_compile.compile(str(tmp_path / "evil.py"), cfile=str(pyc), doraise=True)
        raw = bytearray(pyc.read_bytes())
        raw[8:16] = struct.pack("<II", int(source.stat().st_mtime) & 0xFFFFFFFF, source.stat().st_size)
        pyc.write_bytes(bytes(raw))
        (shared / "flavtext_sourceless.pyc").write_bytes(bytes(raw))
    copy = code.activate(tmp_path / "model")
    assert copy is not None and sys.path[0] == str(copy)
    assert tmp_path / "cache" not in copy.parents
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700
    assert sorted(p.name for p in copy.iterdir()) == ["flavtext_cached"]
    assert __import__("flavtext_cached").V == 1
    assert code.activate(tmp_path / "model") == copy  # one copy per process
    code._remove(copy, os.getpid() + 1)  # what a forked child's exit does: nothing
    assert copy.is_dir()
    code._remove(copy, os.getpid())  # at exit
    assert not copy.exists()
    (tmp_path / "model" / "code").rename(tmp_path / "model" / "real")
    (tmp_path / "model" / "code").symlink_to(tmp_path / "model" / "real")
    with pytest.raises(InvalidInputError, match="is a link"):
        code.activate(tmp_path / "model")


REPRO_CONFIG = """\
version: 1
stages:
  train:
    cmd: python src/train.py
    deps: [reviews.txt, src]
"""
REPRO_TRAIN = """\
import shipyard
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from flavtext_stage_kw import KeywordModel

lines = [line.split("\\t") for line in open("reviews.txt").read().splitlines()]
x = TfidfVectorizer().fit_transform([text for text, _ in lines])
model = LogisticRegression().fit(x, [int(label) for _, label in lines])
shipyard.log_model(model, "tfidf", examples=x[:4])
keywords = KeywordModel(["good", "great", "fun"], ["bad", "awful"])
shipyard.log_model(keywords, "keywords", flavor="python", examples=[text for text, _ in lines[:3]],
                   code_paths=["src/flavtext_stage_kw.py"])
"""


@pytest.fixture
def imports_restored() -> Iterator[None]:
    """sys.path and the modules loaded from stored code, as they were: loading a version changes both."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("flavtext_"):
            del sys.modules[name]


def test_a_sparse_model_from_a_stage_is_reproduced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   imports_restored: None) -> None:
    """And the python model the same stage registers, its class in the project's src/: no PYTHONPATH set."""
    root = tmp_path / "repro"
    (root / "src").mkdir(parents=True)
    (root / "shipyard.yaml").write_text(REPRO_CONFIG)
    (root / "src" / "train.py").write_text(REPRO_TRAIN)
    (root / "src" / "flavtext_stage_kw.py").write_text(KEYWORDS)
    (root / "reviews.txt").write_text("".join(f"{t}\t{y}\n" for t, y in zip(TEXTS, LABELS, strict=True)))
    monkeypatch.chdir(root)
    env = {"SHIPYARD_HOME": str(root / ".shipyard"), "SHIPYARD_CACHE_DIR": str(tmp_path / "cache")}
    ran = runner.invoke(app, ["run", "--json"], env=env)
    assert ran.exit_code == 0, ran.output
    for ref, examples in (("tfidf@1", 4), ("keywords@1", 3)):
        result = runner.invoke(app, ["reproduce", ref, "--json"], env=env)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["reproduced"] is True
        golden = next(c for c in report["outputs"] if c["path"] == f"{ref.split('@')[0]} (golden examples)")
        assert golden["verdict"] == "same predictions" and f"{examples} golden example(s)" in golden["detail"]
