"""The HTML report of ``shipyard monitor --html``: one self-contained page drawn with plotly.

plotly's JavaScript is embedded once in the page's head, so the report opens offline and sends no request.
Charts: per input feature the reference's share per bin against the period's (the same bins drift is measured
on); each feature's drift score over time with the threshold; the model's outputs, reference against current;
latency (p50/p99) and requests and errors over time; then the table ``shipyard monitor`` prints.

The page carries a generator marker in its head (adapters.html_page): a report is written over an existing file
only when that file carries it too, so a page or a document of the user's is never replaced.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.adapters import html_page
from shipyard.core.monitoring.drift import JS, FeatureDrift
from shipyard.core.monitoring.summary import MonitorReport, iso

GENERATOR = "shipyard monitor"  # the marker in the report's head (adapters.html_page)
_CONFIG = {"displaylogo": False, "responsive": True}
_REFERENCE, _CURRENT = "#7f8c9a", "#e8590c"


def check_target(path: Path) -> None:
    """Refuse ``path`` when it exists and is not a Shipyard report (a link, not a file, or no marker)."""
    html_page.check_target(path, "--html", GENERATOR, "Shipyard report")


def write_html(report: MonitorReport, path: Path) -> Path:
    """Render ``report`` and write it to ``path`` atomically (never over a file that is not a report)."""
    from shipyard.core.workspace.atomic import write_atomic

    check_target(path)
    write_atomic(path, render(report).encode())
    return path


def render(report: MonitorReport) -> str:
    """The report as one HTML page, plotly's JavaScript embedded."""
    scores = {(f.side, f.feature): f for f in report.features}
    sections = [
        _section("Features", _table(report.features)),
        _section("Drift over time", _drift_over_time(report)),
        _section("Reference against current, per feature",
                 _grid([_distribution(n, labels, ref, cur, scores.get(("inputs", n)))
                        for n, labels, ref, cur in report.distributions("inputs")]) or _note("no input features")),
        _section("Predictions, reference against current",
                 _grid([_distribution(n, labels, ref, cur, scores.get(("outputs", n)))
                        for n, labels, ref, cur in report.distributions("outputs")])
                 or _note("the reference profile holds no outputs: give log_model the model's answers on the "
                          "reference too")),
        _section("Latency and errors over time", _traffic(report)),
    ]
    title = f"Drift report: {report.ref}"
    body = f"<h1>{html.escape(title)}</h1>\n{_summary(report)}\n{''.join(sections)}"
    return html_page.document(GENERATOR, title, _CSS, body, "the HTML report", "monitor")


def _summary(report: MonitorReport) -> str:
    p50, p99 = report.latency()
    share = report.error_share()
    skipped = {k: v for k, v in report.skipped.to_dict().items() if v}
    items = [
        ("verdict", report.verdict),
        ("period", f"{iso(report.period.start)} to {iso(report.period.end)}"),
        ("reference", f"{report.baseline.profile[:19]} ({report.baseline.rows} rows)"),
        ("rows", f"{report.rows} in {len(report.windows)} windows"
                 + (f" ({report.payload_rows} counted from logged payloads)" if report.payload_rows else "")),
        ("requests", f"{len(report.requests)} logged"
                     + ("" if share is None else f", {share:.2%} errors")),
        ("latency", "-" if p50 is None or p99 is None else f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"),
        ("skipped", ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) or "nothing"),
        *(("note", n) for n in report.notes),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    return f'<table class="summary">{rows}</table>'


def _table(features: list[FeatureDrift]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("feature", "side", "statistic", "score", "verdict", "missing",
                                             "out of range", "unseen"))
    rows = "".join(
        f'<tr class="{html.escape(f.verdict.replace(" ", "-"))}"><td>{html.escape(f.feature)}</td>'
        f"<td>{f.side}</td><td>{f.statistic}</td><td>{_score(f.score)}</td><td>{html.escape(f.label)}</td>"
        f"<td>{f.missing}</td><td>{f.out_of_range}</td><td>{f.unseen}</td></tr>" for f in features)
    return f'<table class="features"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _drift_over_time(report: MonitorReport) -> str:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    buckets = report.drift_over_time()
    if not buckets:
        return _note("no drift windows in the period")
    fig = go.Figure()
    when = [_time((b.start + b.end) / 2) for b in buckets]
    names = [(f.side, f.feature, f.statistic) for f in buckets[0].features]
    for i, (side, name, statistic) in enumerate(names):
        fig.add_trace(go.Scatter(x=when, y=[_judged(b.features[i], report) for b in buckets], mode="lines+markers",
                                 connectgaps=True, name=_text(name if side == "inputs" else f"{name} (output)"),
                                 hovertemplate=f"{_text(name)}: %{{y:.4f}} {statistic}<extra></extra>"))
    statistics = {s for _, _, s in names}
    for statistic in sorted(statistics):
        limit = report.thresholds.js if statistic == JS else report.thresholds.psi
        fig.add_trace(go.Scatter(x=[when[0], when[-1]] if len(when) > 1 else when * 2, y=[limit, limit],
                                 mode="lines", name=f"{statistic} threshold {limit:g}",
                                 line={"dash": "dash", "color": "#c92a2a"}))
    fig.update_layout(height=380, margin=_MARGIN, yaxis_title="score (psi / js)", legend=_LEGEND)
    thin = sum(1 for b in buckets if b.rows < report.thresholds.min_rows)
    return _plot(fig, "drift-over-time") + (_note(f"{thin} of {len(buckets)} time spans held fewer than "
                                                  f"{report.thresholds.min_rows} rows: their scores are noise, "
                                                  "and are not drawn") if thin else "")


def _judged(drift: FeatureDrift, report: MonitorReport) -> float | None:
    """A bucket's score, or None (a gap) when the feature had too few rows there to mean anything."""
    return drift.score if drift.rows >= report.thresholds.min_rows else None


def _distribution(name: str, labels: list[str], reference: list[float], current: list[float],
                  scored: FeatureDrift | None) -> str:
    import plotly.graph_objects as go

    shown = [_text(label) for label in labels]
    fig = go.Figure([go.Bar(x=shown, y=reference, name="reference", marker_color=_REFERENCE),
                     go.Bar(x=shown, y=current, name="current", marker_color=_CURRENT)])
    verdict = "" if scored is None else f": {scored.statistic} {_score(scored.score)}, {scored.label}"
    fig.update_layout(title=_text(f"{name}{verdict}"), barmode="group", height=340, margin=_MARGIN,
                      yaxis_tickformat=".0%", yaxis_title="share of rows", legend=_LEGEND,
                      xaxis_tickangle=-30, xaxis_automargin=True)
    return _plot(fig, None)


def _traffic(report: MonitorReport) -> str:
    import plotly.graph_objects as go

    buckets = report.traffic_over_time()
    if not buckets:
        return _note("no request records in the period (serve with --log)")
    when = [_time((b.start + b.end) / 2) for b in buckets]
    latency = go.Figure([go.Scatter(x=when, y=[b.p50_ms for b in buckets], mode="lines+markers", name="p50"),
                         go.Scatter(x=when, y=[b.p99_ms for b in buckets], mode="lines+markers", name="p99")])
    latency.update_layout(title="Latency", height=320, margin=_MARGIN, yaxis_title="ms", legend=_LEGEND)
    errors = go.Figure([go.Bar(x=when, y=[b.requests for b in buckets], name="requests", marker_color=_REFERENCE),
                        go.Bar(x=when, y=[b.errors for b in buckets], name="errors (5xx, timeouts)",
                               marker_color="#c92a2a")])
    errors.update_layout(title="Requests and errors", barmode="group", height=320, margin=_MARGIN,
                         legend=_LEGEND)
    return _grid([_plot(latency, "latency"), _plot(errors, "errors")])


_MARGIN = {"l": 60, "r": 20, "t": 60, "b": 60}
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0}


def _plot(fig: Any, div_id: str | None) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG))


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _text(value: str) -> str:
    """A name for plotly's text, which reads a few HTML tags: shown as written, never as markup."""
    return html.escape(value)


def _grid(parts: list[str]) -> str:
    cells = "".join(f'<div class="cell">{p}</div>' for p in parts)
    return f'<div class="grid">{cells}</div>' if parts else ""


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>\n"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #212529; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; border-bottom: 1px solid #dee2e6; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.75em; border-bottom: 1px solid #e9ecef; text-align: left; }
table.features td:nth-child(n+4) { text-align: right; }
tr.drift td { background: #ffe3e3; } tr.quality td { background: #fff3bf; } tr.few-rows td { color: #868e96; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
.note { color: #868e96; }
"""
