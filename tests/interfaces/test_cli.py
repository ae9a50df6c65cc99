"""The ``shipyard`` command, run for real in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shipyard
from tests.conftest import cli_env, register_constant
from tests.conftest import shipyard as run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.strip() == f"shipyard {shipyard.__version__}"
    help_text = run_cli("--help").stdout
    for group in ("runs", "models", "alias", "store", "demo"):
        assert group in help_text


def test_alias_set_and_rm_write_the_audit_log(env: dict[str, str], tmp_path: Path) -> None:
    register_constant(env, "iris")  # a version 1 (the whole demo, as before, took a minute)
    run_cli("alias", "set", "iris", "production", "1", "-m", "ship it", env=env)
    assert json.loads(run_cli("models", "show", "iris@production", "--json", env=env).stdout)["version"] == 1
    run_cli("alias", "rm", "iris", "production", env=env)
    events = json.loads(run_cli("models", "history", "iris", "--json", env=env).stdout)
    moves = [(e["action"], e["name"], e["old"], e["new"]) for e in events if e["name"] == "production"]
    assert moves == [("alias.set", "production", None, "1"), ("alias.remove", "production", "1", None)]
    assert events[-2]["reason"] == "ship it" and events[-2]["actor"]


def test_registering_over_an_existing_version_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    folder = tmp_path / "saved"
    shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
    assert "iris@1" in run_cli("models", "register", str(folder), "--name", "iris", env=env).stdout
    before = run_cli("models", "show", "iris@1", "--json", env=env).stdout
    import skops.io as sio  # other weights, still loadable: register refuses a folder that could never load

    (folder / "model.skops").write_bytes(sio.dumps(DummyClassifier(strategy="prior").fit([[0], [1]], [1, 1])))
    done = run_cli("models", "register", str(folder), "--name", "iris", "--version", "1", env=env, check=False)
    assert done.returncode == 4
    assert done.stderr.strip() == ("error: iris@1 is already registered and can never change; "
                                   "register a new version instead (the next is 2)")
    assert run_cli("models", "show", "iris@1", "--json", env=env).stdout == before


@pytest.mark.parametrize(("args", "code", "message"), [
    (["models", "show", "iris@@"], 2, "malformed model reference 'iris@@'"),
    (["models", "show", "ghost"], 3, "model 'ghost' not found"),
    (["models", "show", "ghost@production"], 3, "model 'ghost' not found"),
    (["alias", "set", "ghost", "prod", "1"], 3, "model 'ghost' not found"),
    (["alias", "set", "iris", "9bad", "1"], 2, "invalid alias '9bad'"),
    (["runs", "show", "zzzzzzzz"], 3, "run 'zzzzzzzz' not found"),
    (["runs", "list", "--where", "accuracy > 1"], 2, "unknown field 'accuracy'"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(env: dict[str, str], args: list[str], code: int,
                                                   message: str) -> None:
    done = run_cli(*args, env=env, check=False)
    assert done.returncode == code
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_unwritable_store_and_unreachable_database(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    bad_store = run_cli("models", "list", env=cli_env(SHIPYARD_HOME=str(tmp_path / "h"),
                                                      SHIPYARD_STORE=str(tmp_path / "a-file" / "objects")),
                        check=False)
    assert bad_store.returncode == 6 and "is not writable" in bad_store.stderr
    assert len(bad_store.stderr.strip().splitlines()) == 1

    bad_home = run_cli("runs", "list", env=cli_env(SHIPYARD_HOME=str(tmp_path / "a-file" / "home")), check=False)
    assert bad_home.returncode == 6 and "writable" in bad_home.stderr
    assert len(bad_home.stderr.strip().splitlines()) == 1

    bad_db = run_cli("runs", "list", env=cli_env(SHIPYARD_HOME=str(tmp_path / "h"),
                                                 SHIPYARD_DB_URL="postgresql://nobody@127.0.0.1:1/none"),
                     check=False)
    assert bad_db.returncode == 6 and "cannot use the metadata database" in bad_db.stderr
    assert len(bad_db.stderr.strip().splitlines()) == 1 and "Traceback" not in bad_db.stderr

    bad_url = run_cli("runs", "list", env=cli_env(SHIPYARD_HOME=str(tmp_path / "h"), SHIPYARD_DB_URL="nonsense"),
                      check=False)
    assert bad_url.returncode == 2 and "cannot read database URL" in bad_url.stderr


@pytest.mark.parametrize(("args", "line"), [
    (["modles"], "error: no such command 'modles' (did you mean 'models'?); see `shipyard --help`"),
    (["models", "lst"], "error: no such command 'lst' (did you mean 'list'?); see `shipyard models --help`"),
    (["runs", "list", "--limt", "3"],
     "error: no such option '--limt' (did you mean '--limit'?); see `shipyard runs list --help`"),
    (["alias", "set", "iris"], "error: missing argument 'ALIAS'; see `shipyard alias set --help`"),
    (["alias", "set", "iris", "prod", "one"],
     "error: invalid value for 'VERSION': 'one' is not a valid integer; see `shipyard alias set --help`"),
])
def test_usage_errors_are_one_line_with_one_suggestion(env: dict[str, str], args: list[str], line: str) -> None:
    done = run_cli(*args, env=env, check=False)
    assert done.returncode == 2  # as Click's own
    assert done.stderr == line + "\n"
    assert done.stdout == ""
