"""Shipyard: versioned artifacts, tracked runs and an immutable model registry.

The public API is imported lazily so that ``import shipyard`` stays fast. ``Client`` owns its
services; the module functions keep a current run per thread and task on a default client, and
accept MLflow's call forms (``import shipyard as mlflow`` runs a plain MLflow tracking script).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard._version import __version__

__all__ = [
    "ActiveRun",
    "Client",
    "MlflowClient",
    "__version__",
    "active_run",
    "autolog",
    "data",
    "delete_registered_model_alias",
    "end_run",
    "get_model_version",
    "get_model_version_by_alias",
    "get_run",
    "get_tracking_uri",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "models",
    "onnx",
    "pyfunc",
    "pytorch",
    "register_model",
    "save_model",
    "search_model_versions",
    "search_runs",
    "set_alias",
    "set_experiment",
    "set_registered_model_alias",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "sklearn",
    "start_run",
    "trust_model",
]

if TYPE_CHECKING:
    from shipyard.interfaces.api import (
        ActiveRun,
        Client,
        MlflowClient,
        active_run,
        autolog,
        data,
        delete_registered_model_alias,
        end_run,
        get_model_version,
        get_model_version_by_alias,
        get_run,
        get_tracking_uri,
        load_model,
        log_artifact,
        log_artifacts,
        log_batch,
        log_dict,
        log_figure,
        log_image,
        log_input,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        log_table,
        log_text,
        models,
        onnx,
        pyfunc,
        pytorch,
        register_model,
        save_model,
        search_model_versions,
        search_runs,
        set_alias,
        set_experiment,
        set_registered_model_alias,
        set_tag,
        set_tags,
        set_tracking_uri,
        sklearn,
        start_run,
        trust_model,
    )

_MODULES = ("data", "models", "onnx", "pyfunc", "pytorch", "sklearn")  # MLflow's submodules, imported on first use


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        import importlib

        module = importlib.import_module(f"shipyard.interfaces.api.{name}")
        globals()[name] = module
        return module
    if name in __all__:
        from shipyard.interfaces import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
