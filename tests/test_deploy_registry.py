"""Registry mode (``--model-source registry``): the server loads its version from PostgreSQL and S3, the image is
the environment image of the version's lock, built once and shared by every version with that lock; every
credential is a Secret reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.core.deploy.manifests import Options
from shipyard.errors import ConfigError, InvalidInputError
from tests.conftest import cli_env, shipyard
from tests.deploy_lab import Lab, make_lab
from tests.k8s_validators import K8sValidator, k8s_validator  # noqa: F401

pytestmark = pytest.mark.xdist_group("deploy")  # the validators' installs are shared with test_deploy_render

BAKED = "registry.example.com/team/iris@sha256:" + "ab" * 32
ENV_IMAGE = "registry.example.com/team/shipyard-env@sha256:" + "cd" * 32
ORIGIN = "https://git.example.com/team/iris.git"
PASSWORD = "hunter2-never-in-git"  # in the test's Secret only: it must appear in no rendered byte
CONFIG = """\
store: {url: s3://team-models/registry, endpoint_url: "http://minio.storage.svc:9000", region: eu-west-1}
deploy:
  registry:
    database: {secret: shipyard-db, key: url, external: true, remote_key: team/shipyard/db-url}
    credentials: {secret: shipyard-s3}
    cache_size: 5Gi
  environments:
    staging: {model_source: registry, strategy: rollout}
    production: {namespace: iris-prod}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("registry-mode")
    # the deploying machine's own store is a folder here: SHIPYARD_STORE beats store: (which the pods read)
    lab = make_lab(root, CONFIG, ORIGIN, {"SHIPYARD_STORE": str(root / "objects")})
    svc = lab.svc
    svc.registry.record_result(svc.registry.resolve("iris@2"), "build", {"image": "shipyard/iris:2", "pushed": BAKED},
                               f"pushed {BAKED}")
    yield lab
    svc.close()


def _pushed_env_image(lab: Lab) -> None:
    """What `shipyard build iris@1 --model-source registry --push ...` records once it has pushed."""
    from shipyard.core.deploy import envimage
    from shipyard.wiring.deploy import environment_key

    mv = lab.svc.registry.resolve("iris@1")
    if any(r.get("pushed") == ENV_IMAGE for _, r in lab.svc.registry.results(mv, "build")):
        return
    lock, key = environment_key(lab.svc, mv)
    record = envimage.record(lock=lock, key=key, tag=envimage.env_tag(key), base_image="python:3.11-slim",
                             deps_image="shipyard/deps:x", image_id="sha256:" + "ef" * 32, engine="docker",
                             pushed=ENV_IMAGE)
    lab.svc.registry.record_result(mv, "build", record, envimage.summary(record["image"], None, ENV_IMAGE))


def _render(lab: Lab, env: str, ref: str = "iris@2", **kw: Any) -> Any:
    from shipyard.wiring.deploy import render_environment

    return render_environment(lab.svc, ref, env, **kw)


def _container(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    obj = next(o for o in objects if o["kind"] == kind)
    spec = obj["spec"]["predictor"] if kind == "InferenceService" else obj["spec"]["template"]["spec"]
    box: dict[str, Any] = spec["containers"][0]
    return {**box, "_volumes": spec.get("volumes")}


def test_registry_mode_renders_valid_manifests_with_secret_references_only(
        lab: Lab, tmp_path: Path, k8s_validator: K8sValidator) -> None:  # noqa: F811
    _pushed_env_image(lab)
    folder = tmp_path / "deploy"
    staging = _render(lab, "staging", folder=folder)  # registry mode from shipyard.yaml
    staging.write(folder)
    production = _render(lab, "production", folder=folder)  # baked, beside it: the base is shared
    production.write(folder)
    assert (staging.model_source, production.model_source) == ("registry", "baked")
    assert staging.image == ENV_IMAGE and production.image == BAKED  # iris@2 runs in the image iris@1's lock built
    built = {env: k8s_validator.kustomize(folder / "overlays" / env) for env in ("staging", "production")}
    written = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.yaml")}
    docs = [d for path, data in sorted(written.items()) if not path.endswith(("kustomization.yaml", "-patch.yaml"))
            for d in yaml.safe_load_all(data) if d]
    k8s_validator.validate(docs + built["staging"] + built["production"])
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(built["staging"], key=key) == sorted(staging.documents(), key=key)  # --apply sends what git says

    box = _container(built["staging"])
    assert box["image"] == ENV_IMAGE
    assert box["command"] == ["python3", "-m", "shipyard"]
    assert box["args"] == ["serve", "iris@2", "--host", "0.0.0.0", "--port", "8080", "--poll", "0"]  # pinned
    env = {e["name"]: e for e in box["env"]}
    assert env["SHIPYARD_DB_URL"]["valueFrom"] == {"secretKeyRef": {"name": "shipyard-db", "key": "url"}}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "shipyard-s3", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "shipyard-s3"
    assert env["SHIPYARD_STORE"]["value"] == "s3://team-models/registry"  # the project's store: by default
    # the cache stays within the 5Gi emptyDir (the kubelet evicts a pod whose emptyDir outgrows it)
    assert env["SHIPYARD_STORE_CACHE_MAX"]["value"] == str(5 * 1024**3 * 4 // 5)
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert env["SHIPYARD_HOME"]["value"] == "/var/lib/shipyard"
    assert env["SHIPYARD_STORE_CACHE"]["value"] == "/var/lib/shipyard/cache"
    assert "PORT" in env  # the base's variables stay
    assert box["volumeMounts"] == [{"name": "shipyard-data", "mountPath": "/var/lib/shipyard"}]
    assert box["_volumes"] == [{"name": "shipyard-data", "emptyDir": {"sizeLimit": "5Gi"}}]
    assert box["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"  # ready once the model is loaded
    external = [d for d in built["staging"] if d["kind"] == "ExternalSecret"]
    assert [d["spec"]["data"] for d in external] == [[{"secretKey": "url",
                                                       "remoteRef": {"key": "team/shipyard/db-url"}}]]

    baked = _container(built["production"])
    assert baked["image"] == BAKED and "args" not in baked and "command" not in baked and not baked["_volumes"]
    assert not any(d["kind"] == "ExternalSecret" for d in built["production"])

    again = _render(lab, "staging", folder=folder)
    assert again.files == staging.files  # deterministic bytes
    for data in written.values():
        assert b"valueFrom" not in data or b"secretKeyRef" in data
        assert PASSWORD.encode() not in data and b"postgresql://" not in data and b"stringData" not in data
    assert not any(d["kind"] == "Secret" for d in docs + built["staging"])  # references only, never a Secret


def test_model_source_flag_and_kserve(lab: Lab, tmp_path: Path, k8s_validator: K8sValidator) -> None:  # noqa: F811
    _pushed_env_image(lab)
    rendered = _render(lab, "production", options=Options(format="kserve", model_source="registry"), folder=tmp_path)
    rendered.write(tmp_path)
    assert rendered.model_source == "registry" and rendered.image == ENV_IMAGE
    built = k8s_validator.kustomize(tmp_path / "overlays" / "production")
    k8s_validator.validate(built + [d for data in rendered.files.values() for d in yaml.safe_load_all(data)
                                    if d and d.get("kind") not in ("Kustomization",)])
    box = _container(built, "InferenceService")
    assert box["image"] == ENV_IMAGE and box["args"][:2] == ["serve", "iris@2"]
    names = [e["name"] for e in box["env"]]
    assert {"PROTOCOL", "SHIPYARD_DB_URL", "SHIPYARD_STORE"} <= set(names) and len(names) == len(set(names))
    assert box["_volumes"] == [{"name": "shipyard-data", "emptyDir": {"sizeLimit": "5Gi"}}]
    # the same environment baked, by the flag: the model's image, no registry variables
    baked = _render(lab, "staging", options=Options(model_source="baked"))
    assert baked.image == BAKED and "SHIPYARD_DB_URL" not in b"".join(baked.files.values()).decode()


def test_two_versions_with_one_lock_share_one_environment_image(lab: Lab, tmp_path: Path) -> None:
    from shipyard.adapters.images.context import shipyard_runtime, site_digest
    from shipyard.core.environments.image import python_minor
    from shipyard.wiring import version_environment
    from shipyard.wiring.deploy import build_env_image, environment_key, pushed_env_image
    from shipyard.wiring.environments import image_lock
    from shipyard.wiring.gitops import gate_facts

    svc = lab.svc
    one, two = svc.registry.resolve("iris@1"), svc.registry.resolve("iris@2")
    assert environment_key(svc, one) == environment_key(svc, two)
    # the dependency folder comes from the site cache (as on a second build): no download in this test
    env = version_environment(svc, one)
    lock = image_lock(svc, one)
    from shipyard.core.deploy.envimage import lock_text

    python = python_minor(env)
    digest = site_digest(lock_text(python, lock.requirements()), shipyard_runtime(extras=("serve", "postgres", "s3")),
                         python, str((env.get("os") or {}).get("machine") or "x86_64"))
    site = tmp_path / "cache" / "image-site" / digest.removeprefix("sha256:")[:32]
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    environ = {"SHIPYARD_CACHE_DIR": str(tmp_path / "cache")}
    results = [build_env_image(svc, ref, environ, output=tmp_path / ref.replace("@", "-"), engine=False)
               for ref in ("iris@1", "iris@2")]
    assert results[0].tag == results[1].tag and results[0].tag.startswith("shipyard/env:")
    assert len(results[0].tag.removeprefix("shipyard/env:")) == 12 and results[0].site_cached
    files = [{p.relative_to(r.context).as_posix(): p.read_bytes() for p in sorted(r.context.rglob("*")) if p.is_file()}
             for r in results]
    assert files[0] == files[1]  # one context for one lock: byte for byte
    assert "model/Dockerfile" not in files[0] and not any(p.startswith("model/") for p in files[0])
    dockerfile = files[0]["Dockerfile"].decode()
    assert "iris" not in dockerfile and "SHIPYARD_MODEL" not in dockerfile
    assert 'ENTRYPOINT ["python3", "-m", "shipyard"]' in dockerfile
    runtime = files[0]["shipyard-requirements.txt"].decode()
    assert "psycopg[binary]==" in runtime and "obstore==" in runtime  # it reads PostgreSQL and S3

    # the gate: iris@2 has no build of its own, and is accepted with the image its lock's iris@1 pushed
    _pushed_env_image(lab)
    assert pushed_env_image(svc, two)[0] == ENV_IMAGE
    assert gate_facts(svc, two, "staging", None, "registry").image == ENV_IMAGE
    assert gate_facts(svc, two, "staging", None).image == BAKED  # baked: never the environment image
    assert gate_facts(svc, one, "production", None).image is None  # iris@1 has no baked image of its own
    # building iris@2's environment image reuses iris@1's (pushed): nothing is built, the reuse is recorded
    again = build_env_image(svc, "iris@2", environ, output=tmp_path / "never", engine=True)
    assert again.reused_from == "iris@1" and again.pushed == ENV_IMAGE and again.context is None
    assert not (tmp_path / "never").exists()
    mine = [r for _, r in svc.registry.results(two, "build") if r.get("model_source") == "registry"]
    assert mine[-1]["reused_from"] == "iris@1" and mine[-1]["pushed"] == ENV_IMAGE


def test_refused_configuration_is_one_line(tmp_path: Path, lab: Lab) -> None:
    from shipyard.core.project.loader import load_config

    for body, says in (
        (f"registry:\n    database: postgresql://shipyard:{PASSWORD}@db:5432/registry",
         r"deploy\.registry\.database: the database URL holds a password"),
        ("model_source: registry", r"deploy: model_source: registry, but there is no `registry:` section"),
        ("registry: {database: {secret: db, key: url}, store: 's3://x y'}", r"deploy\.registry\.store: .*not an S3"),
        ("registry: {database: {secret: db, key: url}, endpoint_url: 'http://k:s@minio'}",
         r"deploy\.registry\.endpoint_url: .*no user or password"),
        ("registry: {database: {secret: db, key: url}, credentials: {secret: Bad_Name}}",
         r"deploy\.registry\.credentials\.secret"),
        ("environments: {prod: {model_source: registri}}", r"deploy\.environments\.prod\.model_source"),
    ):
        (tmp_path / "shipyard.yaml").write_text(f"version: 1\ndeploy:\n  {body}\n")
        with pytest.raises(ConfigError, match=r"^shipyard\.yaml:\d+: " + says) as caught:
            load_config(tmp_path)
        assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value), body
    # through the CLI: one line, no traceback, the password never echoed
    project = tmp_path / "cli"
    project.mkdir()
    (project / "shipyard.yaml").write_text(f"deploy:\n  registry:\n    database: postgresql://u:{PASSWORD}@db/x\n")
    done = shipyard("deploy", "iris@1", "--env", "staging", env=cli_env(), cwd=project, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr and PASSWORD not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and "holds a password" in done.stderr
    # the flag without a registry section
    from shipyard.core.deploy.config import DeploySpec

    with pytest.raises(InvalidInputError, match=r"needs deploy\.registry"):
        _render(lab, "production", options=Options(model_source="registry"), spec=DeploySpec())
    # another model registered from the same environment has the same lock: it runs in the same image
    _pushed_env_image(lab)
    lab.svc.registry.register("pear", lab.root / "m", trust_as_registrant=True)
    assert _render(lab, "staging", ref="pear@1").image == ENV_IMAGE


@pytest.mark.parametrize("store", ['{url: s3://team/store, endpoint_url: "http://minio:TOPSECRET@minio.svc:9000"}',
                                   '"s3://AKIAX:TOPSECRET@team/st ore"'])
def test_the_project_store_goes_into_manifests_only_once_checked_as_deploy_registry(tmp_path: Path,
                                                                                    store: str) -> None:
    from shipyard.core.deploy.config import deploy_config
    from shipyard.core.project.loader import load_config
    from shipyard.errors import ConfigError
    from shipyard.wiring import from_environment
    from shipyard.wiring.deploy import with_store

    (tmp_path / "shipyard.yaml").write_text(CONFIG.replace(CONFIG.splitlines()[0], f"store: {store}"))
    with pytest.raises(ConfigError) as refused:  # at load, or when deploy takes it: never into a manifest
        svc = from_environment({"SHIPYARD_ACTOR": "tester@ci", "SHIPYARD_STORE": str(tmp_path / "objects")},
                               tmp_path)
        try:
            with_store(svc, deploy_config(load_config(tmp_path).deploy))
        finally:
            svc.close()
    assert "TOPSECRET" not in str(refused.value) and "\n" not in str(refused.value)
