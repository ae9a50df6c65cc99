"""shipyard.yaml's ``models:``: ``shipyard run`` registers a version when the declared stage output changes, with
the evaluating stage's metrics and the producing stage's run as lineage; ``reproduce`` and ``serve`` work on it;
a bad declaration is one line, registers nothing and keeps the pipeline's results.

One project for the module, its steps in order (a run, an unchanged run, a param change, ...): the CLI runs
in-process (CliRunner) except where a separate process is the point (two runs at once, the server)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from shipyard.core.workspace.lockfile import load_lock
from shipyard.errors import ConfigError, ShipyardError
from shipyard.interfaces.cli.app import app
from shipyard.wiring import Services, build, open_pipeline, saved_model, settings_from_environment
from shipyard.wiring.declared_models import Declared, load_examples, register_declared
from tests.conftest import cli_env, serving_process

pytestmark = pytest.mark.xdist_group("declared-models")  # one project for the module, its steps in order

TRAIN = """\
import pathlib, pickle, yaml
import numpy as np
from sklearn.linear_model import LogisticRegression
c = yaml.safe_load(open("params.yaml"))["train"]["C"]
X = np.load("data/X.npy")
model = LogisticRegression(C=c).fit(X, (X[:, 0] + X[:, 1] > 1).astype(int))
pathlib.Path("models").mkdir(exist_ok=True)
with open("models/model.pkl", "wb") as f:
    pickle.dump(model, f)
np.save("models/scores.npy", model.predict_proba(X)[:, 1])
"""
EVALUATE = """\
import json
import numpy as np
X, scores = np.load("data/X.npy"), np.load("models/scores.npy")
truth = X[:, 0] + X[:, 1] > 1
json.dump({"accuracy": float(((scores > 0.5) == truth).mean()), "mean_score": float(scores.mean())},
          open("metrics.json", "w"))
"""
RULES = """\
import pathlib, pickle, sys
sys.path.insert(0, "src")
from mymodels import Threshold
pathlib.Path("rules").mkdir(exist_ok=True)
with open("rules/model.pkl", "wb") as f:
    pickle.dump(Threshold(1.0), f)
"""
THRESHOLD = """\
class Threshold:
    def __init__(self, cut):
        self.cut = cut

    def predict(self, rows):
        return [int(sum(row) > self.cut) for row in rows]
"""
STAGES = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py, data/X.npy]
    params: [train.C]
    outs: [models]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, models, data/X.npy]
    metrics: [metrics.json]
  rules:
    cmd: python rules.py
    deps: [rules.py, src/mymodels]
    outs: [rules]
"""
MODEL = """\
models:
  clf:
    path: {path}
    flavor: sklearn
    examples: {examples}
    metrics: evaluate
    desc: a tiny classifier
    labels: [demo, tabular]
  rules:
    path: rules/model.pkl
    flavor: python
    examples: data/golden.json
    code_paths: [src/mymodels]
"""
GOOD = {"path": "models/model.pkl", "examples": "data/golden.npy"}

cli = CliRunner()


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("declared") / "proj"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(root / "data" / "X.npy", rng.random((60, 2)))
    np.save(root / "data" / "golden.npy", rng.random((4, 2)))
    np.save(root / "data" / "wide.npy", rng.random((4, 3)))
    (root / "train.py").write_text(TRAIN)
    (root / "evaluate.py").write_text(EVALUATE)
    (root / "params.yaml").write_text("train:\n  C: 1.0\n")
    (root / "data" / "golden.json").write_text("[[0.9, 0.9], [0.0, 0.1]]")
    (root / "rules.py").write_text(RULES)
    (root / "src" / "mymodels").mkdir(parents=True)
    (root / "src" / "mymodels" / "__init__.py").write_text(THRESHOLD)
    declare(root)
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("SHIPYARD_")]:
            mp.delenv(key)
        mp.setenv("SHIPYARD_HOME", str(root / ".shipyard"))
        mp.chdir(root)
        yield root


def declare(root: Path, **changes: str) -> None:
    (root / "shipyard.yaml").write_text(STAGES + MODEL.format(**{**GOOD, **changes}))


def sy(*args: str, code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, f"shipyard {' '.join(args)} exited {result.exit_code}: {result.output}" \
                                     f"{result.exception!r}"
    return result


@contextlib.contextmanager
def services(root: Path) -> Iterator[Services]:
    svc = build(settings_from_environment(cwd=root), root)
    try:
        yield svc
    finally:
        svc.close()


def versions(root: Path) -> list[int]:
    with services(root) as svc:
        return [v.version for v in svc.registry.versions("clf")] if svc.registry.models() else []


def test_run_registers_the_declared_model_with_metrics_and_lineage(proj: Path) -> None:
    done = sy("run")
    assert "registered clf@1 from models/model.pkl (stage train)" in done.output
    assert "registered rules@1 from rules/model.pkl (stage rules)" in done.output
    lock = load_lock(proj)
    with services(proj) as svc:
        mv = svc.registry.resolve("clf@1")
        assert mv.run_id == lock.stages["train"].run  # lineage: the stage run that wrote the bytes
        evaluate = svc.meta.get_run(lock.stages["evaluate"].run or "")
        assert mv.metrics["accuracy"] == evaluate.metrics["accuracy"] > 0.8  # the evaluating stage's metrics
        assert mv.params == {"train.C": "1.0"}
        assert mv.description == "a tiny classifier\nlabels: demo, tabular"
        assert mv.flavor == "sklearn" and mv.signature["inputs"]["shape"] == [-1, 2]  # type: ignore[index]
        golden = svc.registry.examples(mv)
        assert golden is not None and len(golden["inputs"]) == 4
        assert saved_model(svc, mv).flavor_meta["serializer"] == "skops"  # the pickle was saved through skops
        model = svc.registry.load(mv.ref)
        assert model.predict(np.array(golden["inputs"])).tolist() == golden["outputs"]
    assert "train" in sy("models", "lineage", "clf@1").output
    shown = sy("models", "show", "clf@1").output
    assert "a tiny classifier" in shown


def test_project_code_is_stored_with_a_python_model(proj: Path, tmp_path: Path) -> None:
    """rules@1 pickles a class of the project (src/mymodels): code_paths stores it with the version, so it loads
    in a process that does not run in the project (no PYTHONPATH)."""
    code = "import shipyard\nprint(shipyard.load_model('rules@1').predict([[0.9, 0.9], [0.0, 0.1]]))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=cli_env(SHIPYARD_HOME=str(proj / ".shipyard")), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 0]"


def test_a_model_declared_later_registers_from_the_output_as_it_is(proj: Path) -> None:
    """A declaration added to a pipeline that is up to date: registered from the recorded output, nothing re-run;
    sparse golden examples (scipy's save_npz) kept as such."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    sp.save_npz(proj / "data" / "golden.npz", sp.csr_matrix(np.array([[0.9, 0.0], [0.0, 0.1], [1.0, 1.0]])))
    config = (proj / "shipyard.yaml").read_text()
    (proj / "shipyard.yaml").write_text(config + "  sparse:\n    path: models/model.pkl\n    flavor: sklearn\n"
                                                 "    examples: data/golden.npz\n")
    try:
        outcomes = json.loads(sy("run", "--json").output)
        assert {o["result"] for o in outcomes} == {"up-to-date"}
        assert [o.get("registered") for o in outcomes if o["stage"] == "train"] == [["sparse@1"]]
        with services(proj) as svc:
            mv = svc.registry.resolve("sparse@1")
            assert mv.run_id == svc.registry.resolve("clf@1").run_id
            assert mv.signature["inputs"]["sparse"]  # type: ignore[index]
    finally:
        (proj / "shipyard.yaml").write_text(config)


def test_reference_data_gives_a_declared_version_its_drift_profile(proj: Path) -> None:
    """New-user F3: `serve` told a declared model's user to call log_model(..., reference=); models: takes
    reference: (a data file) and records the version's reference profile, with the model's answers on it."""
    from shipyard.wiring.monitoring import baseline

    config = (proj / "shipyard.yaml").read_text()
    (proj / "shipyard.yaml").write_text(config + "  profiled:\n    path: models/model.pkl\n    flavor: sklearn\n"
                                                 "    reference: data/X.npy\n")
    try:
        assert "registered profiled@1" in sy("run").output
        with services(proj) as svc:
            assert baseline(svc, svc.registry.resolve("profiled@1")) is not None
            assert baseline(svc, svc.registry.resolve("clf@1")) is None
    finally:
        (proj / "shipyard.yaml").write_text(config)


def test_an_output_recorded_without_a_run_waits_for_one(proj: Path) -> None:
    """As `init --from-dvc` records DVC's outputs: no run, so no lineage yet; the run says how to make one."""
    saved = (proj / "shipyard.lock").read_text()
    lock = load_lock(proj)
    lock.stages["rules"] = dataclasses.replace(lock.stages["rules"], run=None)
    (proj / "shipyard.lock").write_text(lock.to_yaml())
    try:
        done = sy("run", "rules")
        assert "model rules is not registered yet: stage rules's output was recorded without a run" in done.output
    finally:
        (proj / "shipyard.lock").write_text(saved)


def test_a_foreach_group_named_as_metrics_stage_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "group"
    root.mkdir()
    (root / "shipyard.yaml").write_text(
        "stages:\n  train:\n    cmd: python -c \"open('m.onnx', 'w')\"\n    outs: [m.onnx]\n"
        "  evaluate:\n    foreach: [lr, rf]\n    do:\n      cmd: echo ${item} > ${item}.txt\n"
        "      outs: ['${item}.txt']\n"
        "models:\n  clf:\n    path: m.onnx\n    flavor: onnx\n    metrics: evaluate\n")
    monkeypatch.setenv("SHIPYARD_HOME", str(root / ".shipyard"))
    monkeypatch.chdir(root)
    failed = sy("run", code=1)
    assert isinstance(failed.exception, ConfigError)
    assert str(failed.exception) == ("model clf: metrics: 'evaluate' is a foreach group, not a stage: name the "
                                     "member that evaluates this model, e.g. evaluate@lr or evaluate@rf; nothing "
                                     "was run")
    assert not (root / "m.onnx").exists() and not (root / "shipyard.lock").exists()


def test_nothing_changed_registers_nothing(proj: Path) -> None:
    assert "registered" not in sy("run").output
    # the output deleted and restored from the stage cache: the same bytes, nothing new
    (proj / "models" / "model.pkl").unlink()
    again = sy("run", "--json")
    assert {o["stage"]: o["result"] for o in json.loads(again.output)}["train"] == "cached"
    assert "registered" not in again.output
    assert versions(proj) == [1]


def test_a_param_change_registers_v2_in_json(proj: Path) -> None:
    (proj / "params.yaml").write_text("train:\n  C: 0.01\n")
    alone = sy("run", "train").output  # its metrics stage did not run: not yet, and not an error
    assert "model clf is not registered yet: its metrics stage evaluate did not run with it" in alone
    assert versions(proj) == [1]
    outcomes = {o["stage"]: o for o in json.loads(sy("run", "--json").output)}
    assert outcomes["train"]["result"] == "up-to-date" and outcomes["evaluate"]["result"] == "ran"
    assert outcomes["train"]["registered"] == ["clf@2"]
    assert "registered" not in outcomes["evaluate"]
    with services(proj) as svc:
        mv = svc.registry.resolve("clf@2")
        assert mv.params == {"train.C": "0.01"}
        assert mv.metrics == svc.meta.get_run(load_lock(proj).stages["evaluate"].run or "").metrics
        assert mv.metrics["mean_score"] != svc.registry.resolve("clf@1").metrics["mean_score"]
        assert mv.run_id == load_lock(proj).stages["train"].run
    # back to C=1.0: the stage comes from the cache, with bytes unlike v2's: registered again, as v3, lineage v1's
    (proj / "params.yaml").write_text("train:\n  C: 1.0\n")
    assert "registered clf@3" in sy("run").output
    with services(proj) as svc:
        assert svc.registry.resolve("clf@3").run_id == svc.registry.resolve("clf@1").run_id


def test_the_hints_for_outputs_recorded_without_a_run_lead_to_a_registration(proj: Path) -> None:
    """A project DVC ran, converted: train and evaluate up to date, neither with a run. Each hint `shipyard run`
    prints names a command that registers the model (it used to loop: `run evaluate` -> nothing to run -> the
    same hint); `--json` carries the line on the producing stage."""
    saved = (proj / "shipyard.lock").read_text()
    lock = load_lock(proj)
    for stage in ("train", "evaluate"):
        lock.stages[stage] = dataclasses.replace(lock.stages[stage], run=None)
    (proj / "shipyard.lock").write_text(lock.to_yaml())
    try:
        outcomes = {o["stage"]: o for o in json.loads(sy("run", "--json").output)}
        (line,) = outcomes["train"]["not_registered"]
        assert line.startswith("model clf is not registered yet") and "`shipyard run --force train evaluate`" in line
        said, followed = sy("run").output, []
        for _ in range(3):
            hint = re.search(r"model clf is not registered yet: .*?`shipyard (run[^`]*)`", said)
            if hint is None:
                break
            followed.append(hint.group(1))
            said = sy(*hint.group(1).split()).output
        assert followed == ["run --force train evaluate"], followed
        assert "model clf is not registered yet" not in said, said
        # only the metrics stage without a run: the hint forces it, and that registers
        lock = load_lock(proj)
        lock.stages["evaluate"] = dataclasses.replace(lock.stages["evaluate"], run=None)
        (proj / "shipyard.lock").write_text(lock.to_yaml())
        said = sy("run").output
        assert "its metrics stage evaluate's results were recorded without a run" in said
        assert "`shipyard run --force evaluate`" in said
        assert "not registered yet" not in sy("run", "--force", "evaluate").output
    finally:
        (proj / "shipyard.lock").write_text(saved)


def test_reproduce_a_declared_version(proj: Path) -> None:
    done = sy("reproduce", "clf@2", "--json")
    result = json.loads(done.output)
    assert result["reproduced"] is True and result["stages"] == ["train"]
    golden = next(o for o in result["outputs"] if o["path"] == "clf (golden examples)")
    assert golden["verdict"] == "same predictions"


def test_serve_a_declared_version(proj: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"))
    with serving_process(env, "clf@3") as (url, _):
        answer = httpx.post(f"{url}/predict", json={"instances": [[0.9, 0.9], [0.0, 0.1]]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [1, 0]


@pytest.mark.parametrize(("changes", "said"), [
    ({"path": "nowhere/model.pkl"}, "model clf: no stage produces nowhere/model.pkl"),
    ({"examples": "data/missing.npy"}, "model clf: examples file data/missing.npy does not exist"),
    ({"examples": "data/wide.npy"}, "model clf: the model cannot predict the examples in data/wide.npy: "
                                    "ValueError: X has 3 features, but LogisticRegression is expecting 2"),
])
def test_a_bad_declaration_is_one_line_and_registers_nothing(proj: Path, changes: dict[str, str], said: str) -> None:
    before = versions(proj)
    declare(proj, **changes)
    (proj / "params.yaml").write_text("train:\n  C: 0.5\n")  # the pipeline has work to do, and keeps it
    try:
        failed = sy("run", code=1)  # in-process: the exception; `shipyard` prints it as one line, exit 2
        assert isinstance(failed.exception, ConfigError)
        assert str(failed.exception).startswith(said) and str(failed.exception).endswith("; not registered")
        assert "\n" not in str(failed.exception)
        assert versions(proj) == before
        lock = load_lock(proj)
        with services(proj) as svc:
            assert svc.meta.get_run(lock.stages["train"].run or "").params == {"train.C": "0.5"}
        assert "registered" not in sy("status").output
    finally:
        declare(proj)
        (proj / "params.yaml").write_text("train:\n  C: 1.0\n")


def test_an_unknown_flavor_fails_at_load_naming_the_line(proj: Path) -> None:
    text = STAGES + MODEL.format(**GOOD).replace("sklearn", "tensorflow")
    (proj / "shipyard.yaml").write_text(text)
    line = text.splitlines().index("    flavor: tensorflow") + 1
    try:
        done = subprocess.run([sys.executable, "-m", "shipyard", "run"], capture_output=True, text=True,
                              env=cli_env(SHIPYARD_HOME=str(proj / ".shipyard")), cwd=proj, timeout=120, check=False)
        assert done.returncode == 2
        said = f"shipyard.yaml:{line}: models.clf.flavor: should be 'sklearn', 'torch', 'onnx' or 'python'"
        assert said in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        declare(proj)


def test_two_runs_at_once_register_one_version(proj: Path) -> None:
    """Two `shipyard run`s (threads here, each with its own database connections, as two processes have) find
    the same new output: one registers it, the other re-checks under the registry's numbering and finds it."""
    (proj / "params.yaml").write_text("train:\n  C: 0.5\n")  # ran, not registered (the bad declarations above)
    before = versions(proj)
    together = threading.Barrier(2)

    def one_run() -> Declared:
        settings = settings_from_environment(cwd=proj)
        runner = open_pipeline(settings, os.environ)
        report = runner.run()
        together.wait(timeout=60)
        return register_declared(settings, runner, report.outcomes)

    with ThreadPoolExecutor(2) as pool:
        results = [f.result() for f in [pool.submit(one_run) for _ in range(2)]]
    assert versions(proj) == [*before, before[-1] + 1]
    assert sorted(len(r.registered) for r in results) == [0, 1]
    assert sorted(r.unchanged for r in results) == [["clf", "rules"], ["rules"]]  # the second found clf's
    assert not any(r.problems for r in results)


def test_code_paths_are_relative_to_the_project_root_when_run_in_a_subfolder(proj: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack F15: started in data/, `shipyard run` refused src/mymodels as outside the working folder."""
    rules = (proj / "rules.py").read_text()
    (proj / "rules.py").write_text(rules.replace("Threshold(1.0)", "Threshold(1.5)"))  # new bytes to register
    monkeypatch.chdir(proj / "data")
    try:
        done = sy("run")
        assert re.search(r"registered rules@\d+ from rules/model\.pkl \(stage rules\)", done.output), done.output
    finally:
        (proj / "rules.py").write_text(rules)


@pytest.mark.parametrize(("model", "said"), [
    ("    path: m.onnx\n    flavor: onnx\n", "model clf: path: m.onnx is an output of stage train with cache: "
                                                "false, which is never stored, so no version could be registered "
                                                "from it: remove cache: false from m.onnx; nothing was run"),
    ("    path: m.onnx\n    flavor: onnx\n    desc: " + "D" * 4097 + "\n",
     "shipyard.yaml:11: models.clf.desc: is 4097 characters: at most 4096"),
    ("    path: m.onnx\n    flavor: onnx\n    labels: [" + ", ".join(f"l{i}" for i in range(65)) + "]\n",
     "models.clf.labels: at most 64 labels of at most 64 characters each"),
])
def test_a_declaration_that_could_never_register_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, said: str) -> None:
    """Attack F17: a `cache: false` model output was never recorded, so never registered (after the whole run);
    F21: desc and labels go into every version's immutable description: bounded at load."""
    root = tmp_path / "never"
    root.mkdir()
    (root / "shipyard.yaml").write_text(
        "stages:\n  train:\n    cmd: python -c \"open('m.onnx', 'w')\"\n    outs:\n      - m.onnx:\n"
        "          cache: false\nmodels:\n  clf:\n" + model)
    monkeypatch.setenv("SHIPYARD_HOME", str(root / ".shipyard"))
    monkeypatch.chdir(root)
    failed = sy("run", code=1)
    assert isinstance(failed.exception, ShipyardError)
    assert said in str(failed.exception) and "\n" not in str(failed.exception)
    assert not (root / "m.onnx").exists() and not (root / "shipyard.lock").exists()


def test_examples_files_are_read_bounded_and_without_pickles(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text("a,b\n1,2\n3,4\n")
    assert load_examples(tmp_path, "header.csv").tolist() == [[1.0, 2.0], [3.0, 4.0]]
    (tmp_path / "text.csv").write_text("good movie\nbad, very bad\n".replace("bad, very bad", '"bad, very bad"'))
    assert load_examples(tmp_path, "text.csv") == ["good movie", "bad, very bad"]
    (tmp_path / "text.json").write_text('["good movie", "bad"]')
    assert load_examples(tmp_path, "text.json") == ["good movie", "bad"]
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "rows.json").write_text(json.dumps([[0.0]] * 1001))
    bomb = tmp_path / "bomb.npz"  # a few KiB that would inflate to 64 MiB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.npy", b"\0" * (64 << 20))
    for name, said in [("objects.npy", "cannot be read: Object arrays cannot be loaded when allow_pickle=False"),
                       ("rows.json", "has 1001 rows: give 1 to 1000"),
                       ("bomb.npz", "is larger than 16 MiB"),
                       ("missing.npy", "does not exist"),
                       ("../outside.npy", "is outside")]:
        with pytest.raises(ShipyardError, match="^examples file " + re.escape(f"{name} {said}")
                           if name != "../outside.npy" else said):
            load_examples(tmp_path, name)


class CopiedRule:
    """A python model made outside the pipeline: a stage only copies its saved folder."""

    def predict(self, rows: list[list[float]]) -> list[int]:
        return [1 for _ in rows]


def test_a_saved_model_folder_a_stage_copied_keeps_its_trust_requirements(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage made no model: it copied a saved folder holding a pickle. Registered as it is, its pickle is
    NOT trusted on the registrant's behalf: loading it needs `shipyard models trust`."""
    import shipyard
    from shipyard.errors import UntrustedModelError

    root = tmp_path / "copy"
    shipyard.save_model(CopiedRule(), root / "incoming" / "saved", flavor="python")
    (root / "shipyard.yaml").write_text("stages:\n  fetch:\n    cmd: cp -r incoming/saved saved\n"
                                        "    deps: [incoming/saved]\n    outs: [saved]\n"
                                        "models:\n  copied:\n    path: saved\n    flavor: python\n")
    monkeypatch.setenv("SHIPYARD_HOME", str(root / ".shipyard"))
    monkeypatch.chdir(root)
    assert "registered copied@1 from saved (stage fetch)" in sy("run").output
    with services(root) as svc:
        mv = svc.registry.resolve("copied@1")
        assert svc.registry.trust_event(mv) is None
        with pytest.raises(UntrustedModelError, match="models trust"):
            svc.registry.load(mv.ref)
