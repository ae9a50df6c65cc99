"""Rendering and validating every manifest of three environments (issue 10: under 1 s).

Renders the kustomize tree of staging (Argo Rollout + HPA), production (Deployment + KEDA) and qa (plain
Deployment) from a DeploySpec, plus the objects each overlay builds to, and validates every built-in object with
kubernetes-validate in this process (the CRD kinds need node and are validated by the tests, not timed here).
Prints the best of a few runs. Run: ``PYTHONPATH=src python bench/deploy_bench.py``.
"""

from __future__ import annotations

import time

import kubernetes_validate
import yaml

from shipyard.core.deploy.analysis import analysis_template
from shipyard.core.deploy.argocd import Source
from shipyard.core.deploy.config import deploy_config
from shipyard.core.deploy.layout import applied_objects, render_tree
from shipyard.core.deploy.manifests import Target, plan

IMAGE = "registry.example.com/team/iris@sha256:" + "ab" * 32
SPEC = deploy_config({
    "secrets": {"DB_PASSWORD": {"secret": "db", "key": "password", "external": True}},
    "environments": {"staging": {"strategy": "rollout", "autoscaling": {"kind": "hpa"}},
                     "production": {"autoscaling": {"kind": "keda"}, "resources": {"cpu": "1", "memory": "2Gi"}},
                     "qa": {"replicas": 1}}})
BUILTIN = ("v1", "apps/v1", "policy/v1", "autoscaling/v2")


def once() -> int:
    count = 0
    for env in ("staging", "production", "qa"):
        p = plan(SPEC, Target("iris", 4, env, IMAGE, "sha256:" + "0" * 64, stable_version=3))
        files = render_tree(p, Source("https://git.example.com/gitops.git", "deploy", "main"), analysis_template)
        docs = [d for path, data in files.items() if not path.endswith("kustomization.yaml")
                and not path.endswith("-patch.yaml") for d in yaml.safe_load_all(data) if d]
        for doc in docs + applied_objects(p, analysis_template):
            if doc["apiVersion"] in BUILTIN:
                kubernetes_validate.validate(doc, "1.32", strict=True)
                count += 1
    return count


def main() -> None:
    start = time.perf_counter()
    once()  # the first run also reads the schemas from the package (once per process)
    cold = time.perf_counter() - start
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        n = once()
        best = min(best, time.perf_counter() - start)
    print(f"render + validate 3 environments ({n} built-in objects validated): {best * 1000:.0f} ms "
          f"best of 5, {cold * 1000:.0f} ms for the first run in a fresh process (target < 1000 ms)")


if __name__ == "__main__":
    main()
