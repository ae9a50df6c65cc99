"""A model's lock: package requirements in the environment record, what a flavor needs, the pinned closure,
overrides as untrusted input, `shipyard env lock`, and a real install of the lock with uv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.environments import probe
from shipyard.adapters.flavors import get_flavor
from shipyard.core.environments.lock import Lock, Pin, lock_of, parse_overrides
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.saving import DEFAULT_TOLERANCE, check_tolerance, save_model
from shipyard.core.registry.service import EXAMPLES_FILE, MODEL_FILE, SavedModel
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.wiring import Services, build, model_lock, saved_model, settings_from_environment
from tests.conftest import cli_env, shipyard


class Doubler:
    """A python-flavor model: importable from this module, so its pickle loads again."""

    def predict(self, inputs: Any) -> Any:
        return [[2 * x for x in row] for row in inputs]


def index(name: str, version: str, *requires: str) -> dict[str, Any]:
    return {name: {"version": version, "source": {"kind": "index"}, "requires": list(requires)}}


RECORD: dict[str, Any] = {
    "schema": "shipyard.environment/v2", "python": {"version": "3.11.7"},
    "packages": {
        **index("scikit-learn", "1.5.0", "numpy", "scipy", "joblib", "threadpoolctl"),
        **index("numpy", "2.1.3"), **index("scipy", "1.14.1", "numpy"), **index("threadpoolctl", "3.5.0"),
        **index("shipyard", "0.9.0", "numpy", "typer"), **index("typer", "0.12.0"),
        **index("skops", "0.10", "shipyard"),
        "joblib": {"version": "1.4.2", "requires": [],
                   "source": {"kind": "vcs", "vcs": "git", "url": "https://github.com/joblib/joblib.git",
                              "commit": "0123456789abcdef0123456789abcdef01234567"}},
        "mylib": {"version": "0.1", "requires": [], "source": {"kind": "local path", "url": "file:///home/me/mylib"}},
        "oldstyle": {"version": "2013b", "requires": [], "source": {"kind": "index"}},
    },
}


# -- the lock, in the core ------------------------------------------------------------------------------

def test_the_lock_is_the_closure_of_the_roots_pinned_sorted_and_never_shipyard() -> None:
    lock = lock_of(RECORD, ["scikit-learn", "skops", "MyLib", "pandas"], label="iris@3", env_digest="sha256:ab")
    # not typer: only shipyard needs it, and shipyard is never pinned
    assert [p.name for p in lock.pins] == ["joblib", "mylib", "numpy", "scikit-learn", "scipy", "skops",
                                           "threadpoolctl"]
    assert lock.roots == ("scikit-learn", "skops", "mylib", "pandas")
    assert lock.missing == ("pandas",)
    assert lock.python == "3.11.7"
    assert lock.requirements() == [
        "joblib @ git+https://github.com/joblib/joblib.git@0123456789abcdef0123456789abcdef01234567",
        "mylib==0.1", "numpy==2.1.3", "scikit-learn==1.5.0", "scipy==1.14.1", "skops==0.10", "threadpoolctl==3.5.0"]
    assert Pin("oldstyle", "2013b", None).requirement() == "oldstyle==2013b"  # PEP 440 reads it
    assert Pin("weird", "1.0-custom_build", None).requirement() == "weird===1.0-custom_build"
    with pytest.raises(InvalidInputError, match="no installer can pin"):
        Pin("evil", "1.0\n--index-url http://x", None).requirement()


def test_overrides_replace_or_add_and_anything_but_one_requirement_line_is_refused() -> None:
    lock = lock_of(RECORD, ["scikit-learn"])
    reqs = lock.requirements(["NumPy>=2.2", "tinypkg==2", "scikit_learn==1.6.1"])
    assert reqs == ["joblib @ git+https://github.com/joblib/joblib.git@0123456789abcdef0123456789abcdef01234567",
                    "numpy>=2.2", "scikit-learn==1.6.1", "scipy==1.14.1", "threadpoolctl==3.5.0", "tinypkg==2"]
    # one requirement however its name is spelled: one line, so verify builds one environment for it
    assert lock.requirements(["NumPy>=2.2"]) == lock.requirements(["numpy>=2.2"])
    for bad in ["numpy==1\n--index-url http://evil", "-e .", "--extra-index-url=http://x", "numpy===", "x; rm -rf",
                "a" * 600, "pkg @ http://host/a b.whl", 'numpy; python_version == "3\u2028-e ."', "numpy==1\x0b-e ."]:
        with pytest.raises(InvalidInputError) as err:
            parse_overrides([bad])
        assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="two overrides name numpy"):
        parse_overrides(["numpy==1", "NumPy==2"])


def test_the_text_is_a_requirements_file_with_a_header_saying_what_it_is() -> None:
    lock = lock_of(RECORD, ["scikit-learn", "mylib", "pandas"], label="iris@3", env_digest="sha256:ab")
    text = lock.text(["torch==2.3.1"])
    lines = text.splitlines()
    assert lines[0].startswith("# Locked by Shipyard for iris@3")
    assert "# environment sha256:ab, Python 3.11.7" in lines
    assert "# overrides: torch==2.3.1" in lines
    assert "# MISSING from the record, not pinned: pandas" in lines
    assert any(line.startswith("# mylib was installed from local path file:///home/me/mylib; pinned by version")
               for line in lines)
    assert [line for line in lines if not line.startswith("#")] == lock.requirements(["torch==2.3.1"])
    assert "MISSING" not in lock.text(["pandas==2.2.3"])  # an override gives what the record lacks


def test_complete_names_the_missing_packages_and_what_to_do() -> None:
    lock = lock_of(RECORD, ["scikit-learn", "pandas", "polars"], label="iris@3")
    with pytest.raises(InvalidInputError) as err:
        lock.complete("build iris@3")
    assert str(err.value) == ("cannot build iris@3: the environment iris@3 was registered from lacks pandas, polars "
                              "(needed to load it); register it again from an environment that has them, or pass "
                              "--with NAME==VERSION")
    assert lock.complete("build iris@3", ["pandas==2.2.3", "polars==1.0"]) is lock
    assert lock_of(RECORD, ["numpy"]).complete("x") == lock_of(RECORD, ["numpy"])


def test_a_hostile_record_never_adds_a_line_to_the_file() -> None:
    vcs = {"kind": "vcs", "vcs": "git", "url": "https://h/x.git\n--index-url http://evil", "commit": "abcdef12"}
    pin = Pin("x", "1.0", vcs)
    assert pin.requirement() == "x==1.0"  # a VCS source that is not one clean URL is pinned by version
    assert pin.comment() == ("x was installed from vcs (an unprintable URL); pinned by version: publish it to an "
                             "index, or pass --with NAME @ URL")
    record = {"python": {"version": "3.11\n-e ."}, "packages": {"A_Pkg": {"version": "1", "requires": []}}}
    lock = lock_of(record, ["a-pkg"], label="m@1\n-e .", env_digest="sha256:1\r-e .")
    assert lock.python == "unknown" and lock.requirements() == ["a-pkg==1"]  # a v1-style name, normalized
    assert not any(line.startswith("-") for line in lock.text().splitlines())


def test_a_hostile_record_is_refused_in_one_line() -> None:
    for requires in ["numpy", ["numpy\n-e ."], [{"x": 1}], ["n"] * 5000]:
        record = {"python": {"version": "3.11"}, "packages": {"a": {"version": "1", "requires": requires}}}
        with pytest.raises(InvalidInputError):
            lock_of(record, ["a"])
    with pytest.raises(InvalidInputError, match="is not a package name"):
        lock_of(RECORD, ["numpy==1"])


# -- requires, as the probe records it --------------------------------------------------------------------

@pytest.fixture(scope="module")
def here() -> dict[str, dict[str, Any]]:
    return probe.packages()


def test_the_probe_records_each_packages_requirements_without_extras(here: dict[str, dict[str, Any]]) -> None:
    from importlib import metadata

    assert {"numpy", "scipy", "joblib", "threadpoolctl"} <= set(here["scikit-learn"]["requires"])
    httpx_lines = metadata.distribution("httpx").requires or []
    assert any("extra == 'brotli'" in line for line in httpx_lines)  # declared, only for an extra
    assert "brotli" not in here["httpx"]["requires"] and "httpcore" in here["httpx"]["requires"]
    assert all(name == name.lower() and "_" not in name for p in here.values() for name in p["requires"])
    assert probe.cache_key()["probe"] == probe.CACHE_VERSION  # a cache written before requires is a miss


def test_an_old_record_without_requires_closes_through_the_same_versions_here(
        here: dict[str, dict[str, Any]]) -> None:
    record = {"python": {"version": "3.11.7"}, "packages": here}
    old = {"python": {"version": "3.11.7"},
           "packages": {n: {k: v for k, v in p.items() if k != "requires"} for n, p in here.items()}}
    assert lock_of(old, ["scikit-learn"], requires_of=probe.requires_of) == lock_of(record, ["scikit-learn"])
    unclosed = lock_of(old, ["scikit-learn"])  # without the fallback, only the roots, said in the header
    assert [p.name for p in unclosed.pins] == ["scikit-learn"] and unclosed.unclosed == ("scikit-learn",)
    assert "# not closed" in unclosed.text()
    assert probe.requires_of("scikit-learn", "0.0.1") is None  # another version here says nothing


# -- what a model needs: its flavor's packages and its own requirements ---------------------------------------

def test_each_flavor_names_the_packages_loading_it_needs() -> None:
    sk = get_flavor("sklearn")
    assert sk.packages({"serializer": "skops"}) == ("scikit-learn", "numpy", "scipy", "skops")
    assert sk.packages({"serializer": "joblib"}) == ("scikit-learn", "numpy", "scipy", "joblib")
    assert sk.packages({"serializer": "pickle"}) == ("scikit-learn", "numpy", "scipy")
    with pytest.raises(InvalidInputError):
        sk.packages({"serializer": "marshal"})
    assert get_flavor("torch").packages({"kind": "state_dict"}) == ("torch", "numpy")
    assert get_flavor("onnx").packages({}) == ("onnxruntime", "numpy")
    assert get_flavor("python").packages({}) == ()


def test_requirements_and_tolerance_are_validated_and_kept(tmp_path: Path) -> None:
    saved = save_model(get_flavor("python"), Doubler(), tmp_path / "m", [[1.0, 2.0]],
                       requirements=["HTTPX", "typing_extensions", "httpx"], tolerance={"rtol": 1e-4})
    assert saved.requirements == ("httpx", "typing-extensions")
    assert SavedModel.read(tmp_path / "m").requirements == ("httpx", "typing-extensions")
    golden = json.loads((tmp_path / "m" / EXAMPLES_FILE).read_text())
    assert golden["tolerance"] == {"rtol": 1e-4, "atol": 0.0}
    assert check_tolerance(None) == DEFAULT_TOLERANCE == {"rtol": 1e-6, "atol": 0.0}
    for bad in [{"rtol": float("nan")}, {"atol": -1}, {"rtol": True}, {"tol": 1}, {"rtol": "1e-6"}, [1e-6]]:
        with pytest.raises(InvalidInputError):
            check_tolerance(bad)
    for bad_names in [["pandas>=2"], ["git+https://x"], "pandas", ["a"] * 0 + [f"p{i}" for i in range(201)]]:
        with pytest.raises(InvalidInputError):
            save_model(get_flavor("python"), Doubler(), tmp_path / "bad", requirements=bad_names)
    # a description written before requirements existed still reads; a hostile list is refused in one line
    body = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    del body["requirements"]
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(body))
    assert SavedModel.read(tmp_path / "m").requirements == ()
    body["requirements"] = ["x\n-e ."]
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(body))
    with pytest.raises(InvalidInputError, match="is not a Shipyard model description: requirement"):
        SavedModel.read(tmp_path / "m")


# -- a registered version's lock, the CLI, and a real install ------------------------------------------------

@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, Path]]:
    root = tmp_path_factory.mktemp("lockproj")
    home = root / ".shipyard"
    svc = build(settings_from_environment({"SHIPYARD_HOME": str(home), "SHIPYARD_ACTOR": "tester@ci"}, root), root)
    for name, requirements in [("doubler", ["httpx"]), ("needy", ["httpx", "no-such-package-here"])]:
        folder = root / name
        save_model(get_flavor("python"), Doubler(), folder, [[1.0]], requirements=requirements)
        svc.registry.register(name, folder, trust_as_registrant=True)
    yield svc, root
    svc.close()


def test_a_versions_lock_pins_its_code_requirements_from_the_record(registered: tuple[Services, Path],
                                                                    here: dict[str, dict[str, Any]]) -> None:
    svc, _ = registered
    mv = svc.registry.resolve("doubler@1")
    assert saved_model(svc, mv).requirements == ("httpx",)
    lock = model_lock(svc, mv)
    assert isinstance(lock, Lock) and lock.roots == ("httpx",) and lock.missing == ()
    assert {"httpx", "httpcore", "h11", "anyio", "idna", "certifi"} <= {p.name for p in lock.pins}
    assert all(p.version == here[p.name]["version"] for p in lock.pins)
    assert lock.label == "doubler@1" and lock.env_digest == str(mv.env_digest)
    with pytest.raises(InvalidInputError, match="lacks no-such-package-here"):
        model_lock(svc, svc.registry.resolve("needy@1")).complete("build needy@1")
    from dataclasses import replace

    with pytest.raises(NotFoundError, match="registered without an environment record"):
        model_lock(svc, replace(mv, env_digest=None))
    assert isinstance(mv, ModelVersion)


def test_env_lock_writes_a_file_uv_installs_exactly(registered: tuple[Services, Path], tmp_path: Path) -> None:
    import uv

    svc, root = registered
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    req = tmp_path / "requirements.txt"
    done = shipyard("env", "lock", "doubler@1", "-o", str(req), env=env, cwd=root)
    assert f"wrote {req}" in done.stderr
    lock = model_lock(svc, svc.registry.resolve("doubler@1"))
    assert req.read_text() == lock.text()
    missing = shipyard("env", "lock", "needy@1", env=env, cwd=root, check=False)
    assert missing.returncode != 0 and "lacks no-such-package-here" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stderr.count("\n") == 1
    # the file installs with uv (its comments and pins as uv reads them), giving exactly the pinned versions
    venv = tmp_path / "venv"
    uv_bin = uv.find_uv_bin()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    subprocess.run([uv_bin, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=clean, timeout=120)
    subprocess.run([uv_bin, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-r", str(req)],
                   check=True, env=clean, timeout=300)
    frozen = subprocess.run([uv_bin, "pip", "freeze", "--python", str(venv / "bin" / "python")], check=True,
                            env=clean, capture_output=True, text=True, timeout=60).stdout.split()
    assert sorted(frozen) == sorted(lock.requirements())
