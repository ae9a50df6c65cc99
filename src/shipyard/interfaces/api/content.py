"""MLflow's ``log_dict``, ``log_text``, ``log_table``, ``log_figure``, ``log_image`` and ``log_input``: each
writes what it is given into a file of the form MLflow writes, and logs that file as an artifact of a run (or,
for ``log_input``, records the data's digest among the run's inputs).

Nothing here imports matplotlib, plotly, PIL or pandas: a figure, an image or a DataFrame is recognised by what it
can do (``savefig``, ``write_html``, ``save``, ``columns``), so logging text never pays for a plotting library.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from shipyard.interfaces.api.data import Dataset
    from shipyard.wiring import Services

YAML_SUFFIXES = (".yaml", ".yml")
MAX_IMAGE_PIXELS = 100_000_000  # 10,000 x 10,000: an array larger than this is a mistake, not an image


def log_file(svc: Services, run_id: str, artifact_file: str, write: Any) -> ArtifactRecord:
    """``write(path)`` fills a file in a temporary folder, which is logged as ``artifact_file`` on the run."""
    if not isinstance(artifact_file, str) or not artifact_file.strip("/ ") or "\0" in artifact_file \
            or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in artifact_file.split("/")):
        raise InvalidInputError(f"artifact_file must be a relative file name such as 'config.json' (no NUL, each "
                                f"part at most 255 bytes), not {artifact_file[:80]!r}")
    with tempfile.TemporaryDirectory(prefix="shipyard-log-") as tmp:
        path = Path(tmp) / Path(artifact_file.replace("\\", "/")).name
        write(path)
        return svc.tracker.log_artifact(run_id, path, artifact_file)


def dict_text(dictionary: Any, artifact_file: str) -> str:
    """``dictionary`` as MLflow writes it: YAML for a ``.yaml``/``.yml`` file, else JSON indented by 2."""
    if not isinstance(dictionary, Mapping):
        raise InvalidInputError(f"log_dict takes a dict, not {type(dictionary).__name__}")
    try:
        if artifact_file.lower().endswith(YAML_SUFFIXES):
            import yaml

            return str(yaml.safe_dump(dict(dictionary), default_flow_style=False, sort_keys=False))
        return json.dumps(dictionary, indent=2, default=_plain)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"log_dict cannot write {artifact_file}: {str(exc)[:200]}") from None


def table_text(data: Any, artifact_file: str) -> str:
    """A dict of columns (equal-length sequences) or a pandas DataFrame, as MLflow stores a table:
    ``{"columns": [...], "data": [[row], ...]}``."""
    if not artifact_file.lower().endswith(".json"):
        raise InvalidInputError(f"log_table writes JSON: name the file with .json, not {artifact_file!r}")
    if isinstance(data, Mapping):
        columns = [str(c) for c in data]
        values = [_column(data[c], str(c)) for c in data]
        if len({len(v) for v in values}) > 1:
            sizes = ", ".join(f"{c}: {len(v)}" for c, v in zip(columns, values, strict=True))
            raise InvalidInputError(f"log_table: every column needs as many values ({sizes})")
        rows = [list(r) for r in zip(*values, strict=True)]
    elif hasattr(data, "columns") and hasattr(data, "itertuples"):  # a pandas DataFrame
        columns = [str(c) for c in data.columns]
        rows = [list(r) for r in data.itertuples(index=False, name=None)]
    else:
        raise InvalidInputError(f"log_table takes a dict of columns or a pandas DataFrame, not {type(data).__name__}")
    return json.dumps({"columns": columns, "data": rows}, default=_plain, separators=(",", ":"))


def _column(values: Any, name: str) -> list[Any]:
    if isinstance(values, str | bytes) or not hasattr(values, "__len__") or not hasattr(values, "__iter__"):
        raise InvalidInputError(f"log_table: column {name!r} must be a list of values, not {type(values).__name__}")
    return list(values)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, dates and the like, as JSON can hold them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_figure(figure: Any, path: Path, save_kwargs: Mapping[str, Any] | None) -> None:
    """A matplotlib figure (``savefig``: the file's suffix picks the format) or a plotly figure (``.html`` with
    ``write_html``, an image format with ``write_image``)."""
    kwargs = dict(save_kwargs or {})
    if hasattr(figure, "savefig"):
        figure.savefig(path, **kwargs)
    elif hasattr(figure, "write_html") and hasattr(figure, "write_image"):
        if path.suffix.lower() in (".html", ".htm"):
            figure.write_html(str(path), **kwargs)
        else:
            try:
                figure.write_image(str(path), **kwargs)
            except (ValueError, ImportError, RuntimeError) as exc:  # plotly needs kaleido for images
                raise InvalidInputError(f"plotly cannot write {path.name}: {str(exc).splitlines()[0][:200]} "
                                        "(name the file .html, or pip install kaleido)") from None
    else:
        raise InvalidInputError(f"log_figure takes a matplotlib or plotly figure, not {type(figure).__name__}")


def write_image(image: Any, path: Path) -> None:
    """A PIL image (``save``) or a numpy array, H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA): integers
    from 0 to 255, or floats from 0 to 1, as MLflow takes them. Arrays are written as PNG without PIL."""
    if hasattr(image, "save") and hasattr(image, "mode"):
        image.save(path)
        return
    if not (hasattr(image, "shape") and hasattr(image, "dtype")):
        raise InvalidInputError(f"log_image takes a numpy array or a PIL image, not {type(image).__name__}")
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"a numpy image is written as PNG: name the file .png, not {path.name!r}")
    path.write_bytes(png_bytes(image))


def png_bytes(array: Any) -> bytes:
    import numpy as np

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise InvalidInputError(f"log_image: an image array is H x W, H x W x 3 or H x W x 4, not {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_IMAGE_PIXELS:
        raise InvalidInputError(f"log_image: {a.shape[0]} x {a.shape[1]} pixels is more than {MAX_IMAGE_PIXELS:,}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise InvalidInputError("log_image: a float image holds values from 0 to 1")
        a = np.round(a * 255)
    elif a.dtype.kind in "iub":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise InvalidInputError("log_image: an integer image holds values from 0 to 255")
    else:
        raise InvalidInputError(f"log_image: cannot make an image of {a.dtype} values")
    pixels = np.ascontiguousarray(a.astype(np.uint8))
    height, width = pixels.shape[:2]
    color = 0 if pixels.ndim == 2 else {3: 2, 4: 6}[pixels.shape[2]]  # grey, RGB, RGBA
    rows = pixels.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), rows]).tobytes()  # filter 0 on every row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image_name(artifact_file: str | None, key: str | None, step: int | None) -> str:
    if artifact_file:
        return artifact_file
    if key:
        return f"images/{key}/step-{step or 0}.png"
    raise InvalidInputError("log_image needs artifact_file (e.g. 'sample.png'), or key and step")


def log_input(svc: Services, run_id: str, dataset: Any, context: str | None,
              tags: Mapping[str, Any] | None) -> Digest:
    """Record ``dataset`` among the run's inputs by its digest over every byte, under its name; ``context``
    (``"training"``, ``"eval"``) and ``tags`` go on the run as ``input.NAME.KEY`` tags.

    ``dataset``: what ``shipyard.data.from_pandas``/``from_numpy`` returns, a numpy array, a pandas DataFrame,
    or a path to a file or folder (stored in the content-addressed store, the digest ``shipyard data add`` gives;
    named by its path in the project, or its file name outside it).
    """
    from shipyard.interfaces.api.data import Dataset, dataset_of

    if isinstance(dataset, str | os.PathLike):
        path = Path(dataset)
        if not path.exists():
            raise InvalidInputError(f"log_input: no such file or folder {os.fspath(dataset)!r}")
        name = _input_name(path, svc.settings.project_root)
        digest = svc.tracker.record_input_path(run_id, path, name)
    else:
        chosen: Dataset = dataset if isinstance(dataset, Dataset) else dataset_of(dataset)
        name, digest = chosen.name, Digest.parse(chosen.digest)
        known = svc.tracker.get_run(run_id).inputs.get(name)
        if known is not None and known != digest:
            raise InvalidInputError(f"log_input: this run already read another dataset named {name!r}: give each "
                                    "dataset its own name (from_pandas(df, name=...))")
        if known is None:
            svc.tracker.record_inputs(run_id, {name: digest})
    extra = {**({"context": context} if context else {}), **dict(tags or {})}
    if extra:
        svc.tracker.set_tags(run_id, {f"input.{name}.{k}": v for k, v in extra.items()})
    return digest


def _input_name(path: Path, root: Path) -> str:
    """A path's name among a run's inputs: relative to the project (as a stage's), else its file name."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().name


def frame_columns(runs: Sequence[Any]) -> dict[str, list[Any]]:
    """MLflow's ``search_runs`` DataFrame, as columns: ``run_id``, ``experiment_id``, ``status``, ``start_time``,
    ``end_time`` (UTC datetimes, made by the caller), ``metrics.*``, ``params.*``, ``tags.*`` (with MLflow's
    ``tags.mlflow.runName`` and, for a nested run, ``tags.mlflow.parentRunId``); absent values are None."""
    cols: dict[str, list[Any]] = {k: [] for k in ("run_id", "experiment_id", "status", "start_time", "end_time")}
    extra: dict[str, dict[int, Any]] = {}
    for i, run in enumerate(runs):
        cols["run_id"].append(run.id)
        cols["experiment_id"].append(run.experiment)
        cols["status"].append(run.status.value.upper())
        cols["start_time"].append(run.start_time)
        cols["end_time"].append(run.end_time)
        tags = {**run.tags, "mlflow.runName": run.name,
                **({"mlflow.parentRunId": run.parent_id} if run.parent_id else {})}
        for prefix, values in (("metrics", run.metrics), ("params", run.params), ("tags", tags)):
            for key, value in values.items():
                extra.setdefault(f"{prefix}.{key}", {})[i] = value
    for column in sorted(extra, key=lambda c: ("metrics", "params", "tags").index(c.split(".")[0])):
        cols[column] = [extra[column].get(i) for i in range(len(runs))]
    return cols
