"""``shipyard verify``: golden examples in a uv environment built from the version's lock, for real.

One registry for the module: an iris scikit-learn model (a FixedThresholdClassifier, which scikit-learn
1.5 introduced) and a python-flavor model whose class lives in ``tinypkg``, a package built here as
wheels 1.0 and 2.0 (2.0 scales the answers). The environments go to one cache for the module, so
each is built once.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.adapters.environments.venvs import EnvCache, Environment, EnvSpec, early, remember
from shipyard.config import Settings
from shipyard.core.environments.golden import Check, Tolerance, compare
from shipyard.core.registry.saving import save_model
from shipyard.errors import InvalidInputError
from shipyard.interfaces.cli.demo import tiny_wheel
from shipyard.wiring import Services, VerifyRequest, build, check_overrides, flavor, verify_version
from tests.conftest import cli_env, shipyard

# one worker runs them all (pytest -n 2 --dist loadgroup): the registry and the environment cache are built once
pytestmark = pytest.mark.xdist_group("verify")

TINY = '''FACTOR = {factor}


class Scaler:
    def __init__(self, offset):
        self.offset = offset

    def predict(self, rows):
        return [float(sum(row)) * FACTOR + self.offset for row in rows]
'''


def _wheel(folder: Path, version: str, factor: float) -> Path:
    return tiny_wheel(folder, version, TINY.format(factor=factor))


@dataclass
class Lab:
    svc: Services
    root: Path
    wheels: Path
    environ: dict[str, str]

    def verify(self, ref: str, *overrides: str, current: bool = False) -> Check:
        request = VerifyRequest(check_overrides(list(overrides)), find_links=() if current else (self.wheels,),
                                current=current)
        return verify_version(self.svc, ref, request, environ=self.environ)[1]

    def cli_env(self) -> dict[str, str]:
        settings = self.svc.settings
        return cli_env(SHIPYARD_HOME=str(settings.home), SHIPYARD_DB_URL=settings.db_url,
                       SHIPYARD_STORE=str(settings.store_path), SHIPYARD_ACTOR=settings.actor, **self.environ)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    root = tmp_path_factory.mktemp("verify")
    wheels = root / "wheels"
    wheels.mkdir()
    v1 = _wheel(wheels, "1.0", 1.0)
    _wheel(wheels, "2.0", 1.5)
    site = root / "site"  # tinypkg 1.0 "installed" for this process: importable, and a distribution the capture sees
    with zipfile.ZipFile(v1) as zf:
        zf.extractall(site)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    home = root / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{root / 'meta.db'}", store_path=home / "objects",
                         actor="tester@ci"), root)
    try:
        x, y = load_iris(return_X_y=True)
        iris = FixedThresholdClassifier(LogisticRegression(max_iter=500), threshold=0.3).fit(x, y == 2)
        save_model(flavor("sklearn"), iris, root / "iris", examples=x[::15])
        svc.registry.register("iris", root / "iris", trust_as_registrant=True)
        tinypkg = importlib.import_module("tinypkg")
        save_model(flavor("python"), tinypkg.Scaler(0.5), root / "tiny", examples=[[1.0, 2.0], [3.0, 4.5], [0.25, 0.5]],
                   requirements=["tinypkg"])
        svc.registry.register("tiny", root / "tiny", trust_as_registrant=True)
        yield Lab(svc, root, wheels, {"SHIPYARD_CACHE_DIR": str(root / "cache")})
    finally:
        svc.close()
        sys.path.remove(str(site))
        sys.modules.pop("tinypkg", None)


def test_a_version_verifies_clean_in_a_fresh_environment_then_from_the_cache(lab: Lab) -> None:
    import sklearn

    first = lab.verify("iris@1")
    assert first.status == "pass", first.describe()
    assert first.reused is False and first.target == "venv"
    assert first.packages["scikit-learn"] == sklearn.__version__  # the lock pins what the model was made with
    envs = Path(lab.environ["SHIPYARD_CACHE_DIR"]) / "envs"
    folder = envs / first.environment.removeprefix("sha256:")[:40]
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "lib").glob("python3*/site-packages/*")}

    again = lab.verify("iris@1")
    assert again.status == "pass" and again.reused is True and again.environment == first.environment
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "lib").glob("python3*/site-packages/*")}
    assert after == before  # nothing was installed again
    assert not list(envs.glob(".build-*"))


def test_verify_current_checks_this_environment_in_process(lab: Lab) -> None:
    check = lab.verify("iris@1", current=True)
    assert check.status == "pass" and check.target == "current" and check.reused is None


def test_an_upgrade_of_the_models_own_package_that_changes_its_answers_fails(lab: Lab) -> None:
    clean = lab.verify("tiny@1")  # tinypkg 1.0 from the lock, found in --find-links
    assert clean.status == "pass", clean.describe()
    assert "scikit-learn" not in clean.packages  # only the lock is there: nothing of this process leaked in

    check = lab.verify("tiny@1", "tinypkg==2.0")
    assert check.status == "fail" and check.verdict is not None
    assert check.verdict.differing == 3
    worst = check.verdict.worst[0]  # example 1: (3 + 4.5) * 1.5 + 0.5 against (3 + 4.5) + 0.5
    assert (worst.example, worst.expected, worst.got) == (1, 8.0, 11.75)

    done = shipyard("verify", "tiny@1", "--with", "tinypkg==2.0", "--find-links", str(lab.wheels),
                    env=lab.cli_env(), cwd=lab.root, check=False)
    assert done.returncode == 1, done.stderr
    assert "FAIL tiny@1" in done.stdout and "3 of 3 golden examples differ" in done.stdout
    assert "example 1" in done.stdout and "11.75" in done.stdout and "Traceback" not in done.stderr


def test_verify_all_gives_one_row_per_model_and_fails_if_any_fails(lab: Lab) -> None:
    done = shipyard("verify", "--all", "--with", "tinypkg==2.0", "--find-links", str(lab.wheels), "--json",
                    env=lab.cli_env(), cwd=lab.root, check=False)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    rows = {r["model"]: r for r in body["models"]}
    assert body["overrides"] == ["tinypkg==2.0"] and not body["passed"]
    assert rows["iris"]["status"] == "pass"  # the upgrade does not touch it
    assert rows["tiny"]["status"] == "fail" and "example 1" in rows["tiny"]["detail"]


def test_an_older_scikit_learn_that_cannot_read_the_artifact_fails_with_the_reason(lab: Lab) -> None:
    check = lab.verify("iris@1", "scikit-learn==1.4.2")
    assert check.status == "fail" and check.verdict is None
    assert check.packages["scikit-learn"] == "1.4.2"
    assert "the model did not load" in check.reason and "FixedThresholdClassifier" in check.reason


def test_each_override_runs_in_its_own_environment(lab: Lab) -> None:
    old = lab.verify("iris@1", "scikit-learn==1.4.2")  # built by the test above (or now)
    new = lab.verify("iris@1", "scikit-learn==1.5.2")
    assert old.environment != new.environment
    assert (old.packages["scikit-learn"], new.packages["scikit-learn"]) == ("1.4.2", "1.5.2")
    # 1.5 has the class and loads the file, but its LogisticRegression reads an attribute newer ones dropped
    assert new.status == "fail" and "the model failed to answer" in new.reason and "multi_class" in new.reason


def test_a_requirement_that_cannot_resolve_is_could_not_install_with_uvs_reason(lab: Lab) -> None:
    check = lab.verify("iris@1", "scikit-learn==1.3.2")  # needs numpy<2; the lock pins numpy 2
    assert check.status == "could-not-install", check.describe()
    assert "numpy" in check.reason and "\n" not in check.reason


def test_the_outcome_is_recorded_with_the_version(lab: Lab) -> None:
    mv = lab.svc.registry.resolve("tiny@1")
    lab.verify("tiny@1", "tinypkg==2.0")
    event, record = lab.svc.registry.results(mv, "verify")[-1]
    assert record["status"] == "fail" and record["overrides"] == ["tinypkg==2.0"] and record["target"] == "venv"
    assert record["environment"].startswith("sha256:") and record["python"].startswith("3.")
    assert record["verdict"]["worst"][0]["example"] == 1 and record["shipyard"]
    assert event.actor == "tester@ci" and event.reason.startswith("fail in venv")

    for _ in range(2):  # the second run's model process starts early, in the environment the first one used
        done = shipyard("verify", "tiny@1", "--find-links", str(lab.wheels), "--json", env=lab.cli_env(), cwd=lab.root)
        assert json.loads(done.stdout)["status"] == "pass"
        assert lab.svc.registry.results(mv, "verify")[-1][1]["status"] == "pass"


def test_a_process_started_early_in_another_environment_is_not_used(lab: Lab) -> None:
    tiny = lab.verify("tiny@1")
    root = Path(lab.environ["SHIPYARD_CACHE_DIR"]) / "envs"
    remember(root, "a guess", tiny.environment or "", "sklearn")  # as if iris had run in tiny's environment
    child = early(root, "a guess")
    assert child is not None and child.key == tiny.environment
    try:
        request = VerifyRequest(find_links=(lab.wheels,))
        _, check = verify_version(lab.svc, "iris@1", request, environ=lab.environ, early=child)
    finally:
        child.close()
    assert check.status == "pass" and check.environment != tiny.environment


def test_a_with_that_is_not_a_requirement_is_one_line(lab: Lab) -> None:
    for bad in ("scikit-learn=1.0", "--index-url=http://x", "a b", "numpy==1\nevil", ""):
        with pytest.raises(InvalidInputError, match="override"):
            check_overrides([bad])
    done = shipyard("verify", "iris@1", "--with", "numpy=2", env=lab.cli_env(), cwd=lab.root, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "NAME==VERSION" in done.stderr


def test_builds_at_once_share_one_environment_and_a_half_built_one_is_never_used(lab: Lab) -> None:
    cache = EnvCache(lab.root / "race")
    spec = EnvSpec("3.11", ("tinypkg==1.0",), find_links=(lab.wheels,))
    results: list[Environment] = []
    def one() -> None:
        env = cache.ensure(spec)
        assert isinstance(env, Environment), env
        results.append(env)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r.reused for r in results) == [False, True]
    env = results[0]
    # a build killed halfway, and a folder under the key without its marker: neither is used
    stale = lab.root / "race" / f".build-{env.path.name}-killed"
    stale.mkdir()
    (env.path / "shipyard-env.json").unlink()
    rebuilt = cache.ensure(spec)
    assert isinstance(rebuilt, Environment) and rebuilt.reused is False and not stale.exists()
    again = cache.ensure(spec)
    assert isinstance(again, Environment) and again.reused is True


def test_golden_comparison_labels_exact_floats_within_tolerance_nan_and_shapes() -> None:
    assert compare([[0.5, 1.0], [2.0, math.nan]], [[0.5 * (1 + 1e-7), 1.0], [2.0, math.nan]]).passed
    labels = compare([1, "cat", True], [1, "dog", 1])
    assert [(d.example, d.reason) for d in labels.worst] == [(1, "label"), (2, "label")]
    loose = Tolerance.of({"tolerance": {"rtol": 0.1, "atol": 0.01}})
    assert compare([1.0, 0.0], [1.05, 0.005], loose).passed and not compare([1.0], [1.2], loose).passed
    nan = compare([1.0], [math.nan])
    assert not nan.passed and nan.worst[0].reason == "nan"
    shape = compare([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]])
    assert shape.worst[0].describe() == "example 1: expected shape (2,), got shape (1,)"
    fewer = compare([1, 2, 3], [1, 2])
    assert fewer.differing == 1 and fewer.worst[0].example == 2
    worst = compare([1.0, 100.0, 10.0], [1.5, 100.1, 10.0]).worst
    assert [d.example for d in worst] == [0, 1] and worst[0].error == pytest.approx(0.5)
    assert Tolerance.of({"tolerance": -1}) == Tolerance() and Tolerance.of({"tolerance": "x"}) == Tolerance()


def test_a_model_that_does_not_load_here_fails_verify_current_with_the_reason(lab: Lab) -> None:
    """tinypkg is importable in this test process only: in a fresh `shipyard` process the model cannot load,
    and that is the verdict (exit 1, recorded), not an error (exit 2) as if the request were wrong."""
    done = shipyard("verify", "tiny@1", "--current", "--json", env=lab.cli_env(), check=False)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "fail" and "did not load" in body["reason"] and "tinypkg" in body["reason"]
