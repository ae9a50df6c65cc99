"""What ``shipyard.autolog()`` records for one outermost scikit-learn fit: the run, its params and tags before
the fit, its training metrics and model after it. Every step here may fail without failing the fit: a
warning on the ``shipyard`` logger says what was not recorded."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from typing import Any

from shipyard.interfaces.api import fluent
from shipyard.interfaces.api.autologging import EXAMPLE_ROWS, MODEL_PATH, PREFIX, Settings, param_text
from shipyard.interfaces.api.client import ActiveRun, Client

log = logging.getLogger("shipyard")


class Recording:
    """One fit being recorded on ``run_id``; ``created`` is the run started for it (ended after it)."""

    def __init__(self, settings: Settings, client: Client, run_id: str, created: ActiveRun | None) -> None:
        self.settings = settings
        self.client = client
        self.run_id = run_id
        self.created = created

    @classmethod
    def begin(cls, settings: Settings, estimator: Any) -> Recording | None:
        """The recording of ``estimator``'s fit, its params and tags written; None if nothing is recorded."""
        created = None
        try:
            current = fluent.active_run()
            if current is not None and settings.exclusive:
                return None
            kind = type(estimator)
            tags = {"estimator_name": kind.__name__, "estimator_class": f"{kind.__module__}.{kind.__qualname__}",
                    **(settings.extra_tags or {})}
            params = {k: param_text(v) for k, v in estimator.get_params(deep=True).items()}
            run = current or fluent.start_run()
            created = None if current is not None else run
            run.client.log_batch(run.id, params=params, tags=tags)
            return cls(settings, run.client, run.id, created)
        except Exception as exc:
            _warn(settings, f"shipyard.autolog: this fit of {type(estimator).__name__} is not recorded "
                            f"({type(exc).__name__}: {exc})")
            if created is not None:
                _end(created, "FAILED")
            return None

    def failed(self, exc: BaseException) -> None:
        """The fit raised ``exc`` (which goes on to the caller): the run started for it ends failed."""
        if self.created is not None:
            _end(self.created, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")

    def finish(self, bound: Callable[..., Any], estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """After a fit that returned: metrics, then the model (and its registered version)."""
        try:
            X, y, weight = _fit_data(bound, args, kwargs)
            if y is not None:
                metrics = {k: v for k, v in training_metrics(estimator, X, y, weight, self.settings).items()
                           if not math.isnan(v)}
                if metrics:
                    self.client.log_metrics(self.run_id, metrics)
            if self.settings.log_models:
                self._log_model(estimator, X)
        except Exception as exc:
            _warn(self.settings, f"shipyard.autolog: the fit of {type(estimator).__name__} is recorded in part "
                                 f"on run {self.run_id[:8]} ({type(exc).__name__}: {exc})")
        if self.created is not None:
            _end(self.created, "FINISHED")

    def _log_model(self, estimator: Any, X: Any) -> None:
        from shipyard.interfaces.api import sklearn

        example = None
        if self.settings.log_input_examples and X is not None:
            example = X.iloc[:EXAMPLE_ROWS] if hasattr(X, "iloc") else X[:EXAMPLE_ROWS]
        sklearn.log_model(estimator, MODEL_PATH, registered_model_name=self.settings.registered_model_name,
                          input_example=example, serialization_format=self.settings.serialization_format,
                          run_id=self.run_id)


def training_metrics(estimator: Any, X: Any, y: Any, weight: Any, settings: Settings) -> dict[str, float]:
    """MLflow's training metrics for ``estimator`` fitted on ``X``, ``y`` (and sample weights), by MLflow's
    names; a metric that cannot be computed for this estimator is left out with a warning."""
    import sklearn

    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):  # the fit checked X and y
        return _training_metrics(estimator, X, y, weight, settings)


def _training_metrics(estimator: Any, X: Any, y: Any, weight: Any, settings: Settings) -> dict[str, float]:
    from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier, is_regressor

    metrics: dict[str, float] = {}
    if is_classifier(estimator):
        metrics = _classifier_metrics(estimator, X, y, weight, settings)
        reused = PREFIX + "accuracy_score" if type(estimator).score is ClassifierMixin.score else None
    elif is_regressor(estimator):
        metrics = _regressor_metrics(estimator, X, y, weight, settings)
        reused = PREFIX + "r2_score" if type(estimator).score is RegressorMixin.score else None
    else:
        reused = None
    if reused in metrics:  # the mixins' score is that metric on the same predictions: not predicted twice
        metrics[PREFIX + "score"] = metrics[reused]
    elif hasattr(estimator, "score"):
        takes_weight = "sample_weight" in inspect.signature(estimator.score).parameters
        _metric(metrics, "score", settings, estimator.score, X, y, *([weight] if takes_weight else []))
    return metrics


def _classifier_metrics(estimator: Any, X: Any, y: Any, weight: Any, settings: Settings) -> dict[str, float]:
    from sklearn import metrics as m

    y_pred = estimator.predict(X)
    averaged: dict[str, Any] = ({"average": "weighted"} if settings.pos_label is None
                                else {"average": "binary", "pos_label": settings.pos_label})
    found: dict[str, float] = {}
    try:  # precision, recall and F1 from one count of the labels, as precision_score etc. each compute them
        precision, recall, f1, _ = m.precision_recall_fscore_support(y, y_pred, sample_weight=weight, **averaged)
        found.update({PREFIX + "precision_score": float(precision), PREFIX + "recall_score": float(recall),
                      PREFIX + "f1_score": float(f1)})
    except Exception as exc:
        _warn(settings, f"shipyard.autolog: precision, recall and F1 are not recorded ({type(exc).__name__}: {exc})")
    _metric(found, "accuracy_score", settings, m.accuracy_score, y, y_pred, normalize=True, sample_weight=weight)
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        _metric(found, "log_loss", settings, m.log_loss, y, proba, sample_weight=weight)
        score = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba  # binary: the greater label's
        _metric(found, "roc_auc", settings, m.roc_auc_score, y, score, average="weighted", multi_class="ovo",
                sample_weight=weight)
    return found


def _regressor_metrics(estimator: Any, X: Any, y: Any, weight: Any, settings: Settings) -> dict[str, float]:
    from sklearn import metrics as m

    y_pred = estimator.predict(X)
    found: dict[str, float] = {}
    each = {"sample_weight": weight, "multioutput": "uniform_average"}
    _metric(found, "mean_squared_error", settings, m.mean_squared_error, y, y_pred, **each)
    _metric(found, "mean_absolute_error", settings, m.mean_absolute_error, y, y_pred, **each)
    _metric(found, "r2_score", settings, m.r2_score, y, y_pred, **each)
    if PREFIX + "mean_squared_error" in found:
        found[PREFIX + "root_mean_squared_error"] = math.sqrt(found[PREFIX + "mean_squared_error"])
    return found


def _metric(found: dict[str, float], name: str, settings: Settings, function: Callable[..., Any], *args: Any,
            **kwargs: Any) -> None:
    try:
        found[PREFIX + name] = float(function(*args, **kwargs))
    except Exception as exc:  # e.g. roc_auc on one class: that metric is left out, the others are kept
        _warn(settings, f"shipyard.autolog: {PREFIX}{name} is not recorded ({type(exc).__name__}: {exc})")


def _fit_data(bound: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``X``, ``y`` and ``sample_weight`` of a fit call, found by the fit method's own signature."""
    try:
        given = inspect.signature(bound).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        given = {}
    names = list(given)
    X = given.get("X", given[names[0]] if names else None)
    y = given.get("y", given[names[1]] if len(names) > 1 and names[1] not in ("sample_weight", "kwargs",
                                                                                "params", "fit_params") else None)
    weight = given.get("sample_weight")
    if weight is None:
        extra = given.get("fit_params") or given.get("params") or given.get("kwargs") or {}
        weight = extra.get("sample_weight") if isinstance(extra, dict) else None
    return X, y, weight


def _end(run: ActiveRun, status: str) -> None:
    try:
        run.end(status)
    except Exception as exc:
        log.warning("shipyard.autolog: could not end run %s (%s: %s)", run.id[:8], type(exc).__name__, exc)


def _warn(settings: Settings, message: str) -> None:
    if not settings.silent:
        log.warning("%s", message)
