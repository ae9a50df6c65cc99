"""``--format kserve``: the version as a KServe InferenceService (serving.kserve.io/v1beta1).

Our image is the predictor's custom container (``kserve-container``) speaking the Open Inference Protocol
v2, which KServe reads from the container's ``PROTOCOL`` variable; a new version against a different stable
one gets ``canaryTrafficPercent`` from the first canary weight.
"""

from __future__ import annotations

import math

from shipyard.core.deploy.manifests import (
    LIVE_PATH,
    READY_PATH,
    Object,
    Plan,
    container,
    meta,
    registry_container,
    registry_volumes,
    resources,
    scheduling,
    vault_agent_annotations,
)

KSERVE_CONTAINER = "kserve-container"  # the name KServe looks for in a custom predictor
PROTOCOL_VARIABLE = "PROTOCOL"


def canary_percent(p: Plan) -> int | None:
    """The first canary weight, when the version replaces a different stable one; None on a first deploy."""
    stable = p.target.stable_version
    if stable is None or stable == p.target.version:
        return None
    return next((s.weight for s in p.steps if s.weight is not None), None)


def inference_service(p: Plan) -> Object:
    port = p.spec.port
    box = container(p)
    box["name"] = KSERVE_CONTAINER
    box["image"] = p.target.image
    box["ports"] = [{"containerPort": port, "protocol": "TCP"}]  # Knative: one port, no name
    extra = registry_container(p)
    box.update({k: v for k, v in extra.items() if k != "env"})
    box["env"] = [*box["env"], {"name": PROTOCOL_VARIABLE, "value": "v2"}, *extra.get("env", [])]
    for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH), ("startupProbe", LIVE_PATH)):
        box[probe]["httpGet"] = {"path": path, "port": port}
    res = resources(p)
    if res:
        box["resources"] = res
    predictor: Object = {}
    auto = p.autoscaling
    if auto.kind == "none":
        predictor["minReplicas"] = predictor["maxReplicas"] = p.replicas if p.replicas is not None else 1
    else:
        predictor.update(minReplicas=auto.min_replicas, maxReplicas=auto.max_replicas, scaleMetric="concurrency",
                         scaleTarget=max(1, math.ceil(auto.target_in_flight)))
    percent = canary_percent(p)
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    predictor["containers"] = [box]
    predictor.update(scheduling(p))
    volumes = registry_volumes(p)
    if volumes:
        predictor["volumes"] = volumes
    labels = {"app.kubernetes.io/version": str(p.target.version)}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {**meta(p, p.name, labels), "annotations": {
                **p.annotations(), **vault_agent_annotations(p), **vault_agent_annotations(p, registry=True)}},
            "spec": {"predictor": predictor}}
