"""``shipyard.autolog()``: every scikit-learn fit recorded on a run, as ``mlflow.autolog()`` records it.

scikit-learn has no global hook on ``fit`` (1.9's ``sklearn.callback`` covers a few estimators, set on
each instance), so autolog wraps the public ``fit``, ``fit_predict`` and ``fit_transform`` of scikit-learn's
estimator classes, and ``autolog(disable=True)`` puts the originals back. A fit inside a fit (a Pipeline's
steps, a grid search's candidates) is part of the outer one: only the outermost fit is recorded. The
user's own error in ``fit`` reaches the caller as it was raised; a failure while recording is a warning
(on the ``shipyard`` logger) and never stops the training.

What a fit records: the estimator's ``get_params(deep=True)``; MLflow's training metrics under MLflow's
names (``training_score``; classifiers: ``training_accuracy_score``, ``training_precision_score``,
``training_recall_score``, ``training_f1_score``, and with ``predict_proba`` ``training_log_loss`` and
``training_roc_auc``; regressors: ``training_mean_squared_error``, ``training_root_mean_squared_error``,
``training_mean_absolute_error``, ``training_r2_score``); the tags ``estimator_name`` and
``estimator_class``; the fitted model (``runs:/RUN_ID/model``, skops) and, with
``registered_model_name``, a new version of that model.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.core.lineage.tracking import MAX_PARAM_VALUE
from shipyard.errors import InvalidInputError

log = logging.getLogger("shipyard")

HOOKED = ("fit", "fit_predict", "fit_transform")
MODEL_PATH = "model"  # the run's artifact, as MLflow's: runs:/RUN_ID/model
EXAMPLE_ROWS = 5  # input rows kept as golden examples with log_input_examples=True
PREFIX = "training_"
_ABSENT = object()  # the class had no attribute of its own: disabling deletes the wrapper


@dataclass(frozen=True, slots=True)
class Settings:
    log_models: bool = True
    log_input_examples: bool = False
    exclusive: bool = False
    silent: bool = False
    registered_model_name: str | None = None
    serialization_format: str | None = None
    pos_label: Any = None
    extra_tags: Mapping[str, Any] | None = None


_lock = threading.Lock()
_settings: list[Settings] = []  # the settings in force; empty while autolog is off
_originals: dict[tuple[type, str], Any] = {}  # (class, method) -> what the class held itself, or _ABSENT
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("shipyard_autolog_inside", default=False)


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False, max_tuning_runs: int | None = 5,
            log_post_training_metrics: bool = True, serialization_format: str | None = None,
            registered_model_name: str | None = None, pos_label: Any = None,
            extra_tags: Mapping[str, Any] | None = None, log_traces: bool = True,
            exclude_flavors: list[str] | None = None) -> None:
    """Record every scikit-learn fit from now on: on the current run, or on a run started for the fit
    and ended after it (as MLflow does). ``disable=True`` turns it off and restores scikit-learn's methods.

    MLflow's keywords: ``log_models`` (save the fitted model on the run as ``model``),
    ``registered_model_name`` (also register it as the next version of that model),
    ``log_input_examples`` (keep the first rows of ``X`` as the model's golden examples), ``exclusive``
    (record nothing on runs the program started itself), ``silent`` (no warnings from recording),
    ``serialization_format`` (``"skops"``, the default, or ``"pickle"``/``"cloudpickle"``), ``pos_label``
    (binary precision, recall and F1 for that label instead of MLflow's weighted average), ``extra_tags``.
    The others are accepted so MLflow scripts run: the signature comes from the golden examples, datasets
    are not hashed by autolog (use ``log_input``), grid searches record no child runs, and metric calls
    after training are not intercepted.
    """
    if disable:
        _unhook()
        return
    if registered_model_name is not None:
        from shipyard.core.registry.refs import check_model_name

        check_model_name(registered_model_name)
    if serialization_format is not None:
        from shipyard.interfaces.api.sklearn import SERIALIZERS

        if serialization_format not in SERIALIZERS:
            raise InvalidInputError(f"unknown serialization_format {serialization_format!r}: use "
                                    f"{', '.join(SERIALIZERS)}")
    if exclude_flavors and "sklearn" in exclude_flavors:
        _unhook()
        return
    settings = Settings(log_models, log_input_examples, exclusive, silent, registered_model_name,
                        serialization_format, pos_label, dict(extra_tags) if extra_tags else None)
    try:
        classes = list(estimator_classes())
    except ImportError:
        if not silent:
            log.warning("shipyard.autolog: scikit-learn is not installed, so there is nothing to record "
                        "(pip install 'shipyard[sklearn]')")
        return
    with _lock:
        _settings[:] = [settings]
        for cls in classes:
            for name in HOOKED:
                _hook(cls, name)


def enabled() -> bool:
    return bool(_settings)


def estimator_classes() -> Iterator[type]:
    """scikit-learn's public estimator classes: those of its public modules (``sklearn.__all__``) that
    derive from ``BaseEstimator``, as ``all_estimators()`` lists them, found without its package walk,
    which imports the vendored array libraries (torch among them, where it is installed)."""
    import sklearn
    from sklearn.base import BaseEstimator

    for name in sklearn.__all__:
        if name != "externals":
            try:
                importlib.import_module(f"sklearn.{name}")
            except ImportError:  # a function in __all__ (clone, set_config...), or an optional part missing
                continue
    seen: set[type] = set()
    stack: list[type] = [BaseEstimator]
    while stack:
        subclasses: list[type] = type.__subclasses__(stack.pop())
        for sub in subclasses:
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    for cls in seen:
        module = cls.__module__
        if module.startswith("sklearn.") and ".tests" not in module and not cls.__name__.startswith("_"):
            yield cls


def _hook(cls: type, name: str) -> None:
    found = next((klass.__dict__[name] for klass in cls.__mro__ if name in klass.__dict__), _ABSENT)
    if found is _ABSENT or (cls, name) in _originals:
        return
    original = getattr(found, "__shipyard_original__", found)  # inherited from a class hooked already
    _originals[(cls, name)] = cls.__dict__.get(name, _ABSENT)
    if inspect.isfunction(original):
        setattr(cls, name, _wrap(original))
    else:  # a descriptor (available_if, property): it still decides whether the method exists
        setattr(cls, name, _Hooked(original))


def _unhook() -> None:
    with _lock:
        _settings.clear()
        for (cls, name), own in _originals.items():
            if own is _ABSENT:
                delattr(cls, name)
            else:
                setattr(cls, name, own)
        _originals.clear()


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _inside.get() or not _settings:  # the common case first: a fit inside a recorded fit
            return method(self, *args, **kwargs)
        return _call(method.__get__(self, type(self)), self, args, kwargs)

    recorded.__shipyard_original__ = method  # type: ignore[attr-defined]
    return recorded


class _Hooked:
    """A hooked descriptor (``available_if``, a property): the original decides what the attribute is
    (or that there is none); a method it gives is recorded as ``fit`` is."""

    def __init__(self, original: Any) -> None:
        self.__shipyard_original__ = original

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        original = self.__shipyard_original__
        got = original.__get__(obj, owner)
        if obj is None or not callable(got):
            return got

        @functools.wraps(got)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            return _call(got, obj, args, kwargs)

        return recorded


def _call(bound: Callable[..., Any], estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``bound(*args, **kwargs)`` (a method of ``estimator``), recorded unless it runs inside a recorded fit."""
    settings = next(iter(_settings[-1:]), None)
    if _inside.get() or settings is None:
        return bound(*args, **kwargs)
    from shipyard.interfaces.api.autolog_record import Recording

    token = _inside.set(True)
    try:
        recording = Recording.begin(settings, estimator)
        try:
            result = bound(*args, **kwargs)
        except BaseException as exc:
            if recording is not None:
                recording.failed(exc)
            raise
        if recording is not None:
            recording.finish(bound, estimator, args, kwargs)
        return result
    finally:
        _inside.reset(token)


def param_text(value: Any) -> str:
    """A param's value as text, cut to the longest a run keeps (MLflow cuts long values too)."""
    text = str(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[:MAX_PARAM_VALUE - 3] + "..."
