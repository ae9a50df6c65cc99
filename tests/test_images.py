"""Container images of model versions, for real: `shipyard build` on a debootstrapped base in a real Docker
daemon, the image run, `verify --image` through testcontainers, pushed to a local registry and pulled back
by digest; a broken image fails verify with its reason; a lock that lacks a package is refused at build.

The daemon, the base image and the registry start once per session (tests/images_fixtures.py); if one
cannot start the tests fail with the reason. One image is built and shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.environments import image
from shipyard.errors import InvalidInputError
from tests.conftest import cli_env, shipyard
from tests.images_fixtures import Daemon, free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("images")]  # one daemon, one shared image: one worker

TRAIN = """
import shipyard
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
x, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter={iters}).fit(x, y)
print(shipyard.log_model(model, "iris", examples=x[:5]).ref)
"""


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return shipyard(*args, env=self.env, cwd=self.root, check=check)

    def register(self, iters: int) -> str:
        done = subprocess.run([sys.executable, "-c", TRAIN.format(iters=iters)], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def services(self) -> Any:
        from shipyard.wiring import from_environment

        return from_environment({k: v for k, v in self.env.items() if k.startswith("SHIPYARD_")}, self.root)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, daemon: Daemon) -> Project:
    root = tmp_path_factory.mktemp("imgproj")
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"), SHIPYARD_ACTOR="tester@ci", DOCKER_HOST=daemon.host,
                  TESTCONTAINERS_RYUK_DISABLED="true", PYTHONPATH=os.pathsep.join(sys.path))
    (root / ".shipyard").mkdir()
    proj = Project(root, env)
    assert proj.register(300) == "iris@1"
    return proj


@dataclass
class Built:
    result: dict[str, Any]
    context: Path
    pushed_to: str


@pytest.fixture(scope="module")
def built(project: Project, base_image: str, oci_registry: str) -> Built:
    """iris@1 built on the debootstrapped base and pushed to the local registry: the issue's steps 1 and 4."""
    context = project.root / "ctx-1"
    dest = f"{oci_registry}/shipyard/iris:1"
    done = project.run("build", "iris@1", "--base", base_image, "--output", str(context), "--push", dest, "--json")
    return Built(json.loads(done.stdout), context, dest)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + image.READY_PATH, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} was not ready within {timeout} s")
        time.sleep(0.25)


def test_build_run_verify_push_and_pull_by_digest(project: Project, daemon: Daemon, built: Built,
                                                  base_image: str) -> None:
    result = built.result
    assert result["built"] and result["engine"] == "docker" and result["base"] == base_image
    svc = project.services()
    try:
        mv = svc.registry.resolve("iris@1")
        # the image id and the pushed digest are recorded with the version
        (_, record), = svc.registry.results(mv, "build")
        assert record["image_id"] == result["image_id"] and record["pushed"] == result["pushed"]
        # labels, non-root user and health check, as the engine reads them
        info = json.loads(daemon.docker("image", "inspect", result["tag"]).stdout)[0]["Config"]
        labels = info["Labels"]
        assert labels["org.opencontainers.image.version"] == "1"
        assert labels["org.opencontainers.image.title"] == "iris"
        assert labels["io.shipyard.manifest-digest"] == str(mv.manifest_digest)
        assert labels["io.shipyard.env-digest"] == str(mv.env_digest)
        assert info["User"] == f"{image.USER_ID}:{image.USER_ID}"
        assert image.READY_PATH in " ".join(info["Healthcheck"]["Test"])

        # 2. run it as production would: the port from $PORT, the examples to /v2/models/iris/infer
        port = free_port()
        cid = daemon.docker("run", "-d", "--network", "host", "-e", f"PORT={port}", result["tag"]).stdout.strip()
        try:
            _wait_ready(f"http://127.0.0.1:{port}")
            request = image.infer_request(svc.registry.examples(mv)["inputs"], mv.signature)  # type: ignore[index]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/iris/infer",
                                         data=json.dumps(request).encode(), method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                body = json.loads(r.read())
            assert body["model_version"] == "1"
            assert image.answer_outputs(body) == svc.registry.examples(mv)["outputs"]  # type: ignore[index]
            uids = [line.split()[1] for line in daemon.docker("top", cid, "-o", "pid,uid").stdout.splitlines()[1:]]
            assert uids == [str(image.USER_ID)] * len(uids) and uids  # the server runs as the non-root user
        finally:
            daemon.docker("rm", "-f", cid, check=False)

        # 3. verify --image through testcontainers, recorded with the version
        from shipyard.wiring import verify_image

        _, check = verify_image(svc, mv, result["tag"], project.env)
        assert check.passed, check.describe()
        verified = [r for _, r in svc.registry.results(mv, "verify") if r.get("target") == "image"]
        assert verified[-1]["passed"] and verified[-1]["image"] == result["tag"]
        assert result["image_id"] in verified[-1]["environment"]
    finally:
        svc.close()

    # env check --target IMAGE: the record captured inside the image, compared with the version's
    checked = project.run("env", "check", "iris@1", "--target", result["tag"], "--json")
    assert json.loads(checked.stdout)["ok"] and json.loads(checked.stdout)["target"] == f"the image {result['tag']}"

    # 4. pushed to the registry; pulled back by digest after the local copies are gone
    repo, digest = result["pushed"].split("@")
    assert repo == built.pushed_to.rsplit(":", 1)[0] and digest.startswith("sha256:")
    daemon.docker("rmi", built.pushed_to)
    pulled = daemon.docker("pull", result["pushed"], timeout=300)
    assert digest in pulled.stdout
    pulled_id = json.loads(daemon.docker("image", "inspect", result["pushed"]).stdout)[0]["Id"]
    assert pulled_id == result["image_id"]


def test_context_is_self_contained_and_ordered_for_the_cache(project: Project, built: Built) -> None:
    ctx = built.context
    text = (ctx / "Dockerfile").read_text()
    assert f"FROM {built.result['deps_image']}" in text and "COPY site/" in (ctx / "deps" / "Dockerfile").read_text()
    assert text.index("COPY app/") < text.index("COPY --chown") < text.index("LABEL")
    assert (ctx / "deps" / "site" / "sklearn").is_dir() and (ctx / "app" / "shipyard" / "__main__.py").is_file()
    assert "scikit-learn==" in (ctx / "requirements.txt").read_text()
    assert not (ctx / "deps" / "site" / "uv").exists()  # the server never builds environments
    # the image's one-version registry: the same version, number and record
    from shipyard.adapters.db.store import SqlMetadataStore

    meta = SqlMetadataStore(f"sqlite:///{ctx / 'model' / '.shipyard' / 'shipyard.db'}")
    svc = project.services()
    try:
        here, there = svc.registry.resolve("iris@1"), meta.get_version("iris", 1)
        assert there.record_digest() == here.record_digest() and [m.version for m in meta.list_versions("iris")] == [1]
        assert meta.latest_trust("iris", 1) is None  # skops' allowlist covers it: nothing needs trusting there
    finally:
        meta.close()
        svc.close()


def test_new_version_rebuilds_only_the_model_layer(project: Project, daemon: Daemon, built: Built,
                                                   base_image: str) -> None:
    assert project.register(301) == "iris@2"
    done = project.run("build", "iris@2", "--base", base_image, "--json")
    second = json.loads(done.stdout)
    assert second["dependencies_cached"] and second["deps_image"] == built.result["deps_image"]
    assert not second["deps_built"]  # the dependencies image is shared: only Shipyard and the model are sent

    def layers(tag: str) -> list[str]:
        return list(json.loads(daemon.docker("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"])

    one, two = layers(built.result["tag"]), layers(second["tag"])
    assert len(one) == len(two)
    assert one[:-1] == two[:-1] and one[-1] != two[-1]  # base, dependencies and Shipyard are shared
    # version 2's image says nothing about version 1: refused, nothing recorded for iris@1
    before = project.run("models", "history", "iris", "--json").stdout
    wrong = project.run("verify", "iris@1", "--image", second["tag"], check=False)
    assert wrong.returncode == 2 and "serves iris@2, not iris@1" in wrong.stderr, wrong.stderr
    assert project.run("models", "history", "iris", "--json").stdout == before


def test_broken_image_fails_verify_with_the_reason(project: Project, daemon: Daemon, built: Built) -> None:
    broken = project.root / "ctx-broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text(f"FROM {built.result['tag']}\nUSER root\n"
                                       f"RUN rm -rf {image.SITE_DIR}/sklearn\nUSER {image.USER_ID}\n")
    daemon.docker("build", "--network", "none", "-t", "local/broken:1", str(broken), timeout=300)  # a missing package
    from shipyard.wiring import verify_image

    svc = project.services()
    try:
        started = time.monotonic()
        _, check = verify_image(svc, "iris@1", "local/broken:1", project.env, ready_timeout=90)
        assert time.monotonic() - started < 90  # it failed on the container's exit, not on the deadline
    finally:
        svc.close()
    assert not check.passed
    assert "exited" in check.reason and "sklearn" in check.reason, check.reason


def test_a_package_the_lock_lacks_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    from shipyard.adapters.environments.probe import capture
    from shipyard.config import Settings
    from shipyard.core.environments.capture import to_bytes
    from shipyard.core.registry.service import Registry
    from shipyard.wiring import build, build_image, flavor

    home = tmp_path / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{tmp_path / 'meta.db'}", store_path=home / "objects",
                         actor="tester@ci"), tmp_path)
    try:
        record = dict(capture(None))
        record["packages"] = {k: v for k, v in record["packages"].items() if k != "skops"}
        digest = svc.store.put_bytes(to_bytes(record))
        registry = Registry(svc.meta, svc.store, flavor, "tester@ci", env_digest=lambda: digest)
        from sklearn.linear_model import LogisticRegression

        from shipyard.interfaces.api.fluent import save_model

        folder = tmp_path / "m"
        save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), folder)
        registry.register("lacking", folder, trust_as_registrant=True)
        with pytest.raises(InvalidInputError, match="skops"):
            build_image(svc, "lacking@1", {"PATH": ""}, output=tmp_path / "ctx")
        assert not (tmp_path / "ctx").exists()
    finally:
        svc.close()


def test_an_output_folder_that_is_not_empty_is_refused_and_left_alone(tmp_path: Path) -> None:
    """`build --output DIR` on a folder holding files: refused before anything is written, nothing removed
    (the clean-up of a failed build once emptied it: `--output /etc` emptied /etc)."""
    from shipyard.config import Settings
    from shipyard.wiring import build, build_image

    home = tmp_path / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{tmp_path / 'meta.db'}", store_path=home / "objects",
                         actor="tester@ci"), tmp_path)
    try:
        from sklearn.linear_model import LogisticRegression

        from shipyard.interfaces.api.fluent import save_model

        save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "m")
        svc.registry.register("kept", tmp_path / "m", trust_as_registrant=True)
        mine = tmp_path / "mine"
        (mine / "sub").mkdir(parents=True)
        (mine / "precious.txt").write_text("keep me")
        (mine / "sub" / "more.txt").write_text("and me")
        with pytest.raises(InvalidInputError, match="not empty"):
            build_image(svc, "kept@1", {"PATH": ""}, output=mine)
        assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*")) == ["precious.txt", "sub", "sub/more.txt"]
    finally:
        svc.close()


def test_without_an_engine_the_context_is_written_and_the_command_printed(project: Project, built: Built) -> None:
    env = {k: v for k, v in project.env.items() if k != "DOCKER_HOST"}
    done = shipyard("build", "iris@1", "--context-only", env=env, cwd=project.root)
    assert done.returncode == 0
    assert "docker build --network none -t shipyard/deps:" in done.stdout
    assert "docker build --network none -t shipyard/iris:1" in done.stdout
    assert (project.root / ".shipyard" / "images" / "iris-1" / "Dockerfile").is_file()


# -- rendering, in-process ------------------------------------------------------------------------------------

CPU = {"python": {"version": "3.11.7"}, "frameworks": {}}
GPU = {"python": {"version": "3.10.12"},
       "frameworks": {"torch": {"version": "2.3.0+cu121", "tag": "cu121", "cuda": "12.1", "cudnn": "8.9.2"}}}


def _spec(base: image.Base) -> image.ImageSpec:
    return image.ImageSpec("iris", 3, "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sklearn", "3.11", base,
                           "2026-01-01T00:00:00Z", "0.1.0", revision="abc123", source="https://git.example/x")


def test_base_from_the_fingerprint() -> None:
    assert image.choose_base(CPU).image == "python:3.11-slim"
    gpu = image.choose_base(GPU)
    assert gpu.image == "nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04" and gpu.gpu and gpu.install_python
    assert "CUDA 12.1" in gpu.reason and "cu121" in gpu.reason
    assert image.choose_base(GPU, "registry.example/team/base:1").image == "registry.example/team/base:1"
    with pytest.raises(ValueError, match="not an image reference"):
        image.choose_base(CPU, "bad image; rm -rf /")


def test_dockerfile_labels_user_healthcheck_and_order() -> None:
    base = image.choose_base(CPU)
    deps = image.deps_tag("sha256:" + "c" * 64, base.image)
    assert deps != image.deps_tag("sha256:" + "c" * 64, "other:1")  # named by the lock and the base
    assert "FROM python:3.11-slim" in image.deps_dockerfile(base, "sha256:" + "c" * 64)
    text = image.dockerfile(_spec(base), deps)
    assert text.splitlines()[2] == f"FROM {deps}"
    assert 'org.opencontainers.image.revision="abc123"' in text
    assert 'org.opencontainers.image.source="https://git.example/x"' in text
    assert 'io.shipyard.manifest-digest="sha256:' in text and "org.opencontainers.image.created=" in text
    assert f"USER {image.USER_ID}:{image.USER_ID}" in text and "ENV SHIPYARD_MODEL=iris@3" in text
    assert "HEALTHCHECK" in text and image.READY_PATH in text and "urllib" in text
    # what changes with every version comes after what does not: the cache keeps the rest
    assert text.index("COPY app/") < text.index("COPY --chown") < text.index("ENV SHIPYARD_MODEL") \
        < text.index("LABEL")
    assert "RUN " not in text + image.deps_dockerfile(base, "d")  # a slim Python base needs nothing run
    assert "apt-get install" in image.deps_dockerfile(image.choose_base(GPU), "d")


def test_answers_are_nested_back_by_shape() -> None:
    body = {"outputs": [{"name": "predict", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]}
    assert image.answer_outputs(body) == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="does not hold"):
        image.answer_outputs({"outputs": [{"shape": [2, 2], "data": [1]}]})
    assert image.infer_request([[1.0, 2.0]], {"inputs": {"dtype": "float64"}})["inputs"][0]["shape"] == [1, 2]
