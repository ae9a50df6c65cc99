"""What ``shipyard.yaml`` may say about delivery (the ``deploy:`` and ``ci:`` sections), validated by pydantic.

The section is validated when the project's configuration is loaded (so a typo is reported with its line,
as for stages) and kept there as the validated plain dict; ``deploy_config`` turns it back into these models
for the commands that deliver, so read-only commands never build this validator.

Names follow the rest of shipyard.yaml (snake_case); the canary steps read as Argo Rollouts writes them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?\Z")  # a DNS label: it names namespaces and objects
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")  # a namespace
DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>ms|s|m|h)\Z")
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?\Z")
DEFAULT_FOLDER = "deploy"


def seconds(duration: str) -> float:
    """``"30s"`` -> 30.0; durations are written as Argo Rollouts writes them (ms, s, m, h)."""
    m = DURATION.match(duration)
    if not m:
        raise ValueError(f"{duration!r} is not a duration: write e.g. 500ms, 30s, 5m or 1h")
    return int(m["n"]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m["unit"]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CanaryStep(_Strict):
    """One canary step: exactly one of ``weight`` (percent of traffic to the new version), ``pause``
    (a duration) or ``analysis: true`` (judge the new version before going on)."""

    weight: int | None = Field(None, ge=0, le=100)
    pause: str | None = None
    analysis: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> CanaryStep:
        given = [k for k in ("weight", "pause", "analysis") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a canary step is one of `weight: N`, `pause: 30s` or `analysis: true`")
        if self.pause is not None:
            seconds(self.pause)
        if self.analysis is False:
            raise ValueError("`analysis: false` is not a step: leave the step out")
        return self


DEFAULT_STEPS = (CanaryStep(weight=20), CanaryStep(analysis=True), CanaryStep(weight=50), CanaryStep(analysis=True))


class AnalysisSpec(_Strict):
    """The rules that judge a new version against the stable one, each on one analysis interval."""

    interval: str = "30s"
    count: int = Field(3, ge=1, le=100, description="measurements per analysis step")
    min_requests: int = Field(20, ge=1, description="fewer requests to the new version in an interval: inconclusive")
    max_error_rate: float = Field(0.02, ge=0, le=1)
    max_latency_ratio: float = Field(1.5, gt=0, description="new p99 over stable p99")
    latency_slack_ms: float = Field(5.0, ge=0, description="p99 differences below this never fail")
    max_disagreement: float = Field(0.05, ge=0, le=1, description="share of compared predictions that differ")
    max_psi: float = Field(0.2, ge=0, description="prediction-distribution drift (PSI) against stable")
    failure_limit: int = Field(1, ge=0, description="failed measurements tolerated before the step fails")
    inconclusive_limit: int = Field(3, ge=0, description="inconclusive measurements before the step pauses")
    cluster_disagreement: bool = Field(
        False, description="render the disagreement rule into the AnalysisTemplate too; it gets data only where "
                           "a pod serves both versions (canary pods run one version, so the rule stays inconclusive "
                           "and pauses the Rollout); `shipyard rollout` always applies it")
    prometheus: str = Field("http://prometheus-operated.monitoring.svc:9090",
                            description="Prometheus that Argo Rollouts and KEDA query")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        seconds(v)
        return v


class Resources(_Strict):
    cpu: str | None = Field(None, description="CPU request, e.g. 500m")
    memory: str | None = Field(None, description="memory request and limit, e.g. 1Gi")
    cpu_limit: str | None = None
    gpu: int | None = Field(None, ge=0, description="nvidia.com/gpu; default: 1 for a GPU model (fingerprint), else 0")

    @field_validator("cpu", "memory", "cpu_limit")
    @classmethod
    def _quantity(cls, v: str | None) -> str | None:
        if v is not None and not QUANTITY.match(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
        return v


class Autoscaling(_Strict):
    kind: Literal["none", "hpa", "keda"] = "none"
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(5, ge=1)
    target_in_flight: float = Field(4.0, gt=0, description="in-flight requests per pod the autoscaler aims at")

    @model_validator(mode="after")
    def _range(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self


class SecretRef(_Strict):
    """An environment variable of the server, read from a Kubernetes Secret (or an ExternalSecret that
    makes one): ``secret`` names it, ``key`` the entry. The value never appears in git."""

    secret: str
    key: str
    external: bool = Field(False, description="render an ExternalSecret (external-secrets.io) that fills the Secret")
    remote_key: str | None = Field(None, description="for external: the path in the secret store")
    store: str = Field("default", description="for external: the ClusterSecretStore that holds it")


class EnvironmentSpec(_Strict):
    """One environment (staging, production, ...): what differs from the defaults above it."""

    namespace: str | None = None
    alias: str | None = Field(None, description="the registry alias that follows this environment (default: its name)")
    replicas: int | None = Field(None, ge=0)
    strategy: Literal["deployment", "rollout"] | None = None
    autoscaling: Autoscaling | None = None
    resources: Resources | None = None
    cluster: str = Field("https://kubernetes.default.svc", description="Argo CD destination server")
    approval: bool = Field(False, description="CI asks a reviewer before promoting here (GitHub environment)")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.match(v):
            raise ValueError(f"invalid namespace {v[:70]!r}: lowercase letters, digits and '-', at most 63")
        return v


class ArgoCDSpec(_Strict):
    namespace: str = "argocd"
    project: str = "default"
    application_set: bool = Field(False, description="one ApplicationSet over the environments instead of one "
                                                       "Application each")


class DeploySpec(_Strict):
    folder: str = Field(DEFAULT_FOLDER, description="the GitOps folder in the project, or inside `repo`")
    repo: str | None = Field(None, description="a separate GitOps repository (git URL); default: this project's")
    branch: str = "main"
    format: Literal["kubernetes", "kserve"] = "kubernetes"
    strategy: Literal["deployment", "rollout"] = "deployment"
    port: int = Field(8080, ge=1, le=65535)
    replicas: int = Field(2, ge=0)
    autoscaling: Autoscaling = Autoscaling()
    resources: Resources = Resources()
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"},
                                          description="for a GPU model")
    tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="server environment variable -> Secret")
    canary: tuple[CanaryStep, ...] = DEFAULT_STEPS
    analysis: AnalysisSpec = AnalysisSpec()
    argocd: ArgoCDSpec = ArgoCDSpec()
    environments: dict[str, EnvironmentSpec] = Field(
        default_factory=lambda: {"staging": EnvironmentSpec(), "production": EnvironmentSpec(approval=True)})

    @field_validator("canary", "tolerations", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return tuple(v) if isinstance(v, list) else v

    @field_validator("environments")
    @classmethod
    def _env_names(cls, v: dict[str, EnvironmentSpec]) -> dict[str, EnvironmentSpec]:
        for name in v:
            if not ENV_NAME.match(name):
                raise ValueError(f"invalid environment name {name!r}: lowercase letters, digits and '-' "
                                 "(it names Kubernetes objects)")
        return v

    def environment(self, name: str) -> EnvironmentSpec:
        """The environment ``name``; a ValueError naming the ones there are."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ValueError(f"no environment {name!r} in shipyard.yaml's deploy.environments (there are: "
                             f"{known})") from None


class CISpec(_Strict):
    python: str = "3.11"
    matrix: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="package -> versions `shipyard verify --with` is run against in CI")
    model: str | None = Field(None, description="the model CI verifies, builds and promotes (default: the only one)")
    registry: str | None = Field(None, description="image repository CI pushes to (default: ghcr.io/OWNER/REPO "
                                                   "on GitHub, $CI_REGISTRY_IMAGE on GitLab)")

    @field_validator("matrix", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: tuple(x) if isinstance(x, list) else x for k, x in v.items()}
        return v


def deploy_config(raw: dict[str, Any] | None) -> DeploySpec:
    """The project's ``deploy:`` section (already validated when the configuration was loaded)."""
    return DeploySpec.model_validate(raw or {}, strict=False)


def ci_config(raw: dict[str, Any] | None) -> CISpec:
    return CISpec.model_validate(raw or {}, strict=False)
