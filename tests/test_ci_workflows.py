"""``shipyard ci github|gitlab``: the workflows validate against SchemaStore's schemas (check-jsonschema, offline),
and every ``run:`` step of the GitHub workflow runs, in order, in a fresh clone of the demo's iris pipeline.

The clone is a pull request: its params differ from main's, so ``shipyard run`` restores the unchanged stage
from the folder remote's stage cache and runs the others. Each ``uses:`` step is mapped to what it does here:
checkout is the clone, setup-python is this interpreter (its version and the cache's lock files are checked),
the artifact steps are the clone's own ``.shipyard/``, and the comment action checks its Markdown file. The
registry secret (``SHIPYARD_DB_URL``) is the team registry the main branch filled, as the CI's secret store
would hold it. One step runs with a flag the workflow does not have: ``shipyard build --context-only`` (no
image engine in this test; tests/test_images.py builds images for real).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard import __version__
from shipyard.core.deploy import workflows
from shipyard.core.registry.diff import Side, diff, markdown
from tests.conftest import cli_env, shipyard

pytestmark = pytest.mark.xdist_group("ci-workflows")  # one origin project for the module

EXAMPLE = Path(__file__).parent.parent / "src" / "shipyard" / "examples" / "iris-pipeline"
MODEL = "iris-pipeline"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def schema_check(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(exe), "--builtin-schema", schema, str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """main: the iris pipeline run once, its data and stage results pushed to a folder remote, version 1 in
    production, the workflows written and committed."""
    import sklearn

    base = tmp_path_factory.mktemp("ci")
    root = base / "origin"
    shutil.copytree(EXAMPLE, root)
    config = yaml.safe_load((root / "shipyard.yaml").read_text())
    config.update({"remotes": {"team": {"url": str(base / "remote")}}, "default_remote": "team",
                   "ci": {"matrix": {"scikit-learn": [sklearn.__version__]}}})
    (root / "shipyard.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (base / "remote").mkdir()
    env = cli_env(SHIPYARD_ACTOR="dev@laptop", PYTHONPATH=os.pathsep.join(sys.path),
                  SHIPYARD_CACHE_DIR=str(base / "envs"))
    git(root, "init", "-q", "-b", "main")
    for args in (("data", "add", "data/raw"), ("run",), ("data", "push"),
                 ("alias", "set", MODEL, "production", "1"), ("ci", "github"), ("ci", "gitlab")):
        shipyard(*args, env=env, cwd=root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "iris pipeline with CI")
    return root, env


def test_generated_workflows_validate_against_the_ci_schemas(origin: tuple[Path, dict[str, str]]) -> None:
    root, env = origin
    gh, gl = root / workflows.GITHUB_PATH, root / workflows.GITLAB_PATH
    for path, schema in ((gh, "vendor.github-workflows"), (gl, "vendor.gitlab-ci")):
        done = schema_check(path, schema)
        assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load(gh.read_text())
    assert doc["permissions"] == {"contents": "read"}  # least privilege; widened per job
    assert doc["jobs"]["report"]["permissions"]["pull-requests"] == "write"
    assert doc["jobs"]["verify"]["strategy"]["fail-fast"] is False
    assert doc["jobs"]["promote-production"]["environment"] == "production"
    assert "concurrency" in doc and "concurrency" in doc["jobs"]["promote-staging"]
    # no value of a secret in the file: only references to the secret store
    text = gh.read_text()
    assert "${{ secrets.SHIPYARD_DB_URL }}" in text and "sqlite" not in text and "postgresql://" not in text
    lab = yaml.safe_load(gl.read_text())
    assert lab["promote-production"]["rules"][0]["when"] == "manual"
    assert lab["promote-production"]["environment"] == {"name": "production"}
    # a broken workflow is rejected: the schema check is not a rubber stamp
    del doc["jobs"]["pipeline"]["runs-on"]
    broken = root.parent / "broken.yml"
    broken.write_text(yaml.safe_dump(doc))
    assert schema_check(broken, "vendor.github-workflows").returncode != 0
    # a file shipyard did not write is kept unless --force
    other = root.parent / "mine.yml"
    other.write_text("name: mine\n")
    refused = shipyard("ci", "github", "--output", str(other), env=env, cwd=root, check=False)
    assert refused.returncode == 4 and "--force" in refused.stderr and other.read_text() == "name: mine\n"
    shipyard("ci", "github", "--output", str(other), "--force", env=env, cwd=root)
    assert other.read_text().startswith("# Generated by `shipyard ci github`")


class Runner:
    """Runs a GitHub workflow's jobs for one event, here: ``run:`` steps in bash, ``uses:`` steps mapped."""

    def __init__(self, root: Path, env: dict[str, str], secrets: dict[str, str], event: str) -> None:
        self.root, self.env, self.secrets, self.event = root, env, secrets, event
        self.sha = git(root, "rev-parse", "HEAD")
        self.ran: list[str] = []

    def expr(self, text: str, matrix: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
        def value(m: re.Match[str]) -> str:
            e = m.group(1)
            if e.startswith("matrix."):
                return matrix[e.removeprefix("matrix.")]
            if e.startswith("secrets."):
                return self.secrets.get(e.removeprefix("secrets."), "")
            if e.startswith("steps.") and e.endswith(".outputs.version"):
                return outputs[e.split(".")[1]]["version"]
            known = {"github.sha": self.sha, "github.actor": "octocat", "github.ref": "refs/pull/1/merge",
                     "github.repository": "octo/iris", "github.event_name == 'pull_request'": "true"}
            if e not in known:
                raise AssertionError(f"the workflow uses an expression this test does not know: {e}")
            return known[e]

        return EXPRESSION.sub(value, text)

    def runs(self, condition: str | None) -> bool:
        if condition is None:
            return True
        return {workflows.ON_PR: self.event == "pull_request", workflows.ON_MAIN: self.event == "push"}.get(
            condition, False) if not condition.startswith(workflows.ON_MAIN) else self.event == "push"

    def job(self, doc: dict[str, Any], name: str, adjust: dict[str, str]) -> None:
        job = doc["jobs"][name]
        if not self.runs(job.get("if")):
            return
        include = job.get("strategy", {}).get("matrix", {}).get("include", [{}])
        for matrix in include:
            outputs: dict[str, dict[str, str]] = {}
            for step in job["steps"]:
                if not self.runs(step.get("if")):
                    continue
                if "uses" in step:
                    self.uses(step)
                    continue
                env = {**self.env, **{k: self.expr(str(v), matrix, outputs)
                                      for k, v in {**doc.get("env", {}), **step.get("env", {})}.items()}}
                out_file = self.root.parent / "github_output"
                out_file.write_text("")
                env["GITHUB_OUTPUT"] = str(out_file)
                script = self.expr(step["run"], matrix, outputs)
                for old, new in adjust.items():
                    script = script.replace(old, new)
                done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                                      cwd=self.root, env=env, capture_output=True, text=True, timeout=300,
                                      check=False)
                assert done.returncode == 0, f"{name}: {step['name']}: {script}\n{done.stdout}\n{done.stderr}"
                self.ran.append(script)
                if "id" in step:
                    outputs[step["id"]] = dict(line.split("=", 1) for line in out_file.read_text().splitlines())

    def uses(self, step: dict[str, Any]) -> None:
        action, given = step["uses"], step.get("with", {})
        if action == workflows.SETUP_PYTHON:
            assert given["python-version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
            # setup-python fails when no file matches cache-dependency-path
            assert all((self.root / f).is_file() for f in given["cache-dependency-path"].split("\n"))
        elif action == workflows.UPLOAD:
            assert (self.root / given["path"]).is_dir()
        elif action == workflows.COMMENT:
            assert (self.root / given["path"]).read_text().strip()
        else:
            assert action in (workflows.CHECKOUT, workflows.DOWNLOAD), f"unmapped action {action}"


@pytest.mark.slow
def test_every_run_step_of_the_github_workflow_passes_in_a_fresh_clone_of_a_pull_request(
        origin: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = origin
    git(root, "checkout", "-q", "-b", "pr")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["C"] = 0.25
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    git(root, "commit", "-q", "-am", "a smaller C")
    git(root, "checkout", "-q", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "pr", str(root), str(clone))
    assert not (clone / ".shipyard").exists() and not (clone / "data" / "raw").exists()
    doc = yaml.safe_load((clone / workflows.GITHUB_PATH).read_text())
    ci_env = {**env, "SHIPYARD_ACTOR": "", "PIP_NO_INDEX": "1", "PIP_DRY_RUN": "1",  # pip may change nothing here
              "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    team_db = f"sqlite:///{root / '.shipyard' / 'shipyard.db'}"
    runner = Runner(clone, ci_env, {"SHIPYARD_DB_URL": team_db, "GITHUB_TOKEN": "unused"}, "pull_request")
    for name in doc["jobs"]:
        runner.job(doc, name, {"shipyard build ": "shipyard build --context-only "})
    assert any(s.startswith("python -m pip install") and f"=={__version__}" in s for s in runner.ran)
    assert sum(s.startswith("shipyard verify") for s in runner.ran) == 2  # the lock, and the matrix's pin
    assert not any("promote" in s for s in runner.ran)  # main only
    # the pull request trained version 2 into the team registry; its metrics against production's
    comment = (clone / workflows.DIFF_FILE).read_text()
    assert f"{MODEL}@2" in comment and f"{MODEL}@1" in comment and "| train.C | 1.0 | 0.25 |" in comment
    assert json.loads((clone / workflows.BUILD_JSON).read_text())["version"] == 2


def test_metrics_diff_markdown_escapes_and_marks_what_is_new() -> None:
    d = diff(Side("m@1", {"acc": 0.9, "gone": 1.0}, {"C": "1"}),
             Side("m@2", {"acc": 0.95, "new|<b>": 2.0}, {"C": "2"}))
    text = markdown(d)
    assert "| acc | 0.9 | 0.95 | +0.05 (+5.6%) |" in text
    assert "new\\|\\<b\\>" in text and "| gone | 1 | - | gone |" in text and "| C | 1 | 2 |" in text
    alone = markdown(diff(Side("m@production", None), Side("m@1", {"acc": 0.9})))
    assert "does not exist yet" in alone and "| acc | 0.9 |" in alone
