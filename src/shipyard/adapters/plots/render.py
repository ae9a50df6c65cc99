"""The page of ``shipyard plots show`` and ``plots diff``: one self-contained HTML file drawn with plotly.

plotly's JavaScript is embedded once in the head and images are data URIs, so the page opens offline and a
Content-Security-Policy forbids it any request. Templates are DVC's: ``linear``, ``simple``, ``scatter``,
``smooth``, ``confusion``, ``confusion_normalized``, ``bar_horizontal``, ``bar_horizontal_sorted``. With several
revisions (``plots diff``) each revision is one color, and images sit side by side.

The page carries a generator marker in its head (adapters.html_page): it is written over an existing file only
when that file carries it too, so a page or a document of the user's is never replaced.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from shipyard.adapters import html_page
from shipyard.core.plots.data import Chart, Image, Page, confusion, smoothed
from shipyard.errors import InvalidInputError

GENERATOR = "shipyard plots"  # the marker in the page's head (adapters.html_page)
_CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:")
_CONFIG = {"displaylogo": False, "responsive": True}
_PALETTE = ("#1f77b4", "#e8590c", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c940d", "#d6336c", "#495057",
            "#e67700")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
_MARGIN = {"l": 60, "r": 20, "t": 60, "b": 60}
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0}
_LEGEND_ABOVE = 3  # legend entries that fit in one row above a chart, below its title


def check_target(path: Path) -> None:
    """Refuse ``path`` when it exists and is not a Shipyard plots page (a link, not a file, or no marker)."""
    html_page.check_target(path, "-o", GENERATOR, "Shipyard plots page")


def write_html(page: Page, path: Path, title: str) -> Path:
    """Render ``page`` and write it to ``path`` atomically (never over a file that is not a plots page)."""
    from shipyard.core.workspace.atomic import write_atomic

    check_target(path)
    text = render(page, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
    return path


def render(page: Page, title: str) -> str:
    """The page as HTML, plotly's JavaScript embedded."""
    revs = len(page.revs)
    charts = [_chart(c, page.revs, i) for i, c in enumerate(page.charts)]
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="revs">{"; ".join(_rev_badge(r, i, revs) for i, r in enumerate(page.revs))}</p>']
    if page.errors:
        items = "".join(f"<li>{html.escape(e)}</li>" for e in page.errors)
        body.append(f'<section class="errors"><h2>Not drawn</h2><ul>{items}</ul></section>')
    if charts:
        body.append(_grid(charts))
    if page.images:
        body.append(_images(page.images, page.revs))
    if not charts and not page.images:
        body.append('<p class="note">nothing to draw</p>')
    return html_page.document(GENERATOR, title, _CSS, "\n".join(body), "the plots page", "plots", csp=_CSP)


def _rev_badge(rev: str, i: int, revs: int) -> str:
    color = _PALETTE[i % len(_PALETTE)] if revs > 1 else "#212529"
    return f'<span class="rev" style="color:{color}">{html.escape(rev)}</span>'


def _chart(chart: Chart, revs: list[str], n: int) -> str:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    template = chart.plot.template
    if template.startswith("confusion"):
        return "".join(_confusion(chart, line_i, revs, n) for line_i in range(len(chart.lines)))
    fig = go.Figure()
    if template.startswith("bar_horizontal"):
        _bars(fig, chart, revs)
    else:
        _lines(fig, chart, revs)
    plot = chart.plot
    x_title = plot.x_label or _one({line.x_field for line in chart.lines})
    y_title = plot.y_label or _one({line.y_field for line in chart.lines})
    height, margin, legend = 400, _MARGIN, _LEGEND
    entries = len(chart.lines)
    if entries > _LEGEND_ABOVE:  # one row above the chart would wrap onto its title: one entry a row, below it
        extra = 40 + 20 * entries
        height, margin = height + extra, {**_MARGIN, "b": _MARGIN["b"] + extra}
        legend = {"orientation": "v", "yanchor": "top", "y": -60 / (400 - _MARGIN["t"] - _MARGIN["b"]),
                  "xanchor": "left", "x": 0.0}
    fig.update_layout(title=_text(plot.title or plot.id), height=height, margin=margin, legend=legend,
                      xaxis_title=_text(x_title), yaxis_title=_text(y_title), showlegend=True,
                      hovermode="closest")
    return _plot(fig, f"plot-{n}", template)


def _one(names: set[str]) -> str:
    return next(iter(names)) if len(names) == 1 else ""


def _style(chart: Chart, revs: list[str], i: int) -> dict[str, Any]:
    """A line's color and dash: by revision when there are several (each series its dash), else by series."""
    line = chart.lines[i]
    if len(revs) > 1:
        series = [(ln.file, ln.y_field) for ln in chart.lines if ln.rev == line.rev]
        k = series.index((line.file, line.y_field))
        return {"color": _PALETTE[revs.index(line.rev) % len(_PALETTE)], "dash": _DASHES[k % len(_DASHES)]}
    return {"color": _PALETTE[i % len(_PALETTE)], "dash": "solid"}


def _lines(fig: Any, chart: Chart, revs: list[str]) -> None:
    import plotly.graph_objects as go

    template = chart.plot.template
    mode = {"scatter": "markers", "scatter_jitter": "markers", "simple": "lines", "smooth": "lines"}.get(
        template, "lines+markers")
    for i, line in enumerate(chart.lines):
        style = _style(chart, revs, i)
        name = _text(line.name(chart, len(revs)))
        xs, ys = _xy(line.x, line.y)
        if template == "scatter_jitter":  # points on top of each other spread a little, the same on every render
            xs, ys = _jittered(xs, 0), _jittered(ys, 1)
        trace: dict[str, Any] = {"x": xs, "y": ys, "name": name, "mode": mode}
        if mode != "markers":
            trace["line"] = {"color": style["color"], "dash": style["dash"]}
        trace["marker"] = {"color": style["color"], "size": 4 if mode != "markers" else 7}
        if template == "smooth":
            fig.add_trace(go.Scatter(**{**trace, "opacity": 0.3, "showlegend": False, "hoverinfo": "skip"}))
            trace["y"] = smoothed(ys)
            trace["name"] = name
        fig.add_trace(go.Scatter(**trace))


def _jittered(values: list[Any], axis: int) -> list[Any]:
    """Numbers moved by up to 2% of their range (a point of a class, say, off its neighbours), the same every time."""
    numbers = [v for v in values if isinstance(v, float)]
    width = (max(numbers) - min(numbers) if numbers else 0.0) or 1.0
    return [v + (((k * 7919 + axis * 104729) % 1000) / 1000 - 0.5) * 0.04 * width if isinstance(v, float) else v
            for k, v in enumerate(values)]


def _xy(xs: tuple[Any, ...], ys: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """Points with an x, in the file's order; a text value on a numeric axis is a gap."""
    numeric_y = any(isinstance(v, float) for v in ys)
    return list(xs), [v if isinstance(v, float) or not numeric_y else None for v in ys]


def _bars(fig: Any, chart: Chart, revs: list[str]) -> None:
    import plotly.graph_objects as go

    for i, line in enumerate(chart.lines):
        # bar_horizontal: x holds the values, y the categories (dvclive's feature importance: x importance, y name)
        pairs = [(x, y) for x, y in zip(line.x, line.y, strict=False) if isinstance(x, float) and y is not None]
        if chart.plot.template == "bar_horizontal_sorted":
            pairs.sort(key=lambda p: p[0])
        style = _style(chart, revs, i)
        fig.add_trace(go.Bar(x=[p[0] for p in pairs], y=[_text(str(p[1]) if not isinstance(p[1], float)
                                                                else f"{p[1]:g}") for p in pairs],
                             orientation="h", name=_text(line.rev if len(revs) > 1 else line.x_field),
                             marker_color=style["color"]))
    fig.update_layout(barmode="group", yaxis_type="category")
    if chart.plot.template == "bar_horizontal_sorted":
        fig.update_layout(yaxis_categoryorder="total ascending")


def _confusion(chart: Chart, i: int, revs: list[str], n: int) -> str:
    import plotly.graph_objects as go

    line = chart.lines[i]
    normalized = chart.plot.template == "confusion_normalized"
    try:
        xs, ys, z = confusion(line, normalized)
    except InvalidInputError as exc:
        return f'<p class="note">{html.escape(f"{chart.plot.id}: {exc}")}</p>'
    fig = go.Figure(go.Heatmap(x=[_text(c) for c in xs], y=[_text(c) for c in ys], z=z, colorscale="Blues",
                               texttemplate="%{z:.2f}" if normalized else "%{z:d}", hoverongaps=False,
                               name=_text(line.rev)))
    plot = chart.plot
    several = len({ln.file for ln in chart.lines}) > 1
    named = [line.rev] if len(revs) > 1 else []
    suffix = f" ({', '.join([*named, line.file] if several else named)})" if several or named else ""
    fig.update_layout(title=_text((plot.title or plot.id) + suffix), height=420, margin=_MARGIN,
                      xaxis_title=_text(plot.x_label or line.x_field), yaxis_title=_text(plot.y_label or line.y_field),
                      xaxis_type="category", yaxis_type="category", yaxis_autorange="reversed")
    return _plot(fig, f"plot-{n}-{i}", plot.template)


def _images(images: list[Image], revs: list[str]) -> str:
    by_id: dict[str, list[Image]] = {}
    for image in images:
        by_id.setdefault(image.id, []).append(image)
    rows = []
    for image_id, shown in by_id.items():
        figures = "".join(
            f'<figure><img alt="{html.escape(image_id)}" src="data:{img.mime};base64,'
            f'{base64.b64encode(img.data).decode()}"><figcaption>{_rev_badge(img.rev, revs.index(img.rev), len(revs))}'
            f"</figcaption></figure>" for img in shown)
        rows.append(f'<div class="image-row"><h3>{html.escape(image_id)}</h3><div class="images">{figures}</div>'
                    "</div>")
    return "<section><h2>Images</h2>" + "".join(rows) + "</section>"


def _plot(fig: Any, div_id: str, template: str) -> str:
    inner = str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG))
    return f'<div class="cell" data-template="{html.escape(template)}">{inner}</div>'


def _text(value: str) -> str:
    """A name for plotly's text, which reads a few HTML tags: shown as written, never as markup."""
    return html.escape(value)


def _grid(parts: list[str]) -> str:
    return f'<section class="grid">{"".join(parts)}</section>'


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #212529; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; border-bottom: 1px solid #dee2e6; }
h3 { font-size: 1em; } .rev { font-weight: 600; } .note, .errors li { color: #868e96; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
.images { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 560px; max-height: 560px; border: 1px solid #e9ecef; }
figcaption { text-align: center; font-size: 0.9em; }
"""
