"""Validators for rendered Kubernetes manifests, shared by every test that renders some (import the fixture:
``from tests.k8s_validators import k8s_validator  # noqa: F401``).

- built-in kinds: ``kubernetes-validate`` (the Kubernetes OpenAPI schemas, strict: an unknown field fails);
- Argo Rollouts, Argo CD, KEDA, prometheus-operator and external-secrets objects: the CRD schemas of npm's
  ``@kubernetes-models/*`` packages, installed once into ~/.cache/shipyard-tests (never copied into the
  repository) and run in one node process per call (``new Rollout(obj).validate()`` throws with the path of
  the first error);
- the KServe InferenceService: the typed models of the ``kserve`` SDK, in a venv of its own in the same cache
  (the SDK's dependencies, fastapi, grpc, pandas ..., stay out of the test venv: ``--no-deps``);
- ``kubectl kustomize`` builds an overlay into the objects Argo CD would apply.

A validator that cannot be installed here (no node, no npm registry, no uv) skips the tests that need it,
with a reason that says so; installs are shared by all tests of a session and by later sessions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CACHE = Path(os.environ.get("SHIPYARD_TEST_CACHE", Path.home() / ".cache" / "shipyard-tests"))
KUBERNETES_VERSION = "1.32"  # the kubectl client on this kind of machine
NPM_PACKAGES = {  # pinned: a new release changes what "valid" means, so it should be a deliberate change
    "@kubernetes-models/argo-rollouts": "2.0.0",
    "@kubernetes-models/argo-cd": "4.0.0",
    "@kubernetes-models/keda": "2.0.0",
    "@kubernetes-models/prometheus-operator": "6.0.0",
    "@kubernetes-models/external-secrets": "2.0.0",
}
KSERVE_PACKAGES = ("kserve==0.21.0",)
KSERVE_MODEL_DEPS = ("kubernetes>=29", "six", "urllib3")  # what kserve.models imports
CRD_MODELS = {
    "argoproj.io/v1alpha1/Rollout": "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout",
    "argoproj.io/v1alpha1/AnalysisTemplate": "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate",
    "argoproj.io/v1alpha1/Application": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application",
    "argoproj.io/v1alpha1/ApplicationSet": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/ApplicationSet",
    "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
    "monitoring.coreos.com/v1/ServiceMonitor":
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule":
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
    "external-secrets.io/v1beta1/ExternalSecret":
        "@kubernetes-models/external-secrets/external-secrets.io/v1beta1/ExternalSecret",
}
CRD_GROUPS = ("argoproj.io", "keda.sh", "monitoring.coreos.com", "external-secrets.io")
KSERVE_GROUP = "serving.kserve.io"
INSTALL_TIMEOUT = 300

VALIDATE_MJS = """
import { readFileSync } from "node:fs";
const MODELS = JSON.parse(process.argv[3]);
const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
for (const doc of docs) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  if (!MODELS[key]) { out.push(`no CRD schema for ${key}`); continue; }
  const mod = await import(MODELS[key]);
  try { new mod[doc.kind](doc).validate(); out.push(null); } catch (e) { out.push(String(e.message || e)); }
}
process.stdout.write(JSON.stringify(out));
"""


def group(doc: dict[str, Any]) -> str:
    api = str(doc.get("apiVersion", ""))
    return api.split("/", 1)[0] if "/" in api else ""


def label(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def install_crd_models() -> tuple[Path | None, str]:
    """The cached npm folder with the CRD models (installed on first use), or None and why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node and npm are not installed here: the CRD schema validators cannot run"
    folder = CACHE / f"k8s-models-{_key(NPM_PACKAGES, VALIDATE_MJS)}"
    with _locked("k8s-models"):
        if (folder / ".complete").exists():
            return folder, ""
        tmp = Path(tempfile.mkdtemp(prefix="k8s-models-", dir=CACHE))
        (tmp / "package.json").write_text('{"private": true, "type": "module"}\n')
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                               *(f"{n}@{v}" for n, v in NPM_PACKAGES.items())],
                              cwd=tmp, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            return None, ("npm could not install the CRD schema packages (offline?): "
                          + (done.stderr.strip().splitlines() or ["no output"])[-1][:200])
        (tmp / "validate.mjs").write_text(VALIDATE_MJS)
        (tmp / ".complete").write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return folder, ""


def install_kserve() -> tuple[Path | None, str]:
    """The python of a cached venv holding the kserve SDK's models, or None and why not."""
    try:  # Shipyard depends on uv (the verify environments): its binary is in the package, on PATH or not
        from uv import find_uv_bin

        uv: str | None = find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not installed here: the kserve SDK cannot be installed"
    folder = CACHE / f"kserve-{_key(KSERVE_PACKAGES, KSERVE_MODEL_DEPS, sys.version_info[:2])}"
    python = folder / "bin" / "python"
    with _locked("kserve"):
        if (folder / ".complete").exists():
            return python, ""
        shutil.rmtree(folder, ignore_errors=True)
        env = {**os.environ, "VIRTUAL_ENV": str(folder)}
        for cmd in ([uv, "venv", "-q", "--python", sys.executable, str(folder)],
                    [uv, "pip", "install", "-q", *KSERVE_MODEL_DEPS],
                    [uv, "pip", "install", "-q", "--no-deps", *KSERVE_PACKAGES]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
            if done.returncode != 0:
                shutil.rmtree(folder, ignore_errors=True)
                return None, ("the kserve SDK could not be installed from PyPI (offline?): "
                              + (done.stderr.strip().splitlines() or ["no output"])[-1][:200])
        (folder / ".complete").write_text("")
        return python, ""


class K8sValidator:
    """Validates objects by kind; each CRD/KServe check runs one subprocess for all the objects given."""

    def __init__(self) -> None:
        self._installed: dict[str, tuple[Path | None, str]] = {}

    def _install(self, name: str, install: Callable[[], tuple[Path | None, str]]) -> Path:
        """``install()``'s path, installed once per session; the tests that need it skip, saying why, without it."""
        if name not in self._installed:
            self._installed[name] = install()
        path, why = self._installed[name]
        if path is None:
            pytest.skip(why)
        return path

    def crd_folder(self) -> Path:
        return self._install("crd", install_crd_models)

    def kserve_python(self) -> Path:
        return self._install("kserve", install_kserve)

    def builtin(self, doc: dict[str, Any]) -> str | None:
        import kubernetes_validate

        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            return f"{where}: {exc.message}"[:400]
        except kubernetes_validate.SchemaNotFoundError as exc:
            return f"no Kubernetes schema: {exc}"
        return None

    def _run(self, cmd: list[str], docs: list[dict[str, Any]], cwd: Path | None = None) -> list[str | None]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(docs, f)
        try:
            done = subprocess.run([*cmd[:1], *cmd[1:2], f.name, *cmd[2:]], capture_output=True, text=True,
                                  cwd=cwd, timeout=120, check=False)
        finally:
            os.unlink(f.name)
        assert done.returncode == 0, f"validator failed: {done.stderr[-2000:]}"
        result: list[str | None] = json.loads(done.stdout)
        return result

    def crds(self, docs: list[dict[str, Any]]) -> list[str | None]:
        folder = self.crd_folder()
        return self._run(["node", str(folder / "validate.mjs"), json.dumps(CRD_MODELS)], docs, cwd=folder)

    def kserve(self, docs: list[dict[str, Any]]) -> list[str | None]:
        script = Path(__file__).with_name("kserve_check.py")
        return self._run([str(self.kserve_python()), str(script)], docs)

    def errors(self, docs: list[dict[str, Any]]) -> list[str]:
        """``KIND/NAME: error`` for every object that fails its validator (empty: all valid)."""
        out: list[str] = []
        crd = [d for d in docs if group(d) in CRD_GROUPS]
        ks = [d for d in docs if group(d) == KSERVE_GROUP]
        for d in docs:
            if group(d) not in (*CRD_GROUPS, KSERVE_GROUP):
                err = self.builtin(d)
                if err:
                    out.append(f"{label(d)}: {err}")
        for subset, check in ((crd, self.crds), (ks, self.kserve)):
            if subset:
                out.extend(f"{label(d)}: {err}" for d, err in zip(subset, check(subset), strict=True) if err)
        return out

    def validate(self, docs: list[dict[str, Any]]) -> None:
        errors = self.errors(docs)
        assert not errors, "invalid manifests:\n" + "\n".join(errors)

    @staticmethod
    def kustomize(overlay: Path) -> list[dict[str, Any]]:
        """``kubectl kustomize OVERLAY`` as objects (skips without kubectl)."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubectl is not installed here: overlays cannot be built")
        done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, f"kubectl kustomize {overlay} failed: {done.stderr.strip()[-1500:]}"
        return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="session")
def k8s_validator() -> K8sValidator:
    return K8sValidator()
