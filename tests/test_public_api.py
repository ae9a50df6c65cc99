"""The public API surface is deliberate: this list changes only on purpose."""

from __future__ import annotations

import shipyard


def test_exported_members() -> None:
    assert shipyard.__all__ == sorted(shipyard.__all__)
    assert set(shipyard.__all__) == {
        "ActiveRun", "Client", "MlflowClient", "__version__", "active_run", "delete_registered_model_alias",
        "end_run", "get_model_version", "get_model_version_by_alias", "get_run", "load_model", "log_artifact",
        "log_artifacts", "log_batch", "log_metric", "log_metrics", "log_model", "log_param", "log_params",
        "register_model", "save_model", "search_runs", "set_alias", "set_experiment", "set_registered_model_alias",
        "set_tag", "set_tags", "sklearn", "start_run", "trust_model",
        # MLflow's names, added on purpose (issue 8)
        "get_tracking_uri", "pyfunc", "search_model_versions", "set_tracking_uri",
        # issue 14: the rest of a typical MLflow script
        "data", "log_dict", "log_figure", "log_image", "log_input", "log_table", "log_text", "onnx", "pytorch",
        "autolog",  # issue 14: mlflow.autolog() for scikit-learn
        "models",  # issue 14: mlflow.models.infer_signature
        # issue 14: a run's files back, and the everyday MLflow names (mlflow.artifacts, mlflow.exceptions)
        "artifacts", "exceptions", "get_experiment_by_name", "last_active_run",
    }
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None


def test_errors_share_one_root() -> None:
    from shipyard import errors

    classes = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(c, errors.ShipyardError) for c in classes)
    assert all(c.exit_code > 0 for c in classes)
