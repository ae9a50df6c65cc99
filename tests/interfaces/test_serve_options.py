"""``shipyard serve`` checks every option and reference before it loads a model, in one line each.

The model served here is a pickled Python object whose module leaves a marker file when it is
imported, which only loading the model does: a refusal that comes before any loading leaves no
marker behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env, shipyard

MARKED = """
import os
from pathlib import Path

Path(os.environ["LOAD_MARKER"]).write_text("loaded")


class Constant:
    def predict(self, rows):
        return [1 for _ in rows]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """(environment, marker path) of a store holding marked@1 and marked@2 (alias production on 1)."""
    tmp = tmp_path_factory.mktemp("serve-options")
    (tmp / "marked.py").write_text(MARKED)
    marker = tmp / "loaded"
    path = os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")])
    env = cli_env(SHIPYARD_HOME=str(tmp / ".shipyard"), PYTHONPATH=path, LOAD_MARKER=str(marker))
    code = ("import shipyard, marked\nwith shipyard.start_run():\n"
            "    for _ in range(2):\n"
            "        v = shipyard.log_model(marked.Constant(), 'marked', flavor='python', examples=[[1.0, 2.0]])\n"
            "shipyard.set_alias('marked', 'production', 1)\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    return env, marker


def _refused(env: dict[str, str], marker: Path, *args: str) -> str:
    """The one-line error of a ``serve`` that must fail before loading anything."""
    marker.unlink(missing_ok=True)
    done = shipyard("serve", *args, env=env, check=False)
    assert done.returncode != 0, done.stderr
    assert not marker.exists(), f"a model was loaded before the refusal: {done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["marked@production", "--canary", "marked@9=10"], "--canary marked@9 not found"),
    (["marked@production", "--canary", "marked@2"], "write REF=PERCENT"),
    (["marked@production", "--canary", "marked@2=150"], "between 0 and 100"),
    (["marked@production", "--canary", "other@2=10"], "not a version of marked"),
    (["marked@production", "--shadow", "marked@staging"], "--shadow marked has no alias 'staging'"),
    (["marked@production", "--api-key", "env:SHIPYARD_TEST_UNSET_KEY"], "SHIPYARD_TEST_UNSET_KEY is not set"),
    (["marked@production", "--api-key", "plain-secret"], "env:NAME"),
    (["marked@production", "--public", "metadata"], "add --api-key"),
    (["marked@production", "--log-sample", "2"], "--log-sample"),
    (["marked@production", "--max-batch", "0"], "--max-batch must be at least 1"),
    (["marked@production", "--port", "70000"], "--port must be between 1 and 65535"),
    (["marked@production", "--drift-window", "0"], "--drift-window must be between 1 second and 604800 seconds"),
])
def test_a_bad_option_is_refused_before_any_model_loads(store: tuple[dict[str, str], Path], args: list[str],
                                                        says: str) -> None:
    env, marker = store
    assert says in _refused(env, marker, *args)


def test_a_port_in_use_is_refused_before_any_model_loads(store: tuple[dict[str, str], Path]) -> None:
    env, marker = store
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refused(env, marker, "marked@production", "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_a_model_not_found_names_the_registry_it_looked_in(store: tuple[dict[str, str], Path]) -> None:
    env, marker = store
    for ref in ("missing", "marked@7"):
        line = _refused(env, marker, ref)
        assert f"registry in {env['SHIPYARD_HOME']}" in line and "`shipyard models list`" in line


@pytest.mark.postgres
def test_a_model_not_found_names_the_database_without_its_password(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    base = os.environ.get("SHIPYARD_TEST_PG_URL")
    if not base:
        pytest.skip("SHIPYARD_TEST_PG_URL is not set")
    url = make_url(base).set(password="s3cret-pw").render_as_string(hide_password=False)
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), SHIPYARD_DB_URL=url)
    done = shipyard("serve", "missing-model", env=env, check=False)
    assert done.returncode != 0
    assert "s3cret-pw" not in done.stderr and "***@" in done.stderr and "`shipyard models list`" in done.stderr
