"""Params files are read only from inside the project (issue 7, attack finding 3).

A stage's ``params: [FILE:key]`` or the top-level ``params:`` naming ``/etc/hostname``,
``../../x.yaml`` or a link out of the project would put another file's values into shipyard.lock
and the run's params. Refused when shipyard.yaml is loaded, and again where the file is read.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from shipyard._version import __version__
from shipyard.adapters.executors.local import LocalExecutor
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.pipelines.reproduce import check_tolerance, reproduce
from shipyard.core.project.loader import CACHE_FILE, load_config, parse_config
from shipyard.core.registry.saving import save_model
from shipyard.errors import ConfigError, InvalidInputError
from shipyard.wiring import Services


@pytest.mark.parametrize(("config", "where", "name"), [
    ("stages:\n  s:\n    cmd: x\n    params: ['/etc/hostname:a']\n", "shipyard.yaml:5: stages.s.params:",
     "'/etc/hostname'"),
    ("stages:\n  s:\n    cmd: x\n    params: ['../../x.yaml:key']\n", "shipyard.yaml:5: stages.s.params:",
     "'../../x.yaml'"),
    ("stages:\n  s:\n    cmd: x\n    params: ['sub/../../x.yaml:key']\n", "shipyard.yaml:5: stages.s.params:",
     "'sub/../../x.yaml'"),
    ("params: /proc/self/environ\n", "shipyard.yaml:2: params:", "'/proc/self/environ'"),
    ("params: ../x.yaml\n", "shipyard.yaml:2: params:", "'../x.yaml'"),
])
def test_a_params_file_outside_the_project_is_refused_at_config_load(config: str, where: str, name: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config("version: 1\n" + config)
    message = str(exc.value)
    assert message.startswith(where) and f"params file {name} is outside the project" in message
    assert "Value error" not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("wdir", ["..", "/tmp", "sub/../../x"])
def test_a_working_folder_outside_the_project_is_refused_at_config_load(wdir: str) -> None:
    with pytest.raises(ConfigError, match=r"^shipyard.yaml:4: stages.s.wdir: working folder .* is outside the project"):
        parse_config(f"version: 1\nstages:\n  s:\n    wdir: '{wdir}'\n    cmd: x\n")


def test_params_files_inside_the_project_are_accepted() -> None:
    config = parse_config("version: 1\nparams: conf/p.yaml\nstages:\n  s:\n    cmd: x\n"
                          "    params: [a.b, 'conf/other.json:c', './x.yaml:d']\n    wdir: ./sub/\n")
    assert config.stages["s"].params == ("a.b", "conf/other.json:c", "./x.yaml:d")


def test_a_config_cached_as_valid_before_the_check_is_validated_again(tmp_path: Path) -> None:
    text = b"version: 1\nstages:\n  s:\n    cmd: x\n    params: ['/etc/hostname:a']\n"
    (tmp_path / "shipyard.yaml").write_bytes(text)
    (tmp_path / ".shipyard").mkdir()
    stale = {"version": 1, "params": "params.yaml", "default_remote": None, "remotes": {},
             "executor": {"kind": "local", "address": None, "num_cpus": 1.0},
             "stages": {"s": {"cmd": "x", "deps": [], "params": ["/etc/hostname:a"], "outs": [], "metrics": [],
                              "env": [], "wdir": "."}}}
    key = f"{__version__}:{hashlib.sha256(text).hexdigest()}"  # the key before validation got stricter
    (tmp_path / CACHE_FILE).write_text(json.dumps({"key": key, "config": stale}))
    with pytest.raises(ConfigError, match="outside the project"):
        load_config(tmp_path)


@pytest.mark.parametrize("spec", ["/etc/hostname:a", "../outside.yaml:a"])
def test_the_reader_refuses_an_outside_params_file_even_without_the_config_check(tmp_path: Path, spec: str) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (tmp_path / "outside.yaml").write_text("a: secret\n")
    with pytest.raises(ConfigError, match=r"stage 's' params file .* is outside the project"):
        ParamFiles(root, "params.yaml").values("s", (spec,))


@pytest.mark.parametrize("default", [True, False])
def test_a_params_file_linked_out_of_the_project_is_refused(tmp_path: Path, default: bool) -> None:
    root = tmp_path / "proj"
    (root / "conf").mkdir(parents=True)
    (tmp_path / "kubeconfig").write_text("users: secret\n")
    (root / "params.yaml").symlink_to(tmp_path / "kubeconfig")
    (root / "linked").symlink_to(tmp_path)
    spec = "users" if default else "linked/kubeconfig:users"
    with pytest.raises(ConfigError, match="leads outside the project") as exc:
        ParamFiles(root, "params.yaml").values("s", (spec,))
    assert "secret" not in str(exc.value)


def test_a_params_file_linked_inside_the_project_is_read(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "real.yaml").write_text("a: 1\n")
    (tmp_path / "params.yaml").symlink_to("conf/real.yaml")
    assert ParamFiles(tmp_path, "params.yaml").values("s", ("a",)) == {"a": 1}


def test_reproduce_refuses_a_recorded_params_file_outside_its_scratch_folder(services: Services,
                                                                              tmp_path: Path) -> None:
    """The attack's second half: a run recorded (before the config check) with params from /abs/x.yaml."""
    from sklearn.dummy import DummyClassifier

    target = tmp_path / "attack-abs-params.yaml"
    run = services.tracker.start_run(name="train")
    services.meta.set_tags(run.id, {"shipyard.cmd": "true", "shipyard.stage": "train"})
    services.tracker.log_params(run.id, {f"{target}:a": "1"})
    folder = tmp_path / "saved"
    save_model(services.registry.flavors("sklearn"), DummyClassifier().fit([[0], [1]], [0, 1]), folder, None, {})
    version = services.registry.register("m", folder, run_id=run.id)
    services.tracker.end_run(run.id)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(InvalidInputError, match="outside its folder"):
        reproduce(services.meta, services.store, version, scratch, LocalExecutor(), {})
    assert not target.exists()


@pytest.mark.parametrize("tolerance", [-1.0, -1e-12, math.nan, math.inf, -math.inf])
def test_a_tolerance_that_is_negative_or_not_finite_is_refused(tolerance: float) -> None:
    with pytest.raises(InvalidInputError, match="--tolerance must be a finite number >= 0"):
        check_tolerance(tolerance)


def test_a_zero_or_positive_tolerance_is_kept() -> None:
    assert check_tolerance(0) == 0.0 and check_tolerance(0.5) == 0.5
