"""`env check`: can a target run a model? GPU facts from the documented outputs of `nvidia-smi
--query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader` and of `torch.version.cuda` /
`torch.cuda.get_arch_list()` (no GPU machine here), Python, machine and pinned packages; the CLI on a real version."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.flavors import get_flavor
from shipyard.core.environments.capture import SCHEMA, arch_list, gpu_section, local_tag, parse_nvidia_smi
from shipyard.core.environments.check import check, cuda_builds, min_driver, runs_on
from shipyard.core.registry.saving import save_model
from shipyard.wiring import Services, build, current_environment, settings_from_environment
from tests.conftest import cli_env, shipyard

A100 = "NVIDIA A100-SXM4-80GB, 535.129.03, 8.0, 81920 MiB\n"
H100 = "NVIDIA H100 80GB HBM3, 550.54.15, 9.0, 81559 MiB\n"
V100 = "Tesla V100-SXM2-16GB, 535.104.05, 7.0, 16384 MiB\n"
OLD_DRIVER_A100 = "NVIDIA A100-PCIE-40GB, 470.82.01, 8.0, 40960 MiB\n"
CU121_ARCHS = ["sm_80", "sm_90"]  # torch.cuda.get_arch_list() of a build for Ampere and Hopper only
TORCH_PINS = ["torch", "numpy"]


def record(smi: str | None, torch: str = "2.3.0+cu121", cuda: str | None = "12.1",
           archs: Sequence[str] = CU121_ARCHS, python: str = "3.11.7", machine: str = "x86_64",
           numpy: str = "1.26.4") -> dict[str, Any]:
    """A v2 record as the probe writes it from nvidia-smi's output and torch's build facts."""
    gpu: dict[str, Any] = ({"gpu": gpu_section(parse_nvidia_smi(smi)), "gpu_absent": None} if smi
                           else {"gpu": None, "gpu_absent": "nvidia-smi is not on PATH"})
    return {"schema": SCHEMA, "python": {"version": python, "implementation": "CPython"},
            "os": {"system": "Linux", "machine": machine}, **gpu,
            "frameworks": {"torch": {"version": torch, "tag": local_tag(torch), "cuda": cuda,
                                     "arch": arch_list(archs if cuda else [])}},
            "packages": {"torch": {"version": torch, "source": {"kind": "index"}},
                         "numpy": {"version": numpy, "source": {"kind": "index"}},
                         "pandas": {"version": "2.2.0", "source": {"kind": "index"}},
                         "requests": {"version": "2.31.0", "source": {"kind": "index"}}}}


GPU_MODEL = record(A100)


def test_a_gpu_record_is_accepted_against_itself_and_a_newer_gpu_with_its_arch() -> None:
    assert check(GPU_MODEL, GPU_MODEL, TORCH_PINS) == []
    assert check(GPU_MODEL, record(H100), TORCH_PINS) == []  # sm_90 in the build, a newer driver


def test_a_gpu_model_on_a_cpu_only_target_names_the_missing_driver() -> None:
    target = record(None, torch="2.3.0+cu121")
    [mismatch] = check(GPU_MODEL, target, TORCH_PINS)
    assert mismatch.what == "torch GPU"
    assert mismatch.line() == ("torch GPU: the model has CUDA 12.1, the target no NVIDIA GPU (nvidia-smi is not on "
                               "PATH); run it on a machine with an NVIDIA GPU and driver >= 525.60.13")
    # the usual CPU-only target also has a CPU build of torch: that is named too, with what to install
    lines = [m.line() for m in check(GPU_MODEL, record(None, torch="2.3.0+cpu", cuda=None), TORCH_PINS)]
    assert any(line.startswith("torch GPU:") for line in lines)
    assert "package torch: the model has 2.3.0+cu121, the target 2.3.0+cpu; install torch==2.3.0+cu121 there" in lines


def test_a_driver_too_old_for_the_cuda_runtime_is_named_with_the_minimum() -> None:
    [mismatch] = check(GPU_MODEL, record(OLD_DRIVER_A100), TORCH_PINS)
    assert mismatch.what == "torch CUDA driver"
    assert "driver 470.82.01" in mismatch.line() and "upgrade the NVIDIA driver to >= 525.60.13" in mismatch.line()
    # a CUDA 11.8 build runs on that driver (minor version compatibility: 11.x needs >= 450.80.02)
    cu118 = record(A100, torch="2.3.0+cu118", cuda="11.8")
    assert check(cu118, record(OLD_DRIVER_A100, torch="2.3.0+cu118", cuda="11.8"), TORCH_PINS) == []


def test_a_gpu_the_build_has_no_code_for_is_named() -> None:
    [mismatch] = check(GPU_MODEL, record(V100), TORCH_PINS)
    assert mismatch.what == "torch GPU architecture"
    assert mismatch.line() == ("torch GPU architecture: the model has sm_80 sm_90, the target compute capability 7.0 "
                               "(sm_70); use a torch build compiled for sm_70 (or with PTX for an older "
                               "architecture), or run it on a GPU the build supports")
    with_ptx = record(A100, archs=["sm_80", "compute_70"])
    assert check(with_ptx, record(V100), TORCH_PINS) == []  # PTX for 7.0 is compiled by the driver


def test_architecture_compatibility_follows_cuda_binary_and_ptx_rules() -> None:
    assert runs_on(["sm_80"], "8.6")  # a cubin runs on a later minor of its major
    assert not runs_on(["sm_86"], "8.0") and not runs_on(["sm_80"], "9.0")
    assert runs_on(["compute_80"], "9.0") and not runs_on(["compute_90"], "8.0")
    assert runs_on(["sm_90a"], "9.0") and not runs_on(["sm_90a"], "9.1")  # arch-specific: that GPU only
    assert runs_on(["sm_100"], "10.0") and not runs_on(["sm_90"], "10.0")
    assert runs_on(["sm_80"], "unknown")  # nothing known, nothing reported


def test_the_minimum_drivers_are_nvidias_published_ones() -> None:
    assert min_driver("12.1") == min_driver("12.8") == "525.60.13"
    assert min_driver("11.8") == "450.80.02"
    assert min_driver("13.0") == "580.65.06"
    assert min_driver("10.2") == "440.33"
    assert min_driver("9.0") is None and min_driver("") is None


def test_the_cuda_build_comes_from_the_version_tag_when_torch_was_not_imported() -> None:
    env = record(A100, torch="2.1.0+cu118")
    del env["frameworks"]
    assert cuda_builds(env) == {"torch": {"cuda": "11.8", "arch": []}}
    assert cuda_builds(record(None, torch="2.3.0+cpu", cuda=None)) == {}
    assert check(env, record(OLD_DRIVER_A100, torch="2.1.0+cu118"), TORCH_PINS) == []  # 470.82.01 >= 450.80.02
    [mismatch] = check(env, record(None, torch="2.1.0+cu118"), TORCH_PINS)
    assert mismatch.line().endswith("driver >= 450.80.02")


def test_python_machine_and_pinned_critical_packages_each_say_what_to_change() -> None:
    model = record(None, torch="2.3.0+cpu", cuda=None)
    target = record(None, torch="2.3.0+cpu", cuda=None, python="3.12.1", machine="aarch64", numpy="2.0.0")
    target["packages"]["pandas"]["version"] = "2.2.3"  # critical, but not pinned by the model's lock
    target["packages"]["requests"]["version"] = "2.32.0"  # pinned, but not ML-critical
    lines = [m.line() for m in check(model, target, ["torch", "numpy", "requests"])]
    assert lines == [
        "python: the model has 3.11, the target 3.12; run it on Python 3.11 (e.g. `uv venv --python 3.11`, or a "
        "python:3.11 base image)",
        "architecture: the model has x86_64, the target aarch64; run it on an x86_64 machine: compiled packages "
        "(numpy, torch, ...) are built for one architecture",
        "package numpy: the model has 1.26.4, the target 2.0.0; install numpy==1.26.4 there"]
    del target["packages"]["numpy"]
    assert "package numpy: the model has 1.26.4, the target none; install numpy==1.26.4" in \
        [m.line() for m in check(model, target, ["numpy"])]
    # what the model's own code declared (a root of its lock) is compared though it is not ML-critical
    assert "package requests: the model has 2.31.0, the target 2.32.0; install requests==2.31.0 there" in \
        [m.line() for m in check(model, target, ["torch", "requests"], roots=["requests"])]


def test_a_model_whose_lock_has_no_gpu_framework_gets_no_gpu_checks() -> None:
    # trained where a CUDA torch and a GPU were present, but the model is scikit-learn: torch is not its business
    assert check(GPU_MODEL, record(None, torch="2.3.0+cu121"), ["numpy", "scikit-learn"]) == []


# -- the CLI on a real version ---------------------------------------------------------------------------------

class Identity:
    def predict(self, inputs: Any) -> Any:
        return inputs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, Path]]:
    root = tmp_path_factory.mktemp("checkproj")
    svc = build(settings_from_environment({"SHIPYARD_HOME": str(root / ".shipyard")}, root), root)
    save_model(get_flavor("python"), Identity(), root / "m", requirements=["numpy"])
    svc.registry.register("ident", root / "m", trust_as_registrant=True)
    yield svc, root
    svc.close()


def test_env_check_says_can_run_here_and_names_each_mismatch_of_a_target_file(
        project: tuple[Services, Path], tmp_path: Path) -> None:
    svc, root = project
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    done = shipyard("env", "check", "ident@1", env=env, cwd=root)
    assert done.stdout == "the current environment can run ident@1\n"
    target = current_environment(svc.settings)
    target["python"]["version"] = "3.99.0"
    target["packages"]["numpy"]["version"] = "0.1.0"
    path = tmp_path / "target.json"
    path.write_text(json.dumps(target))
    failed = shipyard("env", "check", "ident@1", "--target", str(path), env=env, cwd=root, check=False)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert lines[0] == f"{path} cannot run ident@1 as registered: 2 mismatches"
    assert lines[1].startswith("  python: the model has 3.11, the target 3.99; run it on Python 3.11")
    numpy = target["packages"]["numpy"]
    assert lines[2].startswith("  package numpy: the model has ") and "the target 0.1.0; install numpy==" in lines[2]
    assert numpy["version"] == "0.1.0"
    as_json = json.loads(shipyard("env", "check", "ident@1", "--target", str(path), "--json", env=env, cwd=root,
                                  check=False).stdout)
    assert as_json["ok"] is False and [m["what"] for m in as_json["mismatches"]] == ["python", "package numpy"]
    path.write_text("[1, 2")
    bad = shipyard("env", "check", "ident@1", "--target", str(path), env=env, cwd=root, check=False)
    assert bad.returncode != 0 and bad.stderr.startswith(f"error: {path} is not an environment record")
    assert "Traceback" not in bad.stderr
