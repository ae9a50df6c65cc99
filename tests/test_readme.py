"""README.md is true when followed literally: every block runs, in order, in a scratch clone of this repository.

The scratch clone is a copy of the repository's tracked files (as they are in the working tree) in a fresh git
repository under a scratch $HOME, with `.venv` linked to the Python running the tests (what `make demo`
builds). See tests/readme_runner.py for how each kind of block is run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import without_torch
from tests.readme_runner import Block, Session, parse

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PORT = 8000  # the port the README's serving example uses

# The only blocks that do not run as written, by their first line: keep this list short and each reason real.
EXPECTED_NOT_AS_WRITTEN = {
    ("instead", "make demo"),  # `.venv/bin/shipyard demo` instead: make would build a second venv inside the test
    ("skip", "# for example (each names a version that needs it; the refusal prints the exact command):"),
    ("skip", "CREATE ROLE shipyard_app LOGIN PASSWORD '...';"),
    ("skip", "src/shipyard/"),
    ("skip", "shipyard build iris@1 --base local/debian-python:bookworm"),  # needs Docker: tests/test_images.py
    ("skip", "shipyard deploy iris-pipeline@2 --env staging --image \"$image\" --apply"),  # needs a cluster
    # needs a real bucket: the try-out after it runs the same store with moto and SHIPYARD_STORE
    ("skip", "store: s3://team-models/shipyard"),
    ("skip", "store: {url: s3://team-models/registry, region: eu-west-1}"),  # deploy.registry: test_deploy_registry.py
    ("skip", "secrets:"),  # Vault with AppRole and the Vault Agent injector: tests/test_secrets.py (OpenBao)
    ("skip", "┏" + "━" * 14 + "┳" + "━" * 11 + "┳" + "━" * 18 + "┳" + "━" * 15 + "┳" + "━" * 14 + "┳" + "━" * 16 + "┳"
     + "━" * 13 + "┓"),  # exp show's table: run ids, commits and times differ from run to run
    ("skip", "models:"),  # an illustration of the keys: tests/test_declared_models.py runs each
    ("skip", "$ curl -s 'localhost:8080/predict?proba=1' -d '{\"instances\": [\"a good film\", \"awful plot\"]}'"),
    ("skip", "$ shipyard import mlflow sqlite:///mlflow.db"),  # needs MLflow: tests/test_import_mlflow.py
    ("skip", "from shipyard.lightning import ShipyardLogger"),  # a real Trainer: tests/test_lightning_logger.py
}


def _blocks() -> list[Block]:
    return parse(README.read_text())


def test_every_block_is_runnable_or_explicitly_excluded() -> None:
    blocks = _blocks()
    kinds = [(b.kind(), b.first.split("  #")[0].strip()) for b in blocks]  # raises for a block the test could not run
    assert {k for k in kinds if k[0] in ("skip", "instead")} == EXPECTED_NOT_AS_WRITTEN
    assert sum(k[0] not in ("skip", "instead") for k in kinds) >= 10
    assert f"--port {PORT} &" in README.read_text()  # the port the test checks is free is the one the README uses


def test_parse_finds_markers_indented_blocks_and_unclosed_fences() -> None:
    text = ("x\n<!-- readme-test: skip (because) -->\n\n```bash\nmake demo\n```\n"
            "- item\n\n  ```yaml\n  a: 1\n  ```\n")
    one, two = parse(text)
    assert (one.line, one.lang, one.text, one.kind()) == (4, "bash", "make demo\n", "skip")
    assert (two.line, two.lang, two.text) == (9, "yaml", "a: 1\n")
    with pytest.raises(ValueError, match="line 9: a ```yaml block that the README test cannot run"):
        two.kind()
    with pytest.raises(ValueError, match="never closed"):
        parse("```bash\nls\n")


def test_the_layout_names_every_module_that_exists() -> None:
    tree = next(b for b in _blocks() if b.first == "src/shipyard/")
    named: list[Path] = []
    stack: list[tuple[int, Path]] = []
    for line in tree.text.splitlines()[1:]:
        indent, word = len(line) - len(line.lstrip()), line.split()[0] if line.strip() else ""
        if not word.endswith(("/", ".py")) or indent % 2 or indent > 4:
            continue  # a description's continuation line
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] if stack else REPO / "src" / "shipyard") / word
        named.append(path)
        if word.endswith("/"):
            stack.append((indent, path))
    missing = [str(p.relative_to(REPO)) for p in named if not p.exists()]
    assert not missing, f"the README's layout names what does not exist: {missing}"
    flavors = sorted(p.name for p in (REPO / "src/shipyard/adapters/flavors").glob("*.py") if p.name != "__init__.py")
    assert all(name in tree.text for name in flavors), flavors


def test_the_readme_grants_are_those_the_tamper_test_checks() -> None:
    sql = next(b for b in _blocks() if b.lang == "sql").text
    grants = [ln.rstrip(";").replace("shipyard_app", "{role}") for ln in sql.splitlines() if ln.startswith("GRANT")]
    source = (REPO / "tests" / "test_db_tamper.py").read_text()
    assert grants and all(f'"{g}"' in source for g in grants), grants


def test_the_runner_carries_state_and_names_the_failing_line(tmp_path: Path) -> None:
    text = ("```bash\nmkdir sub && cd sub\nexport GREETING=hi\nsleep 300 &\n```\n"  # the job is killed at the end
            "<!-- readme-test: file notes.txt -->\n```yaml\na: 1\n```\n"
            "```python\nimport os\nprint(os.environ['GREETING'], open('notes.txt').read().strip())\n```\n"
            "```console\n$ echo one; echo two >&2\none\ntwo\n```\n"
            "```bash\ntrue\necho before\nfalse\necho after\n```\n")
    session = Session(tmp_path, tmp_path, dict(os.environ), timeout=60)
    first, write, python, console, failing = parse(text)
    session.run(first)
    assert session.cwd == tmp_path / "sub" and session.env["GREETING"] == "hi"
    session.run(write)
    assert session.run(python) == "hi a: 1\n"
    session.run(console)
    with pytest.raises(AssertionError) as failed:
        session.run(failing)
    message = str(failed.value)
    assert "README.md line 19, the ```bash block starting `true`: exit status 1" in message
    output = message.split("--- output ---")[1]
    assert output == "\nbefore\nREADME.md line 22: exit 1 from: false\n"
    with pytest.raises(AssertionError, match="printed something else than the README shows"):
        session.run(parse("```console\n$ echo three\nfour\n```\n")[0])


def _clone(home: Path) -> Path:
    """The repository as `git clone` would give it, with the working tree's versions of its tracked files."""
    clone = home / "shipyard"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source, target = REPO / name, clone / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        subprocess.run(argv, cwd=clone, check=True, capture_output=True)
    (clone / ".venv").symlink_to(Path(sys.prefix))  # what `make demo` creates; ignored by git as in a clone
    return clone


@pytest.mark.slow
def test_the_readme_runs_top_to_bottom(tmp_path: Path) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.fail(f"port {PORT} is in use: the README serves its example on it; stop what listens there")
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.fail(f"{sys.prefix} has no bin/activate: run the tests from the venv `make test` builds")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = README reader\n\temail = reader@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "VIRTUAL_ENV", "GIT_"))}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != (Path(sys.prefix) / "bin").resolve())
    session = Session(tmp_path, _clone(home), without_torch(env), timeout=240)  # per block; a stage takes 2-20 s
    ran = []
    for block in _blocks():
        session.run(block)
        ran.append(block.kind())
    assert ran.count("skip") == sum(k == "skip" for k, _ in EXPECTED_NOT_AS_WRITTEN)
