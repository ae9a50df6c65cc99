"""Importing Shipyard, registering, loading and serving a scikit-learn model never imports torch,
TensorFlow or JAX, even where they are installed (the dev install has torch): skops' estimator listing
would otherwise pull torch in through scikit-learn's vendored array API support."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env, serving_process

FOREIGN = ("torch", "tensorflow", "jax")

REGISTER_AND_LOAD = """
import json, sys
import shipyard
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

x, y = load_iris(return_X_y=True)
with shipyard.start_run(name="light"):
    version = shipyard.log_model(make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y),
                                 "light", examples=x[:3])
shipyard.set_alias("light", "production", version.version)
loaded = shipyard.load_model("light@production")
assert list(loaded.predict(x[:3])) == [0, 0, 0]

from shipyard.interfaces.serving.loading import load_slot  # what `shipyard serve` runs to load a version
from shipyard.wiring import from_environment
svc = from_environment()
load_slot(svc.registry, svc.registry.resolve("light@production"))
svc.close()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def _installed(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is not None]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if not _installed(FOREIGN):
        pytest.skip("none of torch, tensorflow, jax is installed here: nothing could import them")
    return cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), SHIPYARD_ACTOR="tester@ci")


def test_register_load_and_serving_load_import_no_foreign_framework(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", REGISTER_AND_LOAD, *FOREIGN], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_later_array_api_import_still_works(env: dict[str, str], tmp_path: Path) -> None:
    """The refusal is only for skops' import: scikit-learn's torch support imports afterwards."""
    if not _installed(("torch",)):
        pytest.skip("torch is not installed")
    code = ("import sys\nfrom shipyard.adapters.flavors.sklearn import _skops\n_skops()\n"
            "assert 'torch' not in sys.modules\n"
            "import sklearn.externals.array_api_compat.torch as compat\n"
            "assert 'torch' in sys.modules and compat.__array_api_version__\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the server's memory map from /proc")
def test_shipyard_serve_of_a_sklearn_model_maps_no_torch_library(env: dict[str, str], tmp_path: Path) -> None:
    if not _installed(("torch",)):
        pytest.skip("torch is not installed")
    code = ("import shipyard\nfrom sklearn.dummy import DummyClassifier\nwith shipyard.start_run():\n"
            "    shipyard.log_model(DummyClassifier().fit([[0, 0]] * 2, [1] * 2), 'light', examples=[[0.0, 0.0]])\n")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=180)
    with serving_process(env, "light") as (_, proc):
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "libtorch" not in maps and "/torch/" not in maps, "the model server loaded torch"
