"""The rules that judge a new version against the stable one: the same rules rendered as an Argo Rollouts
AnalysisTemplate (PromQL over the server's series) and evaluated by ``shipyard rollout`` on one machine.

SKELETON: the series names below are the contract between the model server, this module and the
rendered manifests; ``analysis_template`` is to be filled in (error rate, p99 against stable, disagreement,
prediction drift), every query guarded for empty results.
"""

from __future__ import annotations

from typing import Any

from shipyard.core.deploy.config import AnalysisSpec

# The model server's Prometheus series (prometheus_client adds _total to counters in the exposition).
REQUESTS = "shipyard_inference_requests_total"  # labels: model, version, outcome (ok|rejected|error|timeout)
LATENCY = "shipyard_inference_request_duration_seconds"  # histogram; labels: model, version
COMPARISONS = "shipyard_canary_comparisons_total"  # labels: model, version (the new one), result (agree|disagree|error)
PREDICTIONS = "shipyard_predictions_total"  # labels: model, version, bucket (bounded: a class, or a value range)
IN_FLIGHT = "shipyard_inference_in_flight"  # gauge per server: what the HPA/KEDA scale on

TEMPLATE_ARGS = ("canary-version", "stable-version")


def analysis_template(name: str, model: str, spec: AnalysisSpec) -> dict[str, Any]:
    """The AnalysisTemplate (argoproj.io/v1alpha1) named ``name`` that judges ``model``'s canary version."""
    raise NotImplementedError("filled in by the analysis work")
