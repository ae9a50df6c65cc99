"""Shipyard: versioned artifacts, tracked runs and an immutable model registry.

The public API is imported lazily so that ``import shipyard`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard._version import __version__

__all__ = [
    "ActiveRun",
    "__version__",
    "active_run",
    "end_run",
    "get_model_version",
    "get_run",
    "load_model",
    "log_artifact",
    "log_batch",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "save_model",
    "search_runs",
    "set_alias",
    "set_tags",
    "start_run",
    "trust_model",
]

if TYPE_CHECKING:
    from shipyard.interfaces.api import (
        ActiveRun,
        active_run,
        end_run,
        get_model_version,
        get_run,
        load_model,
        log_artifact,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        save_model,
        search_runs,
        set_alias,
        set_tags,
        start_run,
        trust_model,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from shipyard.interfaces import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
