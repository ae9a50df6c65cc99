"""The .gitignore lines `run` and `data add` write: each matches its path and nothing else, and a
.gitignore that is not a plain file of its own is never written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.interfaces.cli.gitignore import ignore


def ignored(root: Path, *paths: str) -> set[str]:
    done = subprocess.run(["git", "-C", str(root), "check-ignore", "--no-index", "-z", "--stdin"],
                          input="\0".join(paths), capture_output=True, text=True, check=False)
    return {p for p in done.stdout.split("\0") if p}


@pytest.mark.parametrize(("rel", "others"), [
    ("out/[ab].csv", ["out/a.csv", "out/b.csv"]),
    ("out/*.csv", ["out/x.csv"]),
    ("out/?", ["out/a"]),
    ("out/x\\y", ["out/xy"]),
    ("out/trailing ", ["out/trailing"]),
    ("#hash", []),
    ("!bang", []),
])
def test_a_path_with_pattern_characters_ignores_itself_and_nothing_else(tmp_path: Path, rel: str,
                                                                       others: list[str]) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert ignore(tmp_path, rel)
    assert ignored(tmp_path, rel, *others, "other") == {rel}
    assert not ignore(tmp_path, rel)  # already there: not added twice


def test_a_path_with_a_line_break_adds_no_line(tmp_path: Path) -> None:
    """``out\\n*`` would have added a line ``*``: git would ignore the whole project."""
    (tmp_path / ".gitignore").write_text("/.shipyard\n")
    assert not ignore(tmp_path, "out\n*")
    assert not ignore(tmp_path, "out\r!x")
    assert (tmp_path / ".gitignore").read_text() == "/.shipyard\n"


def test_a_gitignore_that_is_a_fifo_or_a_hard_link_is_left_alone(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".gitignore")
    assert not ignore(tmp_path, "out")  # was an UnsupportedOperation traceback
    (tmp_path / ".gitignore").unlink()
    outside = tmp_path.parent / f"{tmp_path.name}-bashrc"
    outside.write_text("echo hi\n")
    os.link(outside, tmp_path / ".gitignore")
    assert not ignore(tmp_path, "out")
    assert outside.read_text() == "echo hi\n"
