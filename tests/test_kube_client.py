"""The cluster client (adapters/deploy/kubernetes.py through wiring/cluster.py), with the real ``kubernetes``
client against a loopback HTTP server that records every request and answers as an API server would.

No API server can run here, so the requests themselves are checked: methods, paths, content type, the
query (fieldManager, force, dryRun), the bearer token from the kubeconfig, and each body validated as
the objects it carries (kubernetes-validate for built-in kinds, the CRD schemas and the KServe SDK's
models through tests/k8s_validators.py). Unreachable, 403 and 422 answers become one-line errors.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from shipyard.core.deploy.analysis import analysis_template
from shipyard.core.deploy.argocd import Source, application
from shipyard.core.deploy.config import deploy_config
from shipyard.core.deploy.kserve import inference_service
from shipyard.core.deploy.layout import applied_objects
from shipyard.core.deploy.manifests import Options, Target, plan
from shipyard.errors import BackendUnavailableError, InvalidInputError, MissingExtraError
from shipyard.wiring import cluster
from tests.conftest import cli_env, free_port, shipyard
from tests.k8s_validators import K8sValidator, k8s_validator  # noqa: F401

IMAGE = "registry.example.com/team/iris@sha256:" + "ab" * 32
TOKEN = "t0ken-from-kubeconfig"
SPEC = {"strategy": "rollout", "autoscaling": {"kind": "keda"},
        "secrets": {"API_KEY": {"secret": "iris-keys", "key": "api", "external": True, "remote_key": "team/iris"}},
        "environments": {"staging": {"namespace": "ml-staging"}, "production": {"approval": True}}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    authorization: str | None
    body: Any


@dataclass
class FakeAPI:
    """What the loopback server answers: canned objects for GET, and every request it saw."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)


def _status(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": {"causes": causes or []}, "code": code}


pytestmark = pytest.mark.xdist_group("kube-client")  # one loopback API server and one CRD validator install


@pytest.fixture(scope="module")
def api() -> Iterator[FakeAPI]:
    with serve_api() as state:
        yield state


@contextlib.contextmanager
def serve_api() -> Iterator[FakeAPI]:
    """The loopback API server, on a free port of 127.0.0.1, until the block ends."""
    state = FakeAPI("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PATCH(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = yaml.safe_load(raw)  # apply-patch+yaml: YAML (the client sends JSON, a subset)
            state.seen.append(Seen("PATCH", parts.path, parse_qs(parts.query), self.headers.get("Content-Type"),
                                   self.headers.get("Authorization"), body))
            name = body["metadata"]["name"]
            if name.startswith("forbidden"):
                self._answer(403, _status(403, "Forbidden", f'deployments.apps "{name}" is forbidden: User '
                                          '"ci" cannot patch resource "deployments" in API group "apps"'))
            elif name.startswith("invalid"):
                self._answer(422, _status(422, "Invalid", f'Deployment.apps "{name}" is invalid', [
                    {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or "
                     "equal to 0", "field": "spec.replicas"}]))
            else:
                created = parts.path not in state.applied
                if "dryRun" not in parts.query:
                    state.applied.add(parts.path)
                reply = json.loads(json.dumps(body))
                reply["metadata"].update(uid="0000", resourceVersion="1")
                self._answer(201 if created else 200, reply)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.seen.append(Seen("GET", parts.path, parse_qs(parts.query), None, self.headers.get("Authorization"),
                                   None))
            if parts.path in state.objects:
                self._answer(200, state.objects[parts.path])
            elif "/applications/" in parts.path and "no-argocd" in parts.path:
                self._answer(404, _status(404, "NotFound", "the server could not find the requested resource"))
            else:
                self._answer(404, _status(404, "NotFound", f'"{parts.path.rsplit("/", 1)[-1]}" not found'))

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(folder: Path, server: str) -> str:
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "loop",
        "clusters": [{"name": "loop", "cluster": {"server": server}}],
        "users": [{"name": "ci", "user": {"token": TOKEN}}],
        "contexts": [{"name": "loop", "context": {"cluster": "loop", "user": "ci", "namespace": "team"}}]}))
    return str(path)


def rendered() -> list[dict[str, Any]]:
    """staging's objects as `shipyard deploy --apply` sends them, its Argo CD Application, a KServe variant."""
    spec = deploy_config(SPEC)
    target = Target("iris", 3, "staging", IMAGE, "sha256:" + "0" * 64, stable_version=2)
    p = plan(spec, target)
    docs = applied_objects(p, lambda name, model, s: analysis_template(name, model, s))
    docs.append(application(p, Source("https://git.example.com/team/iris.git", "deploy", "main")))
    docs.append(inference_service(plan(spec, target, Options(format="kserve"))))
    docs[-1]["metadata"]["namespace"] = "ml-staging"
    return docs


def test_server_side_apply_sends_valid_objects_namespaces_first(api: FakeAPI, tmp_path: Path,
                                                                 k8s_validator: K8sValidator) -> None:  # noqa: F811
    docs = rendered()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Rollout", "AnalysisTemplate", "ScaledObject", "ServiceMonitor", "ExternalSecret",
            "Application", "InferenceService", "Service", "PodDisruptionBudget"} <= kinds
    config = kubeconfig(tmp_path, api.url)
    api.seen.clear()
    applied = cluster.apply(docs, kubeconfig=config)
    sent = [s for s in api.seen if s.method == "PATCH"]
    # namespaces first (the ones the objects name, none of which the render lists), then the objects in order
    assert [s.path for s in sent[:2]] == ["/api/v1/namespaces/ml-staging", "/api/v1/namespaces/argocd"]
    assert [s.body for s in sent[2:]] == docs
    assert [str(a) for a in applied if not a.created] == [] and str(applied[0]) == "Namespace ml-staging created"
    paths = {s.body["kind"]: s.path for s in sent}
    assert paths["Deployment"] == "/apis/apps/v1/namespaces/ml-staging/deployments/iris"
    assert paths["Service"].startswith("/api/v1/namespaces/ml-staging/services/iris")
    assert paths["Rollout"] == "/apis/argoproj.io/v1alpha1/namespaces/ml-staging/rollouts/iris"
    assert paths["Application"] == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/iris-staging"
    assert paths["ScaledObject"] == "/apis/keda.sh/v1alpha1/namespaces/ml-staging/scaledobjects/iris"
    assert paths["InferenceService"] == "/apis/serving.kserve.io/v1beta1/namespaces/ml-staging/inferenceservices/iris"
    assert paths["PodDisruptionBudget"] == "/apis/policy/v1/namespaces/ml-staging/poddisruptionbudgets/iris"
    for s in sent:
        assert s.content_type == "application/apply-patch+yaml"
        assert s.query == {"fieldManager": ["shipyard"], "force": ["false"]}  # conflicts are not forced
        assert s.authorization == f"Bearer {TOKEN}"
    k8s_validator.validate([s.body for s in sent])

    # a dry run: every request says dryRun=All, and the server keeps nothing (so nothing reads as configured)
    api.seen.clear()
    again = cluster.apply(docs[:3], kubeconfig=config, dry_run=True)
    assert all(s.query.get("dryRun") == ["All"] for s in api.seen)
    assert str(again[-1]).endswith("configured (dry run)")


def test_status_reads_workload_rollout_and_application(api: FakeAPI, tmp_path: Path) -> None:
    ns = "/apis/argoproj.io/v1alpha1/namespaces"
    api.objects.update({
        "/apis/apps/v1/namespaces/ml-staging/deployments/iris": {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "iris", "namespace": "ml-staging"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                         {"name": "server", "image": IMAGE}]}}}},
        f"{ns}/ml-staging/rollouts/iris": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "iris"},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 50}]}},
                     "template": {"spec": {"containers": [{"name": "server", "image": IMAGE}]}}},
            "status": {"phase": "Paused", "currentStepIndex": 2, "replicas": 3, "readyReplicas": 2,
                       "updatedReplicas": 1, "availableReplicas": 2}},
        f"{ns}/argocd/applications/iris-staging": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "iris-staging"},
            "status": {"sync": {"status": "Synced", "revision": "a" * 40}, "health": {"status": "Suspended"}}},
    })
    result = cluster.status("staging", deploy_config(SPEC), "iris", kubeconfig=kubeconfig(tmp_path, api.url))
    assert result.workload == {"kind": "Rollout", "replicas": None, "current": 3, "ready": 2, "updated": 1,
                               "available": 2, "image": IMAGE}
    assert result.rollout == {"phase": "Paused", "step": 2, "steps": 3, "weight": 20, "message": None,
                              "aborted": False}
    assert result.application == {"name": "iris-staging", "sync": "Synced", "health": "Suspended",
                                   "revision": "a" * 40}
    # the CLI: one line per part, from the project's shipyard.yaml and the kubeconfig in $KUBECONFIG; the model
    # named on the command line (no ci.model, and none registered here: the cluster's is asked about)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "shipyard.yaml").write_text(yaml.safe_dump({"version": 1, "deploy": SPEC}))
    env = cli_env(KUBECONFIG=kubeconfig(tmp_path, api.url), SHIPYARD_HOME=str(project / ".shipyard"))
    (project / ".shipyard").mkdir()
    shown = shipyard("status", "iris", "--env", "staging", env=env, cwd=project).stdout
    assert "rollout: Paused, step 2/3, canary weight 20%" in shown
    assert "Argo CD iris-staging: sync Synced, health Suspended" in shown
    # production: nothing there yet, and a missing Application is said, not an error
    nothing = cluster.status("production", deploy_config(SPEC), "iris", kubeconfig=kubeconfig(tmp_path, api.url))
    assert nothing.workload is None and nothing.application is None and "nothing named iris" in nothing.notes[0]


def test_api_errors_are_one_line_each(api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = kubeconfig(tmp_path, api.url)
    deployment = next(d for d in rendered() if d["kind"] == "Deployment")
    for name, error, said in (
            ("forbidden-iris", BackendUnavailableError,
             "Deployment ml-staging/forbidden-iris: forbidden (403): the kubeconfig's user may not patch "
             "deployments.apps in namespace ml-staging"),
            ("invalid-iris", InvalidInputError,
             "the cluster rejected Deployment ml-staging/invalid-iris: spec.replicas: Invalid value: -1")):
        doc = {**deployment, "metadata": {**deployment["metadata"], "name": name}}
        with pytest.raises(error) as caught:
            cluster.apply([doc], kubeconfig=config)
        assert said in str(caught.value) and "\n" not in str(caught.value)
    closed = kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailableError, match=r"^cannot reach the Kubernetes API at http://127\.0\.0\.1"):
        cluster.apply([deployment], kubeconfig=closed)
    with pytest.raises(InvalidInputError, match="does not apply CronJob"):
        cluster.apply([{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"}}], kubeconfig=config)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if the k8s extra were not installed
    with pytest.raises(MissingExtraError, match=r"shipyard\[k8s\]"):
        cluster.apply([deployment], kubeconfig=config)


def test_a_missing_kubeconfig_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.errors import ConfigError

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # a home with no .kube/config
    with pytest.raises(ConfigError, match=r"^no kubeconfig: ~/\.kube/config does not exist and \$KUBECONFIG is "
                                          r"not set: put your cluster's kubeconfig there"):
        cluster.connect()
    gone = str(tmp_path / "gone.yaml")
    monkeypatch.setenv("KUBECONFIG", gone)
    with pytest.raises(ConfigError, match=rf"^no kubeconfig: {re.escape(gone)} \(\$KUBECONFIG\) does not exist"):
        cluster.connect()
    with pytest.raises(ConfigError, match=r"\(the kubeconfig\) does not exist"):
        cluster.connect(str(tmp_path / "other.yaml"))
