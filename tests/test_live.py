"""``shipyard.live.Live``: dvclive's calls, dvclive's files, drawn by ``plots show``, recorded on the stage's run.

A real ``shipyard run`` runs a stage that logs with ``Live``: its params and each step's metrics land on the
stage's run. Under the real dvclive (the tests' side venv with DVC, tests/conftest.py ``dvc_venv``: it pulls in all
of DVC, so it is never a test dependency), the same script writes the same files, and dvclive in a stage saves no
DVC experiment (no git refs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.live import Live
from tests.conftest import cli_env, dvc_venv, shipyard
from tests.test_plots import _png

SCRIPT = """\
import sys
if sys.argv[1] == "dvclive":
    from dvclive import Live
else:
    from shipyard.live import Live

with Live("eval", dvcyaml=False, save_dvc_exp=False) as live:
    live.log_params({"lr": 0.1, "layers": [8, 4]})
    live.log_param("optimizer", "adam")
    for epoch in range(3):
        live.log_metric("train/loss", 1.0 / (epoch + 1))
        live.log_metric("acc", 0.5 + epoch / 10)
        live.next_step()
    live.log_sklearn_plot("confusion_matrix", [0, 1, 1, 2], [0, 1, 0, 2], name="cm.json")
    live.log_sklearn_plot("roc", [0, 1, 1, 0], [0.1, 0.9, 0.7, 0.4])
    live.log_plot("importance", [{"name": "a", "importance": 0.7}, {"name": "b", "importance": 0.3}],
                  x="importance", y="name", template="bar_horizontal")
    live.log_image("shape", "shape.png")
"""
PNG = _png(20, 10, (30, 90, 200))


def _run_script(folder: Path, python: str, which: str, env: dict[str, str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.py").write_text(SCRIPT)
    (folder / "shape.png").write_bytes(PNG)
    done = subprocess.run([python, "log.py", which], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=env or {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr


def test_live_writes_dvclives_files_that_plots_show_draws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shape.png").write_bytes(PNG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["log.py", "shipyard"])
    exec(compile(SCRIPT, "log.py", "exec"), {"__name__": "__main__"})  # in-process: the script as a stage runs it
    live = tmp_path / "eval"
    assert json.loads((live / "metrics.json").read_text()) == {"train": {"loss": 1 / 3}, "acc": 0.7, "step": 2}
    assert (live / "params.yaml").read_text() == "lr: 0.1\nlayers:\n- 8\n- 4\noptimizer: adam\n"
    assert (live / "plots/metrics/train/loss.tsv").read_text() == "step\tloss\n0\t1.0\n1\t0.5\n2\t0.3333333333333333\n"
    assert (live / "plots/metrics/acc.tsv").read_text().splitlines()[0] == "step\tacc"
    assert json.loads((live / "plots/sklearn/cm.json").read_text())[2] == {"actual": "1", "predicted": "0"}
    roc = json.loads((live / "plots/sklearn/roc.json").read_text())["roc"]
    assert roc[-1]["fpr"] == 1.0 and roc[-1]["tpr"] == 1.0 and set(roc[0]) == {"fpr", "tpr", "threshold"}
    assert roc[0]["threshold"] == float("inf")  # written as dvclive writes it
    assert '"threshold": Infinity' in (live / "plots/sklearn/roc.json").read_text()
    assert json.loads((live / "plots/custom/importance.json").read_text())[0] == {"name": "a", "importance": 0.7}
    assert (live / "plots/images/shape.png").read_bytes() == PNG

    from shipyard.wiring.plots import show

    (tmp_path / "shipyard.yaml").write_text("plots:\n  - eval/plots/custom/importance.json:\n"
                                            "      template: bar_horizontal\n      x: importance\n      y: name\n")
    page = show(tmp_path, ["eval", "eval/plots/custom/importance.json"], cwd=tmp_path)  # metrics.json: no plot
    assert page.errors == []
    drawn = {c.plot.id: (c.plot.template, c.lines[0].x_field, c.lines[0].y_field, len(c.lines[0].x))
             for c in page.charts}
    assert drawn == {  # dvclive's sklearn plots drawn as dvclive declares them, with nothing declared
        "eval/plots/metrics/acc.tsv": ("linear", "step", "acc", 3),
        "eval/plots/metrics/train/loss.tsv": ("linear", "step", "loss", 3),
        "eval/plots/sklearn/cm.json": ("confusion", "actual", "predicted", 4),
        "eval/plots/sklearn/roc.json": ("simple", "fpr", "tpr", len(roc)),
        "eval/plots/custom/importance.json": ("bar_horizontal", "importance", "name", 2),
    }
    assert [i.id for i in page.images] == ["eval/plots/images/shape.png"]
    # a second Live starts over, as dvclive does; resume=True carries on from the last step
    with Live(str(live)) as again:
        again.log_metric("acc", 0.9)
    assert not (live / "plots/sklearn").exists() and json.loads((live / "metrics.json").read_text()) == {"acc": 0.9}
    with Live(str(live), resume=True) as resumed:
        assert resumed.step == 0 and resumed.summary == {"acc": 0.9}


def test_live_refuses_names_that_leave_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    live = Live(str(tmp_path / "d"))
    for bad in ("../x", "/etc/x", "a/../../x"):
        with pytest.raises(ValueError, match="must stay inside the Live folder"):
            live.log_metric(bad, 1.0)
    with pytest.raises(ValueError, match="should end with one of"):
        live.log_image("picture.bmp", str(tmp_path))
    with pytest.raises(TypeError, match="not a number or a string"):
        live.log_metric("m", [1, 2])  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_live_never_removes_or_writes_through_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A committed ``dvclive/plots -> ~`` (attack finding F13): Live refuses in one line and touches nothing there."""
    outside = tmp_path / "home"
    (outside / "metrics").mkdir(parents=True)
    (outside / "metrics" / "notes.txt").write_text("mine")
    (outside / "images").mkdir()
    (outside / "metrics.json").write_text("{}")
    project = tmp_path / "project"
    (project / "dvclive").mkdir(parents=True)
    (project / "dvclive" / "plots").symlink_to(outside)
    (project / "eval").symlink_to(outside)
    (project / "ok" / "plots" / "metrics").mkdir(parents=True)
    (project / "ok" / "plots" / "metrics" / "acc.tsv").symlink_to(outside / "metrics" / "notes.txt")
    monkeypatch.chdir(project)
    from shipyard.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"^dvclive/plots is a symbolic link; shipyard.live never"):
        Live()
    with pytest.raises(InvalidInputError, match=r"^eval is a symbolic link"):
        Live("eval")
    with pytest.raises(InvalidInputError, match="is outside the working folder"):
        Live(str(outside))
    with pytest.raises(InvalidInputError, match="is outside the working folder"):
        Live("../home")
    live = Live("ok", resume=True)  # the folders are real; the file at the end is a link: refused too
    with pytest.raises(InvalidInputError, match=r"^ok/plots/metrics/acc.tsv is a symbolic link"):
        live.log_metric("acc", 0.9)
    # a stage in a wdir (shipyard run sets DVC_ROOT): a folder beside it in the project is allowed, links are not
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    monkeypatch.setenv("DVC_ROOT", str(project))
    with Live("../live") as up:
        up.log_metric("acc", 0.9)
    assert json.loads((project / "live" / "metrics.json").read_text()) == {"acc": 0.9}
    with pytest.raises(InvalidInputError, match=r"^eval is a symbolic link"):
        Live("../eval")
    assert (outside / "metrics" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in outside.iterdir()) == ["images", "metrics", "metrics.json"]
    assert sorted(p.name for p in (outside / "metrics").iterdir()) == ["notes.txt"]


def test_a_stage_logging_with_live_records_on_its_run(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(
        "from shipyard.live import Live\n"
        "with Live('eval') as live:\n"
        "    live.log_params({'lr': 0.05})\n"
        "    for i in range(3):\n"
        "        live.log_metric('train/loss', 1.0 / (i + 1))\n"
        "        live.next_step()\n"
        "    live.log_artifact('train.py', type='model', name='net', desc='the code')\n"
        "import os; print('DVC_ROOT=' + os.environ.get('DVC_ROOT', ''))\n")
    (root / "shipyard.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n"
                                        "    outs: [eval/plots]\n    metrics: [eval/metrics.json]\n")
    env = cli_env(PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = shipyard("run", env=env, cwd=root)
    assert f"DVC_ROOT={root}" in done.stdout + done.stderr
    from shipyard import Client

    client = Client(root)
    try:
        svc = client.services
        (run,) = [r for r in client.search_runs() if r.tags.get("shipyard.stage") == "train"]
        assert run.params["lr"] == "0.05"
        history = svc.meta.metric_history(run.id, "train.loss")
        # each step as Live logged it (the runner also records metrics.json's last value, at step 0)
        assert {(0, 1.0), (1, 0.5), (2, 0.333)} <= {(m.step, round(m.value, 3)) for m in history}
        assert round(run.metrics["train.loss"], 3) == 0.333
        assert json.loads(run.tags["live.artifact.net"]) == {"path": "train.py", "type": "model", "desc": "the code"}
    finally:
        client.close()


@pytest.mark.slow
def test_dvclive_writes_the_same_files_and_in_a_stage_saves_no_experiment(tmp_path: Path) -> None:
    dvclive = str(dvc_venv() / "python")  # the side venv: dvclive 3.49 with DVC 3.67
    _run_script(tmp_path / "ours", sys.executable, "shipyard")
    _run_script(tmp_path / "theirs", dvclive, "dvclive", env={k: v for k, v in os.environ.items()
                                                            if k != "PYTHONPATH"})
    for rel in ("metrics.json", "plots/metrics/train/loss.tsv", "plots/metrics/acc.tsv", "plots/sklearn/cm.json",
                "plots/custom/importance.json"):
        ours, theirs = (tmp_path / side / "eval" / rel for side in ("ours", "theirs"))
        if rel.endswith(".json"):
            assert json.loads(ours.read_text()) == json.loads(theirs.read_text()), rel
        else:
            assert ours.read_text() == theirs.read_text(), rel
    assert (tmp_path / "theirs/eval/plots/images/shape.png").read_bytes().startswith(b"\x89PNG")  # PIL re-saves it
    import yaml

    ours_params = yaml.safe_load((tmp_path / "ours/eval/params.yaml").read_text())
    assert ours_params == yaml.safe_load((tmp_path / "theirs/eval/params.yaml").read_text())
    # dvclive itself in a stage: DVC_ROOT makes it save no experiment, so git gets no refs/exps
    root = tmp_path / "stage"
    root.mkdir()
    (root / "log.py").write_text(SCRIPT.replace('dvcyaml=False, save_dvc_exp=False', ''))
    (root / "shape.png").write_bytes(PNG)
    (root / "shipyard.yaml").write_text(f"stages:\n  train:\n    cmd: {dvclive} log.py dvclive\n"
                                        "    deps: [log.py]\n    outs: [eval]\n")
    git = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    shipyard("run", env=cli_env(PYTHONPATH=os.pathsep.join(p for p in sys.path if p)), cwd=root)
    refs = subprocess.run([*git, "for-each-ref", "refs/exps"], capture_output=True, text=True, check=True).stdout
    assert refs == "" and (root / "eval/metrics.json").exists()
