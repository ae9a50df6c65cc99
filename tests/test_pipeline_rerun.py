"""Re-running stages: ``run --force STAGE`` (in-process on the core runner: only the named stages are forced, as
DVC's ``repro -f``), and what ``reproduce`` prints while it re-runs a version's stages in a scratch folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.core.pipelines.runner import PipelineRunner
from shipyard.wiring import open_pipeline, settings_from_environment
from tests.conftest import cli_env, shipyard
from tests.test_pipeline import SCRIPTS, make_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def _runner(root: Path) -> PipelineRunner:
    environ = {**os.environ, "SHIPYARD_HOME": str(root / ".shipyard")}
    return open_pipeline(settings_from_environment(environ, root), environ)


def _results(root: Path, targets: list[str] | None, force: bool) -> dict[str, str]:
    report = _runner(root).run(targets, force=force)
    assert report.ok
    return {o.stage: o.result for o in report.outcomes}


def test_force_reruns_the_target_and_leaves_up_to_date_upstream_stages_alone(root: Path) -> None:
    _results(root, None, force=False)
    assert _results(root, ["evaluate"], force=True) == {"prepare": "up-to-date", "train": "up-to-date",
                                                         "evaluate": "ran"}
    forced = _runner(root).status(["train"], force=True)
    assert [(s.name, s.state) for s in forced] == [("prepare", "up-to-date"), ("train", "forced")]


def test_force_still_runs_an_out_of_date_upstream_stage_and_without_targets_forces_all(root: Path) -> None:
    _results(root, None, force=False)
    (root / "params.yaml").write_text("prepare:\n  times: 3\ntrain:\n  c: 1.0\n")
    assert _results(root, ["train"], force=True) == {"prepare": "ran", "train": "ran"}
    assert set(_results(root, None, force=True).values()) == {"ran"}


def test_reproduce_prints_its_header_first_and_labels_the_scratch_stages(root: Path) -> None:
    (root / "train.py").write_text(
        SCRIPTS["train.py"] + "from sklearn.dummy import DummyClassifier\nimport shipyard\n"
        "v = shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), 'tiny', examples=[[0.0], [1.0]])\n"
        "print(f'registered {v.ref}')\n")
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    shipyard("run", "train", env=env, cwd=root)
    lines = shipyard("reproduce", "tiny@1", env=env, cwd=root).stdout.splitlines()
    assert lines[0].startswith("reproducing tiny@1 in a scratch folder")
    assert "train (scratch) │ registered tiny@1" in lines  # the scratch registry's, not yours
    assert not [line for line in lines if "│ registered" in line and "(scratch)" not in line]
    assert any(line.startswith("train (scratch) ✔ done in ") for line in lines)


def test_run_keeps_stage_outputs_out_of_git_and_never_writes_through_a_linked_gitignore(root: Path) -> None:
    (root / ".gitignore").write_text("*.pyc")  # no final newline: the entries still go on lines of their own
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    first = shipyard("run", "prepare", env=env, cwd=root)
    assert first.returncode == 0, first.stderr
    assert "added work/prepared.txt to .gitignore" in first.stdout
    assert (root / ".gitignore").read_text() == "*.pyc\n/.shipyard\n/work/prepared.txt\n"
    again = shipyard("run", env=env, cwd=root)
    assert again.returncode == 0, again.stderr
    lines = (root / ".gitignore").read_text().splitlines()
    assert lines[:3] == ["*.pyc", "/.shipyard", "/work/prepared.txt"]
    assert sorted(lines[3:]) == ["/metrics.json", "/model", "/side.txt"]

    outside = root.parent / "bashrc"
    outside.write_text("echo hi\n")
    (root / ".gitignore").unlink()
    (root / ".gitignore").symlink_to(outside)
    linked = shipyard("run", "train", "--force", env=env, cwd=root)
    assert linked.returncode == 0, linked.stderr
    assert outside.read_text() == "echo hi\n" and "gitignore" not in linked.stdout


def test_a_failure_quoting_a_path_with_markup_is_printed_as_written(tmp_path: Path) -> None:
    """A stage that did not produce its output '[/x]' made `shipyard run` a MarkupError traceback."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "shipyard.yaml").write_text("version: 1\nstages:\n  s:\n    cmd: \"true\"\n    outs: [\"[/x]\"]\n")
    done = shipyard("run", env=cli_env(SHIPYARD_HOME=str(root / ".shipyard")), cwd=root, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "s ✘ failed in" in done.stdout and "did not produce [/x]" in done.stdout
