"""A Kubernetes cluster through the official ``kubernetes`` client (extra ``k8s``, imported on first use).

- ``apply``: server-side apply of rendered objects (PATCH, ``application/apply-patch+yaml``,
  ``fieldManager=shipyard``, conflicts not forced unless asked, ``dryRun=All`` for a dry run). Namespaces go
  first (the ones the objects name are applied too, so a fresh cluster takes them), then the rest in order.
  Built-in kinds go through the client's typed APIs; custom resources (Argo Rollouts, Argo CD, KEDA,
  prometheus-operator, external-secrets, KServe) through ``CustomObjectsApi`` by group/version/plural.
- ``read``: one object as a plain dict, or None when it does not exist (what ``status --env`` shows).

Every failure becomes one ShipyardError line: an unreachable API server, a 401/403 naming the verb and
resource, a 422 naming the field, a 409 naming the field manager that owns the field, an unknown kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    MissingExtraError,
    NotFoundError,
    ShipyardError,
)

FIELD_MANAGER = "shipyard"
APPLY_PATCH = "application/apply-patch+yaml"
TIMEOUT = (5.0, 60.0)  # connect, read (seconds)
DEFAULT_KUBECONFIG = "~/.kube/config"

# built-in kinds: (apiVersion, kind) -> (typed API class, method suffix, namespaced)
BUILTIN: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("CoreV1Api", "namespace", False),
    ("v1", "Service"): ("CoreV1Api", "namespaced_service", True),
    ("v1", "ConfigMap"): ("CoreV1Api", "namespaced_config_map", True),
    ("v1", "Secret"): ("CoreV1Api", "namespaced_secret", True),
    ("v1", "ServiceAccount"): ("CoreV1Api", "namespaced_service_account", True),
    ("apps/v1", "Deployment"): ("AppsV1Api", "namespaced_deployment", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("AutoscalingV2Api", "namespaced_horizontal_pod_autoscaler", True),
    ("policy/v1", "PodDisruptionBudget"): ("PolicyV1Api", "namespaced_pod_disruption_budget", True),
}
# custom resources: (group, kind) -> plural (all namespaced)
CUSTOM: dict[tuple[str, str], str] = {
    ("argoproj.io", "Rollout"): "rollouts",
    ("argoproj.io", "AnalysisTemplate"): "analysistemplates",
    ("argoproj.io", "Application"): "applications",
    ("argoproj.io", "ApplicationSet"): "applicationsets",
    ("keda.sh", "ScaledObject"): "scaledobjects",
    ("monitoring.coreos.com", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com", "PrometheusRule"): "prometheusrules",
    ("external-secrets.io", "ExternalSecret"): "externalsecrets",
    ("serving.kserve.io", "InferenceService"): "inferenceservices",
}
INSTALLS = {"argoproj.io": "Argo Rollouts / Argo CD", "keda.sh": "KEDA",
            "monitoring.coreos.com": "the Prometheus operator", "external-secrets.io": "External Secrets",
            "serving.kserve.io": "KServe"}


@dataclass(frozen=True)
class Applied:
    kind: str
    namespace: str | None
    name: str
    created: bool
    dry_run: bool

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} {'created' if self.created else 'configured'}" + \
            (" (dry run)" if self.dry_run else "")

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "created": self.created,
                "dry_run": self.dry_run}


@dataclass(frozen=True)
class Ref:
    """Where an object lives in the API: its kind's API and path parts."""

    api_version: str
    kind: str
    name: str
    namespace: str | None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def resource(self) -> str:
        """``deployments.apps``, ``rollouts.argoproj.io``: as RBAC and kubectl name it."""
        if (self.api_version, self.kind) in BUILTIN:
            plural = _plural(BUILTIN[(self.api_version, self.kind)][1])
        else:
            plural = CUSTOM[(self.group, self.kind)]
        return f"{plural}.{self.group}" if self.group else plural

    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def _plural(suffix: str) -> str:
    word = suffix.removeprefix("namespaced_").replace("_", "")
    return word if word.endswith("s") else word + "s"


def ref_of(doc: dict[str, Any], default_namespace: str) -> Ref:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    meta = doc.get("metadata")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(meta, dict) \
            or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InvalidInputError("an object to apply needs apiVersion, kind and metadata.name")
    if (api_version, kind) in BUILTIN:
        namespaced = BUILTIN[(api_version, kind)][2]
    elif (api_version.rpartition("/")[0], kind) in CUSTOM and "/" in api_version:
        namespaced = True
    else:
        known = ", ".join(sorted({k for _, k in BUILTIN} | {k for _, k in CUSTOM}))
        raise InvalidInputError(f"shipyard does not apply {kind} ({api_version}); it applies {known}")
    namespace = (meta.get("namespace") or default_namespace) if namespaced else None
    return Ref(api_version, kind, meta["name"], namespace)


def _client_module() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        raise MissingExtraError("talking to a Kubernetes cluster", "k8s") from exc
    return kubernetes


def missing_kubeconfig(given: str | None, environ: str | None) -> None:
    """ConfigError when no kubeconfig file the client would read exists (``given``, else $KUBECONFIG's paths,
    else ~/.kube/config): the client itself says only "Invalid kube-config file. No configuration found."."""
    source = given or environ
    paths = [p for p in source.split(os.pathsep) if p] if source else [DEFAULT_KUBECONFIG]
    if any(os.path.exists(os.path.expanduser(p)) for p in paths):
        return
    hint = "(`kubectl config view` shows the one kubectl uses)"
    if source:
        where = "$KUBECONFIG" if given is None or given == environ else "the kubeconfig"
        raise ConfigError(f"no kubeconfig: {', '.join(paths)[:300]} ({where}) does not exist: point $KUBECONFIG at "
                          f"your cluster's kubeconfig {hint}")
    raise ConfigError(f"no kubeconfig: {DEFAULT_KUBECONFIG} does not exist and $KUBECONFIG is not set: put your "
                      f"cluster's kubeconfig there or point $KUBECONFIG at it {hint}")


class Cluster:
    """One cluster, as a kubeconfig (file and context) names it."""

    def __init__(self, api_client: Any, namespace: str, server: str) -> None:
        self._api = api_client
        self.namespace = namespace  # the context's namespace: objects that name none go there
        self.server = server

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Cluster:
        """The kubeconfig's ``context`` (default: its current one; the file: $KUBECONFIG or ~/.kube/config)."""
        k8s = _client_module()
        missing_kubeconfig(kubeconfig, os.environ.get("KUBECONFIG"))
        from kubernetes.config.config_exception import ConfigException

        try:
            contexts, active = k8s.config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), None) if context else active
            if chosen is None:
                names = ", ".join(c["name"] for c in contexts) or "none"
                raise ConfigError(f"no context {context!r} in the kubeconfig (there are: {names})")
            configuration = k8s.client.Configuration()
            k8s.config.load_kube_config(config_file=kubeconfig, context=context,
                                        client_configuration=configuration, persist_config=False)
        except ConfigException as exc:
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise ConfigError(f"cannot use the kubeconfig ({where}): {str(exc).splitlines()[0][:200]}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the kubeconfig {kubeconfig or ''}: {exc}"[:300]) from None
        configuration.retries = 0  # an unreachable server is said at once, not after urllib3's retries
        namespace = (chosen.get("context") or {}).get("namespace") or "default"
        return cls(k8s.client.ApiClient(configuration), namespace, configuration.host)

    def close(self) -> None:
        self._api.close()

    # -- apply -------------------------------------------------------------------------------------
    def apply(self, docs: Sequence[dict[str, Any]], *, dry_run: bool = False,
              force_conflicts: bool = False) -> list[Applied]:
        refs = [ref_of(d, self.namespace) for d in docs]  # every object checked before the first request
        named = {r.name for r in refs if r.kind == "Namespace"}
        extra = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                 for ns in dict.fromkeys(r.namespace for r in refs if r.namespace) if ns not in named]
        ordered = [(ref_of(d, self.namespace), d) for d in extra] + \
            [(r, d) for r, d in zip(refs, docs, strict=True) if r.kind == "Namespace"] + \
            [(r, d) for r, d in zip(refs, docs, strict=True) if r.kind != "Namespace"]
        return [self._apply_one(r, d, dry_run, force_conflicts) for r, d in ordered]

    def _apply_one(self, ref: Ref, doc: dict[str, Any], dry_run: bool, force: bool) -> Applied:
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": force, "_content_type": APPLY_PATCH,
                                   "_request_timeout": TIMEOUT}
        if dry_run:
            options["dry_run"] = "All"
        with self._errors(ref, "patch"):
            response = self._call(ref, "patch", body=doc, **options)
        created = _status_code(response) == 201
        return Applied(ref.kind, ref.namespace, ref.name, created, dry_run)

    # -- read --------------------------------------------------------------------------------------
    def read(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when the cluster has no such object (or does not know its kind: an Argo CD
        Application where Argo CD is not installed)."""
        ref = ref_of({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}},
                     namespace)
        try:
            with self._errors(ref, "get"):
                response = self._call(ref, "read", _request_timeout=TIMEOUT)
        except (NotFoundError, ConfigError):
            return None
        data = _data(response)
        if isinstance(data, dict):
            return data
        result: dict[str, Any] = self._api.sanitize_for_serialization(data)
        return result

    # -- the client ----------------------------------------------------------------------------------
    def _call(self, ref: Ref, verb: str, **kwargs: Any) -> Any:
        k8s = _client_module()
        if (ref.api_version, ref.kind) in BUILTIN:
            api_name, suffix, namespaced = BUILTIN[(ref.api_version, ref.kind)]
            api = getattr(k8s.client, api_name)(self._api)
            method: Callable[..., Any] = getattr(api, f"{verb}_{suffix}_with_http_info")
            args = (ref.name, ref.namespace) if namespaced else (ref.name,)
            if verb == "patch":
                return method(*args, kwargs.pop("body"), **kwargs)
            return method(*args, **kwargs)
        api = k8s.client.CustomObjectsApi(self._api)
        plural = CUSTOM[(ref.group, ref.kind)]
        if verb == "patch":
            return api.patch_namespaced_custom_object_with_http_info(
                ref.group, ref.version, ref.namespace, plural, ref.name, kwargs.pop("body"), **kwargs)
        return api.get_namespaced_custom_object_with_http_info(ref.group, ref.version, ref.namespace, plural,
                                                              ref.name, **kwargs)

    @contextmanager
    def _errors(self, ref: Ref, verb: str) -> Iterator[None]:
        """The client's and urllib3's errors as one ShipyardError line each."""
        k8s = _client_module()
        import urllib3.exceptions

        try:
            yield
        except k8s.client.ApiException as exc:
            raise api_error(exc.status or 0, exc.body, ref, verb, self.server) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise BackendUnavailableError(f"cannot reach the Kubernetes API at {self.server}: "
                                          f"{_reason(exc)}; check the kubeconfig's context and that the "
                                          "cluster is up") from None


def _status_code(response: Any) -> int:
    """The HTTP status of a ``*_with_http_info`` call: a (data, status, headers) tuple, or an ApiResponse."""
    code = response[1] if isinstance(response, tuple) else getattr(response, "status_code", None)
    return int(code) if isinstance(code, int) else 200


def _data(response: Any) -> Any:
    return response[0] if isinstance(response, tuple) else getattr(response, "data", response)


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    text = str(inner if inner is not None else exc)
    return " ".join(text.split())[:200]


def api_error(status: int, body: str | bytes | None, ref: Ref, verb: str, server: str) -> ShipyardError:
    """An API server's error response (a ``Status`` object) as one actionable line."""
    status_obj: dict[str, Any] = {}
    if body:
        try:
            parsed = json.loads(body[:65536])
            status_obj = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            status_obj = {}
    message = " ".join(str(status_obj.get("message") or "").split())[:300]
    where = f" in namespace {ref.namespace}" if ref.namespace else ""
    if status in (401, 403):
        who = "the kubeconfig's credentials were refused (401)" if status == 401 else \
            f"forbidden (403): the kubeconfig's user may not {verb} {ref.resource}{where}"
        return BackendUnavailableError(f"{ref.label()}: {who}; ask for an RBAC role that allows it"
                                       + (f" ({message})" if message and status == 401 else ""))
    if status == 404:
        if (ref.group, ref.kind) in CUSTOM and "the server could not find the requested resource" in message:
            return ConfigError(f"the cluster at {server} does not know {ref.kind} ({ref.api_version}): install "
                               f"{INSTALLS.get(ref.group, ref.group)} there first")  # the kind, not the object
        return NotFoundError(f"{ref.label()} does not exist" + (f": {message}" if message else ""))
    if status == 409:
        return ConflictError(f"{ref.label()}: {message or 'conflict'}; another field manager owns these fields: "
                             "apply again with force_conflicts to take them over")
    if status == 422:
        causes = (status_obj.get("details") or {}).get("causes") or []
        fields = [f"{c.get('field')}: {c.get('message')}" for c in causes if isinstance(c, dict) and c.get("field")]
        said = "; ".join(fields)[:300] or message
        return InvalidInputError(f"the cluster rejected {ref.label()}: {said}")
    return BackendUnavailableError(f"the Kubernetes API at {server} answered {status} to {verb} {ref.label()}"
                                   + (f": {message}" if message else ""))
