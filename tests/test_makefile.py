"""The Makefile's plans (``make -n``, nothing run): the demo installs only its extras, the tests add the dev
extras, each install says what it does, and the stamps keep one from redoing the other."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Under `make test` the outer make's flags reach a make the tests start (MAKELEVEL makes it print "Entering
# directory"); each plan here is a top-level make's, as a user typing it would see.
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def plan(target: str, venv: Path) -> str:
    done = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}"], cwd=ROOT, env=MAKE_ENV,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def fake_venv(tmp_path: Path, *stamps: str) -> Path:
    """A venv folder as an earlier make left it: an interpreter, and stamps newer than pyproject.toml."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    for stamp in stamps:
        (venv / stamp).touch()
        os.utime(venv / stamp, (newer, newer))
    return venv


def test_a_fresh_demo_installs_only_its_extras_and_says_so(tmp_path: Path) -> None:
    demo = plan("demo", tmp_path / "none")
    assert "-m venv" in demo and "install" in demo
    assert '-e ".[sklearn,serve,governance,monitor]"' in demo and "[dev]" not in demo
    assert "echo \"==> installing shipyard[sklearn,serve,governance,monitor]" in demo  # a line per step
    assert demo.rstrip().endswith("shipyard demo")
    assert "-m compileall -q src" in demo.splitlines()[-3]  # Shipyard's modules compiled once, not in each stage


def test_tests_add_the_dev_extras_then_lint_typecheck_and_pytest(tmp_path: Path) -> None:
    test = plan("test", fake_venv(tmp_path, ".installed-demo"))
    assert '-e ".[dev]"' in test and "-m venv" not in test
    lines = test.splitlines()
    steps = [line.split()[0].rsplit("/", 1)[-1] for line in lines[-8:]]
    assert steps[:2] == ["ruff", "lint-imports"]  # lint first: it fails fast
    assert lines[-6].endswith("/python -m compileall -q src > /dev/null")  # bytecode for the tests' subprocesses
    # then mypy in the background beside pytest, and the exit status fails if either failed
    assert steps[4:6] == ["mypy", "python"] and lines[-4].endswith("& mypy=$!; \\")
    assert " -m pytest -n 3 --dist loadgroup; tests=$?;" in lines[-3]
    assert lines[-2].startswith("wait $mypy; typed=$?;") and lines[-1] == "[ $tests -eq 0 ] && [ $typed -eq 0 ]"


def test_lint_is_ruff_and_import_linter_and_typecheck_is_mypy(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, ".installed-demo", ".installed-dev")
    lint = plan("lint", venv)
    assert "ruff check" in lint and "lint-imports" in lint and "mypy" not in lint
    assert plan("typecheck", venv).strip() == f"{venv}/bin/mypy"


def test_the_demo_after_the_tests_installs_nothing(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, ".installed-demo", ".installed-dev")
    assert "install" not in plan("demo", venv)


def test_a_venv_that_failed_halfway_is_removed_so_the_next_make_starts_over(tmp_path: Path) -> None:
    """Debian's python3 without python3-venv makes VENV/bin/python, then fails at ensurepip. Left there, the
    next `make demo` (after `apt install python3-venv`) skipped the venv and ran pip in a venv without pip."""
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; '
                    'ln -s /bin/true "$3/bin/python"; echo "ensurepip is not available" >&2; exit 1; fi\n'
                    'echo "Python 3.11.0"\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(["make", "demo", f"PYTHON={fake}", f"VENV={venv}"], cwd=ROOT, env=MAKE_ENV,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "apt install python3-venv" in done.stdout + done.stderr
    assert not venv.exists()
    assert "-m venv" in plan("demo", venv)  # the next make creates it again
