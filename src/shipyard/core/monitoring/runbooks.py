"""The text of each alert rule (``alerts.py``): a one-line summary, a description, and a runbook (what it means,
what to check, what to do).

They are Prometheus templates (``{{ $labels.model }}``, ``{{ $value }}``), expanded by Prometheus when the alert
fires, with ``${name}`` placeholders for the configured thresholds, filled in by ``alerts.annotations``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MV = "{{ $labels.model }}@{{ $labels.version }}"
MONITOR = f"shipyard monitor {MV} --since 1h --html report.html"
GO_BACK = ("Go back to the previous version: `shipyard rollback {{ $labels.model }} --env ENV` (GitOps), or on one "
           "machine `shipyard alias set {{ $labels.model }} production PREVIOUS` (a server that follows the alias "
           "swaps within its --poll interval).")

RUNBOOKS: dict[str, tuple[str, str, str]] = {
    "ShipyardHighErrorRate": (
        "{{ $labels.model }} version {{ $labels.version }} fails {{ $value | humanizePercentage }} of its "
        "requests",
        "{{ $value | humanizePercentage }} of the requests to {{ $labels.model }} version {{ $labels.version }} "
        "over the last ${window} were answered 5xx or timed out (more than ${error_pct} for ${for}).",
        "What it means: the model server fails requests it accepted: the model raises on the inputs, the batch "
        "or predict call times out (504 past --timeout), or the server is overloaded.\n"
        "Check: the server's log (each failure is logged with its request id); `shipyard models history "
        "{{ $labels.model }}` for a version or alias that changed just before; "
        "the latency panels of the Shipyard dashboard (timeouts come with a high p99).\n"
        f"Do: if a new version brought it, {GO_BACK[0].lower()}{GO_BACK[1:]}\n"
        "If the server is overloaded, add replicas or raise --timeout; if the inputs changed shape, find the "
        f"client (`{MONITOR}` shows data-quality issues).",
    ),
    "ShipyardLatencyP99High": (
        "{{ $labels.model }} version {{ $labels.version }}: p99 latency {{ printf \"%.3g\" $value }}s",
        "The p99 latency of {{ $labels.model }} version {{ $labels.version }} over the last ${window} is "
        "{{ printf \"%.3g\" $value }}s, above the SLO of ${latency}s for ${for}.",
        "What it means: one request in a hundred waits longer than the SLO.\n"
        "Check: requests in flight (shipyard_inference_in_flight) and the request rate: more traffic than the "
        "replicas can answer; the batch sizes (shipyard_inference_batch_size): large batches trade latency for "
        "throughput; CPU throttling of the pods; a new version that is slower (`shipyard models history "
        "{{ $labels.model }}`).\n"
        "Do: add replicas (or let the autoscaler: deploy.autoscaling), lower --max-batch, or give the pods more "
        f"CPU. If a new version is slower, {GO_BACK[0].lower()}{GO_BACK[1:]}",
    ),
    "ShipyardFeatureDrift": (
        "Input {{ $labels.feature }} of {{ $labels.model }} version {{ $labels.version }} drifted "
        "({{ $labels.statistic }} {{ printf \"%.3g\" $value }})",
        "Feature {{ $labels.feature }} of {{ $labels.model }} version {{ $labels.version }}: "
        "{{ $labels.statistic }} {{ printf \"%.3g\" $value }} against the version's reference profile "
        "(thresholds: PSI ${psi}, JS ${js}) for ${drift_for}, over a window of at least ${min_rows} rows.",
        "What it means: the values this model gets for {{ $labels.feature }} are no longer distributed like the "
        "data it was trained on (its reference, recorded by log_model(..., reference=X)); its answers may be "
        "wrong without any error showing.\n"
        f"Check: `{MONITOR}` shows the reference and current distributions of every feature, drift over time "
        "and data quality; a change upstream (a new client, a unit or encoding change, a broken feature "
        "pipeline) often shows as several features drifting at once, or as data-quality issues.\n"
        "Do: if the inputs are wrong, fix the producer. If the world changed, retrain on recent data and roll "
        "the new version out (`shipyard rollout NEW --from {{ $labels.model }}@{{ $labels.version }}`); "
        "until then watch the model's business metrics.",
    ),
    "ShipyardPredictionDrift": (
        "Outputs of {{ $labels.model }} version {{ $labels.version }} drifted ({{ $labels.statistic }} "
        "{{ printf \"%.3g\" $value }})",
        "Output {{ $labels.output }} of {{ $labels.model }} version {{ $labels.version }}: {{ $labels.statistic }} "
        "{{ printf \"%.3g\" $value }} against the model's answers on its reference data (thresholds: PSI ${psi}, "
        "JS ${js}) for ${drift_for}, over a window of at least ${min_rows} rows.",
        "What it means: the model answers differently from how it answered on its training data (another mix of "
        "classes, or shifted scores): its inputs drifted, or the population it serves changed.\n"
        f"Check: `{MONITOR}`: its prediction distribution, and which input features drifted with it "
        "(ShipyardFeatureDrift alerts of the same model).\n"
        "Do: if the inputs are broken, fix the producer; if the population changed, retrain and roll the new "
        f"version out. {GO_BACK}",
    ),
    "ShipyardNoTraffic": (
        "{{ $labels.model }} got no request for ${no_traffic_for}",
        "{{ $labels.model }} has been loaded by a Shipyard server for at least ${no_traffic_for} and got no "
        "inference request in that time.",
        "What it means: nothing reaches the model: the clients stopped, or something between them and the "
        "server (DNS, ingress, service selector, network policy, API key) drops their requests.\n"
        "Check: the clients' own errors; that the Service selects the pods and the ingress routes to it; "
        "a rotated --api-key the clients do not have (they get 401, which is not counted as a request); the "
        "server's log.\n"
        "Do: restore the path from the clients. If the model was retired on purpose, stop serving it.",
    ),
    "ShipyardServerDown": (
        "Shipyard server {{ $labels.instance }} is down",
        "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}, serving ${served}) for ${for}.",
        "What it means: the model server does not answer on /metrics: it crashed, is restarting, is out of "
        "memory, or the network between Prometheus and it is cut. Its clients probably get errors too.\n"
        "Check: `curl http://INSTANCE/v2/health/ready`; the server's log and exit status (on Kubernetes: "
        "`kubectl get pods -l app.kubernetes.io/name=${k8s}` and `kubectl describe pod`, OOMKilled, "
        "CrashLoopBackOff, a failing readiness probe); whether a version it was asked to load fails.\n"
        "Do: restart it, or roll back the change that broke it: "
        "`shipyard rollback ${name} --env ENV`, or `shipyard alias set ${name} production PREVIOUS`.",
    ),
    "ShipyardServerAbsent": (
        "No Shipyard server is scraped (job ${job})",
        "Prometheus has no target of job ${job} at all for ${for}: no Shipyard server (serving ${served}) is "
        "monitored, so none of the other Shipyard alerts can fire.",
        "What it means: the scrape configuration lost the servers (a renamed job, a ServiceMonitor that no longer "
        "selects the metrics Service, a Prometheus that does not select the ServiceMonitor), or every server is "
        "gone.\n"
        "Check: Prometheus' Status > Targets page; the ServiceMonitor's selector against the labels of the "
        "metrics Service (`shipyard deploy` renders both); that the servers run.\n"
        "Do: fix the scrape configuration, or start the servers.",
    ),
    "ShipyardModelLoadFailed": (
        "{{ $labels.model }}: a new version could not be loaded",
        "The alias that the server of {{ $labels.model }} follows moved to a version the server could not "
        "load, verify or admit (in the last ${load_window}); the server keeps answering with the version it had.",
        "What it means: the registry says one version is live and the server runs another. The version may be "
        "unsigned where signatures are required, refused by the policy, untrusted, corrupt in the store, or "
        "need packages the server's environment lacks.\n"
        "Check: the server's log (`keeping NAME@V: <why>` names the reason); `shipyard models show "
        "{{ $labels.model }}@VERSION` and `shipyard verify {{ $labels.model }}@VERSION`.\n"
        "Do: fix the version (sign it, trust it, rebuild its environment) or move the alias back: `shipyard "
        "alias set {{ $labels.model }} production PREVIOUS`.",
    ),
    "ShipyardCanaryDisagreement": (
        "Canary {{ $labels.model }} version {{ $labels.version }} disagrees with the primary on "
        "{{ $value | humanizePercentage }} of rows",
        "{{ $value | humanizePercentage }} of the canary answers of {{ $labels.model }} version "
        "{{ $labels.version }} over the last ${window} differ from the primary's on the same rows (more than "
        "${disagreement_pct} for ${for}).",
        "What it means: the new version answers real users differently from the one it is meant to replace, "
        "more than expected.\n"
        "Check: whether the difference is intended (a retrained model may rightly change answers); "
        f"`{MONITOR}` and `shipyard models diff {{{{ $labels.model }}}}@PREVIOUS {MV}`.\n"
        "Do: stop the canary if it is not intended: a local `shipyard rollout` rolls back by itself when its "
        "disagreement rule fails; on Kubernetes `kubectl argo rollouts abort ROLLOUT -n NAMESPACE` (the Rollout "
        "is named after the model), then `shipyard rollback {{ $labels.model }} --env ENV`.",
    ),
    "ShipyardShadowDisagreement": (
        "Shadow {{ $labels.model }} version {{ $labels.version }} disagrees with the primary on "
        "{{ $value | humanizePercentage }} of requests",
        "{{ $value | humanizePercentage }} of the shadow answers of {{ $labels.model }} version "
        "{{ $labels.version }} over the last ${window} differ from the primary's (more than ${disagreement_pct} "
        "for ${for}). Users see only the primary's answers.",
        "What it means: the version being tried in the shadow would change answers if it were promoted.\n"
        f"Check: `{MONITOR}` and `shipyard models diff {{{{ $labels.model }}}}@PREVIOUS {MV}`; whether the "
        "change is intended.\n"
        "Do: do not promote it as it is; retrain or fix it, or accept the change knowingly.",
    ),
    "ShipyardDataQuality": (
        "Input {{ $labels.feature }} of {{ $labels.model }} version {{ $labels.version }}: "
        "{{ $value | humanizePercentage }} bad values",
        "{{ $value | humanizePercentage }} of the values of feature {{ $labels.feature }} sent to "
        "{{ $labels.model }} version {{ $labels.version }} over the last ${window} were missing, outside the "
        "reference's range, or categories the reference never had (more than ${quality_pct} for ${quality_for}).",
        "What it means: the inputs are broken rather than drifted: a producer sends nulls, another unit, or new "
        "categories the model never saw; its answers for those rows are guesses.\n"
        f"Check: `{MONITOR}` (data-quality counts per feature and issue); "
        "shipyard_data_quality_issues_total{issue=...} splits missing, out_of_range and unseen; the producer's "
        "recent changes.\n"
        "Do: fix the producer, or retrain with the new values in the reference if they are legitimate.",
    ),
}

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def fill(template: str, facts: Mapping[str, str]) -> str:
    """``template`` with each ``${name}`` replaced by ``facts[name]`` (Prometheus' ``{{ ... }}`` untouched)."""
    return _PLACEHOLDER.sub(lambda m: facts[m[1]], template)
