"""`shipyard monitor --html`: the report opened in headless Chromium (Debian's), offline.

Each chart must have rendered (plotly's SVG with plotted paths), the page must log no console error and send no
request (plotly's JavaScript is embedded), and a screenshot is kept under test-artifacts/ (or
$SHIPYARD_TEST_ARTIFACTS). A file that is not a report is never overwritten."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shipyard.errors import InvalidInputError
from shipyard.interfaces.cli.app import app
from tests.conftest import open_offline
from tests.test_monitor import Project, project, runner  # noqa: F401 - the fixture, shared

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("SHIPYARD_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")


# each plotly chart: its id, whether plotly drew its SVG, how many traces' paths it drew (non-empty, on the page)
CHARTS = """() => [...document.querySelectorAll('.plotly-graph-div')].map(div => ({
    id: div.id,
    svg: div.querySelector('.main-svg') !== null,
    paths: [...div.querySelectorAll('.scatterlayer path, .barlayer path')].filter(p => {
        const d = p.getAttribute('d') || '';
        const box = p.getBBox();
        return d.length > 4 && (box.width > 0 || box.height > 0);
    }).length,
    title: (div.querySelector('.gtitle') || {}).textContent || '',
}))"""


def _chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the report is not rendered")


def test_the_report_renders_every_chart_offline(project: Project, tmp_path: Path) -> None:  # noqa: F811
    _chromium()
    from playwright.sync_api import sync_playwright

    target = tmp_path / "report.html"
    result = runner.invoke(app, ["monitor", "m@1", "--html", str(target)], env=project.env)
    assert result.exit_code == 0, result.output
    assert f"report: {target}" in result.output
    page_html = target.read_text()
    assert page_html.count("<script type=\"text/javascript\">/**\n* plotly.js") == 1  # embedded once
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       headless=True, args=FLAGS,
                                                       viewport={"width": 1280, "height": 900})
        try:
            page, errors, requests = open_offline(
                context, target, f"() => {{ const c = ({CHARTS})(); return c.length >= 7 && "
                                 "c.every(x => x.svg && x.paths > 0); }", ARTIFACTS / "monitor-report.png")
            charts = page.evaluate(CHARTS)
            table = page.inner_text("table.features")
        finally:
            context.close()
    by_id = {c["id"]: c for c in charts}
    assert {"drift-over-time", "latency", "errors"} <= set(by_id)
    distributions = [c for c in charts if c["id"] not in ("drift-over-time", "latency", "errors")]
    assert sorted(c["title"].split(":")[0] for c in distributions) == ["x0", "x1", "x2", "y0"]
    for chart in charts:
        assert chart["svg"] and chart["paths"] > 0, chart
    assert by_id["drift-over-time"]["paths"] >= 5  # a line and markers per feature, and the threshold
    assert errors == [] and requests == []
    assert "x0\tinputs\tpsi" in table and "drift" in table
    assert (ARTIFACTS / "monitor-report.png").stat().st_size > 10_000


def test_a_file_that_is_not_a_report_is_never_overwritten(project: Project, tmp_path: Path) -> None:  # noqa: F811
    mine = tmp_path / "notes.html"
    mine.write_text("<html><body>my notes</body></html>")
    refused = runner.invoke(app, ["monitor", "m@1", "--html", str(mine)], env=project.env)
    assert isinstance(refused.exception, InvalidInputError)
    assert "is not a Shipyard report" in str(refused.exception)
    assert mine.read_text() == "<html><body>my notes</body></html>"
    link = tmp_path / "link.html"
    link.symlink_to(mine)
    assert isinstance(runner.invoke(app, ["monitor", "m@1", "--html", str(link)], env=project.env).exception,
                      InvalidInputError)
    report = tmp_path / "again.html"
    for _ in range(2):  # a report is replaced by the next one
        done = runner.invoke(app, ["monitor", "m@1", "--json", "--html", str(report)], env=project.env)
        assert done.exit_code == 0, done.output
    assert report.read_text().startswith("<!DOCTYPE html>") and mine.read_text().endswith("my notes</body></html>")


def test_names_in_the_report_are_text_never_markup() -> None:
    """A feature's name comes from whoever recorded the reference: it is shown as written, in the table and charts."""
    from shipyard.adapters.monitoring.report import render
    from shipyard.core.monitoring.drift import Baseline, FeatureBins, FeatureCounts, Thresholds, Window
    from shipyard.core.monitoring.logs import Period, Requests
    from shipyard.core.monitoring.summary import MonitorReport

    name = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
    base = Baseline("sha256:" + "b" * 64, 1000, (FeatureBins(name, "numeric", (0.5, 0.5), (0.0,)),))
    window = Window("m", "1", base.profile, 10.0, 70.0, 200, {name: FeatureCounts([150, 50])})
    requests = Requests([20.0, 30.0], [1.0, 2.0], ["ok", "error"])
    page = render(MonitorReport("m", "1", base, Thresholds(), Period(0.0, 100.0), [window], requests))
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the table's cell, escaped
