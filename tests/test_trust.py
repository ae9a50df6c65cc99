"""Loading a model runs nothing nobody trusted: hostile folders, the trust decision, and its audit."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import shipyard
from shipyard.adapters.flavors import get_flavor
from shipyard.config import load_settings
from shipyard.core.registry.saving import save_model
from shipyard.core.registry.service import MODEL_FILE, SavedModel
from shipyard.core.registry.trust import IN_PROCESS_REASON, TrustSet
from shipyard.errors import ConfigError, InvalidInputError, UntrustedModelError
from shipyard.wiring import Services, build
from tests.conftest import cli_env, free_port, serving
from tests.conftest import shipyard as run_cli
from tests.hostile_models import Doubler, PickleBomb, SetsMarker

X, Y = load_iris(return_X_y=True)


def _folder(path: Path, flavor: str, meta: dict[str, Any], files: dict[str, bytes]) -> Path:
    """A saved-model folder written by hand, as anyone could write one."""
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data)
    (path / MODEL_FILE).write_bytes(SavedModel(flavor, meta, {}).to_bytes())
    return path


def _refused(services: Services, ref: str) -> str:
    with pytest.raises(UntrustedModelError) as caught:
        services.registry.load(ref)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{ref} is not trusted to load: it contains ")
    return message


def _trust_events(services: Services, model: str) -> list[tuple[str, str, tuple[str, ...], str]]:
    return [(e.actor, e.name, e.trusted, e.reason) for e in services.registry.history(model) if e.action == "trust"]


def test_a_pickle_is_unpickled_only_after_its_version_is_trusted(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = _folder(tmp_path / "hostile", "sklearn", {"serializer": "pickle", "file": "model.pkl"},
                      {"model.pkl": pickle.dumps(PickleBomb(marker))})
    registry = services.registry
    registry.register("hostile", hostile)
    assert registry.requirements(hostile) == TrustSet(pickle=True)
    message = _refused(services, "hostile@1")
    assert "a pickle" in message and message.endswith("run: shipyard models trust hostile@1 --pickle -m REASON")
    assert not marker.exists()

    legit = tmp_path / "legit"
    model = LogisticRegression(max_iter=300).fit(X, Y)
    save_model(get_flavor("sklearn"), model, legit, options={"serializer": "pickle"})
    registry.register("legit", legit)
    _refused(services, "legit@1")
    with pytest.raises(InvalidInputError, match="say why"):
        registry.trust("legit@1", TrustSet(pickle=True), "  ")
    registry.trust("legit@1", TrustSet(pickle=True), "trained by our CI, digest checked")
    np.testing.assert_array_equal(registry.load("legit@1").predict(X), model.predict(X))
    assert _trust_events(services, "legit") == [("tester@ci", "1", ("pickle",), "trained by our CI, digest checked")]

    _refused(services, "hostile@1")  # trust is per version: trusting legit@1 trusts nothing else
    registry.trust("legit@1", TrustSet(), "revoked: the CI key leaked")  # the latest decision counts
    _refused(services, "legit@1")
    assert not marker.exists()


def test_the_python_flavor_needs_pickle_trusted(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = _folder(tmp_path / "hostile", "python", {"file": "model.pkl"},
                      {"model.pkl": pickle.dumps(PickleBomb(marker))})
    services.registry.register("py", hostile)
    assert "--pickle" in _refused(services, "py@1")
    assert not marker.exists()


def test_skops_uses_the_allowlist_and_trusted_types_never_a_list_from_the_folder(
        services: Services, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "pwned"
    forged = {"serializer": "skops", "file": "model.skops", "trusted_types": ["tests.hostile_models.SetsMarker"]}
    hostile = _folder(tmp_path / "hostile", "sklearn", forged,
                      {"model.skops": sio.dumps(SetsMarker(str(marker)))})
    services.registry.register("hostile", hostile)
    message = _refused(services, "hostile@1")
    assert "type tests.hostile_models.SetsMarker" in message
    assert "--type tests.hostile_models.SetsMarker" in message
    assert not marker.exists()

    system = f"{os.system.__module__}.system"  # posix.system
    shell = _folder(tmp_path / "shell", "sklearn", {**forged, "trusted_types": [system]},
                    {"model.skops": sio.dumps(FunctionTransformer(os.system))})
    services.registry.register("shell", shell)
    assert f"type {system};" in _refused(services, "shell@1")

    # scikit-learn's tree storage loads without any step, though skops itself does not trust it: its bounds are
    # checked (test_skops_allowlist.py); HistGradientBoosting's predictor, whose are not, is trusted by type
    grown = tmp_path / "grown"
    tree = DecisionTreeClassifier(random_state=0).fit(X, Y)
    save_model(get_flavor("sklearn"), tree, grown)
    assert sio.get_untrusted_types(file=grown / "model.skops")  # skops alone would refuse it
    services.registry.register("grown", grown)
    np.testing.assert_array_equal(services.registry.load("grown@1").predict(X), tree.predict(X))
    boosted = tmp_path / "boosted"
    hgb = HistGradientBoostingClassifier(max_iter=5).fit(X, Y)
    save_model(get_flavor("sklearn"), hgb, boosted)
    services.registry.register("boosted", boosted)
    predictor = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    assert f"--type {predictor} " in _refused(services, "boosted@1")
    services.registry.trust("boosted@1", TrustSet.of(types=[predictor]), "our own training run")
    np.testing.assert_array_equal(services.registry.load("boosted@1").predict(X), hgb.predict(X))

    # a custom type loads once the user trusts that type for that version
    custom = tmp_path / "custom"
    save_model(get_flavor("sklearn"), Doubler(3.0), custom)
    services.registry.register("custom", custom)
    assert "--type tests.hostile_models.Doubler " in _refused(services, "custom@1")
    services.registry.trust("custom@1", TrustSet.of(types=["tests.hostile_models.Doubler"]), "our own code")
    assert services.registry.load("custom@1").predict([1.0]).tolist() == [3.0]
    assert _trust_events(services, "custom") == [("tester@ci", "1", ("type:tests.hostile_models.Doubler",),
                                                  "our own code")]


def _torch_folder(torch: Any, tmp_path: Path, name: str, cls: str, init_kwargs: dict[str, Any]) -> Path:
    """A torch state_dict folder (empty weights) naming ``cls`` to build with ``init_kwargs``."""
    weights = tmp_path / f"{name}.pt"
    torch.save({}, weights)
    return _folder(tmp_path / name, "torch", {"kind": "state_dict", "file": "state_dict.pt", "class": cls,
                                              "init_kwargs": init_kwargs}, {"state_dict.pt": weights.read_bytes()})


def test_torch_imports_only_trusted_classes(services: Services, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from tests.torch_models import TinyNet

    marker = tmp_path / "pwned"
    system = _torch_folder(torch, tmp_path, "system", "os:system", {"command": f"touch {marker}"})
    services.registry.register("system", system)
    assert "class os:system;" in _refused(services, "system@1")
    services.registry.trust("system@1", TrustSet.of(classes=["os:system"]), "testing the class check")
    with pytest.raises(InvalidInputError, match="os:system is not a class"):
        services.registry.load("system@1")

    builder = _torch_folder(torch, tmp_path, "builder", "tests.hostile_models:MarkerOnInit", {"marker": str(marker)})
    services.registry.register("builder", builder)
    assert "--class tests.hostile_models:MarkerOnInit -m REASON" in _refused(services, "builder@1")
    assert not marker.exists()

    net = TinyNet()
    legit = tmp_path / "legit"
    save_model(get_flavor("torch"), net, legit, options={"init_kwargs": {"features": 4, "classes": 3}})
    services.registry.register("net", legit)
    _refused(services, "net@1")
    services.registry.trust("net@1", TrustSet.of(classes=["tests.torch_models:TinyNet"]), "our class")
    loaded = services.registry.load("net@1")
    x = torch.as_tensor(X[:3], dtype=torch.float32)
    np.testing.assert_allclose(loaded(x).detach().numpy(), net(x).detach().numpy(), rtol=1e-6)

    # a trusted class does not make its weights trusted: they load with weights_only
    poisoned = _folder(tmp_path / "poisoned", "torch",
                       {"kind": "state_dict", "file": "state_dict.pt", "class": "tests.torch_models:TinyNet",
                        "init_kwargs": {}}, {"state_dict.pt": pickle.dumps(PickleBomb(marker), protocol=2)})
    services.registry.register("poisoned", poisoned)
    services.registry.trust("poisoned@1", TrustSet.of(classes=["tests.torch_models:TinyNet"]), "our class")
    with pytest.raises(InvalidInputError, match=r"^torch cannot load the weights in state_dict\.pt"):
        services.registry.load("poisoned@1")
    assert not marker.exists()

    script = tmp_path / "script"
    save_model(get_flavor("torch"), torch.jit.script(net), script)
    services.registry.register("script", script)
    assert "stored code" in _refused(services, "script@1")
    services.registry.trust("script@1", TrustSet(code=True), "our export")
    assert services.registry.load("script@1")(x).shape == (3, 3)


@pytest.mark.parametrize(("meta", "files", "why"), [
    ({"file": "/etc/passwd"}, {}, r"'/etc/passwd' .*not a file name"),
    ({"file": "model.onnx"}, {}, r"no regular file by that name"),
    ({"file": "model.onnx"}, {"link": b""}, r"no regular file by that name"),  # model.onnx -> link, below
])
def test_a_folder_that_could_never_load_is_not_registered(services: Services, tmp_path: Path, meta: dict[str, Any],
                                                          files: dict[str, bytes], why: str) -> None:
    folder = _folder(tmp_path / "bad", "onnx", meta, files)
    if files:
        (folder / "model.onnx").symlink_to(folder / "link")  # a link is not stored: the version could never load
    with pytest.raises(InvalidInputError, match=rf"^{folder} cannot be loaded: .*{why}"):
        services.registry.register("bad", folder)
    assert services.registry.models() == []
    serializer = _folder(tmp_path / "serializer", "sklearn", {"serializer": "marshal"}, {"model.pkl": b"x"})
    with pytest.raises(InvalidInputError, match="unknown serializer 'marshal'"):
        services.registry.register("bad", serializer)
    assert services.registry.models() == []


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("body", "why"), [
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b"[1]", "a JSON list, not an object"),
    (json.dumps({"format": "shipyard.model/v1", "flavor": "onnx", "flavor_meta": [1]}).encode(), "must be JSON obj"),
    (json.dumps({"format": "shipyard.model/v1", "flavor": ["onnx"]}).encode(), "flavor is not a string"),
    (json.dumps({"format": "shipyard.model/v1", "flavor": "onnx", "signature": {"a": _nested(40)}}).encode(),
     "nested deeper than 32 levels"),
    (b'{"format": "' + b"x" * (1024 * 1024) + b'"}', "larger than 1024 KiB"),
    (b"\xff\xfe", "is not a Shipyard model description: "),
])
def test_a_hostile_model_description_gets_one_line(services: Services, tmp_path: Path, body: bytes, why: str) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(body)
    with pytest.raises(InvalidInputError) as caught:
        services.registry.register("hostile", folder)
    assert why in str(caught.value) and "\n" not in str(caught.value)
    assert services.registry.models() == []


def test_trust_names_must_match_whole_without_a_final_newline() -> None:
    for bad in ("evil.x\n", "evil.x\nmore"):
        with pytest.raises(InvalidInputError, match="invalid type name"):
            TrustSet.of(types=[bad])
    with pytest.raises(InvalidInputError, match="invalid class"):
        TrustSet.of(classes=["os:system\n"])
    assert TrustSet.of(types=["a.B"], classes=["m.n:C"]).items() == ["type:a.B", "class:m.n:C"]


def test_torch_checks_a_trusted_class_is_a_module_before_calling_it(services: Services, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    popen = _torch_folder(torch, tmp_path, "popen", "subprocess:Popen", {"args": ["touch", str(marker)]})
    services.registry.register("popen", popen)
    services.registry.trust("popen@1", TrustSet.of(classes=["subprocess:Popen"]), "testing the subclass check")
    with pytest.raises(InvalidInputError, match=r"^subprocess:Popen is not a torch.nn.Module class: nothing was built"):
        services.registry.load("popen@1")
    assert not marker.exists()


def test_log_model_trusts_what_it_saved_itself(project: Path) -> None:
    with shipyard.start_run():
        pickled = shipyard.log_model(LogisticRegression(max_iter=300).fit(X, Y), "pickled", serializer="pickle")
        plain = shipyard.log_model(LogisticRegression(max_iter=300).fit(X, Y), "plain")
    assert shipyard.load_model(pickled.ref).predict(X[:2]).shape == (2,)
    assert shipyard.load_model(plain.ref).predict(X[:2]).shape == (2,)
    svc = shipyard.interfaces.api._svc()  # type: ignore[attr-defined]
    trusts = [(e.model, e.trusted, e.reason) for e in svc.registry.history() if e.action == "trust"]
    assert trusts == [("pickled", ("pickle",), IN_PROCESS_REASON)]  # skops with sklearn types needs none

    custom = shipyard.save_model(Doubler(), project / "custom")
    svc.registry.register("custom", custom)
    with pytest.raises(UntrustedModelError):
        shipyard.load_model("custom@1")
    shipyard.trust_model("custom@1", "reviewed", types=["tests.hostile_models.Doubler"])
    assert shipyard.load_model("custom@1").predict([2.0]).tolist() == [4.0]


def test_cli_reports_refuses_serving_and_trusts(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), PYTHONPATH=os.pathsep.join(
        [str(repo / "src"), str(repo)]))
    marker = tmp_path / "pwned"
    hostile = _folder(tmp_path / "hostile", "sklearn", {"serializer": "pickle", "file": "model.pkl"},
                      {"model.pkl": pickle.dumps(PickleBomb(marker))})
    zero = run_cli("models", "register", str(hostile), "--name", "hostile", "--version", "0", env=env, check=False)
    assert zero.returncode == 2 and "versions run from 1" in zero.stderr and len(zero.stderr.strip().splitlines()) == 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MODEL_FILE).write_text("[1]")
    broken = run_cli("models", "register", str(tmp_path / "broken"), "--name", "broken", env=env, check=False)
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1, broken.stderr
    assert "not an object" in broken.stderr

    out = run_cli("models", "register", str(hostile), "--name", "hostile", env=env).stdout
    assert "hostile@1 will not load until trusted" in out
    assert "shipyard models trust hostile@1 --pickle -m REASON" in out
    served = subprocess.run([sys.executable, "-m", "shipyard", "serve", "hostile@1", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert served.returncode == UntrustedModelError.exit_code
    assert len(served.stderr.strip().splitlines()) == 1 and "hostile@1 is not trusted to load" in served.stderr
    assert not marker.exists()

    legit = tmp_path / "legit"
    save_model(get_flavor("sklearn"), LogisticRegression(max_iter=300).fit(X, Y), legit,
               examples=X[:2], options={"serializer": "pickle"})
    run_cli("models", "register", str(legit), "--name", "legit", env=env)
    run_cli("models", "trust", "legit@1", "--pickle", "-m", "trained by our CI", env=env)
    shown = json.loads(run_cli("models", "show", "legit@1", "--json", env=env).stdout)
    assert shown["trust"]["trusted"] == ["pickle"] and shown["trust"]["reason"] == "trained by our CI"
    other = json.loads(run_cli("models", "show", "legit@1", "--json", env={**env, "SHIPYARD_ACTOR": "bob@elsewhere"}
                               ).stdout)
    assert other["trust"] is None and other["trust_by_others"]["actor"] == shown["trust"]["actor"]
    history = json.loads(run_cli("models", "history", "legit", "--json", env=env).stdout)
    assert history[-1]["action"] == "trust" and history[-1]["name"] == "1" and history[-1]["trusted"] == ["pickle"]
    with serving(env, "legit@1") as url:
        r = httpx.post(f"{url}/predict", json={"instances": X[:2].tolist()})
        assert r.status_code == 200, r.text


def _as(services: Services, actor: str, reviewers: tuple[str, ...] = ()) -> Services:
    """Another user of the same registry (a shared database and store), with their own reviewers."""
    return build(dataclasses.replace(services.settings, actor=actor, trusted_actors=reviewers))


def test_trust_counts_only_for_its_actor_and_their_reviewers(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = _folder(tmp_path / "bomb", "python", {"file": "model.pkl"}, {"model.pkl": pickle.dumps(PickleBomb(marker))})
    mallory = _as(services, "mallory@evil")
    alice = services.registry  # tester@ci
    try:
        # what log_model does: the registrant trusts what it saved; that covers the registrant only
        mallory.registry.register("shared", bomb, trust_as_registrant=True)
        message = _refused(services, "shared@1")
        assert "trusted by mallory@evil, who is not you or a listed reviewer" in message
        assert not marker.exists()

        legit = tmp_path / "legit"
        model = LogisticRegression(max_iter=300).fit(X, Y)
        save_model(get_flavor("sklearn"), model, legit, options={"serializer": "pickle"})
        mallory.registry.register("shared", legit, trust_as_registrant=True)
        assert mallory.registry.load("shared@2").predict(X[:2]).shape == (2,)
        _refused(services, "shared@2")
        assert alice.trust_event(alice.resolve("shared@2")) is None

        reviewing = _as(services, "tester@ci", reviewers=("mallory@evil",))  # Alice lists Mallory as a reviewer
        try:
            assert reviewing.registry.load("shared@2").predict(X[:2]).shape == (2,)
        finally:
            reviewing.close()

        alice.trust("shared@2", TrustSet(pickle=True), "reviewed it myself")
        mallory.registry.trust("shared@2", TrustSet(), "revoked, for me")  # counts for Mallory only
        assert alice.load("shared@2").predict(X[:2]).shape == (2,)
        with pytest.raises(UntrustedModelError, match=r"^shared@2 is not trusted to load: it contains a pickle"):
            mallory.registry.load("shared@2")
        assert not marker.exists()
    finally:
        mallory.close()


def test_trusted_actors_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".shipyard").mkdir()  # settings are a project's
    settings = load_settings({"SHIPYARD_TRUSTED_ACTORS": " ci@build, alice@laptop,,ci@build "}, tmp_path)
    assert settings.trusted_actors == ("ci@build", "alice@laptop")
    assert load_settings({}, tmp_path).trusted_actors == ()
    with pytest.raises(ConfigError, match=r"^SHIPYARD_TRUSTED_ACTORS: 'a\\nb' is not an actor name"):
        load_settings({"SHIPYARD_TRUSTED_ACTORS": "a\nb"}, tmp_path)
