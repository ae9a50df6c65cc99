"""What a plot page draws, from the bytes of plot files: records parsed, series picked, images typed.

Pure: the bytes come in (``FileSource`` reads them: the workspace, or a git revision), charts come out. Every
file is untrusted: sizes, rows and fields are bounded, and a file that cannot be drawn is one line in
``Page.errors``, never an exception that stops the page.

Data files hold records: a JSON list of objects, or DVC's ``{"name": [objects]}`` (what dvclive writes for ROC
and precision-recall), the same in YAML, or CSV/TSV with a header row.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from shipyard.core.plots.spec import DATA_SUFFIXES, DEFAULT_TEMPLATE, IMAGE_SUFFIXES, PlotDef, Series
from shipyard.errors import ConfigError, InvalidInputError

MAX_DATA_BYTES = 8 * 1024 * 1024  # one data file
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # one image
MAX_PAGE_BYTES = 96 * 1024 * 1024  # all the images and data of one page
MAX_ROWS = 200_000  # records of one file
MAX_COLUMNS = 1000  # fields of a CSV or TSV file
MAX_CELLS = 2_000_000  # values of a CSV or TSV file
MAX_FILES = 1000  # files of a plot folder
MAX_CATEGORIES = 200  # classes of a confusion matrix
MAX_POINTS = 2_000_000  # points drawn on one page, all charts and lines together (the same file may be drawn by
# many plots and fields, so the file bounds alone do not bound what the page draws)
MAX_SERIES = 100  # lines of one chart (its y fields, times the revisions)
MAX_CHARTS = 500  # charts of one page
WORKSPACE = "workspace"
INDEX = "step"  # DVC's auto-generated x field, when a plot names none
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
        ".svg": "image/svg+xml"}

Value = float | str | None


class NoRecords(ValueError):
    """A data file that holds no list of records (a metrics summary, a params file): raised by ``parse_records``
    and caught by its caller here, which says so on the page or passes over the file (not a user-facing error)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: holds no list of records to plot (a list of objects, or {{\"name\": [objects]}})")


class FileSource(Protocol):
    """The files of one revision (or of the workspace), read-only and confined to the project."""

    name: str

    def read(self, rel: str, limit: int) -> bytes:
        """The bytes of project file ``rel``; FileNotFoundError when absent; InvalidInputError when larger than
        ``limit``, a link out of the project, or not a file."""
        ...

    def files_under(self, rel: str) -> list[str] | None:
        """The files below folder ``rel`` (project-relative, sorted), or None when ``rel`` is not a folder."""
        ...


@dataclass(frozen=True)
class Line:
    """One series of a chart as loaded: field ``y`` of ``file`` at revision ``rev`` against field ``x``."""

    rev: str
    file: str
    x_field: str
    y_field: str
    x: tuple[Value, ...]
    y: tuple[Value, ...]

    def name(self, chart: Chart, revs: int) -> str:
        """The legend's name of this line in ``chart``: its field, its file when the chart reads several, its
        revision when the page shows several."""
        parts = [self.rev] if revs > 1 else []
        if len({line.file for line in chart.lines}) > 1:
            parts.append(self.file)
        parts.append(self.y_field)
        return ": ".join(parts)


@dataclass(frozen=True)
class Chart:
    plot: PlotDef
    lines: tuple[Line, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.plot.to_dict(), "data": [
            {"rev": line.rev, "file": line.file, "x": line.x_field, "y": line.y_field, "xs": list(line.x),
             "ys": list(line.y)} for line in self.lines]}


@dataclass(frozen=True)
class Image:
    id: str
    rev: str
    mime: str
    data: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "rev": self.rev, "mime": self.mime, "bytes": len(self.data)}


@dataclass
class Page:
    """Everything one ``plots show`` or ``plots diff`` draws, and what it could not."""

    revs: list[str]
    charts: list[Chart] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    read_bytes: int = 0
    points: int = 0  # drawn so far (``MAX_POINTS``)

    def to_dict(self) -> dict[str, Any]:
        return {"revs": self.revs, "plots": [c.to_dict() for c in self.charts],
                "images": [i.to_dict() for i in self.images], "errors": self.errors}


def kind(path: str) -> str:
    """``image``, ``data`` or ``other``, by the file's suffix."""
    low = path.lower()
    if low.endswith(IMAGE_SUFFIXES):
        return "image"
    if low.endswith(DATA_SUFFIXES):
        return "data"
    return "other"


# -- collecting a page --------------------------------------------------------------------------------------------


def collect(plots: Sequence[PlotDef], sources: Sequence[FileSource], declared: Sequence[PlotDef] = ()) -> Page:
    """The charts and images of ``plots``, each drawn from every source (a revision): one line per revision.

    A file of a folder that ``declared`` names on its own is drawn with its own options; a plot is drawn once."""
    page = Page([s.name for s in sources])
    known = {p.id: p for p in declared if p.path_id}
    seen: set[PlotDef] = set()
    for plot in plots:
        for found in _expand(plot, sources, page):
            expanded = known.get(found.id, found) if found.id != plot.id else found
            if expanded in seen:
                continue
            seen.add(expanded)
            if expanded.path_id and kind(expanded.id) == "image":
                for source in sources:
                    _image(expanded.id, source, page)
                continue
            if len(page.charts) >= MAX_CHARTS:
                page.errors.append(f"{expanded.id}: too many charts ({len(page.charts) + 1} > {MAX_CHARTS}): show "
                                   "fewer plots at once")
                continue
            series = len(expanded.series) * len(sources)
            if series > MAX_SERIES:
                page.errors.append(f"{expanded.id}: too many series ({series} > {MAX_SERIES}): draw fewer fields "
                                   "or revisions in one plot")
                continue
            lines: list[Line] = []
            shown = expanded
            quiet = found.id != plot.id  # a folder's file holding no records (dvclive's metrics.json) is no plot
            try:
                for source in sources:
                    drawn, shown = _lines(expanded, source, page, quiet, sum(len(x.x) for x in lines))
                    lines.extend(drawn)
            except _TooMany as exc:
                page.errors.append(f"{expanded.id}: too many points ({exc.points} > {MAX_POINTS}): show fewer "
                                   "plots at once")
                continue
            if lines:
                page.points += sum(len(x.x) for x in lines)
                page.charts.append(Chart(shown, tuple(lines)))
    return page


class _TooMany(Exception):
    """The chart would take the page past ``MAX_POINTS``: it is not drawn (counted before its lines are built)."""

    def __init__(self, points: int) -> None:
        super().__init__(points)
        self.points = points


def _expand(plot: PlotDef, sources: Sequence[FileSource], page: Page) -> list[PlotDef]:
    """A folder plot becomes one plot per file in it (in any revision), with the folder's options."""
    if not plot.path_id:
        return [plot]
    files: dict[str, None] = {}
    folder = False
    for source in sources:
        try:
            under = source.files_under(plot.id)
        except InvalidInputError as exc:
            page.errors.append(f"{plot.id} ({source.name}): {exc}")
            continue
        if under is not None:
            folder = True
            files.update(dict.fromkeys(under))
    if not folder:
        return [plot]
    shown = [f for f in sorted(files) if kind(f) != "other"]
    if len(shown) > MAX_FILES:
        page.errors.append(f"{plot.id}: {len(shown)} files; the first {MAX_FILES} are drawn")
        shown = shown[:MAX_FILES]
    if not shown:
        page.errors.append(f"{plot.id}: the folder holds no data files (JSON, YAML, CSV, TSV) or images")
    return [plot.for_file(f) for f in shown]


def _image(path: str, source: FileSource, page: Page) -> None:
    try:
        raw = source.read(path, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        page.errors.append(f"{path} ({source.name}): not found")
        return
    except InvalidInputError as exc:
        page.errors.append(f"{path} ({source.name}): {exc}")
        return
    if not _room(page, len(raw), path):
        return
    mime = MIME[path[path.rfind("."):].lower()]
    if not _looks_like(raw, mime):
        page.errors.append(f"{path} ({source.name}): not a {mime.split('/')[1].split('+')[0].upper()} image")
        return
    page.images.append(Image(path, source.name, mime, raw))


def _looks_like(raw: bytes, mime: str) -> bool:
    if mime == "image/png":
        return raw.startswith(b"\x89PNG\r\n\x1a\n")
    if mime == "image/jpeg":
        return raw.startswith(b"\xff\xd8\xff")
    if mime == "image/gif":
        return raw.startswith((b"GIF87a", b"GIF89a"))
    return b"<svg" in raw[:4096]


def _room(page: Page, size: int, path: str) -> bool:
    if page.read_bytes + size > MAX_PAGE_BYTES:
        page.errors.append(f"{path}: left out: the page already holds {page.read_bytes // (1024 * 1024)} MiB "
                           f"(at most {MAX_PAGE_BYTES // (1024 * 1024)} MiB): show fewer plots at once")
        return False
    page.read_bytes += size
    return True


def _lines(plot: PlotDef, source: FileSource, page: Page, quiet: bool = False,
           before: int = 0) -> tuple[list[Line], PlotDef]:
    """The lines ``plot`` draws from ``source``, and the plot with the defaults its data implies; _TooMany before
    a line that would take the page (with ``before`` points of this chart already loaded) past ``MAX_POINTS``."""
    lines: list[Line] = []
    loaded: dict[str, tuple[list[dict[str, Any]], str | None] | None] = {}
    for series in plot.series:
        if series.file not in loaded:
            loaded[series.file] = _records(series.file, source, page, quiet)
    count = sum(len(got[0]) for got in (loaded[series.file] for series in plot.series) if got is not None)
    if page.points + before + count > MAX_POINTS:  # counted before any line is built
        raise _TooMany(page.points + before + count)
    shown = plot
    for i, series in enumerate(plot.series):
        got = loaded[series.file]
        if got is None:
            continue
        records, key = got
        used = series
        if plot.path_id:
            shown = infer(plot, records, key)
            used = shown.series[i]
        try:
            lines.append(pick(records, used, source.name))
        except InvalidInputError as exc:
            page.errors.append(f"{plot.id} ({source.name}): {exc}")
    return lines, shown


def _records(path: str, source: FileSource, page: Page,
             quiet: bool = False) -> tuple[list[dict[str, Any]], str | None] | None:
    if kind(path) != "data":
        page.errors.append(f"{path}: not a data file (JSON, YAML, CSV or TSV) or an image (PNG, JPEG, SVG, GIF)")
        return None
    try:
        raw = source.read(path, MAX_DATA_BYTES)
    except FileNotFoundError:
        page.errors.append(f"{path} ({source.name}): not found")
        return None
    except InvalidInputError as exc:
        page.errors.append(f"{path} ({source.name}): {exc}")
        return None
    if not _room(page, len(raw), path):
        return None
    try:
        records, key = parse_records(raw, path)
    except NoRecords:
        if not quiet:
            page.errors.append(f"{path} ({source.name}): holds no list of records to plot (a list of objects, or "
                               '{"name": [objects]})')
        return None
    except (InvalidInputError, ConfigError) as exc:
        page.errors.append(f"{path} ({source.name}): {str(exc).removeprefix(path + ': ')}")
        return None
    if not records:
        page.errors.append(f"{path} ({source.name}): no records to plot")
        return None
    return records, key


def parse_records(raw: bytes, path: str) -> tuple[list[dict[str, Any]], str | None]:
    """The records of data file ``path`` and, for DVC's ``{"name": [records]}``, the name."""
    from shipyard.core.boundedyaml import load_json, load_yaml

    low = path.lower()
    if low.endswith((".csv", ".tsv")):
        return _table(raw, path, "\t" if low.endswith(".tsv") else ","), None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text") from None
    body = load_json(text, path) if low.endswith(".json") else load_yaml(text, path)
    key = None
    if isinstance(body, dict):
        lists = [(k, v) for k, v in body.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if not lists:
            raise NoRecords(path)
        key, body = str(lists[0][0]), lists[0][1]
    if not isinstance(body, list):
        raise NoRecords(path)
    if len(body) > MAX_ROWS:
        raise InvalidInputError(f"{path}: {len(body)} records; at most {MAX_ROWS} are plotted")
    records = [r for r in body if isinstance(r, dict)]
    if len(records) != len(body):
        raise InvalidInputError(f"{path}: every record should be an object of fields")
    return records, key


def _table(raw: bytes, path: str, sep: str) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text") from None
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        header = next(rows, None)
        if not header:
            raise InvalidInputError(f"{path}: empty: a header row of field names is needed")
        if len(header) > MAX_COLUMNS:
            raise InvalidInputError(f"{path}: {len(header)} columns; at most {MAX_COLUMNS} are read")
        records = []
        for i, row in enumerate(rows):
            if i >= MAX_ROWS or (i + 1) * len(header) > MAX_CELLS:
                raise InvalidInputError(f"{path}: more than {i} rows of {len(header)} columns; at most {MAX_ROWS} "
                                        f"rows and {MAX_CELLS} values are plotted")
            if row:
                records.append(dict(zip(header, row[:len(header)], strict=False)))
    except csv.Error as exc:
        raise InvalidInputError(f"{path}: not valid {'TSV' if sep == chr(9) else 'CSV'}: {exc}") from None
    return records


# dvclive's files, drawn as dvclive's own dvc.yaml would declare them when the user's declares nothing
_DVCLIVE: dict[str, dict[str, str]] = {
    "roc": {"template": "simple", "x": "fpr", "y": "tpr", "title": "Receiver operating characteristic (ROC)",
            "x_label": "False Positive Rate", "y_label": "True Positive Rate"},
    "precision_recall": {"template": "simple", "x": "recall", "y": "precision", "title": "Precision-Recall Curve",
                         "x_label": "Recall", "y_label": "Precision"},
    "det": {"template": "simple", "x": "fpr", "y": "fnr", "title": "Detection error tradeoff (DET)",
            "x_label": "False Positive Rate", "y_label": "False Negative Rate"},
    "calibration": {"template": "simple", "x": "prob_pred", "y": "prob_true", "title": "Calibration Curve",
                    "x_label": "Mean Predicted Probability", "y_label": "Fraction of Positives"},
}


def infer(plot: PlotDef, records: list[dict[str, Any]], key: str | None) -> PlotDef:
    """``plot`` with dvclive's options when it declares none and its data is one of dvclive's sklearn plots
    (``{"roc": [...]}``, ``{"precision_recall": [...]}``, a confusion matrix's ``actual``/``predicted``)."""
    declared = plot.template != DEFAULT_TEMPLATE or any(s.x or s.y for s in plot.series) or plot.title
    if declared or not records:
        return plot
    fields = set(records[0])
    options = _DVCLIVE.get(key or "")
    if options is None and fields == {"actual", "predicted"}:
        options = {"template": "confusion", "x": "actual", "y": "predicted", "title": "Confusion Matrix",
                   "x_label": "True Label", "y_label": "Predicted Label"}
    if options is None or not {options["x"], options["y"]} <= fields:
        return plot
    return replace(plot, template=options["template"], title=options["title"], x_label=options["x_label"],
                   y_label=options["y_label"],
                   series=tuple(replace(s, x=options["x"], y=options["y"]) for s in plot.series))


def pick(records: list[dict[str, Any]], series: Series, rev: str) -> Line:
    """The values of ``series`` in ``records``: ``x`` (the row's index, named ``step``, when not named, as DVC)
    and ``y`` (the last field when not named)."""
    first = records[0]
    x_field = series.x or INDEX
    y_field = series.y
    if y_field is None:
        candidates = [k for k in first if k != x_field]
        if not candidates:
            raise InvalidInputError(f"{series.file}: no field to plot on y (fields: {_fields(first)})")
        y_field = str(candidates[-1])
    if y_field not in first:
        raise InvalidInputError(f"{series.file}: no field {y_field[:60]!r} to plot on y (fields: {_fields(first)})")
    if series.x is not None and series.x not in first:
        raise InvalidInputError(f"{series.file}: no field {series.x[:60]!r} to plot on x (fields: {_fields(first)})")
    xs: list[Value] = [float(i) for i in range(len(records))] if series.x is None else \
        [_value(r.get(x_field)) for r in records]
    ys = [_value(r.get(y_field)) for r in records]
    return Line(rev, series.file, x_field, y_field, tuple(xs), tuple(ys))


def _fields(record: dict[str, Any]) -> str:
    names = [str(k)[:40] for k in list(record)[:12]]
    return ", ".join(names) + (", ..." if len(record) > 12 else "") if names else "none"


def _value(v: Any) -> Value:
    """A number when it reads as one (a CSV cell is text), else short text; NaN and infinities are gaps."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v[:MAX_TEXT]
        return f if math.isfinite(f) else None
    if v is None:
        return None
    return str(v)[:MAX_TEXT]


MAX_TEXT = 200


# -- what templates compute ---------------------------------------------------------------------------------------


def confusion(line: Line, normalized: bool) -> tuple[list[str], list[str], list[list[float]]]:
    """The confusion matrix of ``line`` (x: actual, y: predicted), rows by actual class: its classes on x, on y,
    and the counts (shares of each actual class when ``normalized``)."""
    actual = ["" if v is None else _label(v) for v in line.x]
    predicted = ["" if v is None else _label(v) for v in line.y]
    classes = sorted(set(actual) | set(predicted), key=_class_order)
    if len(classes) > MAX_CATEGORIES:
        raise InvalidInputError(f"{len(classes)} classes; a confusion matrix draws at most {MAX_CATEGORIES}")
    index = {c: i for i, c in enumerate(classes)}
    counts = [[0.0] * len(classes) for _ in classes]
    for a, p in zip(actual, predicted, strict=False):
        counts[index[p]][index[a]] += 1
    if normalized:
        for col in range(len(classes)):
            total = sum(counts[row][col] for row in range(len(classes)))
            if total:
                for row in range(len(classes)):
                    counts[row][col] /= total
    return classes, classes, counts


def _label(v: float | str) -> str:
    return f"{v:g}" if isinstance(v, float) else v


def _class_order(c: str) -> tuple[int, float, str]:
    try:
        return 0, float(c), c
    except ValueError:
        return 1, 0.0, c


def smoothed(values: Sequence[Value], weight: float = 0.6) -> list[float | None]:
    """An exponential moving average of ``values`` (TensorBoard's smoothing); gaps and text stay gaps."""
    out: list[float | None] = []
    last: float | None = None
    for v in values:
        if not isinstance(v, float):
            out.append(None)
            continue
        last = v if last is None else last * weight + v * (1 - weight)
        out.append(last)
    return out
