"""Finding a version's inference logs and reading them bounded: the store, this machine, and files given.

Three places hold the logs of a model's servers:

- the store: a server run (tagged ``shipyard.model``) records each rotated log as an artifact
  ``inference-logs/*.jsonl``; read re-hashed, each at most ``MAX_FILE_BYTES``;
- this machine: ``.shipyard/inference-logs/<run id>/*.jsonl``, the files not yet published (the one a
  running server is writing among them: its last line may be torn, and is skipped), read first;
- ``--logs``: files or folders of ``*.jsonl`` (copied from a pod, say).

A log is untrusted wherever it lies: links are not followed (a link found in a folder is skipped and counted),
only regular files are read, each bounded, and all of them together at most ``MAX_TOTAL_BYTES``; the newest
server runs are read first, so a bound reached leaves out the oldest logs, and says so.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.monitoring.logs import MAX_FILE_BYTES, MAX_TOTAL_BYTES, LogReader, Period
from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from shipyard.core.lineage.records import RunRecord
    from shipyard.core.monitoring.drift import Baseline, Window
    from shipyard.wiring import Services

LOG_FOLDER = "inference-logs"  # under the project's .shipyard/, and the artifacts' prefix on a server run
MODEL_TAG = "shipyard.model"
MAX_RUNS = 500  # server runs of the model looked at, newest first
MAX_FILES = 10_000  # files looked at in the folders given and on this machine
MAX_DEPTH = 4  # folders below a --logs folder


def read_logs(svc: Services, reader: LogReader, model: str, logs: Sequence[Path], notes: list[str]) -> None:
    """Feed ``reader`` every log of ``model`` that may hold records of its period; notes say what was left out."""
    period = reader.period
    budget = [MAX_TOTAL_BYTES]
    # this machine's unpublished files first, then the store: a file published in between is read twice at
    # worst (its lines are duplicates, counted once), never missed
    for source, path in _local_files(svc.settings.home / LOG_FOLDER, reader):
        _read_file(reader, source, path, period, budget)
    for run in _server_runs(svc, model, period):
        for artifact in run.artifacts:
            if artifact.is_dir or not artifact.path.startswith(f"{LOG_FOLDER}/") or \
                    not artifact.path.endswith(".jsonl"):
                continue
            if artifact.size > MAX_FILE_BYTES or artifact.size > budget[0]:
                reader.skipped.files += 1
                continue
            try:
                data = _stored(svc, artifact.digest, artifact.path, run.id)
            except (IntegrityError, NotFoundError) as exc:  # one damaged or missing log: the others still count
                reader.skipped.files += 1
                if len(notes) < 10:
                    notes.append(str(exc))
                continue
            budget[0] -= len(data)
            reader.read(run.id, data)
    for given in logs:
        _read_given(reader, Path(given), period, budget)
    if budget[0] <= 0 or reader.skipped.files:
        notes.append(f"{reader.skipped.files} log file(s) were not read (links, not regular files, over "
                     f"{MAX_FILE_BYTES // 2**20} MiB each or {MAX_TOTAL_BYTES // 2**20} MiB in all): a shorter "
                     "--since reads fewer")
    reader.finish()


def _server_runs(svc: Services, model: str, period: Period) -> list[RunRecord]:
    from shipyard.core.lineage.search import Condition

    runs = svc.meta.search_runs((Condition("tags", MODEL_TAG, "=", model),), MAX_RUNS, "start_time")
    return [r for r in runs if r.start_time <= period.end + 60 and (r.end_time is None or r.end_time >=
                                                                       period.start)]


def _stored(svc: Services, digest: Any, path: str, run_id: str) -> bytes:
    from shipyard.core.artifacts.tree import read_verified

    return read_verified(svc.store, digest, limit=MAX_FILE_BYTES,
                         what=f"inference log {path} of run {run_id[:8]}")


def _local_files(home: Path, reader: LogReader) -> Iterator[tuple[str, Path]]:
    """(run id, file) of the logs under ``.shipyard/inference-logs/<run id>/``, links left alone."""
    try:
        folders = sorted(os.scandir(home), key=lambda e: e.name)
    except OSError:
        return
    for folder in folders:
        if not folder.is_dir(follow_symlinks=False):
            reader.skipped.files += folder.is_symlink()
            continue
        for path in _jsonl(Path(folder.path), reader, depth=0, limit=MAX_FILES):
            yield folder.name, path


def _read_given(reader: LogReader, given: Path, period: Period, budget: list[int]) -> None:
    try:
        st = given.stat()
    except OSError as exc:
        raise InvalidInputError(f"--logs {given}: {exc.strerror or exc}; give a .jsonl file or a folder of them") \
            from None
    if stat.S_ISDIR(st.st_mode):
        files = list(_jsonl(given, reader, depth=MAX_DEPTH, limit=MAX_FILES))
        if not files:
            raise InvalidInputError(f"--logs {given}: no .jsonl inference logs there")
        for path in files:
            _read_file(reader, str(given), path, period, budget)
    else:
        _read_file(reader, str(given), given, period, budget, named=True)


def _jsonl(folder: Path, reader: LogReader, depth: int, limit: int) -> Iterator[Path]:
    """The ``*.jsonl`` regular files in ``folder`` (and its folders, ``depth`` levels down), sorted; a link is
    skipped and counted, never followed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries[:limit]:
        if entry.is_symlink():
            reader.skipped.files += entry.name.endswith(".jsonl")
        elif entry.is_dir(follow_symlinks=False):
            if depth > 0:
                yield from _jsonl(Path(entry.path), reader, depth - 1, limit)
        elif entry.name.endswith(".jsonl"):
            yield Path(entry.path)


def _read_file(reader: LogReader, source: str, path: Path, period: Period, budget: list[int],
               named: bool = False) -> None:
    """One log file, opened without following a link (unless the user ``named`` it), regular and bounded."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if named else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if named:
            raise InvalidInputError(f"--logs {path}: {exc.strerror or exc}") from None
        reader.skipped.files += 1  # a link swapped in, or a file gone (published) since the folder was listed
        return
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES or st.st_size > budget[0]:
            if named and not stat.S_ISREG(st.st_mode):
                raise InvalidInputError(f"--logs {path} is not a regular file; give a .jsonl file or a folder")
            reader.skipped.files += 1
            return
        if st.st_mtime < period.start:
            return  # last written before the period: nothing in it can count
        data = f.read(min(MAX_FILE_BYTES, budget[0]) + 1)
    if len(data) > MAX_FILE_BYTES or len(data) > budget[0]:  # grew while we read: keep its whole lines
        data = data[:data.rfind(b"\n", 0, min(MAX_FILE_BYTES, budget[0])) + 1]
    budget[0] -= len(data)
    reader.read(source, data)


def count_payloads(baseline: Baseline, model: str, version: str) -> Any:
    """The callback that counts logged payload rows into ``baseline``'s bins (``LogReader``'s ``count``)."""

    def count(rows: list[list[Any]], outputs: list[Any] | None, start: float, end: float) -> Window:
        from shipyard.adapters.monitoring.bins import count_rows

        return count_rows(baseline, model, version, _array(rows), None if outputs is None else _array(outputs),
                          start, end)

    return count


def _array(values: list[Any]) -> Any:
    """Logged values as numbers (None as NaN) when every one is a number, else as objects (categories)."""
    import numpy as np

    flat = [v for row in values for v in (row if isinstance(row, list) else [row])]
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in flat):
        return np.array([[np.nan if v is None else v for v in (row if isinstance(row, list) else [row])]
                         for row in values], dtype=np.float64)
    out = np.empty((len(values), len(values[0]) if isinstance(values[0], list) else 1), dtype=object)
    for i, row in enumerate(values):
        out[i, :] = row if isinstance(row, list) else [row]
    return out
