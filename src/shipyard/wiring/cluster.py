"""A cluster for ``shipyard deploy --apply`` and ``shipyard status --env``: the kubeconfig's context, through
adapters/deploy/kubernetes.py (the ``k8s`` extra, imported only here, on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.adapters.deploy.kubernetes import Applied, Cluster
    from shipyard.core.deploy.config import DeploySpec


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    from shipyard.adapters.deploy.kubernetes import Cluster

    return Cluster.connect(kubeconfig, context)


def apply(docs: list[dict[str, Any]], *, kubeconfig: str | None = None, context: str | None = None,
          dry_run: bool = False, force_conflicts: bool = False) -> list[Applied]:
    """Server-side apply ``docs`` (namespaces first), as field manager ``shipyard``; ``dry_run``: the server
    checks and defaults everything and keeps nothing (``dryRun=All``)."""
    cluster = connect(kubeconfig, context)
    try:
        return cluster.apply(docs, dry_run=dry_run, force_conflicts=force_conflicts)
    finally:
        cluster.close()


@dataclass
class EnvStatus:
    """What runs in one environment: the workload's replicas, a Rollout's progress, Argo CD's view."""

    env: str
    namespace: str
    name: str
    server: str
    workload: dict[str, Any] | None = None  # kind, replicas, ready, updated, available, image
    rollout: dict[str, Any] | None = None  # phase, step, steps, weight, message
    application: dict[str, Any] | None = None  # name, sync, health, revision
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "namespace": self.namespace, "name": self.name, "server": self.server,
                "workload": self.workload, "rollout": self.rollout, "application": self.application,
                "notes": self.notes}


def status(env: str, spec: DeploySpec, model: str, *, kubeconfig: str | None = None,
           context: str | None = None) -> EnvStatus:
    """The environment ``env`` of ``spec`` for ``model``, read from the cluster (nothing is changed)."""
    from shipyard.core.deploy.manifests import k8s_name
    from shipyard.errors import InvalidInputError

    try:
        environment = spec.environment(env)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    name, namespace = k8s_name(model), environment.namespace or env
    strategy = environment.strategy or spec.strategy
    cluster = connect(kubeconfig, context)
    try:
        result = EnvStatus(env, namespace, name, cluster.server)
        if spec.format == "kserve":
            isvc = cluster.read("serving.kserve.io/v1beta1", "InferenceService", name, namespace)
            result.workload = None if isvc is None else inference_service(isvc)
        else:
            deployment = cluster.read("apps/v1", "Deployment", name, namespace)
            rollout = cluster.read("argoproj.io/v1alpha1", "Rollout", name, namespace) \
                if strategy == "rollout" else None
            result.workload = workload(rollout if rollout is not None else deployment)
            result.rollout = None if rollout is None else rollout_progress(rollout)
        app = cluster.read("argoproj.io/v1alpha1", "Application", f"{name}-{env}", spec.argocd.namespace)
        result.application = None if app is None else application(app)
        if result.workload is None:
            result.notes.append(f"nothing named {name} in namespace {namespace}: `shipyard deploy` renders it, "
                                "Argo CD (or --apply) puts it there")
        return result
    finally:
        cluster.close()


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def workload(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    containers = _get(obj, "spec", "template", "spec", "containers") or []
    return {"kind": obj.get("kind"), "replicas": _get(obj, "spec", "replicas"),
            "current": _get(obj, "status", "replicas") or 0, "ready": _get(obj, "status", "readyReplicas") or 0,
            "updated": _get(obj, "status", "updatedReplicas") or 0,
            "available": _get(obj, "status", "availableReplicas") or 0,
            "image": containers[0].get("image") if containers and isinstance(containers[0], dict) else None}


def rollout_progress(obj: dict[str, Any]) -> dict[str, Any]:
    """A Rollout's phase, its step (of how many), and the canary's weight: as reported, or the last
    setWeight before the current step (a canary without traffic routing reports none)."""
    steps = _get(obj, "spec", "strategy", "canary", "steps") or []
    index = _get(obj, "status", "currentStepIndex")
    weight = _get(obj, "status", "canary", "weights", "canary", "weight")
    if weight is None and isinstance(index, int):
        set_weights = [s["setWeight"] for s in steps[:index] if isinstance(s, dict) and "setWeight" in s]
        weight = set_weights[-1] if set_weights else (100 if index >= len(steps) else 0)
    return {"phase": _get(obj, "status", "phase"), "step": index, "steps": len(steps), "weight": weight,
            "message": _get(obj, "status", "message"), "aborted": bool(_get(obj, "status", "abort"))}


def application(obj: dict[str, Any]) -> dict[str, Any]:
    return {"name": _get(obj, "metadata", "name"), "sync": _get(obj, "status", "sync", "status"),
            "health": _get(obj, "status", "health", "status"),
            "revision": _get(obj, "status", "sync", "revision")}


def inference_service(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = _get(obj, "status", "conditions") or []
    ready = next((c.get("status") for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    return {"kind": "InferenceService", "ready": ready, "url": _get(obj, "status", "url"),
            "canary_percent": _get(obj, "spec", "predictor", "canaryTrafficPercent")}
