"""``shipyard verify`` against hostile input: a model process that floods its stderr, is killed, exits
without an answer or hangs; a model that needs trust it was not given; golden examples and answers nested
or sized to break the comparison or the parser. Every case ends in a one-line reason, never a traceback.

The model process runs in this interpreter (no uv environment is built): what is tested is how the
parent reads it. A "model" here is a pickle that runs one statement when it is loaded.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.environments.venvs import Child, ChildResult, run_child
from shipyard.core.environments.golden import compare
from shipyard.core.environments.image import answer_outputs, infer_request


class _Runs:
    """Unpickles as ``exec(code)``: a model whose loading does what ``code`` says."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def _child(tmp: Path, code: str, trusted: tuple[str, ...] = ("pickle",), timeout: float = 60) -> ChildResult:
    folder = tmp / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(_Runs(code)))
    return run_child(Path(sys.executable), folder, "python", {"file": "model.pkl"}, trusted, [[1.0, 2.0]],
                     timeout)


def _one_line(result: ChildResult) -> str:
    assert not result.ok and result.error and "\n" not in result.error and len(result.error) < 600, result
    assert "Traceback" not in result.error
    return result.error


def test_a_process_that_floods_stderr_then_exits_without_an_answer_is_one_line(tmp_path: Path) -> None:
    # 32 MiB on stderr in one line, then a last line, then exit 0 with no result written
    code = ("import os, sys; sys.stderr.write('x' * (32 << 20) + '\\n'); sys.stderr.write('the last words\\n'); "
            "sys.stderr.flush(); os._exit(0)")
    assert _one_line(_child(tmp_path, code)) == "the model's process failed: the last words"
    silent = _child(tmp_path, "import os; os._exit(0)")
    assert _one_line(silent).endswith("exit status 0, without an answer")


def test_a_process_killed_or_hanging_is_one_line_with_the_reason(tmp_path: Path) -> None:
    killed = _child(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert _one_line(killed).endswith("killed by signal 9, without an answer")
    hung = _child(tmp_path, "import time; time.sleep(300)", timeout=2)
    assert _one_line(hung) == "the model did not answer within 2 s"


def test_a_model_that_needs_trust_it_was_not_given_is_refused_and_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    refused = _child(tmp_path, f"open({str(marker)!r}, 'w').write('ran')", trusted=())
    assert refused.untrusted and refused.stage == "load" and not marker.exists()
    assert "UntrustedModelError" in _one_line(refused)


def test_an_answer_nested_past_the_parsers_bound_is_one_line(tmp_path: Path) -> None:
    child = Child(Path(sys.executable), "", "python")
    try:
        # a child whose result file is nested 100000 deep: json.loads raises RecursionError, not ValueError
        folder = tmp_path / "model"
        folder.mkdir()
        result = str(child.folder / "result.json")
        code = f"import os; open({result!r}, 'w').write('[' * 100000); os._exit(0)"
        (folder / "model.pkl").write_bytes(pickle.dumps(_Runs(code)))
        deep = child.answer(folder, {"file": "model.pkl"}, ["pickle"], [[1.0]], 60)
    finally:
        child.close()
    assert _one_line(deep).startswith("the model's process failed")
    # a result forged by what ran there: a multi-line error and odd package names are one line each
    child = Child(Path(sys.executable), "", "python")
    try:
        forged = json.dumps({"ok": False, "stage": "load\nx", "error": "a\nb\x1b[2J", "untrusted": False,
                             "packages": {"numpy\nevil": ["1"] * 1000}})
        code = f"import os; open({str(child.folder / 'result.json')!r}, 'w').write({forged!r}); os._exit(1)"
        (folder / "model.pkl").write_bytes(pickle.dumps(_Runs(code)))
        odd = child.answer(folder, {"file": "model.pkl"}, ["pickle"], [[1.0]], 60)
    finally:
        child.close()
    assert _one_line(odd) == "a b\x1b[2J" and odd.stage == "load x" and odd.packages is not None
    assert all("\n" not in k + v and len(v) <= 100 for k, v in odd.packages.items())


def test_golden_differences_of_deep_or_huge_values_stay_short() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):  # deeper than repr() can go
        inner.append([])
        inner = inner[0]
    verdict = compare([1.0], [1.0, deep, [0.5] * 1_000_000])
    assert not verdict.passed and verdict.differing == 2
    for d in verdict.worst:
        assert len(d.describe()) < 300
    assert len(json.dumps(verdict.to_dict())) < 2000
    mixed = compare([[1.0, "a", None, True]], [[float("nan"), 1, "None", 1]])
    assert sorted(d.reason for d in mixed.worst) == ["label", "label", "label", "nan"]


def test_an_image_answer_or_golden_inputs_of_the_wrong_form_are_value_errors() -> None:
    for body in ({"outputs": [{"shape": [1] * 100000, "data": [1.0]}]},
                 {"outputs": [{"shape": [True, 1], "data": [1.0]}]},
                 {"outputs": [{"shape": [10**12, 10**12], "data": [1.0]}]},
                 {"outputs": "garbage"}):
        with pytest.raises(ValueError):
            answer_outputs(body)
    for inputs in ([[1.0, 2.0], 3.0], "rows", {"columns": ["a"]}):  # verify --image: cannot send them as one tensor
        with pytest.raises(TypeError):
            infer_request(inputs, None)
    table = infer_request({"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}, None)  # a DataFrame's examples
    assert table["inputs"][0]["shape"] == [2, 2] and table["inputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]


def test_python_values_that_are_options_or_several_words_are_refused() -> None:
    from shipyard.errors import InvalidInputError
    from shipyard.wiring import check_python

    for bad in ("--version", "-I", "3.11\nx", "3.11 --x", "", "\x1b[2J"):
        with pytest.raises(InvalidInputError, match="--python"):
            check_python(bad)
    assert check_python("3.12") == "3.12" and check_python("/usr/bin/python3") == "/usr/bin/python3"


def test_a_relative_cache_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.wiring import verify_cache_dir

    monkeypatch.chdir(tmp_path)  # the model's process runs in a folder of its own: a relative path breaks there
    assert verify_cache_dir({"SHIPYARD_CACHE_DIR": "rel"}) == tmp_path / "rel" / "envs"
    assert verify_cache_dir({"XDG_CACHE_HOME": "xdg"}) == tmp_path / "xdg" / "shipyard" / "envs"


def test_a_link_planted_under_a_key_with_a_forged_marker_is_never_used(tmp_path: Path) -> None:
    from shipyard.adapters.environments.venvs import MARKER, EnvCache, Environment, EnvSpec, environment_key, uv_version
    from shipyard.interfaces.cli.demo import tiny_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0", "X = 1\n")
    cache = EnvCache(tmp_path / "envs")
    spec = EnvSpec(f"{sys.version_info[0]}.{sys.version_info[1]}", ("tinypkg==1.0",), find_links=(wheels,))
    key = environment_key(spec, uv_version())
    forged = tmp_path / "forged"
    (forged / "bin").mkdir(parents=True)
    (forged / "bin" / "python").write_text("#!/bin/sh\ntouch pwned\n")
    (forged / MARKER).write_text(json.dumps({"key": key}))
    cache.root.mkdir()
    cache.folder(key).symlink_to(forged, target_is_directory=True)
    env = cache.ensure(spec)
    assert isinstance(env, Environment) and env.reused is False, env
    assert not env.path.is_symlink() and env.python.resolve() != forged / "bin" / "python"
    assert (forged / MARKER).exists()  # the link was removed, not what it pointed to


def test_a_hint_whose_key_is_a_path_starts_nothing(tmp_path: Path) -> None:
    import hashlib

    from shipyard.adapters.environments.venvs import MARKER, early

    evil = "../../outside"
    outside = tmp_path / "outside"  # root/<key> with key "../../outside" lands here
    (outside / "bin").mkdir(parents=True)
    marker = tmp_path / "ran"
    (outside / "bin" / "python").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (outside / "bin" / "python").chmod(0o755)
    (outside / MARKER).write_text(json.dumps({"key": evil}))
    root = tmp_path / "cache" / "envs"
    (root / "hints").mkdir(parents=True)
    (root / "hints" / hashlib.sha256(b"hint").hexdigest()[:40]).write_text(json.dumps({"key": evil,
                                                                                      "flavor": "python"}))
    assert early(root, "hint") is None and not marker.exists()


def test_a_cache_whose_lock_is_a_link_is_one_line(tmp_path: Path) -> None:
    from shipyard.adapters.environments.venvs import EnvCache, EnvSpec, environment_key, uv_version
    from shipyard.errors import BackendUnavailableError

    cache = EnvCache(tmp_path / "envs")
    spec = EnvSpec("3.11", ("tinypkg==1.0",))
    cache.root.mkdir()
    lock = cache.root / f"{cache.folder(environment_key(spec, uv_version())).name}.lock"
    lock.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BackendUnavailableError, match=r"cannot build in the environment cache .*SHIPYARD_CACHE_DIR"):
        cache.ensure(spec)
    assert not (tmp_path / "elsewhere").exists()
