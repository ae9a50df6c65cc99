"""Pipelines from the command line: DAG order, caching, status reasons, failures, kills, parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, interruptible, shipyard

SCRIPTS = {
    "prepare.py": "import pathlib, yaml\n"
                  "p = yaml.safe_load(open('params.yaml'))['prepare']\n"
                  "pathlib.Path('work').mkdir(exist_ok=True)\n"
                  "pathlib.Path('work/prepared.txt').write_text(open('data/raw.txt').read().upper() * p['times'])\n",
    "train.py": "import pathlib, yaml\n"
                "c = yaml.safe_load(open('params.yaml'))['train']['c']\n"
                "pathlib.Path('model').mkdir(exist_ok=True)\n"
                "pathlib.Path('model/weights.txt').write_text(f'{c}:' + open('work/prepared.txt').read())\n",
    "evaluate.py": "import json\n"
                   "w = open('model/weights.txt').read()\n"
                   "json.dump({'score': len(w), 'nested': {'c': float(w.split(':')[0])}}, open('metrics.json', 'w'))\n",
    "side.py": "import os, pathlib, time\n"
               "pathlib.Path('side.pid').write_text(str(os.getpid()))\n"
               "pathlib.Path('side.txt').write_text('half')\n"
               "time.sleep(float(os.environ.get('SIDE_SLEEP', '0')))\n"
               "pathlib.Path('side.txt').write_text('independent')\n"
               "os.remove('side.pid')\n",
}
CONFIG = """\
version: 1
stages:
  prepare:
    cmd: python prepare.py
    deps: [data/raw.txt, prepare.py]
    params: [prepare.times]
    outs: [work/prepared.txt]
  train:
    cmd: python train.py
    deps: [work/prepared.txt, train.py]
    params: [train.c]
    outs: [model]
  evaluate:
    cmd: python evaluate.py
    deps: [model, evaluate.py]
    metrics: [metrics.json]
  side:
    cmd: python side.py
    deps: [side.py]
    outs: [side.txt]
"""


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def make_project(tmp_path: Path) -> Path:
    """The three-stage test pipeline (prepare -> train -> evaluate, plus side) in ``tmp_path/proj``."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "raw.txt").write_text("hello ")
    (root / "params.yaml").write_text("prepare:\n  times: 2\ntrain:\n  c: 1.0\n")
    (root / "shipyard.yaml").write_text(CONFIG)
    for name, text in SCRIPTS.items():
        (root / name).write_text(text)
    return root


def sy(proj: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return shipyard(*args, env=cli_env(SHIPYARD_HOME=str(proj / ".shipyard")), cwd=proj, check=check)


def results(proj: Path, *args: str) -> dict[str, str]:
    return {o["stage"]: o["result"] for o in json.loads(sy(proj, "run", "--json", *args).stdout)}


def reasons(proj: Path) -> dict[str, list[str]]:
    return {s["stage"]: s["reasons"] for s in json.loads(sy(proj, "status", "--json").stdout)}


def test_runs_in_order_then_up_to_date_then_from_cache(proj: Path) -> None:
    assert results(proj) == {"prepare": "ran", "train": "ran", "evaluate": "ran", "side": "ran"}
    assert (proj / "model" / "weights.txt").read_text() == "1.0:HELLO HELLO "
    assert results(proj) == dict.fromkeys(("prepare", "train", "evaluate", "side"), "up-to-date")
    assert reasons(proj) == {"prepare": [], "train": [], "evaluate": [], "side": []}

    for out in ("work", "model", "metrics.json", "side.txt"):
        path = proj / out
        subprocess.run(["rm", "-rf", str(path)], check=True)
    assert "output work/prepared.txt is missing" in reasons(proj)["prepare"]
    assert results(proj) == dict.fromkeys(("prepare", "train", "evaluate", "side"), "cached")
    assert (proj / "model" / "weights.txt").read_text() == "1.0:HELLO HELLO "
    assert json.loads((proj / "metrics.json").read_text())["score"] == 16

    runs = json.loads(sy(proj, "runs", "list", "--json").stdout)
    assert len(runs) == 4  # restored stages are not new runs
    evaluate = next(r for r in runs if r["name"] == "evaluate")
    assert evaluate["metrics"] == {"score": 16.0, "nested.c": 1.0}
    assert set(evaluate["inputs"]) == {"model", "evaluate.py"}


def test_a_param_change_reruns_only_what_depends_on_it(proj: Path) -> None:
    results(proj)
    (proj / "params.yaml").write_text("prepare:\n  times: 2\ntrain:\n  c: 0.5\n")
    why = reasons(proj)
    assert why["prepare"] == [] and why["side"] == []
    assert why["train"] == ["param train.c changed: 1.0 -> 0.5"]
    assert why["evaluate"] == ["upstream stage train will run"]
    assert results(proj) == {"prepare": "up-to-date", "train": "ran", "evaluate": "ran", "side": "up-to-date"}
    (proj / "data" / "raw.txt").write_text("changed ")
    assert reasons(proj)["prepare"] == ["dependency data/raw.txt changed"]
    (proj / "params.yaml").write_text("prepare:\n  times: 2\ntrain:\n  c: 1.0\n")
    (proj / "data" / "raw.txt").write_text("hello ")
    assert results(proj, "evaluate") == {"prepare": "up-to-date", "train": "cached", "evaluate": "cached"}


def test_a_failing_stage_records_a_failed_run_and_caches_nothing(proj: Path) -> None:
    (proj / "evaluate.py").write_text(SCRIPTS["evaluate.py"].replace("w.split(':')[0]", "w.split(':')[9]"))
    done = sy(proj, "run", check=False)
    assert done.returncode == 8
    assert "evaluate" in done.stderr and "IndexError" in done.stdout
    lock = (proj / "shipyard.lock").read_text()
    assert "prepare:" in lock and "evaluate:" not in lock
    failed = [r for r in json.loads(sy(proj, "runs", "list", "--json").stdout) if r["name"] == "evaluate"]
    assert [r["status"] for r in failed] == ["failed"]
    assert reasons(proj)["evaluate"] == ["never run"]
    (proj / "evaluate.py").write_text(SCRIPTS["evaluate.py"])
    assert results(proj)["evaluate"] == "ran"


def test_a_stage_killed_midway_leaves_no_cache_entry(proj: Path) -> None:
    slow = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"), SIDE_SLEEP="60")
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen([sys.executable, "-m", "shipyard", "run", "side"], cwd=proj, env=slow,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=interruptible)
        deadline = time.time() + 60
        while not (proj / "side.pid").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(proc.pid, sig)
        proc.communicate(timeout=60)
        assert proc.returncode != 0
        if sig == signal.SIGKILL:  # nobody was left to stop the stage: do it as the OS would
            os.kill(int((proj / "side.pid").read_text()), signal.SIGKILL)
        (proj / "side.pid").unlink(missing_ok=True)
        assert (proj / "side.txt").read_text() == "half"
        refs = proj / ".shipyard" / "objects" / "refs" / "stage-cache"
        assert not refs.exists() or list(refs.iterdir()) == []
        assert not (proj / "shipyard.lock").exists() or "side:" not in (proj / "shipyard.lock").read_text()
        assert reasons(proj)["side"] == ["never run"]
    statuses = [r["status"] for r in json.loads(sy(proj, "runs", "list", "--json").stdout)]
    assert statuses == ["killed", "killed"]  # Ctrl-C ended it as killed; after SIGKILL its process is gone
    assert results(proj, "side") == {"side": "ran"}
    assert (proj / "side.txt").read_text() == "independent"


@pytest.mark.parametrize(("config", "message"), [
    ("stages:\n  a:\n    cmd: x\n    deps: [b.txt]\n    outs: [a.txt]\n  b:\n    cmd: x\n    deps: [a.txt]\n"
     "    outs: [b.txt]\n", "the stages form a cycle"),
    ("stages:\n  a:\n    cmd: x\n    deps: [nowhere.csv]\n", "stage 'a' depends on nowhere.csv, which does not exist"),
    ("stages:\n  a:\n    cmd: x\n    outs: [data/prepared]\n  b:\n    cmd: x\n    deps: [data/prepard]\n",
     "stage 'b' depends on data/prepard, which does not exist and no stage produces it (did you mean data/prepared?)"),
    ("stages:\n  a:\n    cmd: x\n    outs: [out]\n  b:\n    cmd: x\n    outs: [out/part]\n",
     "stages 'a' and 'b' both claim output out"),
    ("stages:\n  a:\n    cmd: x\n    outs: [../escape.txt]\n",
     "stage 'a' output '../escape.txt' is outside the project"),
    ("stages:\n  a:\n    cmd: x\n    outs: [shipyard.lock]\n",
     "stage 'a' output 'shipyard.lock' is refused: it is the project's own file"),
    ("stages:\n  a:\n    cmd: x\n    metrics: [./shipyard.yaml]\n",
     "stage 'a' output 'shipyard.yaml' is refused: it is the project's own file"),
    ("stages:\n  a:\n    cmd: x\n    params: [nope.key]\n", "stage 'a' uses param 'nope.key'"),
    ("stages:\n  a:\n    cmd: x\n    params: ['/etc/hostname:a']\n",
     "shipyard.yaml:5: stages.a.params: params file '/etc/hostname' is outside the project"),
])
def test_bad_pipelines_are_refused_before_anything_runs(proj: Path, config: str, message: str) -> None:
    (proj / "shipyard.yaml").write_text("version: 1\n" + config)
    done = sy(proj, "run", check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (proj / ".shipyard" / "shipyard.db").exists() or json.loads(
        sy(proj, "runs", "list", "--json").stdout) == []


def test_independent_stages_run_in_parallel(proj: Path) -> None:
    script = "import sys, time, pathlib\ns = time.time(); time.sleep(1.5)\n" \
             "pathlib.Path(sys.argv[1] + '.txt').write_text(f'{s} {time.time()}')\n"
    (proj / "span.py").write_text(script)
    config = "version: 1\nstages:\n" + "".join(
        f"  {n}:\n    cmd: python span.py {n}\n    outs: [{n}.txt]\n" for n in ("left", "right"))
    (proj / "shipyard.yaml").write_text(config)
    results(proj, "-j", "2")
    (s1, e1), (s2, e2) = ((float(x) for x in (proj / f"{n}.txt").read_text().split()) for n in ("left", "right"))
    assert s1 < e2 and s2 < e1  # their run times overlap


def test_dry_run_changes_nothing(proj: Path) -> None:
    out = sy(proj, "run", "--dry-run").stdout
    assert "prepare would run: never run" in out
    assert not (proj / "work").exists() and not (proj / "shipyard.lock").exists()


def test_a_clone_restores_stages_from_the_remote_cache(proj: Path, tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    remote = f"remotes:\n  origin:\n    url: {tmp_path / 'remote'}\ndefault_remote: origin\n"
    (proj / "shipyard.yaml").write_text(CONFIG + remote)
    sy(proj, "data", "add", "data/raw.txt")
    results(proj)
    sy(proj, "data", "push")

    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("shipyard.yaml", "shipyard.lock", "params.yaml", *SCRIPTS):
        (clone / name).write_text((proj / name).read_text())
    sy(clone, "data", "pull")
    assert (clone / "data" / "raw.txt").read_text() == "hello "
    assert results(clone) == dict.fromkeys(("prepare", "train", "evaluate", "side"), "cached")
    assert (clone / "model" / "weights.txt").read_text() == (proj / "model" / "weights.txt").read_text()
    assert json.loads(sy(clone, "runs", "list", "--json").stdout) == []  # nothing ran in the clone


def test_a_model_logged_in_a_stage_has_lineage_back_to_raw_data(proj: Path) -> None:
    (proj / "train.py").write_text(
        SCRIPTS["train.py"] + "from sklearn.dummy import DummyClassifier\nimport shipyard\n"
        "shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), 'tiny')\n")
    sy(proj, "data", "add", "data/raw.txt")
    results(proj, "train")
    tree = json.loads(sy(proj, "models", "lineage", "tiny@1", "--json").stdout)
    train = tree["children"][0]
    assert train["kind"] == "run" and " train " in train["label"]
    prepared = next(c for c in train["children"] if c["label"] == "work/prepared.txt")
    prepare = prepared["children"][0]
    assert " prepare " in prepare["label"]
    raw = next(c for c in prepare["children"] if c["label"].startswith("data/raw.txt"))
    assert raw["kind"] == "raw" and "tracked data" in raw["label"]
    lock_digest = (proj / "shipyard.lock").read_text().split("data/raw.txt:\n    digest: ")[1].split()[0]
    assert raw["digest"] == lock_digest
    # runs show names what the stage read, by digest, as the lineage does
    run_id = next(r["id"] for r in json.loads(sy(proj, "runs", "list", "--json").stdout) if r["name"] == "train")
    shown = sy(proj, "runs", "show", run_id).stdout
    assert "inputs" in shown and "work/prepared.txt" in shown


def test_reproduce_reruns_from_the_record_not_the_workspace(proj: Path) -> None:
    (proj / "train.py").write_text(
        SCRIPTS["train.py"] + "from sklearn.tree import DecisionTreeClassifier\nimport shipyard\n"
        "x = [[float(c)], [2.0], [3.0], [4.0]]\n"
        "shipyard.log_model(DecisionTreeClassifier(random_state=0).fit(x, [0, 1, 0, 1]), 'tiny', examples=x)\n")
    sy(proj, "data", "add", "data/raw.txt")
    results(proj, "train")
    # the workspace moves on; the record of tiny@1 does not
    (proj / "data" / "raw.txt").write_text("something else entirely ")
    (proj / "params.yaml").write_text("prepare:\n  times: 7\ntrain:\n  c: 9.0\n")
    report = json.loads(sy(proj, "reproduce", "tiny@1", "--json").stdout)
    assert report["reproduced"] is True
    assert report["stages"] == ["prepare", "train"]
    verdicts = {c["path"]: c["verdict"] for c in report["outputs"]}
    assert verdicts["work/prepared.txt"] == "identical"
    assert verdicts["model"] == "identical"
    assert verdicts["tiny (golden examples)"] == "same predictions"
    assert [v["version"] for v in json.loads(sy(proj, "models", "versions", "tiny", "--json").stdout)] == [1]


def test_reproduce_names_what_came_out_different(proj: Path) -> None:
    (proj / "train.py").write_text(
        SCRIPTS["train.py"] + "import time, pathlib\npathlib.Path('model/stamp.txt').write_text(str(time.time()))\n"
        "from sklearn.dummy import DummyClassifier\nimport shipyard\n"
        "shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), 'stamped')\n")
    results(proj, "train")
    done = sy(proj, "reproduce", "stamped@1", "--json", check=False)
    assert done.returncode == 9
    assert done.stderr.startswith("error: stamped@1 was not reproduced: train: model")
    assert len(done.stderr.strip().splitlines()) == 1
    report = json.loads(done.stdout)
    model = next(c for c in report["outputs"] if c["path"] == "model")
    assert model["verdict"] == "different" and model["detail"] == "files: stamp.txt"


def test_reproduce_refuses_a_model_not_made_by_a_stage(proj: Path) -> None:
    from sklearn.dummy import DummyClassifier

    import shipyard as api

    folder = proj / "saved"
    api.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
    sy(proj, "models", "register", str(folder), "--name", "manual")
    done = sy(proj, "reproduce", "manual@1", check=False)
    assert done.returncode == 2 and "registered without a run" in done.stderr


def test_one_run_at_a_time_a_second_waits_and_status_goes_on(proj: Path) -> None:
    """Outputs are removed before a stage runs: a second run at once would delete what the first writes."""
    slow = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"), SIDE_SLEEP="60")
    long_run = subprocess.Popen([sys.executable, "-m", "shipyard", "run", "side"], cwd=proj, env=slow,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=interruptible)
    second = None
    try:
        deadline = time.time() + 60
        while not (proj / "side.pid").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert (proj / "side.pid").exists()
        assert reasons(proj)["side"] == ["never run"]  # status takes no lock
        env = cli_env(SHIPYARD_HOME=str(proj / ".shipyard"))
        nested = shipyard("run", "evaluate", env={**env, "SHIPYARD_STAGE": "side"}, cwd=proj, check=False)
        assert nested.returncode != 0 and len(nested.stderr.strip().splitlines()) == 1, nested.stderr
        assert f"another `shipyard run` (pid {long_run.pid}) is running in this project" in nested.stderr
        second = subprocess.Popen([sys.executable, "-m", "shipyard", "run", "evaluate"], cwd=proj, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert second.stderr is not None
        line = second.stderr.readline()
        assert f"waiting for another `shipyard run` (pid {long_run.pid}) in this project to finish" in line
        assert second.poll() is None and long_run.poll() is None and not (proj / "work").exists()
    finally:
        long_run.send_signal(signal.SIGINT)
        long_run.communicate(timeout=60)
    assert second is not None
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, out + err  # it ran once the first had ended
    assert reasons(proj) == {"prepare": [], "train": [], "evaluate": [], "side": ["never run"]}


def test_a_damaged_stage_cache_entry_is_a_miss_with_a_warning(proj: Path) -> None:
    sy(proj, "run", "prepare")
    refs = list((proj / ".shipyard" / "objects" / "refs" / "stage-cache").iterdir())
    assert len(refs) == 1
    good = refs[0].read_bytes()
    refs[0].write_bytes(b'{"outs": {"work/prepared.txt": ')  # a torn or tampered ref
    (proj / "shipyard.lock").unlink()
    done = sy(proj, "run", "--json", "prepare")
    assert {o["stage"]: o["result"] for o in json.loads(done.stdout)} == {"prepare": "ran"}
    assert done.stderr.strip() == f"stage cache entry stage-cache/{refs[0].name} in the local store is damaged " \
                                  "(not valid JSON); ignored (the stage runs again and replaces it)"
    assert json.loads(refs[0].read_bytes())["outs"] == json.loads(good)["outs"]


@pytest.mark.parametrize("tolerance", ["-1", "nan"])
def test_reproduce_refuses_a_negative_or_nan_tolerance(proj: Path, tolerance: str) -> None:
    done = sy(proj, "reproduce", "tiny@1", f"--tolerance={tolerance}", check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --tolerance must be a finite number >= 0, not {float(tolerance)!r}"


def test_a_hostile_ref_on_the_remote_is_a_miss_and_never_reaches_the_lock(proj: Path, tmp_path: Path) -> None:
    """Attack finding 10b: a remote ref whose run id is megabytes long was copied into shipyard.lock."""
    (tmp_path / "remote").mkdir()
    remote = f"remotes:\n  origin:\n    url: {tmp_path / 'remote'}\ndefault_remote: origin\n"
    (proj / "shipyard.yaml").write_text(CONFIG + remote)
    sy(proj, "data", "add", "data/raw.txt")
    results(proj, "prepare")
    sy(proj, "data", "push")
    [ref] = (tmp_path / "remote" / "refs" / "stage-cache").iterdir()
    body = json.loads(ref.read_bytes())
    ref.write_text(json.dumps({**body, "run": "R" * 100_000}))

    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("shipyard.yaml", "params.yaml", *SCRIPTS):
        (clone / name).write_text((proj / name).read_text())
    (clone / "shipyard.lock").write_text((proj / "shipyard.lock").read_text().split("stages:")[0])
    sy(clone, "data", "pull")
    done = sy(clone, "run", "--json", "prepare")
    assert {o["stage"]: o["result"] for o in json.loads(done.stdout)} == {"prepare": "ran"}
    assert done.stderr.strip() == f"stage cache entry stage-cache/{ref.name} in remote {tmp_path / 'remote'} is " \
                                  f"damaged (run '{'R' * 49}... (100002 characters) is not a run id); ignored " \
                                  "(the stage runs again and replaces it)"
    lock = (clone / "shipyard.lock").read_text()
    assert "RRRR" not in lock and len(lock) < 2000
    local_ref = clone / ".shipyard" / "objects" / "refs" / "stage-cache" / ref.name
    assert "RRRR" not in local_ref.read_text()


def test_a_bad_digest_in_a_stage_of_the_lock_is_one_line_naming_the_lock_and_the_stage(proj: Path) -> None:
    results(proj, "prepare")
    lock = (proj / "shipyard.lock").read_text()
    (proj / "shipyard.lock").write_text(lock.replace("digest: sha256:", "digest: sha256:zz", 1))
    for command in (("store", "gc", "--dry-run"), ("store", "verify"), ("status",)):
        done = sy(proj, *command, check=False)
        assert done.returncode == 2
        assert done.stderr.startswith("error: shipyard.lock is damaged: stage 'prepare': output 'work/prepared.txt' "
                                      "digest 'sha256:zz")
        assert len(done.stderr.strip().splitlines()) == 1
