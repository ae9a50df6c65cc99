"""The Argo CD side: an Application per environment, or one ApplicationSet over them (argoproj.io/v1alpha1).

Sync is automated with prune and self-heal and creates the namespace. When an HPA or KEDA owns the
replicas, Argo CD is told to leave ``/spec/replicas`` of the workload alone (``ignoreDifferences`` plus
``RespectIgnoreDifferences=true``): without both, every sync resets what the autoscaler chose (Argo CD
issues #1079 and #7820).
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.core.deploy.manifests import Object, Plan, common_labels

FINALIZER = "resources-finalizer.argocd.argoproj.io"
APPSET_FILE = "applicationset.yaml"


@dataclass(frozen=True)
class Source:
    """Where Argo CD reads the GitOps folder: the repository, the folder in it, the branch."""

    repo_url: str
    folder: str  # the GitOps folder's path inside the repository ("deploy", "apps/iris/deploy")
    branch: str

    def overlay(self, env: str) -> str:
        return f"{self.folder}/overlays/{env}" if self.folder not in ("", ".") else f"overlays/{env}"


def _group(kind: str) -> str:
    return "argoproj.io" if kind == "Rollout" else "apps"


def _sync(autoscaled: bool) -> Object:
    options = ["CreateNamespace=true"]
    if autoscaled:
        options.append("RespectIgnoreDifferences=true")
    return {"automated": {"prune": True, "selfHeal": True}, "syncOptions": options}


def application(p: Plan, source: Source) -> Object:
    """The Application that syncs ``p``'s environment overlay into its namespace."""
    autoscaled = p.autoscaling.kind != "none"
    spec: Object = {
        "project": p.spec.argocd.project,
        "source": {"repoURL": source.repo_url, "path": source.overlay(p.target.env),
                   "targetRevision": source.branch},
        "destination": {"server": p.env.cluster, "namespace": p.namespace},
        "syncPolicy": _sync(autoscaled),
    }
    if autoscaled:
        spec["ignoreDifferences"] = [{"group": _group(p.workload_kind), "kind": p.workload_kind, "name": p.name,
                                      "namespace": p.namespace, "jsonPointers": ["/spec/replicas"]}]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": f"{p.name}-{p.target.env}", "namespace": p.spec.argocd.namespace,
                         "labels": common_labels(p), "finalizers": [FINALIZER]},
            "spec": spec}


def application_set(plans: list[Plan], source: Source) -> Object:
    """One ApplicationSet whose list generator has an element per environment (``plans``, one each)."""
    first = plans[0]
    autoscaled = any(p.autoscaling.kind != "none" for p in plans)
    elements = [{"env": p.target.env, "namespace": p.namespace, "cluster": p.env.cluster,
                 "workloadKind": p.workload_kind, "workloadGroup": _group(p.workload_kind)}
                for p in sorted(plans, key=lambda p: p.target.env)]
    spec: Object = {
        "project": first.spec.argocd.project,
        "source": {"repoURL": source.repo_url, "path": source.overlay("{{env}}"), "targetRevision": source.branch},
        "destination": {"server": "{{cluster}}", "namespace": "{{namespace}}"},
        "syncPolicy": _sync(autoscaled),
    }
    if autoscaled:
        spec["ignoreDifferences"] = [{"group": "{{workloadGroup}}", "kind": "{{workloadKind}}", "name": first.name,
                                      "namespace": "{{namespace}}", "jsonPointers": ["/spec/replicas"]}]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": first.name, "namespace": first.spec.argocd.namespace,
                         "labels": common_labels(first)},
            "spec": {"generators": [{"list": {"elements": elements}}],
                     "template": {"metadata": {"name": f"{first.name}-{{{{env}}}}", "labels": common_labels(first),
                                               "finalizers": [FINALIZER]},
                                  "spec": spec}}}
