"""``shipyard.live.Live``: a drop-in for the dvclive calls pipelines use, writing the files dvclive writes.

    from shipyard.live import Live          # was: from dvclive import Live

    with Live("eval") as live:
        live.log_params({"lr": 0.1})
        for epoch in range(10):
            live.log_metric("train/loss", loss)
            live.next_step()
        live.log_sklearn_plot("roc", y_true, y_score, name="roc/test.json")
        live.log_image("importance.png", fig)

Files, as dvclive 3 lays them out (so ``shipyard plots show eval`` and ``metrics diff`` read them):
``DIR/metrics.json`` (the latest value of each metric, and ``step``), ``DIR/params.yaml``,
``DIR/plots/metrics/NAME.tsv`` (``step`` and the value, one row a step), ``DIR/plots/sklearn/NAME.json``
(``{"roc": [{fpr, tpr, threshold}]}``, ``{"precision_recall": [...]}``, ``{"calibration": [...]}``,
``{"det": [...]}``, or a confusion matrix's ``[{actual, predicted}]``), ``DIR/plots/custom/NAME.json``,
``DIR/plots/images/NAME``.

Inside a ``shipyard run`` stage (``SHIPYARD_RUN_ID`` set), or while a ``shipyard.start_run()`` run is current,
params, metrics (each step) and artifacts are also recorded on that run. It never touches git or DVC:
DVC-only arguments (``save_dvc_exp``, ``dvcyaml``, ``cache_images``, ``exp_name``, ``report``, ...) are
accepted and ignored, and no ``dvc.yaml`` is written (declare plots in ``shipyard.yaml``). A recording that
fails never stops the training: it is logged once as a warning. numpy, scikit-learn, PIL and matplotlib are
imported only by the calls that need them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

__all__ = ["Live"]

log = logging.getLogger("shipyard.live")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
SKLEARN_KINDS = ("roc", "precision_recall", "det", "calibration", "confusion_matrix")
_SUBFOLDERS = ("metrics", "images", "sklearn", "custom")
_RUN_VAR = "SHIPYARD_RUN_ID"
_FLUENT = "shipyard.interfaces.api.fluent"


class Live:
    """Logs params, metrics, plots and images into ``dir`` as dvclive does (see the module's docstring)."""

    def __init__(self, dir: str | os.PathLike[str] = "dvclive", resume: bool = False,
                 report: str | None = None, save_dvc_exp: bool = True, dvcyaml: Any = "dvc.yaml",
                 cache_images: bool = False, exp_name: str | None = None, exp_message: str | None = None,
                 monitor_system: bool = False, **ignored: Any) -> None:
        self._dir = os.fspath(dir)
        self._base = _base_for(self._dir)
        self.summary: dict[str, Any] = {}
        self._step: int | None = None
        self._params: dict[str, Any] = {}
        self._metrics: set[str] = set()
        self._pending: list[tuple[str, float, int]] = []
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._said: set[str] = set()
        self._ended = False
        self._inside_with = False
        self._folder(self.dir)
        if resume or os.environ.get("DVCLIVE_RESUME", "").lower() in ("1", "true", "yes"):
            self._resume()
        else:
            self._cleanup()

    # -- where things go, as dvclive names them -------------------------------------------------------------------
    @property
    def dir(self) -> str:
        return self._dir

    @property
    def plots_dir(self) -> str:
        return os.path.join(self.dir, "plots")

    @property
    def metrics_file(self) -> str:
        return os.path.join(self.dir, "metrics.json")

    @property
    def params_file(self) -> str:
        return os.path.join(self.dir, "params.yaml")

    @property
    def step(self) -> int:
        return self._step or 0

    @step.setter
    def step(self, value: int) -> None:
        self._step = int(value)

    # -- confinement: nothing below the working folder is reached through a symbolic link -----------------------
    def _folder(self, path: str) -> str:
        """``path`` as a real folder (created if missing), with no symbolic link between the base and it."""
        _walk(self._base, path, create=True, last_is_folder=True)
        return path

    def _target(self, path: str) -> str:
        """``path``, a file to write: its folders are created as real folders; no link on the way or at the end."""
        _walk(self._base, path, create=True, last_is_folder=False)
        return path

    def _cleanup(self) -> None:
        for sub in _SUBFOLDERS:
            path = os.path.join(self.plots_dir, sub)
            if _walk(self._base, path, create=False, last_is_folder=True):
                shutil.rmtree(path)  # fd-based on POSIX: a link inside is removed, never followed
        for name in (self.metrics_file, self.params_file, os.path.join(self.dir, "report.html"),
                     os.path.join(self.dir, "report.md")):
            if _walk(self._base, name, create=False, last_is_folder=False) and os.path.isfile(name):
                os.remove(name)

    def _resume(self) -> None:
        try:
            with _read(self.metrics_file) as f:
                self.summary = json.loads(f.read(8 * 1024 * 1024))
        except (OSError, ValueError):
            self.summary = {}
        if not isinstance(self.summary, dict):
            self.summary = {}
        step = self.summary.get("step", 0)
        self._step = step + 1 if isinstance(step, int) and not isinstance(step, bool) and step > 0 else 0
        try:
            import yaml

            with _read(self.params_file) as f:
                params = yaml.safe_load(f.read(8 * 1024 * 1024))
            self._params = params if isinstance(params, dict) else {}
        except (OSError, ValueError, ImportError):
            self._params = {}

    # -- params -------------------------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """Merge ``params`` into ``DIR/params.yaml`` (and the run's params)."""
        if not isinstance(params, dict):
            raise TypeError(f"log_params takes a dict of params, not {type(params).__name__}")
        self._params.update({str(k): _plain(v) for k, v in params.items()})
        self._write_params()
        self._record("params", {k: self._params[str(k)] for k in params})

    def log_param(self, name: str, val: Any) -> None:
        self.log_params({name: val})

    def _write_params(self) -> None:
        import yaml

        _write(self._target(self.params_file), yaml.safe_dump(self._params, sort_keys=False, allow_unicode=True))

    # -- metrics ------------------------------------------------------------------------------------------------
    def log_metric(self, name: str, val: float | str, timestamp: bool = False, plot: bool = True) -> None:
        """The value of metric ``name`` at the current step: a row of ``DIR/plots/metrics/NAME.tsv`` (unless
        ``plot`` is False) and the latest value in ``DIR/metrics.json``."""
        name = _name(name, "metric")
        value = _scalar(val, name)
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # dvclive writes NaN and infinities as text
        if plot:
            path = self._target(os.path.join(self.plots_dir, "metrics", name + ".tsv"))
            header = (["timestamp"] if timestamp else []) + ["step", os.path.basename(name)]
            row = ([str(_now_ms())] if timestamp else []) + [str(self.step), _cell(value)]
            fresh = not os.path.exists(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            with open(fd, "a", encoding="utf-8", newline="") as f:
                if fresh:
                    f.write("\t".join(header) + "\n")
                f.write("\t".join(row) + "\n")
        node = self.summary
        parts = name.split("/")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
        self._metrics.add(name)
        if isinstance(value, int | float):
            self._pending.append((name.replace("/", "."), float(value), self.step))

    def next_step(self) -> None:
        """End the current step: write the summary, record the step's metrics on the run, and count one up."""
        if self._step is None:
            self._step = 0
        self.make_summary()
        self.step = self.step + 1

    def make_summary(self) -> None:
        """Write ``DIR/metrics.json``: the latest value of each metric, and the step when steps are used."""
        if self._step is not None:
            self.summary["step"] = self.step
        _write(self._target(self.metrics_file), json.dumps(self.summary, indent=4, default=_plain))
        self._flush()

    # -- plots and images ----------------------------------------------------------------------------------------
    def log_plot(self, name: str, datapoints: Any, x: str, y: str | list[str], template: str | None = "linear",
                 title: str | None = None, x_label: str | None = None, y_label: str | None = None) -> None:
        """``datapoints`` (a list of dicts, a pandas DataFrame or a numpy record array) to
        ``DIR/plots/custom/NAME.json``; declare it in shipyard.yaml's plots with ``x``, ``y`` and ``template``
        to draw it so."""
        records = _records(datapoints)
        missing = [f for f in ([x] + (y if isinstance(y, list) else [y])) if records and f not in records[0]]
        if missing:
            raise ValueError(f"log_plot {name!r}: the datapoints have no field {missing[0]!r}")
        name = _name(name, "plot").removesuffix(".json")
        path = self._target(os.path.join(self.plots_dir, "custom", name + ".json"))
        _write(path, json.dumps(records, indent=4, default=_plain))

    def log_sklearn_plot(self, kind: str, labels: Any, predictions: Any, name: str | None = None,
                         title: str | None = None, x_label: str | None = None, y_label: str | None = None,
                         normalized: bool | None = None, **kwargs: Any) -> None:
        """A scikit-learn plot's data to ``DIR/plots/sklearn/NAME.json``, as dvclive writes it: ``roc``,
        ``precision_recall``, ``det``, ``calibration`` (probabilities; scikit-learn computes the curve) or
        ``confusion_matrix`` (predicted labels)."""
        if kind not in SKLEARN_KINDS:
            raise ValueError(f"log_sklearn_plot: kind {kind!r} is not one of {', '.join(SKLEARN_KINDS)}")
        name = _name(name or kind, "plot").removesuffix(".json")
        if kind == "confusion_matrix":
            body: Any = [{"actual": str(_plain(a)), "predicted": str(_plain(p))}
                         for a, p in zip(_list(labels), _list(predictions), strict=False)]
        else:
            body = _curve(kind, labels, predictions, kwargs)
        path = self._target(os.path.join(self.plots_dir, "sklearn", name + ".json"))
        _write(path, json.dumps(body, indent=4, default=_plain))

    def log_image(self, name: str, val: Any) -> None:
        """An image to ``DIR/plots/images/NAME``: a path to an image file, a PIL image, a matplotlib figure, or a
        numpy array (PIL converts it)."""
        if isinstance(val, str | os.PathLike):
            source = Path(val)
            if not Path(name).suffix and source.suffix.lower() in IMAGE_SUFFIXES:
                name = name + source.suffix.lower()
        name = _name(name, "image")
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"log_image: {name!r} should end with one of {', '.join(IMAGE_SUFFIXES)}")
        path = self._target(os.path.join(self.plots_dir, "images", name))
        if isinstance(val, str | os.PathLike):
            if Path(val).suffix.lower() == Path(name).suffix.lower():
                shutil.copyfile(val, path)
                return
            from PIL import Image as PILImage  # type: ignore[import-not-found,unused-ignore]

            with PILImage.open(val) as opened:
                opened.save(path)
        elif hasattr(val, "savefig"):  # a matplotlib figure
            val.savefig(path)
        elif hasattr(val, "save") and hasattr(val, "mode"):  # a PIL image
            val.save(path)
        elif type(val).__module__ == "numpy":
            from PIL import Image as PILImage  # type: ignore[import-not-found,unused-ignore]

            PILImage.fromarray(val).save(path)
        else:
            raise TypeError(f"log_image: {type(val).__name__} is not an image (a path, a PIL image, a matplotlib "
                            "figure or a numpy array)")

    # -- artifacts ----------------------------------------------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike[str], type: str | None = None,
                     name: str | None = None, desc: str | None = None, labels: list[str] | None = None,
                     meta: dict[str, Any] | None = None, copy: bool = False, cache: bool = True) -> None:
        """Note the file or folder ``path`` as an artifact of the run (a tag ``live.artifact.NAME`` holding its
        path, type, description and labels); ``copy`` copies it into ``DIR/artifacts/`` first. Nothing is
        cached or pushed here: declare the file a stage output, and a model in shipyard.yaml's ``models:``."""
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"log_artifact: {path} does not exist")
        if copy:
            target = Path(self._target(os.path.join(self.dir, "artifacts", source.name)))
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)
            source = target
        key = _name(name or source.stem, "artifact").replace("/", ".")
        entry = {"path": source.as_posix(), **({"type": type} if type else {}), **({"desc": desc} if desc else {}),
                 **({"labels": list(labels)} if labels else {}), **({"meta": meta} if meta else {})}
        self._artifacts[key] = entry
        self._record("tags", {f"live.artifact.{key}": json.dumps(entry, sort_keys=True, default=str)})

    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        return dict(self._artifacts)

    # -- the end ------------------------------------------------------------------------------------------------
    def end(self) -> None:
        """Write the summary and record what is left on the run; a second call does nothing, and neither does one
        inside ``with Live() as live:`` (the block's end ends it)."""
        if self._ended or self._inside_with:  # dvclive's: inside `with Live()`, the block's end ends it
            return
        if "step" in self.summary:  # a next_step() just before: the last step stays the one written
            self._step = self.summary["step"]
        self.make_summary()
        self._ended = True

    def __enter__(self) -> Live:
        self._inside_with = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._inside_with = False
        self.end()

    # dvclive's methods that only matter to DVC or its Studio: accepted, nothing done
    def make_dvcyaml(self) -> None:
        return None

    def make_report(self) -> None:
        return None

    def sync(self) -> None:
        self.make_summary()

    # -- the run ------------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._record("metrics", pending)

    def _record(self, what: str, values: Any) -> None:
        """Record ``values`` on the current Shipyard run, if there is one; a failure is a warning, once."""
        if not values or (_RUN_VAR not in os.environ and _FLUENT not in sys.modules):
            return
        try:
            from shipyard.interfaces.api import fluent

            run = fluent.active_run()
            if run is None:
                return
            if what == "params":  # one by one: a param the runner recorded with another value spoils no other
                failed = None
                for k, v in values.items():
                    try:
                        run.log_param(k, _param_text(v))
                    except Exception as exc:  # said once below; the training goes on
                        failed = exc
                if failed is not None:
                    raise failed
            elif what == "metrics":
                run.client.log_batch(run.id, values)
            else:
                run.set_tags(values)
        except Exception as exc:  # the training goes on: what the files hold is not lost
            said = f"{what}: {type(exc).__name__}"
            if said not in self._said:
                self._said.add(said)
                log.warning("shipyard.live: could not record %s on the run: %s", what,
                            " ".join(str(exc).split())[:300])


# -- helpers ---------------------------------------------------------------------------------------------------------


def _name(name: Any, what: str) -> str:
    """A file name below the folder: relative, no ``..``, no empty part."""
    text = os.fspath(name) if isinstance(name, str | os.PathLike) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a {what} name should be a non-empty string, not {name!r}")
    parts = text.replace("\\", "/").strip("/").split("/")
    if text.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in text or len(text) > 1024:
        raise ValueError(f"{what} name {text[:80]!r} must stay inside the Live folder: a relative name without "
                         "'..'")
    return "/".join(parts)


def _scalar(val: Any, name: str) -> float | int | str:
    if isinstance(val, bool):
        return int(val)
    if isinstance(val, int | float):
        return val
    if isinstance(val, str):
        return val
    if type(val).__module__ == "numpy" and hasattr(val, "item"):
        return _scalar(val.item(), name)
    raise TypeError(f"log_metric {name!r}: {type(val).__name__} is not a number or a string")


def _cell(value: Any) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as Python values (json and yaml take them then)."""
    if type(v).__module__ == "numpy":
        return v.tolist() if hasattr(v, "tolist") else v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _param_text(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v, sort_keys=True, default=str)


def _list(values: Any) -> list[Any]:
    return list(values.tolist() if hasattr(values, "tolist") else values)


def _records(datapoints: Any) -> list[dict[str, Any]]:
    if hasattr(datapoints, "to_dict") and hasattr(datapoints, "columns"):  # a pandas DataFrame
        datapoints = datapoints.to_dict(orient="records")
    elif type(datapoints).__module__ == "numpy" and getattr(datapoints.dtype, "names", None):
        names = datapoints.dtype.names
        datapoints = [dict(zip(names, row, strict=False)) for row in datapoints.tolist()]
    if not isinstance(datapoints, list) or not all(isinstance(r, dict) for r in datapoints):
        raise TypeError("log_plot takes a list of dicts, a pandas DataFrame or a numpy record array")
    return [{str(k): _plain(v) for k, v in r.items()} for r in datapoints]


def _curve(kind: str, labels: Any, predictions: Any, kwargs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    try:
        from sklearn import calibration, metrics  # type: ignore[import-untyped,unused-ignore]
    except ModuleNotFoundError as exc:
        from shipyard.errors import MissingExtraError

        raise MissingExtraError(f"log_sklearn_plot({kind!r})", "sklearn") from exc
    if kind == "roc":
        fpr, tpr, thresholds = metrics.roc_curve(y_true=labels, y_score=predictions, **kwargs)
        rows = [{"fpr": a, "tpr": b, "threshold": t} for a, b, t in zip(fpr, tpr, thresholds, strict=False)]
    elif kind == "precision_recall":
        precision, recall, thresholds = metrics.precision_recall_curve(labels, predictions, **kwargs)
        rows = [{"precision": p, "recall": r, "threshold": t}
                for p, r, t in zip(precision, recall, thresholds, strict=False)]
    elif kind == "det":
        fpr, fnr, thresholds = metrics.det_curve(y_true=labels, y_score=predictions, **kwargs)
        rows = [{"fpr": a, "fnr": b, "threshold": t} for a, b, t in zip(fpr, fnr, thresholds, strict=False)]
    else:
        prob_true, prob_pred = calibration.calibration_curve(labels, predictions, **kwargs)
        rows = [{"prob_true": a, "prob_pred": b} for a, b in zip(prob_true, prob_pred, strict=False)]
    return {kind: [{k: _json_number(v) for k, v in row.items()} for row in rows]}


def _json_number(v: Any) -> float:
    return float(v)  # an infinite threshold (the ROC's first) is written as dvclive writes it: Infinity


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (its folder checked by ``_target``) through a temp file and a rename: a reader
    sees the old file or the new one, and the rename replaces a name, never writing through a link."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _read(path: str) -> Any:
    """``path`` opened for reading, never through a link (O_NOFOLLOW: an OSError, read as "no file")."""
    return open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8")


def _base_for(folder: str) -> str:
    """The folder Live's files stay below: the working folder, or the project (``DVC_ROOT``, set by ``shipyard
    run``) when the stage runs in a subfolder. A Live folder elsewhere is refused: whatever it holds is removed."""
    from shipyard.errors import InvalidInputError

    cwd = os.path.abspath(os.getcwd())
    target = os.path.normpath(os.path.join(cwd, folder))
    bases = [cwd] + [os.path.normpath(r) for r in [os.environ.get("DVC_ROOT", "")] if os.path.isabs(r)]
    for base in bases:
        if target == base or target.startswith(base.rstrip("/") + "/"):
            return base
    raise InvalidInputError(f"Live folder {folder!r} is outside the working folder {cwd}: Live removes and rewrites "
                            "what its folder holds, so it stays inside the working folder; give a folder in it")


def _walk(base: str, path: str, create: bool, last_is_folder: bool) -> bool:
    """Check each component of ``path`` (below ``base``) with ``lstat``: a symbolic link anywhere, or a file where
    a folder must be, is refused in one line before anything is removed or written (a committed link such as
    ``dvclive/plots -> ~`` would otherwise lead the writes and removals out of the project). Missing folders are
    created when ``create``; returns whether ``path`` exists."""
    from shipyard.errors import InvalidInputError

    rel = os.path.relpath(os.path.normpath(os.path.join(os.getcwd(), path)), base)  # path: as given, from the cwd
    parts = [] if rel == "." else rel.split(os.sep)
    if any(p == ".." for p in parts):
        raise InvalidInputError(f"{path} is outside the working folder {base}; Live writes only inside it")
    done = base
    for i, part in enumerate(parts):
        done = os.path.join(done, part)
        folder = last_is_folder or i < len(parts) - 1
        try:
            st = os.lstat(done)
        except FileNotFoundError:
            if not create:
                return False
            if not folder:
                return False
            with _suppress_exists():
                os.mkdir(done)
            st = os.lstat(done)
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInputError(f"{os.path.relpath(done, base)} is a symbolic link; shipyard.live never removes "
                                    "or writes through links (one could lead outside the project): replace it with a "
                                    "real folder and run again")
        if folder and not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{os.path.relpath(done, base)} is a file where Live needs a folder; move it away "
                                    "and run again")
    return True


def _suppress_exists() -> Any:
    import contextlib

    return contextlib.suppress(FileExistsError)
