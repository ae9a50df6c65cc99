"""Kubernetes objects for one model version in one environment, as plain dicts (pure: no I/O).

``plan(spec, target, options)`` resolves what the environment, the flags and the version's fingerprint say
(strategy, replicas, autoscaler, resources, GPU, canary steps) into one ``Plan``; the functions below turn
a plan into objects. ``layout.render_tree`` arranges them as kustomize files.

The workload: a Deployment holds the pod template (probes, resources, secrets by reference, the image);
with ``strategy: rollout`` an Argo Rollout takes it over through ``workloadRef`` (the Deployment stays at
0 replicas), so kustomize's ``images:`` and patches always edit one Deployment, validated as a built-in kind.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.core.deploy import imageref
from shipyard.core.deploy.analysis import IN_FLIGHT, TEMPLATE_ARGS
from shipyard.core.deploy.config import (
    Autoscaling,
    CanaryStep,
    DeploySpec,
    EnvironmentSpec,
    ModelSource,
    RegistrySource,
    Resources,
    SecretRef,
    vault_parts,
)
from shipyard.core.monitoring.config import MonitoringSpec

Object = dict[str, Any]

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
METRICS_PATH = "/metrics"
CONTAINER = "server"
USER_ID = 10001  # the image's non-root user (core.environments.image.USER_ID)
PLACEHOLDER_REGISTRY = "shipyard"  # the base's image name (``shipyard/NAME``); each overlay pins it by digest
ANNOTATION = "shipyard.dev"
PINNED = imageref.PINNED  # REPO[:TAG]@sha256:<64 hex> by distribution's grammar; pinned_image says what is wrong
DATA_VOLUME = "shipyard-data"  # registry mode: SHIPYARD_HOME and the store's cache, on an emptyDir
DATA_DIR = "/var/lib/shipyard"
MAX_NAME = 40  # leaves room for suffixes (-canary, -metrics, -production) within a 63-character DNS label


def pinned_image(image: str) -> str:
    """``image`` if it is a reference (distribution's grammar: core.deploy.imageref) pinned by digest,
    ``REPO[:TAG]@sha256:<64 hex>``; a ValueError in one line that says what is wrong, or how to get one."""
    ref = imageref.parse(image)
    if ref.digest is None:
        raise ValueError(f"image {image[:120]!r} is not pinned by digest (a tag can move under a running "
                         "deployment): run `shipyard build MODEL@V --push REGISTRY/REPO` or pass "
                         "`--image REPO@sha256:...`")
    return image


def image_repo(image: str) -> str:
    """The repository of a pinned image (a tag beside the digest is dropped: the digest names the content)."""
    pinned_image(image)
    return imageref.parse(image).name


def image_digest(image: str) -> str:
    return pinned_image(image).split("@", 1)[1]


def k8s_name(model: str) -> str:
    """The model's name as a DNS label (Kubernetes object names, label values): lowercase, ``_``/``.`` as
    ``-``; a long name is cut and given a short hash so that two long names never collide."""
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-") or "model"
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME - 9].rstrip("-") + "-" + hashlib.sha256(model.encode()).hexdigest()[:8]
    return name


@dataclass(frozen=True)
class Target:
    """What is deployed where: a registered version, its pinned image, and what the fingerprint says."""

    model: str
    version: int
    env: str
    image: str  # REPO@sha256:...
    record_digest: str  # the version's record digest (ModelVersion.record_digest)
    gpu: bool = False  # the version's environment has a CUDA framework build
    stable_version: int | None = None  # the version now at the environment's alias (None: first deploy)

    def __post_init__(self) -> None:
        pinned_image(self.image)


@dataclass(frozen=True)
class Options:
    """What flags override for one render (``shipyard deploy --replicas ...``); None: from shipyard.yaml."""

    format: Literal["kubernetes", "kserve"] | None = None
    strategy: Literal["deployment", "rollout"] | None = None
    replicas: int | None = None
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    steps: tuple[CanaryStep, ...] | None = None
    model_source: ModelSource | None = None


@dataclass(frozen=True)
class Plan:
    """Everything one environment's objects are made from, resolved."""

    spec: DeploySpec
    target: Target
    env: EnvironmentSpec
    name: str
    namespace: str
    format: Literal["kubernetes", "kserve"]
    strategy: Literal["deployment", "rollout"]
    replicas: int | None  # None: an autoscaler owns them
    autoscaling: Autoscaling
    resources: Resources
    gpus: int
    steps: tuple[CanaryStep, ...]
    labels: dict[str, str] = field(default_factory=dict)
    model_source: ModelSource = "baked"
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)  # the PrometheusRule's thresholds

    @property
    def registry(self) -> RegistrySource | None:
        """Where the server reads the registry (registry mode), None for a baked image."""
        return self.spec.registry if self.model_source == "registry" else None

    @property
    def workload_kind(self) -> str:
        return "Rollout" if self.strategy == "rollout" else "Deployment"

    @property
    def workload_api(self) -> str:
        return "argoproj.io/v1alpha1" if self.strategy == "rollout" else "apps/v1"

    @property
    def analysis_name(self) -> str:
        return f"{self.name}-analysis"

    @property
    def stable_version(self) -> int:
        return self.target.stable_version if self.target.stable_version is not None else self.target.version

    def annotations(self) -> dict[str, str]:
        t = self.target
        return {f"{ANNOTATION}/environment": t.env, f"{ANNOTATION}/model": t.model,
                f"{ANNOTATION}/record-digest": t.record_digest, f"{ANNOTATION}/version": str(t.version)}


def plan(spec: DeploySpec, target: Target, options: Options | None = None,
         monitoring: MonitoringSpec | None = None) -> Plan:
    """Resolve flags over the environment over the defaults; a ValueError for an unknown environment.
    ``monitoring``: shipyard.yaml's monitoring: section (the alert rules' thresholds), defaults without."""
    opts = options or Options()
    env = spec.environment(target.env)
    auto = env.autoscaling or spec.autoscaling
    res = _merge_resources(spec.resources, env.resources, opts)
    gpus = opts.gpu if opts.gpu is not None else res.gpu if res.gpu is not None else (1 if target.gpu else 0)
    replicas = opts.replicas if opts.replicas is not None else env.replicas if env.replicas is not None \
        else spec.replicas
    name = k8s_name(target.model)
    source = opts.model_source or spec.model_source_of(target.env)
    if source == "registry":
        if spec.registry is None:
            raise ValueError("--model-source registry needs deploy.registry in shipyard.yaml: at least `database: "
                             "{secret: NAME, key: KEY}` (the Secret holding the database URL)")
        if spec.registry.store is None:
            raise ValueError("the server reads the store from S3, and the project's store is not in S3: set "
                             "deploy.registry.store (s3://bucket/prefix) or store: in shipyard.yaml")
    return Plan(spec=spec, target=target, env=env, name=name, namespace=env.namespace or target.env,
                format=opts.format or spec.format, strategy=opts.strategy or env.strategy or spec.strategy,
                replicas=None if auto.kind != "none" else replicas, autoscaling=auto, resources=res, gpus=gpus,
                steps=opts.steps if opts.steps is not None else spec.canary,
                labels={"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}, model_source=source,
                monitoring=monitoring or MonitoringSpec())


def _merge_resources(base: Resources, env: Resources | None, opts: Options) -> Resources:
    merged = base.model_dump()
    if env is not None:
        merged.update({k: v for k, v in env.model_dump().items() if v is not None})
    merged.update({k: v for k, v in (("cpu", opts.cpu), ("memory", opts.memory)) if v is not None})
    return Resources.model_validate(merged, strict=False)


def common_labels(p: Plan) -> dict[str, str]:
    return {**p.labels, "app.kubernetes.io/component": "model-server", "app.kubernetes.io/managed-by": "shipyard",
            "app.kubernetes.io/part-of": "shipyard"}


def meta(p: Plan, name: str, labels: dict[str, str] | None = None) -> Object:
    return {"name": name, "labels": {**common_labels(p), **(labels or {})}}


# -- the workload ------------------------------------------------------------------------------------------

def _probe(path: str, port: int, period: int, failures: int) -> Object:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": failures}


def container(p: Plan) -> Object:
    """The model server's container, as generic as the base needs it (image placeholder, no resources)."""
    port = p.spec.port
    env: list[Object] = [{"name": "PORT", "value": str(port)}]
    env += [secret_env(p, var, ref) for var, ref in sorted(p.spec.secrets.items())]
    return {
        "name": CONTAINER,
        "image": f"{PLACEHOLDER_REGISTRY}/{p.name}",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": _probe(READY_PATH, port, 5, 3),
        "livenessProbe": _probe(LIVE_PATH, port, 10, 6),
        "startupProbe": _probe(LIVE_PATH, port, 5, 60),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True, "runAsUser": USER_ID},
    }


VAULT_SECRETS_DIR = "/vault/secrets"  # where Vault Agent's injector renders files in the pod
VAULT_ANNOTATION = "vault.hashicorp.com"
# with vault-agent, the S3 keys reach Shipyard as references to the agent's files (obstore reads AWS_* as values)
AGENT_VARIABLES = {"AWS_ACCESS_KEY_ID": "SHIPYARD_STORE_ACCESS_KEY_ID",
                   "AWS_SECRET_ACCESS_KEY": "SHIPYARD_STORE_SECRET_ACCESS_KEY"}


def agent_file(var: str) -> str:
    """The file Vault Agent renders a variable's secret into: ``SHIPYARD_DB_URL`` -> ``shipyard-db-url``."""
    return var.lower().replace("_", "-")


def secret_env(p: Plan, var: str, ref: SecretRef) -> Object:
    """The container's variable ``var``: from its Secret (kubernetes, external-secrets), or with vault-agent a
    ``file:`` reference to the file the agent renders (Shipyard resolves it at use; no value in the manifest)."""
    if p.spec.secrets_provider == "vault-agent":
        return {"name": AGENT_VARIABLES.get(var, var), "value": f"file:{VAULT_SECRETS_DIR}/{agent_file(var)}"}
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}


def vault_agent_annotations(p: Plan, registry: bool = False) -> dict[str, str]:
    """The Vault Agent injector's pod annotations (vault-agent only; else none): inject, the role, and per
    secret the KV v2 path and a template rendering its one key. ``registry``: deploy.registry's secrets."""
    if p.spec.secrets_provider != "vault-agent":
        return {}
    refs = (p.registry.secret_refs() if p.registry else []) if registry else sorted(p.spec.secrets.items())
    if not refs:
        return {}
    out = {f"{VAULT_ANNOTATION}/agent-inject": "true", f"{VAULT_ANNOTATION}/role": str(p.spec.vault_role)}
    for var, ref in refs:
        if ref.vault is None:  # DeploySpec refuses this; kept for a spec built by hand
            raise ValueError(f"secrets_provider vault-agent: {var} has no `vault:` reference")
        mount, path, key = vault_parts(ref.vault)
        name = agent_file(var)
        out[f"{VAULT_ANNOTATION}/agent-inject-secret-{name}"] = f"{mount}/data/{path}"
        out[f"{VAULT_ANNOTATION}/agent-inject-template-{name}"] = (
            f'{{{{- with secret "{mount}/data/{path}" -}}}}{{{{ index .Data.data "{key}" }}}}{{{{- end -}}}}')
    return out


def _secret_env(p: Plan, var: str, ref: SecretRef) -> Object:
    return secret_env(p, var, ref)


def registry_container(p: Plan) -> Object:
    """Registry mode: what the server's container adds (empty for a baked image). It runs ``shipyard serve
    MODEL@VERSION`` (the number, never an alias: git says what runs) against the team's registry: the database
    URL and the S3 keys from Secrets, the store, and Shipyard's home and cache on an emptyDir."""
    reg = p.registry
    if reg is None:
        return {}
    refs = dict(reg.secret_refs())
    env: list[Object] = [_secret_env(p, "SHIPYARD_DB_URL", refs["SHIPYARD_DB_URL"]),
                         {"name": "SHIPYARD_STORE", "value": str(reg.store)},
                         {"name": "SHIPYARD_HOME", "value": DATA_DIR},
                         {"name": "SHIPYARD_STORE_CACHE", "value": f"{DATA_DIR}/cache"},
                         # the cache stays within the emptyDir, with room for the inference logs: the kubelet
                         # evicts a pod whose emptyDir outgrows its sizeLimit
                         {"name": "SHIPYARD_STORE_CACHE_MAX", "value": str(quantity_bytes(reg.cache_size) * 4 // 5)}]
    if reg.endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": reg.endpoint_url})
    if reg.region:
        env.append({"name": "AWS_REGION", "value": reg.region})
    env += [_secret_env(p, var, refs[var]) for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if var in refs]
    if reg.trusted_actors:
        env.append({"name": "SHIPYARD_TRUSTED_ACTORS", "value": ",".join(reg.trusted_actors)})
    ref = f"{p.target.model}@{p.target.version}"
    return {"command": ["python3", "-m", "shipyard"],
            "args": ["serve", ref, "--host", "0.0.0.0", "--port", str(p.spec.port), "--poll", "0"],
            "env": env, "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_DIR}]}


_QUANTITY_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
                   "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes quantity of bytes (``25Gi``, ``500M``, ``1000``) as a number of bytes (``m``: thousandths)."""
    number = quantity.rstrip("kMGTi m")
    unit = quantity[len(number):]
    if unit == "m":
        return int(float(number) / 1000)
    return int(float(number) * _QUANTITY_UNITS[unit])


def registry_volumes(p: Plan) -> list[Object]:
    reg = p.registry
    if reg is None:
        return []
    return [{"name": DATA_VOLUME, "emptyDir": {"sizeLimit": reg.cache_size}}]


def deployment(p: Plan) -> Object:
    """The base Deployment: the pod template every environment patches (no replicas: the overlay's)."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(p, p.name),
        "spec": {
            "selector": {"matchLabels": dict(p.labels)},
            "template": {
                "metadata": {"labels": common_labels(p),
                             "annotations": {"prometheus.io/path": METRICS_PATH,
                                             "prometheus.io/port": str(p.spec.port), **vault_agent_annotations(p)}},
                "spec": {"containers": [container(p)],
                         "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                         "terminationGracePeriodSeconds": 30},
            },
        },
    }


def resources(p: Plan) -> Object:
    r = p.resources
    requests: dict[str, str] = {}
    limits: dict[str, Any] = {}
    if r.cpu:
        requests["cpu"] = r.cpu
    if r.memory:
        requests["memory"] = limits["memory"] = r.memory
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    if p.gpus:
        limits["nvidia.com/gpu"] = str(p.gpus)
    out: Object = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def scheduling(p: Plan) -> Object:
    """nodeSelector and tolerations of a GPU model (empty for a CPU one)."""
    if not p.gpus:
        return {}
    return {"nodeSelector": dict(sorted(p.spec.node_selector.items())),
            "tolerations": [dict(t) for t in p.spec.tolerations]}


def deployment_patch(p: Plan) -> Object:
    """The overlay's strategic-merge patch of the base Deployment: replicas, version label, resources, GPU."""
    spec: Object = {}
    if p.strategy == "rollout":
        spec["replicas"] = 0  # the Rollout runs the pods from this template (workloadRef)
    elif p.replicas is not None:
        spec["replicas"] = p.replicas
    box: Object = {"name": CONTAINER, **registry_container(p)}
    res = resources(p)
    if res:
        box["resources"] = res
    pod: Object = {"containers": [box], **scheduling(p)}
    volumes = registry_volumes(p)
    if volumes:
        pod["volumes"] = volumes
    template: Object = {"labels": {"app.kubernetes.io/version": str(p.target.version)}}
    agent = vault_agent_annotations(p, registry=True)
    if agent:
        template["annotations"] = agent
    spec["template"] = {"metadata": template, "spec": pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": p.name}, "spec": spec}


def step(p: Plan, s: CanaryStep) -> Object:
    if s.weight is not None:
        return {"setWeight": s.weight}
    if s.pause is not None:
        return {"pause": {"duration": s.pause}}
    return {"analysis": {"templates": [{"templateName": p.analysis_name}],
                         "args": [{"name": TEMPLATE_ARGS[0], "value": str(p.target.version)},
                                  {"name": TEMPLATE_ARGS[1], "value": str(p.stable_version)}]}}


def rollout(p: Plan) -> Object:
    """The Argo Rollout that runs the Deployment's pod template as a canary (``workloadRef``)."""
    spec: Object = {}
    if p.replicas is not None:
        spec["replicas"] = p.replicas
    spec["revisionHistoryLimit"] = 3
    spec["selector"] = {"matchLabels": dict(p.labels)}
    spec["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": p.name}
    spec["strategy"] = {"canary": {"canaryService": f"{p.name}-canary", "stableService": p.name,
                                   "steps": [step(p, s) for s in p.steps]}}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": meta(p, p.name), "spec": spec}


# -- services, disruption budget, metrics ----------------------------------------------------------------

def service(p: Plan, role: Literal["stable", "canary", "metrics"]) -> Object:
    """``NAME`` (stable), ``NAME-canary`` (Argo Rollouts points it at the new pods), ``NAME-metrics``
    (headless, every pod once: what the ServiceMonitor scrapes)."""
    name = p.name if role == "stable" else f"{p.name}-{role}"
    spec: Object = {"selector": dict(p.labels),
                    "ports": [{"name": "http", "port": 80 if role != "metrics" else p.spec.port,
                               "targetPort": "http", "protocol": "TCP"}]}
    spec = {"clusterIP": "None", **spec} if role == "metrics" else {"type": "ClusterIP", **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(p, name, {f"{ANNOTATION}/service": role}),
            "spec": spec}


def pod_disruption_budget(p: Plan) -> Object:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(p, p.name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(p.labels)}}}


def service_monitor(p: Plan) -> Object:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": meta(p, p.name),
            "spec": {"selector": {"matchLabels": {**p.labels, f"{ANNOTATION}/service": "metrics"}},
                     "endpoints": [{"port": "http", "path": METRICS_PATH, "interval": "15s"}]}}


# -- autoscaling -------------------------------------------------------------------------------------------

def quantity(value: float) -> str:
    """A Kubernetes quantity for ``value``: ``4`` or ``4500m``."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def scale_target(p: Plan) -> Object:
    return {"apiVersion": p.workload_api, "kind": p.workload_kind, "name": p.name}


def autoscaler(p: Plan) -> Object | None:
    a = p.autoscaling
    if a.kind == "hpa":
        return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(p, p.name),
                "spec": {"scaleTargetRef": scale_target(p), "minReplicas": max(a.min_replicas, 1),
                         "maxReplicas": a.max_replicas,
                         "metrics": [{"type": "Pods", "pods": {
                             "metric": {"name": IN_FLIGHT},
                             "target": {"type": "AverageValue", "averageValue": quantity(a.target_in_flight)}}}]}}
    if a.kind == "keda":
        query = f'sum({IN_FLIGHT}{{namespace="{p.namespace}",service="{p.name}-metrics"}})'
        return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta(p, p.name),
                "spec": {"scaleTargetRef": scale_target(p), "minReplicaCount": a.min_replicas,
                         "maxReplicaCount": a.max_replicas,
                         "triggers": [{"type": "prometheus", "metadata": {
                             "serverAddress": p.spec.analysis.prometheus, "query": query,
                             "threshold": f"{a.target_in_flight:g}"}}]}}
    return None


# -- credentials -------------------------------------------------------------------------------------------

def _external(p: Plan, ref: SecretRef) -> bool:
    return p.spec.secrets_provider == "external-secrets" or (ref.external and p.spec.secrets_provider == "kubernetes")


def _remote_ref(ref: SecretRef) -> Object:
    """Where the ExternalSecret reads the value: a ``vault:`` reference's MOUNT/PATH and KEY (the store's Vault
    provider, KV v2, with the mount as its path), else ``remote_key`` (default SECRET/KEY)."""
    if ref.vault is not None:
        mount, path, key = vault_parts(ref.vault)
        return {"key": f"{mount}/{path}", "property": key}
    return {"key": ref.remote_key or f"{ref.secret}/{ref.key}"}


def external_secrets(p: Plan, registry: bool = False) -> list[Object]:
    """One ExternalSecret (external-secrets.io) per Secret that ``external: true`` entries fill; values
    stay in the secret store, only their paths are written. ``registry``: those of deploy.registry's references
    instead (in the overlay of a registry-mode environment), less the Secrets deploy.secrets already fills."""
    by_secret: dict[str, list[Object]] = {}
    store: dict[str, str] = {}
    refs = sorted(p.spec.secrets.items())
    if registry:
        filled = {ref.secret for _, ref in refs if _external(p, ref)}
        refs = [(v, r) for v, r in p.registry.secret_refs() if r.secret not in filled] if p.registry else []
    for _var, ref in refs:
        if not _external(p, ref):
            continue
        entry = {"secretKey": ref.key, "remoteRef": _remote_ref(ref)}
        if entry not in by_secret.setdefault(ref.secret, []):
            by_secret[ref.secret].append(entry)
        store.setdefault(ref.secret, ref.store)
    return [{"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret", "metadata": meta(p, secret),
             "spec": {"refreshInterval": "1h",
                      "secretStoreRef": {"kind": "ClusterSecretStore", "name": store[secret]},
                      "target": {"name": secret, "creationPolicy": "Owner"},
                      "data": sorted(entries, key=lambda e: (e["secretKey"], e["remoteRef"]["key"]))}}
            for secret, entries in sorted(by_secret.items())]
