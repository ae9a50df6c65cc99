"""What ``shipyard.yaml`` may say about delivery (the ``deploy:`` section), validated by pydantic (``ci:`` is in
``ci_config.py``).

The section is validated when the project's configuration is loaded (so a typo is reported with its line,
as for stages) and kept there as the validated plain dict; ``deploy_config`` turns it back into these models
for the commands that deliver, so read-only commands never build this validator.

Names follow the rest of shipyard.yaml (snake_case); the canary steps read as Argo Rollouts writes them.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.core.deploy import k8s_rules as rules
from shipyard.core.registry.refs import check_new_alias
from shipyard.errors import ShipyardError

ENV_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?\Z")  # a DNS label: it names namespaces and objects
DNS_LABEL = rules.DNS_LABEL  # a namespace
DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>ms|s|m|h)\Z")
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?\Z")
DEFAULT_FOLDER = "deploy"
PEP508_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)


# A value written into a manifest, held to the rule Kubernetes (or git) applies to it when shipyard.yaml loads.
Namespace = Annotated[str, AfterValidator(rules.check_namespace)]
ObjectName = Annotated[str, AfterValidator(partial(rules.check_subdomain, what="a Kubernetes object name"))]
ProjectName = Annotated[str, AfterValidator(partial(rules.check_subdomain, what="an Argo CD project name"))]
SecretKey = Annotated[str, AfterValidator(rules.check_secret_key)]
ClusterURL = Annotated[str, AfterValidator(partial(rules.check_url, what="cluster (the API server's URL)"))]
PrometheusURL = Annotated[str, AfterValidator(partial(rules.check_url, what="Prometheus URL"))]
Folder = Annotated[str, AfterValidator(rules.check_folder)]
Branch = Annotated[str, AfterValidator(rules.check_branch)]


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
    prometheus: PrometheusURL = Field("http://prometheus-operated.monitoring.svc:9090",
                            description="Prometheus that Argo Rollouts and KEDA query")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        seconds(v)
        return v

    @model_validator(mode="after")
    def _limits(self) -> AnalysisSpec:
        if self.failure_limit >= self.count:
            raise ValueError(f"failure_limit ({self.failure_limit}) must be below count ({self.count}): else a step "
                             "passes with every measurement failing")
        return self


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

    secret: ObjectName
    key: SecretKey
    external: bool = Field(False, description="render an ExternalSecret (external-secrets.io) that fills the Secret")
    remote_key: str | None = Field(None, description="for external: the path in the secret store")
    store: ObjectName = Field("default", description="for external: the ClusterSecretStore that holds it")
    vault: str | None = Field(None, description="where the value lives in Vault: vault:MOUNT/PATH#KEY (the "
                                                "ExternalSecret's remoteRef, or what Vault Agent renders)")

    @field_validator("remote_key")
    @classmethod
    def _remote_key(cls, v: str | None) -> str | None:
        return None if v is None else rules.check_printable(v, "remote_key", 512)

    @field_validator("vault")
    @classmethod
    def _vault(cls, v: str | None) -> str | None:
        return None if v is None else check_vault_reference(v, "vault")


def check_vault_reference(text: str, what: str) -> str:
    """``vault:MOUNT/PATH#KEY``, as a ValueError naming the form (the core's parser decides)."""
    from shipyard.core.secrets import is_reference

    if not text.startswith("vault:") or not is_reference(text):
        raise ValueError(f"{what} {text[:80]!r} is not a Vault reference: write vault:MOUNT/PATH#KEY, e.g. "
                         "vault:secret/shipyard#db_url")
    return text


def vault_parts(text: str) -> tuple[str, str, str]:
    """(mount, path, key) of a checked ``vault:MOUNT/PATH#KEY``."""
    where, _, key = text.removeprefix("vault:").partition("#")
    mount, _, path = where.partition("/")
    return mount, path, key


SecretsProvider = Literal["kubernetes", "external-secrets", "vault-agent"]


class PushCredentials(_Strict):
    """The image registry's login for `shipyard build --push`: a user name (or a reference to one) and a
    reference to the password or token."""

    username: str
    password: str = Field(description="a reference: env:NAME, file:PATH or vault:MOUNT/PATH#KEY")

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        from shipyard.core.secrets import check_reference

        return check_reference(v, "deploy.push_credentials.password")

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        return rules.check_printable(v, "deploy.push_credentials.username", 255)


ModelSource = Literal["baked", "registry"]
S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]{0,900})?\Z")
REGION = re.compile(r"^[a-z0-9-]{1,40}\Z")


def check_store_url(url: str) -> str:
    """The S3 store the server reads: ``s3://bucket[/prefix]``, with nothing that could carry a credential."""
    if not S3_URL.match(url):
        raise ValueError(f"{rules.show_url(url[:120])} is not an S3 store: write s3://bucket/prefix (a bucket "
                         "name, then an optional path; no credentials, query or spaces)")
    return url


StoreURL = Annotated[str, AfterValidator(check_store_url)]
EndpointURL = Annotated[str, AfterValidator(partial(rules.check_url, what="endpoint_url"))]


class AwsCredentials(_Strict):
    """The S3 keys, read from one Kubernetes Secret (never written in shipyard.yaml)."""

    secret: ObjectName
    access_key_id: SecretKey = "AWS_ACCESS_KEY_ID"
    secret_access_key: SecretKey = "AWS_SECRET_ACCESS_KEY"
    vault: str | None = Field(None, description="vault:MOUNT/PATH: the Vault secret holding both keys (under the "
                                                "names above), for external-secrets or vault-agent")

    @field_validator("vault")
    @classmethod
    def _vault(cls, v: str | None) -> str | None:
        return None if v is None else check_vault_reference(f"{v}#k", "credentials.vault").removesuffix("#k")


class RegistrySource(_Strict):
    """``model_source: registry``: the server loads its version from the team's registry (PostgreSQL and the
    S3 store) when it starts, so the image holds no model. Credentials are Secret references only."""

    database: SecretRef = Field(description="the Secret entry holding the database URL (SHIPYARD_DB_URL)")
    store: StoreURL | None = Field(None, description="s3://bucket/prefix; default: the project's store:")
    endpoint_url: EndpointURL | None = Field(None, description="S3 endpoint (AWS_ENDPOINT_URL) for non-AWS storage; "
                                                               "default: the project's store: endpoint_url")
    region: str | None = Field(None, description="AWS_REGION; default: the project's store: region")
    credentials: AwsCredentials | None = Field(None, description="the Secret with the S3 keys; none: the pod's "
                                                                 "own identity (IRSA, workload identity)")
    cache_size: str = Field("25Gi", description="size limit of the emptyDir holding SHIPYARD_HOME: the store's "
                                                "cache (bounded at 20 GiB by default) and the inference logs")
    trusted_actors: tuple[str, ...] = Field((), description="SHIPYARD_TRUSTED_ACTORS: whose trust decisions "
                                                            "the server accepts")

    @field_validator("database", mode="before")
    @classmethod
    def _no_literal(cls, v: object) -> object:
        if isinstance(v, str):
            from urllib.parse import urlsplit

            try:
                secret = urlsplit(v).password is not None
            except ValueError:
                secret = False
            what = "holds a password" if secret else "is a literal value"
            raise ValueError(f"the database URL {what}, and shipyard.yaml goes into git: put it in a Kubernetes "
                             "Secret and write `database: {secret: NAME, key: KEY}`")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not REGION.match(v):
            raise ValueError(f"region {v[:60]!r}: write an S3 region such as us-east-1")
        return v

    @field_validator("cache_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not QUANTITY.match(v):
            raise ValueError(f"cache_size {v[:60]!r} is not a Kubernetes quantity (e.g. 10Gi)")
        return v

    @field_validator("trusted_actors", mode="before")
    @classmethod
    def _actors(cls, v: object) -> object:
        if isinstance(v, list):
            v = tuple(v)
        if isinstance(v, tuple):
            for actor in v:
                if not isinstance(actor, str) or "," in actor:
                    raise ValueError("trusted_actors: a list of actors (no commas)")
                rules.check_printable(actor, "an actor", 255)
        return v

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """The server's variables read from Secrets, by variable."""
        refs = [("SHIPYARD_DB_URL", self.database)]
        if self.credentials is not None:
            c = self.credentials
            refs += [("AWS_ACCESS_KEY_ID", SecretRef(secret=c.secret, key=c.access_key_id,
                                                     vault=f"{c.vault}#{c.access_key_id}" if c.vault else None)),
                     ("AWS_SECRET_ACCESS_KEY", SecretRef(secret=c.secret, key=c.secret_access_key,
                                                         vault=f"{c.vault}#{c.secret_access_key}" if c.vault
                                                         else None))]
        return refs


class EnvironmentSpec(_Strict):
    """One environment (staging, production, ...): what differs from the defaults above it."""

    namespace: Namespace | None = None
    model_source: ModelSource | None = Field(None, description="baked (the model in the image) or registry "
                                                               "(loaded from PostgreSQL and S3); default: "
                                                               "deploy.model_source")
    alias: str | None = Field(None, description="the registry alias that follows this environment (default: its name)")
    replicas: int | None = Field(None, ge=0)
    strategy: Literal["deployment", "rollout"] | None = None
    autoscaling: Autoscaling | None = None
    resources: Resources | None = None
    cluster: ClusterURL = Field("https://kubernetes.default.svc", description="Argo CD destination server")
    approval: bool = Field(False, description="CI asks a reviewer before promoting here (GitHub environment)")

    @field_validator("alias")
    @classmethod
    def _alias(cls, v: str | None) -> str | None:
        return None if v is None else _registry_alias(v)


def _registry_alias(alias: str) -> str:
    """``alias`` by the registry's own rules (core.registry.refs.check_new_alias), as a ValueError."""
    try:
        return check_new_alias(alias)
    except ShipyardError as exc:
        raise ValueError(str(exc)) from None


class ArgoCDSpec(_Strict):
    namespace: Namespace = "argocd"
    project: ProjectName = "default"
    application_set: bool = Field(False, description="one ApplicationSet over the environments instead of one "
                                                       "Application each")


class DeploySpec(_Strict):
    folder: Folder = Field(DEFAULT_FOLDER, description="the GitOps folder in the project, or inside `repo`")
    repo: str | None = Field(None, description="a separate GitOps repository (git URL); default: this project's")
    git_token: str | None = Field(None, description="a reference (env:NAME, file:PATH, vault:MOUNT/PATH#KEY) to the "
                                                    "token that pushes to an https GitOps repository")
    push_credentials: PushCredentials | None = Field(None, description="the registry login for build --push")
    git_user: str = Field("x-access-token", description="the user name sent with git_token (GitHub: "
                                                        "x-access-token; GitLab: oauth2 or any name)")
    branch: Branch = "main"
    format: Literal["kubernetes", "kserve"] = "kubernetes"
    strategy: Literal["deployment", "rollout"] = "deployment"
    model_source: ModelSource = Field("baked", description="baked: the image holds the version; registry: the "
                                                            "server loads it from the registry (deploy.registry)")
    registry: RegistrySource | None = Field(None, description="where a registry-mode server reads the registry")
    port: int = Field(8080, ge=1, le=65535)
    replicas: int = Field(2, ge=0)
    autoscaling: Autoscaling = Autoscaling()
    resources: Resources = Resources()
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"},
                                          description="for a GPU model")
    tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="server environment variable -> Secret")
    secrets_provider: SecretsProvider = Field(
        "kubernetes", description="how secrets reach the pod: kubernetes (Secrets you create; `external: true` "
                                  "entries get an ExternalSecret), external-secrets (an ExternalSecret for every "
                                  "Secret), vault-agent (Vault Agent injector annotations; each variable holds a "
                                  "file: reference to the file the agent renders)")
    vault_role: str | None = Field(None, description="vault-agent: the Vault Kubernetes-auth role of the pod")
    canary: tuple[CanaryStep, ...] = DEFAULT_STEPS
    analysis: AnalysisSpec = AnalysisSpec()
    argocd: ArgoCDSpec = ArgoCDSpec()
    environments: dict[str, EnvironmentSpec] = Field(
        default_factory=lambda: {"staging": EnvironmentSpec(), "production": EnvironmentSpec(approval=True)})

    @field_validator("canary", "tolerations", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _registry_given(self) -> DeploySpec:
        wants = [n for n, e in sorted(self.environments.items()) if e.model_source == "registry"]
        if self.registry is None and (self.model_source == "registry" or wants):
            who = "model_source: registry" if self.model_source == "registry" else \
                f"environment {wants[0]!r} has model_source: registry"
            raise ValueError(f"{who}, but there is no `registry:` section: add deploy.registry with "
                             "`database: {secret: NAME, key: KEY}` (the Secret holding the database URL)")
        return self

    @field_validator("git_token")
    @classmethod
    def _git_token(cls, v: str | None) -> str | None:
        from shipyard.core.secrets import check_reference

        return None if v is None else check_reference(v, "deploy.git_token")

    @field_validator("git_user")
    @classmethod
    def _git_user(cls, v: str) -> str:
        if not v or ":" in v or len(v) > 100 or not v.isprintable():
            raise ValueError("deploy.git_user: a user name without ':' (at most 100 printable characters)")
        return v

    @model_validator(mode="after")
    def _provider_needs(self) -> DeploySpec:
        if self.secrets_provider != "vault-agent":
            return self
        if not self.vault_role:
            raise ValueError("secrets_provider: vault-agent needs vault_role (the Vault role bound to the pod's "
                             "service account)")
        rules.check_printable(self.vault_role, "vault_role", 253)
        refs = list(self.secrets.items()) + (self.registry.secret_refs() if self.registry else [])
        for var, ref in refs:
            if ref.vault is None:
                raise ValueError(f"secrets_provider: vault-agent renders each secret from Vault: give {var}'s entry "
                                 "`vault: vault:MOUNT/PATH#KEY` (deploy.registry.credentials: `vault: "
                                 "vault:MOUNT/PATH`)")
        return self

    def model_source_of(self, env: str) -> ModelSource:
        e = self.environments.get(env)
        return e.model_source if e is not None and e.model_source is not None else self.model_source

    @field_validator("environments")
    @classmethod
    def _env_names(cls, v: dict[str, EnvironmentSpec]) -> dict[str, EnvironmentSpec]:
        followed: dict[str, str] = {}
        for name, env in v.items():
            if not ENV_NAME.match(name):
                raise ValueError(f"invalid environment name {name!r}: lowercase letters, digits and '-' "
                                 "(it names Kubernetes objects)")
            if env.alias is None:  # the environment's name is its alias: it must be one the registry can set
                try:
                    check_new_alias(name)
                except ShipyardError as exc:
                    raise ValueError(f"environment {name!r} needs `alias: NAME` (its name is not an alias the "
                                     f"registry can set: {exc})") from None
            alias = env.alias or name
            if alias in followed:
                raise ValueError(f"environments {followed[alias]!r} and {name!r} both follow the alias {alias!r}: "
                                 "give each its own `alias:`")
            followed[alias] = name
        return v

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            rules.check_label_key(key)
            rules.check_label_value(value, f"{key!r}")
        return v

    @field_validator("tolerations")
    @classmethod
    def _tolerations(cls, v: tuple[dict[str, str], ...]) -> tuple[dict[str, str], ...]:
        for toleration in v:
            rules.check_toleration(toleration)
        return v

    @field_validator("secrets")
    @classmethod
    def _secret_vars(cls, v: dict[str, SecretRef]) -> dict[str, SecretRef]:
        for var in v:
            rules.check_env_var(var)
        return v

    def environment(self, name: str) -> EnvironmentSpec:
        """The environment ``name``; a ValueError naming the ones there are."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ValueError(f"no environment {name!r} in shipyard.yaml's deploy.environments (there are: "
                             f"{known})") from None


def deploy_config(raw: dict[str, Any] | None) -> DeploySpec:
    """The project's ``deploy:`` section (already validated when the configuration was loaded)."""
    return DeploySpec.model_validate(raw or {}, strict=False)
