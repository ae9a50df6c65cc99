"""Plot definitions as DVC's ``dvc.yaml`` writes them, read from ``Project.plots``.

An entry is one of:

- a path: a data file (JSON, YAML, CSV, TSV), an image (PNG, JPEG, SVG, GIF), or a folder of them;
- ``{path: {x, y, template, title, x_label, y_label}}``: a data file (or folder) with its options;
- ``{id: {x: FIELD | {FILE: FIELD}, y: {FILE: FIELD | [FIELDS]}, template, ...}}``: a plot of fields drawn from
  one or more files, named by ``id`` (an id is not a path when its ``y`` is a mapping of files to fields).

As in DVC, ``template`` defaults to ``linear``, ``x`` to the row's index (named ``step``, replacing a ``step`` field
the data may have) and ``y`` to the last field of the data. Stage entries may also say ``cache``, ``persist`` and
``desc``: they are the output's options, not the plot's, and are ignored here.

Pure: nothing here reads a file. ``adapters.plots`` expands folders, tells images from data and loads both.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shipyard.core.workspace.paths import declared_path
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from shipyard.core.project.model import Project

TEMPLATES = ("linear", "simple", "scatter", "scatter_jitter", "smooth", "confusion", "confusion_normalized",
             "bar_horizontal", "bar_horizontal_sorted")  # `dvc plots templates` of DVC 3.67
DEFAULT_TEMPLATE = "linear"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
DATA_SUFFIXES = (".json", ".yaml", ".yml", ".csv", ".tsv")
OPTIONS = frozenset({"x", "y", "template", "title", "x_label", "y_label"})
OUTPUT_OPTIONS = frozenset({"cache", "persist", "desc", "header"})  # the output's, not the plot's
MAX_PLOTS = 1000  # definitions in one project
MAX_FIELDS = 100  # y fields of one plot
MAX_TEXT = 200  # characters of a field name, a title, an id


@dataclass(frozen=True)
class Series:
    """One line (or set of points) of a plot: field ``y`` of file ``file`` against its field ``x``.

    ``x`` None: the row's index (DVC's ``step``); ``y`` None: the last field of the data."""

    file: str
    x: str | None = None
    y: str | None = None


@dataclass(frozen=True)
class PlotDef:
    """One plot: an id, its template and texts, and the series drawn in it.

    ``path_id``: the id names the data (a file or a folder of files, each plotted alone with these options);
    otherwise the series name their files."""

    id: str
    series: tuple[Series, ...]
    template: str = DEFAULT_TEMPLATE
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    path_id: bool = True

    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.file for s in self.series))

    def for_file(self, file: str, plot_id: str | None = None) -> PlotDef:
        """This plot's options for ``file`` (one file of a folder): the id becomes the file's path."""
        return replace(self, id=plot_id or file, series=tuple(replace(s, file=file) for s in self.series))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "template": self.template, "title": self.title, "x_label": self.x_label,
                "y_label": self.y_label, "series": [{"file": s.file, "x": s.x, "y": s.y} for s in self.series]}


@dataclass(frozen=True)
class Overrides:
    """Options given on the command line (``-t``, ``-x``, ``-y``, ``--title``, ...): they win over the yaml's."""

    template: str | None = None
    x: str | None = None
    y: str | None = None
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def apply(self, plot: PlotDef) -> PlotDef:
        if self.template is not None:
            check_template(self.template, "--template")
        series = plot.series
        if self.x is not None or self.y is not None:
            series = tuple(replace(s, x=self.x if self.x is not None else s.x,
                                   y=self.y if self.y is not None else s.y) for s in series)
        return replace(plot, series=series, template=self.template or plot.template,
                       title=self.title if self.title is not None else plot.title,
                       x_label=self.x_label if self.x_label is not None else plot.x_label,
                       y_label=self.y_label if self.y_label is not None else plot.y_label)


def check_template(name: str, where: str) -> str:
    if name not in TEMPLATES:
        raise InvalidInputError(f"{where}: template {str(name)[:40]!r} is not one Shipyard draws: use one of "
                                f"{', '.join(TEMPLATES)} (custom Vega-Lite templates are not supported)")
    return name


def parse_plots(entries: Any, source: str = "shipyard.yaml plots", confine: bool = True) -> list[PlotDef]:
    """The plots ``entries`` (``Project.plots``) define, in order; a malformed entry raises InvalidInputError
    with one line naming the plot. ``confine`` False: paths are relative to a stage's wdir, and may climb out of
    it (``../plots/p.csv``); they are checked once rebased (``declared``)."""
    if entries is None:
        return []
    if not isinstance(entries, list | tuple):
        raise InvalidInputError(f"{source}: should be a list of paths or {{path or id: options}} entries, not "
                                f"{type(entries).__name__}")
    if len(entries) > MAX_PLOTS:
        raise InvalidInputError(f"{source}: {len(entries)} plots; at most {MAX_PLOTS} are read")
    plots: list[PlotDef] = []
    for entry in entries:
        plot = parse_entry(entry, source, confine)
        if plot not in plots:  # the same plot written twice (top-level and in its stage) is drawn once
            plots.append(plot)
    return plots


def parse_entry(entry: Any, source: str = "shipyard.yaml plots", confine: bool = True) -> PlotDef:
    """One plot entry: a path, or a one-key mapping ``{path or id: options}``."""
    if isinstance(entry, str):
        path = _path(entry, f"{source}: plot {_name(entry)}", confine)
        return PlotDef(path, (Series(path),))
    if not isinstance(entry, dict) or len(entry) != 1:
        raise InvalidInputError(f"{source}: a plot is a path or {{path or id: options}} with one key, not "
                                f"{_name(entry)}")
    (plot_id, options), = entry.items()
    if not isinstance(plot_id, str) or not plot_id.strip():
        raise InvalidInputError(f"{source}: a plot's id or path must be a non-empty string, not {_name(plot_id)}")
    where = f"{source}: plot {_name(plot_id)}"
    if len(plot_id) > 4096:
        raise InvalidInputError(f"{where}: the id is longer than 4096 characters")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInputError(f"{where}: its options should be a mapping (x, y, template, title, x_label, "
                                f"y_label), not {type(options).__name__}")
    unknown = sorted(str(k) for k in options if k not in OPTIONS | OUTPUT_OPTIONS)
    if unknown:
        raise InvalidInputError(f"{where}: unknown option {unknown[0][:40]!r}: a plot takes x, y, template, title, "
                                "x_label and y_label")
    template = options.get("template", DEFAULT_TEMPLATE)
    if not isinstance(template, str):
        raise InvalidInputError(f"{where}: template should be a name, not {_name(template)}")
    check_template(template, where)
    texts = {k: _text(options.get(k), f"{where}: {k}") for k in ("title", "x_label", "y_label")}
    y = options.get("y")
    x = options.get("x")
    if isinstance(y, dict):  # an id: the files are y's keys
        series = _series_of_files(y, x, where, confine)
        return PlotDef(plot_id, series, template, texts["title"], texts["x_label"], texts["y_label"], path_id=False)
    path = _path(plot_id, where, confine)
    ys = _fields(y, f"{where}: y") if y is not None else [None]
    if isinstance(x, dict):
        if len(x) != 1:
            raise InvalidInputError(f"{where}: x names a field of each file ({{FILE: FIELD}}), but this plot "
                                    "reads one file: give x as a field name")
        (xfile, xfield), = x.items()
        if _path(str(xfile), f"{where}: x", confine) != path:
            raise InvalidInputError(f"{where}: x reads {_name(xfile)}, which is not the plot's file {path}: give "
                                    "x as a field name")
        x = xfield
    xfield = _field(x, f"{where}: x") if x is not None else None
    return PlotDef(path, tuple(Series(path, xfield, f) for f in ys), template, texts["title"], texts["x_label"],
                   texts["y_label"])


def _series_of_files(y: dict[Any, Any], x: Any, where: str, confine: bool) -> tuple[Series, ...]:
    if not y:
        raise InvalidInputError(f"{where}: y is an empty mapping: name a file and its field(s), {{FILE: FIELD}}")
    if len(y) > MAX_FIELDS:
        raise InvalidInputError(f"{where}: y names {len(y)} files; at most {MAX_FIELDS}")
    xs: dict[str, str] = {}
    if isinstance(x, dict):
        for f, name in x.items():
            xs[_path(str(f), f"{where}: x", confine)] = _field(name, f"{where}: x of {_name(f)}")
    default_x = _field(x, f"{where}: x") if x is not None and not isinstance(x, dict) else None
    one_x = next(iter(xs.values())) if len(xs) == 1 else None
    series: list[Series] = []
    for f, fields in y.items():
        path = _path(str(f), f"{where}: y", confine)
        xf = xs.get(path, default_x if default_x is not None else one_x)
        for name in _fields(fields, f"{where}: y of {path}"):
            series.append(Series(path, xf, name))
    if len(series) > MAX_FIELDS:
        raise InvalidInputError(f"{where}: {len(series)} series; at most {MAX_FIELDS}")
    return tuple(series)


def _fields(value: Any, where: str) -> list[str | None]:
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidInputError(f"{where}: an empty list of fields")
        if len(value) > MAX_FIELDS:
            raise InvalidInputError(f"{where}: {len(value)} fields; at most {MAX_FIELDS}")
        return [_field(v, where) for v in value]
    return [_field(value, where)]


def _field(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidInputError(f"{where}: a field name should be a non-empty string of at most {MAX_TEXT} "
                                f"characters, not {_name(value)}")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or len(str(value)) > MAX_TEXT:
        raise InvalidInputError(f"{where} should be a text of at most {MAX_TEXT} characters, not {_name(value)}")
    return str(value)


def _path(path: str, where: str, confine: bool = True) -> str:
    if "\0" in path:
        raise InvalidInputError(f"{where}: the path holds a NUL character")
    if not path.strip() or len(path) > 4096:
        raise InvalidInputError(f"{where}: a path should be a non-empty string of at most 4096 characters")
    if not confine:
        return posixpath.normpath(path)
    try:
        return declared_path(path.rstrip("/") or path, "path")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def _name(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(entries: Any, confine: bool = True) -> None:
    """Raise ValueError (for pydantic) when a plot entry is malformed: shipyard.yaml's check (``confine`` False
    for a stage's plots, whose paths are relative to its wdir)."""
    try:
        parse_plots(entries, "plots", confine)
    except InvalidInputError as exc:
        raise ValueError(str(exc).removeprefix("plots: ")) from None  # the loader names the file, line and key


def select(plots: list[PlotDef], targets: list[str]) -> list[PlotDef]:
    """The plots ``targets`` name, as ``dvc plots show TARGETS`` picks them: a plot's id; a file a plot reads (a
    file inside a plot's folder: that file with the folder's options); or any other data file, image or folder of
    the project, drawn with the defaults (``collect`` draws a declared file of such a folder with its options).
    ``targets`` are project-relative paths or plot ids."""
    chosen: list[PlotDef] = []
    for target in targets:
        found = [p for p in plots if p.id == target]
        if not found:
            found = [p for p in plots if target in p.files()]
        if not found:
            found = [p.for_file(target) for p in plots if p.path_id and target.startswith(p.id + "/")]
        if not found:
            path = _path(target, f"plot {_name(target)}")
            found = [PlotDef(path, (Series(path),))]
        chosen.extend(p for p in found if p not in chosen)
    return chosen


def declared(project: Project) -> list[PlotDef]:
    """The plots a project declares: its top-level ``plots`` (paths relative to shipyard.yaml), then each stage's
    (paths relative to the stage's ``wdir``, as in dvc.yaml, rebased onto the project)."""
    entries = list(project.plots)
    stages = [(s.wdir, len(s.plots)) for s in project.stages.values()]
    own = sum(n for _, n in stages)
    if own > len(entries):  # not laid out as expected: every entry as written, relative to shipyard.yaml
        return parse_plots(entries)
    rebased = entries[:len(entries) - own]
    at = len(rebased)
    for wdir, n in stages:
        rebased.extend(_rebase(e, wdir) for e in entries[at:at + n])
        at += n
    return parse_plots(rebased)


def _rebase(entry: Any, wdir: str) -> Any:
    """A stage's plot entry with its path taken from ``wdir``."""
    if posixpath.normpath(wdir or ".") == ".":
        return entry
    if isinstance(entry, str):
        return posixpath.normpath(posixpath.join(wdir, entry))
    if isinstance(entry, dict) and len(entry) == 1:
        (path, options), = entry.items()
        if isinstance(path, str):
            return {posixpath.normpath(posixpath.join(wdir, path)): options}
    return entry
