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
    "artifacts",
    "autolog",
    "data",
    "delete_registered_model_alias",
    "end_run",
    "exceptions",
    "get_experiment_by_name",
    "get_model_version",
    "get_model_version_by_alias",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
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
        artifacts,
        autolog,
        data,
        delete_registered_model_alias,
        end_run,
        exceptions,
        get_experiment_by_name,
        get_model_version,
        get_model_version_by_alias,
        get_run,
        get_tracking_uri,
        last_active_run,
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

# MLflow's submodules, imported on first use
_MODULES = ("artifacts", "data", "exceptions", "models", "onnx", "pyfunc", "pytorch", "sklearn")


# MLflow's public names (mlflow 3.x) that Shipyard does not have: an AttributeError that says so, not a bare one
_MLFLOW_ONLY = frozenset({
    "anthropic", "autogen", "bedrock", "catboost", "create_experiment", "crewai", "delete_experiment",
    "delete_logged_model_tag", "delete_run", "delete_tag", "disable_system_metrics_logging", "diviner", "dspy",
    "enable_system_metrics_logging", "evaluate", "fastai", "flush_artifact_async_logging", "flush_async_logging",
    "gemini", "genai", "get_artifact_uri", "get_experiment", "get_logged_model", "get_parent_run",
    "get_registry_uri", "groq", "h2o", "initialize_logged_model", "is_tracking_uri_set", "johnsnowlabs", "keras",
    "langchain", "last_logged_model", "lightgbm", "litellm", "llama_index", "llm", "log_metric_async",
    "log_model_params", "log_outputs", "login", "mistral", "openai", "paddle", "pmdarima", "projects", "prompt",
    "prophet", "pyspark", "restore_experiment", "restore_run", "run", "search_experiments", "search_logged_models",
    "search_registered_models", "search_traces", "sentence_transformers", "set_active_model", "set_experiment_tag",
    "set_experiment_tags", "set_logged_model_tags", "set_registry_uri", "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging", "set_system_metrics_sampling_interval", "shap", "smolagents",
    "spacy", "spark", "statsmodels", "system_metrics", "tensorflow", "trace", "tracing", "transformers",
    "update_current_trace", "xgboost",
})


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
    if name in _MLFLOW_ONLY:
        raise AttributeError(f"shipyard has no {name} (MLflow's mlflow.{name}); see README 'Coming from MLflow' "
                             "for what Shipyard offers")
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
