"""MLflow's file store (``./mlruns``): meta.yaml files, one file per param and tag, metric files of
``timestamp value step`` lines; read without MLflow, never written.

Every file is untrusted: each is opened without following a link, read within a bound, and its YAML parsed
by Shipyard's bounded loader; a link anywhere in the store is skipped and reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shipyard.adapters.mlflow_store import int_of as _int
from shipyard.adapters.mlflow_store import text_of as _text
from shipyard.core.boundedyaml import load_yaml
from shipyard.core.importing.mlflow import MlAlias, MlExperiment, MlLoggedModel, MlRun, MlVersion, to_metric
from shipyard.core.lineage.records import Metric
from shipyard.errors import InvalidInputError, ShipyardError

MAX_META = 1024 * 1024
MAX_VALUE = 65_536
MAX_METRIC_FILE = 512 * 1024 * 1024
MAX_DEPTH = 16  # folders in a key ("a/b/c" is a param key of MLflow's)
_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_RESERVED = {".trash", "models", ".shipyard"}


def _read(path: Path, most: int) -> bytes | None:
    """``path``'s bytes (None if absent, a link, not a regular file, or larger than ``most``). O_NONBLOCK: a
    FIFO in a crafted store would otherwise block the open forever."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(most + 1)
    return None if len(data) > most else data


def _meta(path: Path, refused: list[tuple[str, str]] | None = None, what: str = "") -> dict[str, Any]:
    """``path``'s YAML mapping ({} if absent or unreadable); with ``refused``, why it was not read goes there
    (a folder that has a meta.yaml Shipyard cannot read is named, never dropped silently)."""
    raw = _read(path, MAX_META)
    if raw is None:
        if refused is not None and os.path.lexists(path):
            refused.append((what, f"its meta.yaml is not read (a link, not a regular file, or over "
                                  f"{MAX_META // 1024} KiB)"))
        return {}
    try:
        body = load_yaml(raw, str(path))
    except ShipyardError as exc:
        if refused is not None:
            refused.append((what, f"its meta.yaml is not read: {str(exc)[:160]}"))
        return {}
    if not isinstance(body, dict) and refused is not None:
        refused.append((what, "its meta.yaml is not a mapping"))
    return body if isinstance(body, dict) else {}


def _entries(folder: Path, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Path]]:
    """(key, file) below ``folder``; a key may hold '/' (nested folders); links are never followed."""
    try:
        listing = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in listing:
        if entry.is_symlink():
            continue
        key = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
            yield from _entries(Path(entry.path), f"{key}/", depth + 1)
        elif entry.is_file(follow_symlinks=False):
            yield key, Path(entry.path)


class MlflowFileStore:
    """An MLflow file store: ``mlruns/<experiment>/<run>/...`` and ``mlruns/models/<name>/version-N``."""

    def __init__(self, path: Path) -> None:
        self.root = path.resolve()
        self.where = str(path)
        if not (self.root / "0" / "meta.yaml").is_file() and not any(
                (Path(e.path) / "meta.yaml").is_file() for e in os.scandir(self.root)
                if e.is_dir(follow_symlinks=False) and e.name not in _RESERVED):
            raise InvalidInputError(f"{path} is not an MLflow file store (no <experiment>/meta.yaml in it): give "
                                    "the mlruns folder")
        self._runs: dict[str, Path] = {}
        self.refused: list[tuple[str, str]] = []  # (what, why) of folders whose meta.yaml could not be read

    def default_artifacts(self) -> tuple[Path, Path]:
        return self.root, self.root.parent

    def _experiment_dirs(self) -> Iterator[tuple[Path, bool]]:
        for top, deleted in ((self.root, False), (self.root / ".trash", True)):
            if not top.is_dir() or top.is_symlink():
                continue
            for e in sorted(os.scandir(top), key=lambda e: e.name):
                if e.is_dir(follow_symlinks=False) and e.name not in _RESERVED:
                    yield Path(e.path), deleted

    def experiments(self) -> list[MlExperiment]:
        out = []
        for folder, trashed in self._experiment_dirs():
            meta = _meta(folder / "meta.yaml", self.refused, f"experiment folder {folder.name[:80]}")
            if not meta:
                continue
            tags = {k: _text(v.decode("utf-8", "replace"), MAX_VALUE) for k, p in _entries(folder / "tags")
                    if (v := _read(p, MAX_VALUE)) is not None}
            out.append(MlExperiment(folder.name, _text(meta.get("name"), 256), _text(meta.get("artifact_location")),
                                    trashed or meta.get("lifecycle_stage") == "deleted", tags))
        return out

    def runs(self) -> list[MlRun]:
        out = []
        for folder, trashed in self._experiment_dirs():
            for e in sorted(os.scandir(folder), key=lambda e: e.name):
                if not e.is_dir(follow_symlinks=False) or e.name in ("tags", "models", "datasets", "traces"):
                    continue
                meta = _meta(Path(e.path) / "meta.yaml", self.refused, f"run folder {folder.name[:40]}/{e.name[:80]}")
                if not meta:
                    continue
                rid = _text(meta.get("run_id") or meta.get("run_uuid") or e.name, 64)
                status = meta.get("status")
                self._runs[rid] = Path(e.path)
                out.append(MlRun(id=rid, experiment_id=folder.name, name=_text(meta.get("run_name"), 250),
                                 status=_STATUS.get(status, str(status)) if isinstance(status, int) else _text(status),
                                 start_ms=_int(meta.get("start_time")), end_ms=_int(meta.get("end_time")),
                                 user=_text(meta.get("user_id"), 256), artifact_uri=_text(meta.get("artifact_uri")),
                                 deleted=trashed or meta.get("lifecycle_stage") == "deleted"))
        out.sort(key=lambda r: (r.start_ms or 0, r.id))
        return out

    def details(self, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]],
                                                      dict[str, list[Metric]], list[tuple[str, str]]]:
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        metrics: dict[str, list[Metric]] = {}
        refused: list[tuple[str, str]] = []
        for rid in run_ids:
            folder = self._runs[rid]
            for kind, into in (("params", params), ("tags", tags)):
                for key, path in _entries(folder / kind):
                    raw = _read(path, MAX_VALUE)
                    if raw is None:
                        refused.append((f"run {rid} {kind[:-1]} {key[:60]!r}", f"larger than {MAX_VALUE // 1024} KiB"))
                        continue
                    into.setdefault(rid, {})[key] = raw.decode("utf-8", "replace")
            for key, path in _entries(folder / "metrics"):
                raw = _read(path, MAX_METRIC_FILE)
                if raw is None:
                    refused.append((f"run {rid} metric {key[:60]!r}", "its file is larger than 512 MiB"))
                    continue
                bad, first = 0, ""
                for line in raw.decode("utf-8", "replace").splitlines():
                    parts = line.split()
                    try:
                        ts, value = int(parts[0]), float(parts[1])
                        step = int(parts[2]) if len(parts) > 2 else 0
                        metric = to_metric(key, value, ts, step, value != value)
                    except (IndexError, ValueError, OverflowError):
                        bad, first = bad + 1, first or line[:40]
                        continue
                    metrics.setdefault(rid, []).append(metric)
                if bad:  # one line in the report however many: a crafted file may hold millions
                    refused.append((f"run {rid} metric {key[:60]!r}: {bad} line(s), the first {first!r}",
                                    "not 'timestamp value step' (a whole number of milliseconds since 1970, a "
                                    "number, a whole number)"))
        return params, tags, metrics, refused

    def logged_models(self) -> list[MlLoggedModel]:
        out = []
        for folder, trashed in self._experiment_dirs():
            models = folder / "models"
            if not models.is_dir() or models.is_symlink():
                continue
            for e in sorted(os.scandir(models), key=lambda e: e.name):
                meta = _meta(Path(e.path) / "meta.yaml") if e.is_dir(follow_symlinks=False) else {}
                if meta:
                    out.append(MlLoggedModel(_text(meta.get("model_id") or e.name, 64), folder.name,
                                             _text(meta.get("name"), 500), _text(meta.get("artifact_location")),
                                             _text(meta.get("source_run_id"), 64) or None,
                                             trashed or meta.get("lifecycle_stage") == "deleted"))
        return out

    def _model_dirs(self) -> Iterator[Path]:
        models = self.root / "models"
        if models.is_dir() and not models.is_symlink():
            for e in sorted(os.scandir(models), key=lambda e: e.name):
                if e.is_dir(follow_symlinks=False):
                    yield Path(e.path)

    def versions(self) -> list[MlVersion]:
        out = []
        for model in self._model_dirs():
            for e in os.scandir(model):
                if not (e.is_dir(follow_symlinks=False) and e.name.startswith("version-")):
                    continue
                meta = _meta(Path(e.path) / "meta.yaml", self.refused, f"model folder {model.name[:80]}/{e.name[:40]}")
                number = _int(meta.get("version"))
                if number is None or number < 1:
                    continue
                out.append(MlVersion(model=_text(meta.get("name") or model.name, 256), version=number,
                                     created_ms=_int(meta.get("creation_timestamp")) or 0,
                                     run_id=_text(meta.get("run_id"), 64) or None, source=_text(meta.get("source")),
                                     storage_location=_text(meta.get("storage_location")),
                                     stage=_text(meta.get("current_stage"), 20),
                                     description=_text(meta.get("description")), user=_text(meta.get("user_id"), 256),
                                     status=_text(meta.get("status"), 32)))
        out.sort(key=lambda v: (v.model, v.version))
        return out

    def aliases(self) -> list[MlAlias]:
        out = []
        for model in self._model_dirs():
            name = _text(_meta(model / "meta.yaml").get("name") or model.name, 256)
            for alias, path in _entries(model / "aliases"):
                raw = _read(path, 64)
                number = _int(raw.decode("ascii", "replace").strip()) if raw is not None else None
                if number is not None and "/" not in alias:
                    out.append(MlAlias(name, alias, number))
        return out

    def counts(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None
