"""Where `shipyard build` writes its context: a new or empty folder, and nothing else is ever touched.

`build --output FOLDER` once wrote into any folder and, when that failed (as it does for a folder that is not
empty), removed the whole folder: `--output /etc` emptied the machine's /etc.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.images.build import claim_folder, release_folder
from shipyard.errors import InvalidInputError
from tests.conftest import cli_env, register_constant, shipyard


def test_build_refuses_a_folder_that_is_not_empty_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))
    register_constant(env, "iris")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(precious)
    for target in (precious, link, precious / "keep.txt"):
        done = shipyard("build", "iris@1", "--context-only", "--output", str(target), env=env, cwd=tmp_path,
                        check=False)
        assert done.returncode != 0 and "new or empty folder" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert sorted(p.name for p in precious.iterdir()) == ["keep.txt"]
        assert (precious / "keep.txt").read_text() == "mine" and link.is_symlink()


@pytest.mark.parametrize("existed", [True, False])
def test_a_failed_write_takes_back_only_what_it_wrote(tmp_path: Path, existed: bool) -> None:
    folder = tmp_path / "ctx"
    if existed:
        folder.mkdir()
    created = claim_folder(folder)
    assert created is not existed
    (folder / "deps").mkdir()
    (folder / "Dockerfile").write_text("FROM x\n")
    release_folder(folder, created)
    assert folder.exists() is existed and (not existed or not any(folder.iterdir()))
    assert tmp_path.exists()
    (tmp_path / "other").write_text("x")
    with pytest.raises(InvalidInputError, match="not empty"):
        claim_folder(tmp_path)


def test_a_bad_tag_or_push_target_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))
    register_constant(env, "iris")
    for option in (["--tag", "Bad Tag"], ["--tag", "x\nRUN rm -rf /"], ["--push", "127.0.0.1:5000/iris 1"]):
        done = shipyard("build", "iris@1", *option, "--output", str(tmp_path / "ctx"), env=env, cwd=tmp_path,
                        check=False)
        assert done.returncode == 2 and "is not an image reference" in done.stderr, done.stderr
        assert not (tmp_path / "ctx").exists()
