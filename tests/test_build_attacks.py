"""``shipyard build`` against hostile input: an environment record or a run record whose text would break
out of the Dockerfile (a newline starting an instruction, ``$`` expanded by Docker's parser), and an
--output that is not a new or empty folder (never emptied, never followed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.environments import image
from shipyard.errors import InvalidInputError

_INSTRUCTION = re.compile(r"(FROM|RUN|ENV|COPY|LABEL|USER|WORKDIR|EXPOSE|HEALTHCHECK|ENTRYPOINT) ")
EVIL = 'x"\nRUN touch /pwned #\r\n${HOME:?boom} $(id) \\'


def _env(**torch: Any) -> dict[str, Any]:
    return {"python": {"version": "3.11.9"}, "frameworks": {"torch": {"cuda": "12.1", "cudnn": "9.1",
                                                                       "version": "2.3.0+cu121", **torch}}}


def _spec(base: image.Base, **extra: Any) -> image.ImageSpec:
    return image.ImageSpec("iris", 1, "sha256:" + "0" * 64, None, "sklearn", "3.11", base,
                           "2026-01-01T00:00:00Z", "0.0", **extra)


def _instructions(text: str) -> list[str]:
    """The instruction each logical line starts with (comments and continuations skipped)."""
    found, continued = [], False
    for line in text.splitlines():
        if not continued and line.strip() and not line.startswith("#"):
            found.append(line.split(" ", 1)[0])
        continued = line.endswith("\\")
    return found


def test_an_environment_record_cannot_add_a_dockerfile_instruction() -> None:
    with pytest.raises(ValueError, match="CUDA version"):
        image.choose_base(_env(cuda="12.1\nRUN touch /pwned"))
    base = image.choose_base(_env(cudnn=EVIL, version=EVIL))
    assert base.image == "nvidia/cuda:12.1.1-cudnn-runtime-ubuntu24.04"
    expected = ["FROM", "ENV", "COPY", "COPY", "ENV", "LABEL", "USER", "WORKDIR", "EXPOSE", "HEALTHCHECK",
                "ENTRYPOINT"]
    assert _instructions(image.dockerfile(_spec(base), "shipyard/deps:x")) == expected
    assert _instructions(image.deps_dockerfile(base, "sha256:x")) == ["FROM", "RUN", "LABEL", "COPY"]


def test_a_label_from_a_run_record_keeps_its_text_and_expands_nothing() -> None:
    spec = _spec(image.Base("python:3.11-slim", "CPU"), revision=EVIL, source="https://h/$USER/${X:-y}.git")
    text = image.dockerfile(spec, "shipyard/deps:x")
    assert _instructions(text).count("LABEL") == 1 and "RUN" not in _instructions(text)
    label = next(line for line in text.splitlines() if "image.revision=" in line)
    # inside double quotes Docker reads \" \\ \$ as escapes: every $ is escaped, no newline or CR is left
    assert label.strip().removesuffix("\\").strip().endswith(r'="x\" RUN touch /pwned #  \${HOME:?boom} \$(id) \\"')
    assert r"https://h/\$USER/\${X:-y}.git" in text


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sklearn.linear_model import LogisticRegression

    from shipyard.config import Settings
    from shipyard.core.registry.saving import save_model
    from shipyard.wiring import build, flavor

    root = tmp_path_factory.mktemp("buildattack")
    svc = build(Settings(home=root / ".shipyard", db_url=f"sqlite:///{root / 'meta.db'}",
                         store_path=root / ".shipyard" / "objects", actor="tester@ci"), root)
    x = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    save_model(flavor("sklearn"), LogisticRegression().fit(x, [0, 1, 0, 1]), root / "m", examples=x)
    svc.registry.register("m", root / "m", trust_as_registrant=True)
    yield svc
    svc.close()


def test_output_that_is_not_a_new_or_empty_folder_is_refused_and_left_as_it_was(services: Any,
                                                                                tmp_path: Path) -> None:
    from shipyard.wiring import build_image

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty", target_is_directory=True)
    (tmp_path / "empty").mkdir()
    file = tmp_path / "file"
    file.write_text("mine")
    environ = {"SHIPYARD_CACHE_DIR": str(tmp_path / "cache")}
    for output, why in ((full, "not empty"), (link, "not a folder"), (file, "not a folder")):
        with pytest.raises(InvalidInputError, match=why):
            build_image(services, "m@1", environ, output=output, engine=False)
    with pytest.raises(InvalidInputError, match="inside the object store"):
        build_image(services, "m@1", environ, output=services.settings.store_path / "ctx", engine=False)
    assert not (services.settings.store_path / "ctx").exists()
    for tag in ("--network=host", "x;rm -rf /", "a\nb"):  # refused before a context is written
        with pytest.raises(InvalidInputError, match="--tag"):
            build_image(services, "m@1", environ, output=tmp_path / "new", tag=tag, engine=False)
    assert not (tmp_path / "new").exists()
    assert (full / "keep.txt").read_text() == "mine" and file.read_text() == "mine" and link.is_symlink()
    assert not any((tmp_path / "empty").iterdir())


# -- with a real Docker daemon: a label read back by Docker's own parser; verify --image against images that
# answer garbage, are never ready, exit at once, or do not exist (never pulled) ------------------------------

SERVER = '''
import http.server, os, sys
mode = sys.argv[1]
if mode == "exit":
    print("boom: this image has the wrong Python", flush=True)
    sys.exit(3)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if mode == "never" else 200)
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))  # unread, closing would reset the connection
        if mode == "err":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"Traceback (most recent call last):\\n  boom\\nValueError: bad\\n")
            return
        body = {"garbage": b"not json{", "deep": b"[" * 100000,
                "bad": b'{"outputs": [{"shape": [3], "data": [1]}]}'}[mode]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def hostile_images(tmp_path_factory: pytest.TempPathFactory, daemon: Any, base_image: str) -> Any:
    base = base_image  # the session's daemon and base image (tests/images_fixtures.py)
    ctx = tmp_path_factory.mktemp("hostile-ctx")
    (ctx / "server.py").write_text(SERVER)
    for mode in ("garbage", "deep", "bad", "never", "exit", "err"):
        (ctx / "Dockerfile").write_text(f'FROM {base}\nCOPY server.py /server.py\n'
                                        f'LABEL evil={image._quoted(EVIL)}\n'
                                        f'ENTRYPOINT ["python3", "/server.py", "{mode}"]\n')
        daemon.docker("build", "--network", "none", "-t", f"hostile/{mode}:1", str(ctx))
    (ctx / "Dockerfile").write_text(f'FROM {base}\nENTRYPOINT ["/no/such/server"]\n')
    daemon.docker("build", "--network", "none", "-t", "hostile/noentry:1", str(ctx))
    hang = tmp_path_factory.mktemp("hang-ctx")  # a python3 that never returns: env check's probe hangs
    (hang / "python3").write_text("#!/bin/sh\nexec sleep 600\n")
    (hang / "python3").chmod(0o755)
    (hang / "Dockerfile").write_text(f"FROM {base}\nCOPY python3 /usr/local/bin/python3\n")
    daemon.docker("build", "--network", "none", "-t", "hostile/hang:1", str(hang))
    (hang / "python3").write_text("#!/bin/sh\nexec head -c 40000000 /dev/zero\n")  # prints 40 MB
    daemon.docker("build", "--network", "none", "-t", "hostile/flood:1", str(hang))
    yield daemon


@pytest.mark.slow
@pytest.mark.xdist_group("images")
def test_docker_reads_a_hostile_label_back_as_its_text(hostile_images: Any) -> None:
    done = hostile_images.docker("image", "inspect", "--format", "{{json .Config.Labels}}", "hostile/exit:1")
    assert json.loads(done.stdout)["evil"] == 'x" RUN touch /pwned #  ${HOME:?boom} $(id) \\'


@pytest.mark.slow
@pytest.mark.xdist_group("images")
def test_verify_image_against_images_that_misbehave_fails_with_the_reason(services: Any,
                                                                         hostile_images: Any) -> None:
    from shipyard.errors import NotFoundError
    from shipyard.wiring import verify_image

    environ = hostile_images.env

    def reason(mode: str) -> str:
        _, check = verify_image(services, "m@1", f"hostile/{mode}:1", environ, ready_timeout=3, record=False)
        assert check.status == "fail" and "\n" not in check.reason, check
        return check.reason

    assert reason("garbage").startswith("the answer is not JSON")
    assert reason("deep").startswith("the answer is not JSON")
    assert reason("bad").startswith("the answer is not what the model returns")
    assert reason("never").startswith("the container was not ready within 3 s")
    assert reason("exit") == ("the container exited (status 3) before it was ready: "
                              "boom: this image has the wrong Python")
    assert reason("err") == "the server answered 500: Traceback (most recent call last): boom ValueError: bad"
    assert reason("noentry").startswith("the container did not start: ")
    from shipyard.adapters.images.engine import engine_for
    from shipyard.errors import BackendUnavailableError

    engine = engine_for(environ)  # env check --target IMAGE: a probe that hangs is stopped, its container removed
    with pytest.raises(BackendUnavailableError, match=r"did not capture the environment inside hostile/hang:1 .* "
                                                      r"within 3 s"):
        engine.environment("hostile/hang:1", timeout=3)
    with pytest.raises(BackendUnavailableError, match="printed more than 16 MiB"):
        engine.environment("hostile/flood:1", timeout=60)
    with pytest.raises(BackendUnavailableError, match=r"could not push 127.0.0.1:9/x/y:1: .*connection refused"):
        engine.push("hostile/exit:1", "127.0.0.1:9/x/y:1")  # a registry nothing listens on: one line, at once
    with pytest.raises(NotFoundError, match="no image 'hostile/absent:1' in the Docker daemon"):
        verify_image(services, "m@1", "hostile/absent:1", environ, ready_timeout=3, record=False)
    left = hostile_images.docker("ps", "-aq").stdout.split()
    assert not left  # every throwaway container was removed


def test_golden_examples_that_are_not_what_shipyard_writes_are_one_line(services: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import shipyard.wiring.environments
    from shipyard.errors import IntegrityError, NotFoundError
    from shipyard.wiring import golden_examples

    mv = services.registry.resolve("m@1")

    def read(raw: bytes) -> Any:
        return golden_examples(services, dataclasses.replace(mv, examples_digest=services.store.put_bytes(raw)))

    for raw, why in ((b"[" * 100_000, "not JSON"), (b"not json", "not JSON"), (b"[1, 2]", "a JSON list"),
                     (b'"x"', "a JSON str")):
        with pytest.raises(IntegrityError, match=why):
            read(raw)
    with pytest.raises(NotFoundError, match="no golden examples"):
        read(b'{"inputs": [[1.0]]}')
    monkeypatch.setattr(shipyard.wiring.environments, "MAX_EXAMPLES_BYTES", 1000)  # the bound, made small for the test
    with pytest.raises(IntegrityError, match="larger than"):
        read(json.dumps({"inputs": [[0.5] * 500], "outputs": [1]}).encode())
    assert read(b'{"inputs": [[1.0]], "outputs": [1]}')["outputs"] == [1]


def test_two_builds_installing_the_same_dependencies_at_once_share_them(tmp_path: Path) -> None:
    import threading

    from shipyard.adapters.images.context import install_site

    cache = tmp_path / "site-cache"
    results: list[Any] = []

    def one(n: int) -> None:
        try:
            results.append(install_site(tmp_path / f"dest{n}", "six==1.16.0", [], "3.11", "x86_64", cache))
        except Exception as exc:  # the test reports what the thread raised
            results.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2 and all(isinstance(r, tuple) for r in results), results
    assert results[0][0] == results[1][0] and (tmp_path / "dest1" / "six.py").exists()
