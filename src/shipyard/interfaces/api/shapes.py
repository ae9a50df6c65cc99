"""MLflow's argument forms turned into Shipyard's: status names, millisecond timestamps, version strings, URIs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.core.lineage.records import Metric, RunStatus
from shipyard.core.registry.refs import RUNS_URI, ModelRef, check_alias, check_model_name, check_version
from shipyard.errors import InvalidInputError, InvalidReferenceError

_VERSION_CONDITION = re.compile(r"""^\s*(name|run_id)\s*==?\s*(?:'([^']*)'|"([^"]*)")\s*$""")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def status(value: RunStatus | str | None) -> RunStatus:
    """The status a run ends with: ``"FINISHED"`` (MLflow) or ``"finished"`` -> RunStatus.FINISHED; None: finished."""
    if value is None:
        return RunStatus.FINISHED
    chosen = next((s for s in RunStatus if s.value == str(value).lower()), None)
    if chosen is None or chosen is RunStatus.RUNNING:
        known = ", ".join(s.value for s in RunStatus if s is not RunStatus.RUNNING)
        raise InvalidInputError(f"cannot end a run as {value!r}: use one of {known}")
    return chosen


def seconds(timestamp_ms: float | None) -> float | None:
    """MLflow timestamps are integer milliseconds since the epoch; Shipyard records seconds."""
    return None if timestamp_ms is None else float(timestamp_ms) / 1000.0


def version_number(version: int | str) -> int:
    """MLflow passes versions as strings (``"1"``); Shipyard stores integers."""
    if isinstance(version, str) and version.strip().isascii() and version.strip().isdigit():
        return check_version(int(version.strip()))
    return check_version(version)


def version_ref(name: str, version: int | str) -> ModelRef:
    return ModelRef(check_model_name(name), version=version_number(version))


def alias_ref(name: str, alias: str) -> ModelRef:
    return ModelRef(check_model_name(name), alias=check_alias(alias))


def model_ref(uri: object) -> str:
    """A reference as the registry reads it: ``iris@3``, ``models:/iris/3``, ``models:/iris@champion``,
    ``runs:/RUN_ID/model`` (``ModelRef.parse`` reads them all); anything but text is refused here."""
    if not isinstance(uri, str):
        raise InvalidReferenceError(f"a model reference is text such as iris@3 or models:/iris/3, not {uri!r}")
    return uri


def local_folder(uri: object) -> Path | None:
    """The folder ``uri`` names, if it names one rather than a model reference: ``file://…``, or a path with a
    separator in it (``./model``, ``/tmp/m``, ``out/model``: a reference never holds one) or a ``PathLike``."""
    if isinstance(uri, os.PathLike):
        return Path(uri)
    if not isinstance(uri, str) or ":/" in uri.removeprefix("file://"):
        return None
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return Path(uri) if os.sep in uri or uri.startswith(".") else None


def run_artifact(uri: str) -> tuple[str, str]:
    """``runs:/RUN_ID/PATH`` -> (RUN_ID, PATH)."""
    run_id, _, path = uri[len(RUNS_URI):].strip("/").partition("/")
    if not uri.startswith(RUNS_URI) or not run_id or not path:
        raise InvalidReferenceError(f"cannot read {uri!r}: use runs:/RUN_ID/ARTIFACT_PATH")
    return run_id, path


def artifact_name(file_name: str, artifact_path: str | None) -> str:
    """MLflow's ``artifact_path`` is the folder the file goes in, within the run's artifacts."""
    return f"{artifact_path.strip('/')}/{file_name}" if artifact_path and artifact_path.strip("/") else file_name


def metrics(items: Iterable[Any], default_time: float) -> list[Metric]:
    """``(key, value, step)`` tuples or MLflow ``Metric`` objects (key, value, timestamp in ms, step)."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            key, value, step = item
            out.append(Metric(key, value, step, default_time))
        else:
            stamp = seconds(getattr(item, "timestamp", None))
            out.append(Metric(item.key, item.value, getattr(item, "step", 0) or 0,
                              default_time if stamp is None else stamp))
    return out


def pairs(items: Mapping[str, Any] | Iterable[Any] | None) -> dict[str, Any]:
    """A mapping, or MLflow ``Param``/``RunTag`` objects (``.key``, ``.value``)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return {getattr(item, "key"): getattr(item, "value") for item in items}  # noqa: B009 (any object with both)


def version_filter(text: str | None) -> dict[str, str]:
    """MLflow's model version filter, ``name = 'iris' and run_id = '…'`` -> ``{"name": ..., "run_id": ...}``."""
    wanted: dict[str, str] = {}
    for part in _AND.split(text.strip()) if text and text.strip() else ():
        m = _VERSION_CONDITION.match(part)
        if m is None:
            raise InvalidInputError(f"cannot read model version filter {part.strip()!r}: use name = 'NAME' "
                                    "and/or run_id = 'RUN_ID'")
        value = m[2] if m[2] is not None else m[3]
        if wanted.get(m[1], value) != value:  # two names match no version (MLflow: none); the last one won
            raise InvalidInputError(f"model version filter {part.strip()!r} asks for two values of {m[1]}: a "
                                    f"version has one {m[1]}, so give it once")
        wanted[m[1]] = value
    if "name" in wanted:
        check_model_name(wanted["name"])
    return wanted


def tracking_target(uri: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """``set_tracking_uri``'s argument -> (project folder, database URL); one of them is None."""
    text = os.fspath(uri).strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme.startswith(("sqlite", "postgresql", "postgres")):
        return None, text
    if scheme in ("http", "https", "databricks", "uc") or text.startswith("databricks"):
        raise InvalidInputError(f"Shipyard has no tracking server ({text}): set a database URL (sqlite:///…, "
                                "postgresql://…) or a project folder")
    if scheme == "file":
        text = text[len("file://"):]
    elif scheme:
        raise InvalidInputError(f"cannot track at {text}: use a database URL (sqlite:///…, postgresql://…) "
                                "or a project folder")
    try:
        folder = Path(text).expanduser()
    except RuntimeError:  # ~name of no user: a traceback before
        raise InvalidInputError(f"cannot track in {text}: {text.split('/')[0]} names no user's home folder") from None
    if not folder.is_dir():
        raise InvalidInputError(f"cannot track in {folder}: no such folder (create it, or use a database URL)")
    return folder.resolve(), None


def experiment_filter(filter_string: str | None, experiment_ids: Sequence[str] | str | None) -> str | None:
    """``filter_string`` narrowed to the one experiment named (experiments are names here), checked."""
    names = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids or ())
    if len(names) > 1:
        raise InvalidInputError(f"search one experiment at a time (or all, with none), not {len(names)}")
    if not names:
        return filter_string or None
    if "'" in names[0]:
        raise InvalidInputError(f"invalid experiment name {names[0]!r}: it holds a quote")
    condition = f"experiment = '{names[0]}'"
    return f"{filter_string} and {condition}" if filter_string and filter_string.strip() else condition
