"""shipyard deploy: every rendered manifest validated against the published schemas, kustomize overlays built,
renders deterministic, writes confined to the GitOps folder, and images pinned by digest."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.core.deploy.argocd import Source
from shipyard.core.deploy.config import deploy_config
from shipyard.core.deploy.layout import applied_objects, parse_steps, render_tree
from shipyard.core.deploy.manifests import Options, Target, plan
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from tests.conftest import cli_env, shipyard
from tests.deploy_lab import Lab, make_lab
from tests.k8s_validators import K8sValidator, k8s_validator  # noqa: F401

pytestmark = pytest.mark.xdist_group("deploy")  # one worker: the project and the validators' installs are shared

IMAGE = "registry.example.com/team/iris@sha256:" + "ab" * 32
ORIGIN = "https://git.example.com/team/iris.git"
ENVS = ("production", "qa", "staging")
CONFIG = """\
deploy:
  secrets:
    DB_PASSWORD: {secret: db, key: password, external: true, remote_key: prod/db}
    API_TOKEN: {secret: api, key: token}
  environments:
    staging:
      strategy: rollout
      autoscaling: {kind: hpa, min_replicas: 2, max_replicas: 6, target_in_flight: 2.5}
    production:
      namespace: iris-prod
      autoscaling: {kind: keda}
      resources: {cpu: "1", memory: 2Gi}
      approval: true
    qa:
      replicas: 1
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = make_lab(tmp_path_factory.mktemp("deploy"), CONFIG, ORIGIN)
    svc = lab.svc
    mv = svc.registry.resolve("iris@2")
    svc.registry.record_result(mv, "build", {"image": "shipyard/iris:2", "pushed": IMAGE}, f"pushed {IMAGE}")
    svc.registry.set_alias("iris", "staging", 1)
    yield lab
    svc.close()


def _render(lab: Lab, env: str, **kw: Any) -> Any:
    from shipyard.wiring.deploy import render_environment

    return render_environment(lab.svc, "iris@2", env, **kw)


def _docs(files: dict[str, bytes]) -> list[dict[str, Any]]:
    out = []
    for path, data in sorted(files.items()):
        if not path.endswith(("/kustomization.yaml", "-patch.yaml")):
            out.extend(d for d in yaml.safe_load_all(data) if d)
    return out


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_every_manifest_and_overlay_is_valid(lab: Lab, tmp_path: Path, k8s_validator: K8sValidator) -> None:  # noqa: F811
    folder = tmp_path / "deploy"
    objects: dict[str, list[dict[str, Any]]] = {}
    for env in ENVS:
        rendered = _render(lab, env, folder=folder)
        rendered.write(folder)
        objects[env] = rendered.documents()
    written = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.yaml")}
    docs = _docs(written)
    built = {env: k8s_validator.kustomize(folder / "overlays" / env) for env in ENVS}
    k8s_validator.validate(docs + [d for env in ENVS for d in built[env]])
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"Deployment", "Rollout", "AnalysisTemplate", "Service", "HorizontalPodAutoscaler", "ScaledObject",
                     "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "ExternalSecret", "Application"}
    for env in ENVS:  # what --apply sends is what Argo CD would apply from git
        assert sorted(built[env], key=_key) == sorted(objects[env], key=_key), env
        for d in built[env]:
            if d["kind"] == "Deployment":
                assert d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
                assert d["metadata"]["annotations"]["shipyard.dev/record-digest"].startswith("sha256:")
    staging = {d["kind"]: d for d in built["staging"]}
    assert staging["Deployment"]["spec"]["replicas"] == 0  # the Rollout runs its template
    assert "replicas" not in staging["Rollout"]["spec"]  # the HPA owns them
    steps = staging["Rollout"]["spec"]["strategy"]["canary"]["steps"]
    assert steps[0] == {"setWeight": 20}
    assert steps[1]["analysis"]["args"] == [{"name": "canary-version", "value": "2"},
                                            {"name": "stable-version", "value": "1"}]
    assert staging["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "2500m"
    production = {d["kind"]: d for d in built["production"]}
    assert "replicas" not in production["Deployment"]["spec"]
    assert production["Deployment"]["metadata"]["namespace"] == "iris-prod"
    app = yaml.safe_load((folder / "argocd" / "production.yaml").read_bytes())
    assert app["spec"]["source"] == {"repoURL": ORIGIN, "path": "deploy/overlays/production", "targetRevision": "main"}
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert app["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/replicas"]
    qa = yaml.safe_load((folder / "argocd" / "qa.yaml").read_bytes())
    assert "ignoreDifferences" not in qa["spec"] and {d["kind"]: d for d in built["qa"]}["Deployment"]["spec"][
        "replicas"] == 1
    text = b"".join(written.values())
    assert b"valueFrom" in text and b"secretKeyRef" in text  # credentials by reference, never a value


def test_kserve_inference_service(lab: Lab, tmp_path: Path, k8s_validator: K8sValidator) -> None:  # noqa: F811
    from shipyard.interfaces.cli.deploy import kind

    rendered = _render(lab, "staging", options=Options(format="kserve"), folder=tmp_path)
    rendered.write(tmp_path)
    assert kind(rendered) == "kserve InferenceService"  # no Rollout is rendered: the CLI does not say one is
    assert kind(_render(lab, "staging")) == "kubernetes, Argo Rollout"
    isvc = next(d for d in rendered.documents() if d["kind"] == "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20  # staging is at version 1: version 2 starts as a canary
    box = predictor["containers"][0]
    assert box["image"] == IMAGE and {"name": "PROTOCOL", "value": "v2"} in box["env"]
    assert not (tmp_path / "base").exists()
    k8s_validator.validate(_docs(rendered.files) + k8s_validator.kustomize(tmp_path / "overlays" / "staging"))


def test_each_validator_rejects_a_broken_manifest(lab: Lab, k8s_validator: K8sValidator) -> None:  # noqa: F811
    docs = {d["kind"]: d for d in _render(lab, "staging").documents()}
    deployment = copy.deepcopy(docs["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    rollout = copy.deepcopy(docs["Rollout"])
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "20%"
    isvc = next(d for d in _render(lab, "staging", options=Options(format="kserve")).documents()
                if d["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = "20"
    errors = k8s_validator.errors([deployment, rollout, isvc])
    assert len(errors) == 3, errors
    assert "imagePullPolcy" in errors[0] and "setWeight" in errors[1] and "canaryTrafficPercent" in errors[2]


def test_rerender_is_byte_identical_and_stale_files_go(lab: Lab, tmp_path: Path) -> None:
    first = _render(lab, "staging", folder=tmp_path)
    assert first.write(tmp_path)
    again = _render(lab, "staging", folder=tmp_path)
    assert again.files == first.files
    assert again.write(tmp_path) == []  # nothing changed on disk: a promotion without changes makes no diff
    (tmp_path / "overlays" / "staging" / "notes.yaml").write_text("# mine\n")
    plain = _render(lab, "staging", options=Options(strategy="deployment", replicas=3), folder=tmp_path)
    changed = plain.write(tmp_path)
    assert "overlays/staging/rollout.yaml" in changed and "overlays/staging/analysistemplate.yaml" in changed
    left = sorted(p.name for p in (tmp_path / "overlays" / "staging").iterdir())
    assert left == ["deployment-patch.yaml", "hpa.yaml", "kustomization.yaml", "notes.yaml"]


def test_write_stays_in_its_folder(lab: Lab, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "overlays").symlink_to(outside, target_is_directory=True)
    rendered = _render(lab, "qa", folder=folder)
    with pytest.raises(InvalidInputError, match="symbolic link"):
        rendered.write(folder)
    assert list(outside.iterdir()) == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "base").mkdir()
    (other / "base" / "kustomization.yaml").write_text("# Generated by shipyard deploy for model wine: x\n")
    with pytest.raises(ConflictError, match="wine"):
        rendered.write(other)
    (other / "base" / "kustomization.yaml").write_text("resources: []\n")
    with pytest.raises(ConflictError, match="did not write it"):
        rendered.write(other)


def test_image_must_be_pinned_and_recorded(lab: Lab) -> None:
    with pytest.raises(InvalidInputError, match=r"shipyard build MODEL@V --push .*--image REPO@sha256"):
        _render(lab, "qa", image="registry.example.com/iris:latest")
    with pytest.raises(NotFoundError, match=r"shipyard build iris@1 --push"):
        from shipyard.wiring.deploy import render_environment

        render_environment(lab.svc, "iris@1", "qa")
    with pytest.raises(InvalidInputError, match=r"no environment 'prod'.*production, qa, staging"):
        _render(lab, "prod")


def test_gpu_model_and_application_set(k8s_validator: K8sValidator) -> None:  # noqa: F811
    spec = deploy_config({"argocd": {"application_set": True}, "canary": [{"weight": 10}, {"pause": "30s"}],
                          "environments": {"staging": {"autoscaling": {"kind": "hpa"}}, "production": {}}})
    target = Target("resnet_50", 7, "staging", IMAGE, "sha256:" + "0" * 64, gpu=True)
    current = plan(spec, target)
    others = [plan(spec, Target("resnet_50", 7, "production", IMAGE, "sha256:" + "0" * 64, gpu=True))]
    files = render_tree(current, Source(ORIGIN, "deploy", "main"), lambda *a: {}, others)
    deployment = next(d for d in applied_objects(current, lambda *a: {}) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["name"] == "resnet-50"
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    appset = yaml.safe_load(files["argocd/applicationset.yaml"])
    assert [e["env"] for e in appset["spec"]["generators"][0]["list"]["elements"]] == ["production", "staging"]
    k8s_validator.validate([deployment, appset])


def test_namespace_is_a_dns_label() -> None:  # it is written into the KEDA trigger's PromQL, too
    with pytest.raises(ValueError, match="invalid namespace"):
        deploy_config({"environments": {"prod": {"namespace": 'p",job="x'}}})


def test_steps_flag() -> None:
    steps = parse_steps("10,pause=30s,analysis,50,analysis")
    assert [s.model_dump(exclude_none=True) for s in steps] == [
        {"weight": 10}, {"pause": "30s"}, {"analysis": True}, {"weight": 50}, {"analysis": True}]
    for bad in ("10,wait", "150", "pause=soon"):
        with pytest.raises(ValueError, match="--steps"):
            parse_steps(bad)


def test_cli_deploy(lab: Lab) -> None:
    env = cli_env(SHIPYARD_ACTOR="tester@ci")
    done = shipyard("deploy", "iris@2", "--env", "qa", "--steps", "25,analysis", "--json", env=env, cwd=lab.root)
    result = json.loads(done.stdout)
    assert result["image"] == IMAGE and "overlays/qa/kustomization.yaml" in result["files"]
    assert (lab.root / "deploy" / "argocd" / "qa.yaml").is_file()
    done = shipyard("deploy", "iris@2", "--env", "qa", env=env, cwd=lab.root)
    assert "nothing changed" in done.stdout and "overlays/qa/deployment-patch.yaml" in done.stdout
    bad = shipyard("deploy", "iris@2", "--env", "qa", "--strategy", "bluegreen", env=env, cwd=lab.root, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "deployment or rollout" in bad.stderr
    assert os.path.isdir(lab.root / "deploy" / "base")


def test_image_references_follow_the_distribution_grammar(lab: Lab) -> None:
    from shipyard.core.deploy.manifests import PINNED, image_repo, pinned_image

    digest = "@sha256:" + "ab" * 32
    for bad, says in (("r.io/a/../../b", "'..' is not a repository path component"),
                      ("r.io:99999/a", "port 99999 is not between 1 and 65535"),
                      ("r.io/A", "must be lowercase ('A')"), ("r.io//a", "empty component"),
                      ("r.io/a:-x", "'-x' is not a tag"), ("r.io/a;id", "is not a repository path component")):
        with pytest.raises(InvalidInputError, match=re.escape(says)):
            _render(lab, "qa", image=bad + digest)
        assert not PINNED.match(bad + digest)  # what `build --push` recorded is held to the same grammar
    with pytest.raises(ValueError, match="not a digest"):
        pinned_image("r.io/a@sha256:" + "AB" * 32)
    with pytest.raises(ValueError, match="not pinned by digest"):
        pinned_image("r.io/a:1")
    assert image_repo("localhost:5000/team/iris:v1" + digest) == "localhost:5000/team/iris"  # the digest pins it
    assert image_repo("Registry.Example.com:443/a__b/c-d.e" + digest) == "Registry.Example.com:443/a__b/c-d.e"
    assert PINNED.match("localhost:5000/team/iris:v1" + digest) and PINNED.match(IMAGE)


BAD_DEPLOY = (  # (deploy: section, the key and the words of the one-line error)
    ("environments: {staging: {alias: 'Bad Alias!'}}", r"deploy\.environments\.staging\.alias: invalid alias"),
    ("environments: {latest: {}}", r"deploy\.environments: environment 'latest' needs `alias: NAME`.*reserved"),
    ("environments: {'1': {}}", r"deploy\.environments: environment '1' needs `alias: NAME`"),
    ("environments: {a: {alias: live}, b: {alias: live}}",
     r"deploy\.environments: environments 'a' and 'b' both follow the alias 'live'"),
    ("secrets: {X: {secret: ../../x, key: k}}", r"deploy\.secrets\.X\.secret: '\.\./\.\./x' is not a Kubernetes"),
    ("secrets: {X: {secret: sub/x, key: k}}", r"deploy\.secrets\.X\.secret: 'sub/x' is not"),
    ("secrets: {A-B: {secret: x, key: k}}", r"deploy\.secrets: 'A-B' is not an environment variable name"),
    ("secrets: {PORT: {secret: x, key: k}}", r"deploy\.secrets: PORT is set by Shipyard"),
    ("secrets: {A: {secret: x, key: k/1}}", r"deploy\.secrets\.A\.key: 'k/1' is not a Secret key"),
    ("argocd: {namespace: 'argo cd'}", r"deploy\.argocd\.namespace: invalid namespace"),
    ("argocd: {project: 'a\"b'}", r"deploy\.argocd\.project: .* is not an Argo CD project name"),
    ("environments: {s: {cluster: 'file:///etc'}}", r"deploy\.environments\.s\.cluster: .*http\(s\)://HOST"),
    ("environments: {s: {cluster: 'https://u:pw@k8s:6443'}}",
     r"deploy\.environments\.s\.cluster: .*no user or password in it"),
    ("node_selector: {'a b': x}", r"deploy\.node_selector: 'a b' is not a label key"),
    ("node_selector: {gpu: 'x y'}", r"deploy\.node_selector: 'gpu': 'x y' is not a label value"),
    ("tolerations: [{key: x, operator: Maybe}]", r"deploy\.tolerations: toleration operator 'Maybe'"),
    ("tolerations: [{key: x, effect: Now}]", r"deploy\.tolerations: toleration effect 'Now'"),
    ("analysis: {prometheus: 'http://prom:9090\"}'}", r"deploy\.analysis\.prometheus: Prometheus URL"),
    ("folder: .git/hooks", r"deploy\.folder: '\.git/hooks' is refused: it is inside \.git/"),
    ("folder: .git/refs/heads", r"deploy\.folder: .*inside \.git/"),
    ("folder: .shipyard/objects", r"deploy\.folder: .*inside \.shipyard/, which belongs to Shipyard"),
    ("folder: sub/../.GIT", r"deploy\.folder: .*inside \.git/"),
    ("branch: refs/heads/main", r"deploy\.branch: branch 'refs/heads/main'.*not HEAD or refs/"),
)


def test_deploy_values_written_into_manifests_are_checked_when_shipyard_yaml_loads(tmp_path: Path) -> None:
    from shipyard.core.project.loader import load_config
    from shipyard.errors import ConfigError

    for section, says in BAD_DEPLOY:
        (tmp_path / "shipyard.yaml").write_text(f"version: 1\ndeploy:\n  {section}\n")
        with pytest.raises(ConfigError, match=r"^shipyard\.yaml:[23]: " + says) as caught:
            load_config(tmp_path)
        assert "\n" not in str(caught.value), section
    (tmp_path / "shipyard.yaml").write_text(
        "deploy:\n  folder: gitops/deploy\n  branch: release/1.2\n  environments: {prod: {alias: live}, qa: {}}\n"
        "  secrets: {DB_URL: {secret: db.creds, key: .url, external: true, remote_key: team/db url}}\n"
        "  tolerations: [{operator: Exists}, {key: example.com/gpu, value: a100, effect: NoExecute}]\n"
        "  analysis: {prometheus: 'https://prom.example.com:9443/prometheus'}\n")
    assert deploy_config(load_config(tmp_path).deploy).environments["prod"].alias == "live"


def test_help_texts_keep_their_brackets() -> None:
    """Typer shows help through Rich markup, where ``shipyard[k8s]`` loses ``[k8s]``: every help text of every
    command and option renders as written (``\\[`` for a literal bracket)."""
    import click
    import typer
    from rich.text import Text

    from shipyard.interfaces.cli.app import app

    def texts(cmd: click.Command, path: str) -> Iterator[tuple[str, str]]:
        yield path, cmd.help or ""
        for param in cmd.params:
            yield f"{path} {param.name}", getattr(param, "help", None) or ""
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from texts(sub, f"{path} {name}")

    seen = dict(texts(typer.main.get_command(app), "shipyard"))
    assert "needs shipyard\\[k8s]" in seen["shipyard deploy apply"]
    eaten = {where: text for where, text in seen.items() if Text.from_markup(text).plain != text.replace("\\[", "[")}
    assert eaten == {}


def test_deploy_writes_nowhere_a_link_or_output_would_make_dangerous(lab: Lab, tmp_path: Path) -> None:
    """deploy.folder and --output are checked as they resolve: a link to .git/ or .shipyard/, an --output into
    Shipyard's data, and a deploy.folder leading out of the project are refused before anything is written."""
    from shipyard.errors import ConfigError
    from shipyard.wiring.deploy import write_target

    config = (lab.root / "shipyard.yaml").read_text()
    (lab.root / ".git").mkdir(exist_ok=True)
    (lab.root / "gitlink").symlink_to(".git")
    (lab.root / "away").symlink_to(tmp_path)
    try:
        for folder in ("gitlink/hooks", "away/deploy"):
            (lab.root / "shipyard.yaml").write_text(f"deploy:\n  folder: {folder}\n")
            with pytest.raises(ConfigError, match=r"^deploy.folder .*: it is (inside /.*/\.git/|outside the project)"):
                write_target(lab.svc, None)
        (lab.root / "shipyard.yaml").write_text(config)
        for output in (lab.root / ".git" / "hooks", lab.svc.settings.home / "objects", lab.root / "gitlink"):
            with pytest.raises(ConfigError, match=r"^--output .*: it is inside "):
                write_target(lab.svc, output)
        assert write_target(lab.svc, tmp_path / "look") == tmp_path / "look"
    finally:
        for link in ("gitlink", "away"):
            (lab.root / link).unlink()
        (lab.root / "shipyard.yaml").write_text(config)
