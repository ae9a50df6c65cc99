"""Project discovery like git's, and paths from configuration that must exist: nothing is created by a typo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.config import find_project_root, load_settings
from shipyard.core.project.loader import parse_config
from shipyard.core.project.model import Project
from shipyard.errors import ConfigError
from shipyard.wiring import build, open_metadata, open_named_remote
from tests.conftest import cli_env, shipyard


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- discovery, in-process ----------------------------------------------------------------------------

def test_the_nearest_folder_with_a_marker_is_the_project(tmp_path: Path) -> None:
    deep = tmp_path / "outer" / "inner" / "src" / "pkg"
    deep.mkdir(parents=True)
    (tmp_path / "outer" / "shipyard.yaml").write_text("version: 1\n")
    assert find_project_root(deep) == tmp_path / "outer"
    (tmp_path / "outer" / "inner" / ".shipyard").mkdir()  # the API's folder, made by a script run there:
    assert find_project_root(deep) == tmp_path / "outer"  # it marks a project for its own folder only
    assert find_project_root(tmp_path / "outer" / "inner") == tmp_path / "outer" / "inner"
    (tmp_path / "outer" / "inner" / "shipyard.yaml").write_text("version: 1\n")  # a nested project wins,
    assert find_project_root(deep) == tmp_path / "outer" / "inner"  # as a nested git repository does
    assert find_project_root(tmp_path / "outer") == tmp_path / "outer"


def test_a_shipyard_folder_in_home_does_not_capture_the_folders_below(tmp_path: Path) -> None:
    """A script run once in ~ makes ~/.shipyard (MLflow's ./mlruns habit); ~/code/new is not its project."""
    (tmp_path / ".shipyard").mkdir()
    new = tmp_path / "code" / "new"
    new.mkdir(parents=True)
    assert find_project_root(new) is None
    with pytest.raises(ConfigError, match=r"^not in a Shipyard project"):
        load_settings({}, new)
    assert find_project_root(tmp_path) == tmp_path


def test_outside_any_project_there_is_no_root_and_settings_name_shipyard_init(tmp_path: Path) -> None:
    assert find_project_root(tmp_path) is None
    with pytest.raises(ConfigError, match=r"^not in a Shipyard project: .*run `shipyard init`"):
        load_settings({}, tmp_path)
    anywhere = load_settings({}, tmp_path, anywhere=True)  # the tracking API: records in ./.shipyard
    assert anywhere.home == tmp_path / ".shipyard" and anywhere.project_root == tmp_path
    assert tree(tmp_path) == []  # settings create nothing


def test_a_shipyard_file_or_link_stops_the_search_and_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")  # a project further up must not be used instead
    sub = tmp_path / "sub"
    (sub / "src").mkdir(parents=True)
    (sub / "shipyard.yaml").write_text("version: 1\n")
    (sub / ".shipyard").write_text("not a folder")
    assert find_project_root(sub / "src") == sub
    with pytest.raises(ConfigError, match=r"\.shipyard is a file, not a folder"):
        load_settings({}, sub / "src")
    (sub / ".shipyard").unlink()
    (sub / ".shipyard").symlink_to(tmp_path / "nowhere")  # dangling: still a marker, still refused
    assert find_project_root(sub / "src") == sub
    with pytest.raises(ConfigError, match=r"symbolic link"):
        load_settings({}, sub / "src")
    (sub / "shipyard.yaml").unlink()  # a lone .shipyard marks its own folder only, and is refused there
    assert find_project_root(sub) == sub
    with pytest.raises(ConfigError, match=r"symbolic link"):
        load_settings({}, sub)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_marker_of_another_user_above_the_current_folder_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # say /tmp: anyone may write shipyard.yaml there, with stages to run
    (shared / "mine").mkdir(parents=True)
    (shared / "shipyard.yaml").write_text("version: 1\nstages:\n  x:\n    cmd: touch /tmp/owned\n")
    os.chown(shared / "shipyard.yaml", 54321, 54321)
    with pytest.raises(ConfigError, match=r"belongs to another user \(uid 54321\).*run from .*shared itself"):
        find_project_root(shared / "mine")
    assert find_project_root(shared) == shared  # run from that folder, it is used: that is the explicit choice


def test_settings_from_a_subfolder_use_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")
    (tmp_path / "src").mkdir()
    settings = load_settings({}, tmp_path / "src")
    assert settings.project_root == tmp_path and settings.home == tmp_path / ".shipyard"
    assert settings.db_url == f"sqlite:///{tmp_path / '.shipyard' / 'shipyard.db'}"


# -- paths from configuration must exist ----------------------------------------------------------------

@pytest.mark.parametrize("variable", ["SHIPYARD_HOME", "SHIPYARD_STORE"])
def test_a_home_or_store_whose_parent_is_missing_is_an_error(tmp_path: Path, variable: str) -> None:
    (tmp_path / ".shipyard").mkdir()
    typo = tmp_path / "shard" / "data"
    with pytest.raises(ConfigError, match=rf"^{variable}={typo}: folder {tmp_path / 'shard'} does not exist; "
                                          rf"create it \(mkdir -p {tmp_path / 'shard'}\) or fix {variable}$"):
        load_settings({variable: str(typo)}, tmp_path)
    assert load_settings({variable: str(tmp_path / "data")}, tmp_path)  # the last part is Shipyard's to make


def test_a_sqlite_url_in_a_missing_folder_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / ".shipyard").mkdir()
    url = f"sqlite:///{tmp_path / 'typo' / 'meta.db'}"
    settings = load_settings({"SHIPYARD_DB_URL": url}, tmp_path)
    with pytest.raises(ConfigError, match=rf"^database {url}: folder {tmp_path / 'typo'} does not exist; create it "
                                          rf"\(mkdir -p {tmp_path / 'typo'}\) or fix SHIPYARD_DB_URL$"):
        open_metadata(settings)
    assert not (tmp_path / "typo").exists()


def test_a_fresh_clone_makes_its_own_shipyard_folder_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")  # .shipyard is not in git: a clone has none
    svc = build(load_settings({}, tmp_path), tmp_path)
    try:
        assert svc.registry.models() == []
    finally:
        svc.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shipyard", "shipyard.yaml"]


def test_a_folder_remote_at_a_missing_path_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    typo = tmp_path / "mnt" / "backpu"
    config = Project.from_dict(parse_config(f"version: 1\nremotes:\n  backup:\n    url: {typo}\n").model_dump())
    with pytest.raises(ConfigError) as exc:
        open_named_remote(config, tmp_path, "backup")
    assert str(exc.value) == (f"remote 'backup': folder {typo} does not exist; create it (mkdir -p {typo}) "
                              "or fix remotes.backup.url in shipyard.yaml")
    assert not (tmp_path / "mnt").exists()
    typo.mkdir(parents=True)  # made on purpose: an empty folder is a new, empty remote
    assert open_named_remote(config, tmp_path, "backup").missing([]) == []


# -- the command line ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["status"], ["run"], ["data", "status"], ["runs", "list"]])
def test_commands_outside_a_project_say_so_in_one_line_and_create_nothing(tmp_path: Path,
                                                                         command: list[str]) -> None:
    done = shipyard(*command, env=cli_env(), cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (f"error: not in a Shipyard project: no shipyard.yaml in {tmp_path} or any folder above "
                           "it (nor a .shipyard/ here); run `shipyard init` to make this folder one, or cd into a "
                           "project\n")
    assert done.stdout == "" and tree(tmp_path) == []


def test_commands_from_a_subfolder_work_on_the_project(tmp_path: Path) -> None:
    shipyard("init", env=cli_env(), cwd=tmp_path)
    sub = tmp_path / "data" / "raw"
    sub.mkdir(parents=True)
    (sub / "a.csv").write_text("a\n")
    (tmp_path / "labels.txt").write_text("x\n")
    env = cli_env()
    added = shipyard("data", "add", "a.csv", "../../labels.txt", env=env, cwd=sub)  # paths relative to here
    assert "recorded in ../../shipyard.lock; commit it with `git add ../../shipyard.lock ../../.gitignore`" \
        in added.stdout  # a command to paste where you are
    lock = (tmp_path / "shipyard.lock").read_text()
    assert "data/raw/a.csv:" in lock and "labels.txt:" in lock and not (sub / "shipyard.lock").exists()
    assert sorted(p.name for p in sub.iterdir()) == ["a.csv"]  # no .shipyard, no lock, no .gitignore here
    (sub / "a.csv").unlink()
    shipyard("data", "checkout", "a.csv", env=env, cwd=sub)
    assert (sub / "a.csv").read_text() == "a\n"
    (tmp_path / "shipyard.yaml").write_text("version: 1\nstages:\n  train:\n    command: python t.py\n")
    done = shipyard("status", env=env, cwd=sub, check=False)
    assert done.returncode == 2
    assert done.stderr == ("error: ../../shipyard.yaml:4: unknown key 'command' in stages.train "
                           "(did you mean 'cmd'?)\n")


def test_run_in_a_project_without_shipyard_yaml_says_there_is_no_pipeline(tmp_path: Path) -> None:
    (tmp_path / ".shipyard").mkdir()  # what the tracking API leaves in a folder that was no project
    done = shipyard("run", env=cli_env(), cwd=tmp_path, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: no shipyard.yaml in the project {tmp_path}, so there is no pipeline: run "
                           "`shipyard init` to write one, then declare stages in it\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shipyard"]


@pytest.mark.parametrize("kind", ["file", "link", "dangling link"])
def test_init_over_a_shipyard_file_or_link_refuses_before_writing_anything(tmp_path: Path, kind: str) -> None:
    """It wrote shipyard.yaml, then died with FileExistsError's traceback (file, dangling link) or
    accepted a link that every later command refuses."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "proj"
    folder.mkdir()
    home = folder / ".shipyard"
    if kind == "file":
        home.write_text("x")
    else:
        home.symlink_to(elsewhere if kind == "link" else tmp_path / "nowhere")
    done = shipyard("init", env=cli_env(), cwd=folder, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "nothing was changed" in done.stderr, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".shipyard"] and list(elsewhere.iterdir()) == []


def test_a_current_folder_that_was_deleted_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m shipyard runs list'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120,
                          check=False)
    assert done.returncode == 2 and done.stderr == (
        "error: the current folder no longer exists (it was deleted or moved): cd into a folder that exists, "
        "then run the command again\n")


def test_outside_a_project_below_a_lone_shipyard_folder_the_error_names_it(tmp_path: Path) -> None:
    """A script run in a folder made .shipyard/ there (no shipyard.yaml); from a subfolder, the error said there
    was no .shipyard/ in any folder above, and did not say how to use the one there is."""
    (tmp_path / ".shipyard").mkdir()
    (tmp_path / "notebooks").mkdir()
    done = shipyard("runs", "list", env=cli_env(), cwd=tmp_path / "notebooks", check=False)
    assert done.returncode == 2
    assert done.stderr == (f"error: not in a Shipyard project: {tmp_path} has a .shipyard/ but no shipyard.yaml, so "
                           f"it is a project only when you run from there: cd {tmp_path}, or run `shipyard init "
                           f"{tmp_path}` to make its subfolders part of it, or `shipyard init` to make this folder "
                           "a project\n")
