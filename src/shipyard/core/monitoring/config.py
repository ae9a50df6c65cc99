"""The ``monitoring:`` section of shipyard.yaml: when a feature counts as drifted, how long the server's drift
window is, and the thresholds of the rendered alert rules.

Validated with the rest of the file (``ProjectConfig``); read back with ``monitoring_config`` from the plain dict
``Project`` keeps. Every field has a default, so a project without the section is monitored with them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.core.monitoring.drift import JS_DRIFT, MIN_ROWS, PSI_DRIFT, QUALITY_SHARE, Thresholds

DEFAULT_WINDOW = 3600.0
_DURATION = re.compile(r"[1-9][0-9]{0,3}(ms|s|m|h|d)")  # at most 9999d: Prometheus keeps durations in int64 ns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_duration(value: str, where: str) -> str:
    """A Prometheus duration such as ``30s``, ``15m`` or ``1h`` (one unit), or a ValueError that shows one."""
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise ValueError(f"{where} {str(value)[:40]!r} is not a duration: write a number and a unit, like 30s, 15m "
                         "or 1h")
    return value


class AlertsSpec(_Strict):
    """Thresholds of the rules ``shipyard alerts render`` writes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)  # Project keeps a dump: for_

    error_rate: float = Field(0.05, gt=0, le=1, allow_inf_nan=False,
                              description="share of requests answered 5xx (or timed out)")
    latency_p99: float = Field(0.5, gt=0, le=3600, allow_inf_nan=False, description="the p99 latency SLO, in seconds")
    disagreement: float = Field(0.1, gt=0, le=1, description="share of canary or shadow answers that differ from "
                                                            "the primary's")
    drift_for: str = Field("15m", description="how long a feature stays drifted before the alert fires")
    quality_for: str = Field("10m", description="how long data-quality issues last before the alert fires")
    no_traffic_for: str = Field("15m", description="how long a served model gets no request before the alert fires")
    for_: str = Field("5m", alias="for", description="how long errors, latency or disagreement last before firing")
    runbook_url: str | None = Field(None, description="a base URL: each rule's runbook_url annotation is "
                                                      "URL#AlertName")

    @field_validator("drift_for", "quality_for", "no_traffic_for", "for_")
    @classmethod
    def _durations(cls, v: str) -> str:
        return check_duration(v, "monitoring.alerts duration")

    @field_validator("runbook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(("http://", "https://")) or any(c.isspace() for c in v)
                              or "{{" in v or "}}" in v or len(v) > 2000):
            raise ValueError("monitoring.alerts.runbook_url should be an http(s):// URL (without {{ or }}: "
                             "Prometheus would read them as a template)")
        return v


class MonitoringSpec(_Strict):
    psi: float = Field(PSI_DRIFT, gt=0, le=100, allow_inf_nan=False,
                       description="PSI above which a numeric feature has drifted")
    js: float = Field(JS_DRIFT, gt=0, le=1, description="Jensen-Shannon distance above which a categorical "
                                                        "feature (or class output) has drifted")
    quality: float = Field(QUALITY_SHARE, gt=0, le=1, description="share of a feature's values missing (beyond the "
                                                                  "reference's rate), out of range or unseen above "
                                                                  "which it has a data-quality issue")
    min_rows: int = Field(MIN_ROWS, ge=1, description="fewer rows in a window give no drift verdict")
    window: float = Field(DEFAULT_WINDOW, ge=1, le=7 * 86400, description="seconds of the server's rolling drift "
                                                                          "window")
    alerts: AlertsSpec = AlertsSpec()

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.psi, self.js, self.quality, self.min_rows)


def monitoring_config(raw: dict[str, Any] | None) -> MonitoringSpec:
    return MonitoringSpec.model_validate(raw or {}, strict=False)
