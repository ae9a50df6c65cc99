"""`shipyard plots show` and `plots diff`: DVC's plot definitions, data and images drawn into one offline page.

The page is opened in headless Chromium (Debian's): every chart must have rendered (plotly's SVG with plotted
paths, or a heatmap), every image must have loaded, and the page must log no console error and send no request.
A module-scoped project (a git repository: one commit, then changed files in the workspace) serves every test;
the CLI runs in-process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard.core.plots.spec import Overrides, PlotDef, Series, parse_plots, select
from shipyard.errors import InvalidInputError
from shipyard.interfaces.cli.app import app
from tests.conftest import open_offline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("SHIPYARD_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
runner = CliRunner()

SHIPYARD_YAML = """\
stages:
  train:
    cmd: python train.py
    plots:
      - dvclive/plots/metrics:
          x: step
plots:
  - ROC:
      template: simple
      x: fpr
      y:
        eval/roc/train.json: tpr
        eval/roc/test.json: tpr
  - eval/prc.json:
      template: simple
      x: recall
      y: precision
      title: Precision-Recall
  - eval/confusion.json:
      template: confusion
      x: actual
      y: predicted
  - eval/confusion_norm.json:
      template: confusion_normalized
      x: actual
      y: predicted
  - eval/importance.json:
      template: bar_horizontal_sorted
      x: importance
      y: name
  - eval/points.csv:
      template: scatter
      x: a
      y: b
  - eval/points.csv:
      template: scatter_jitter
      x: a
      y: b
  - eval/noisy.tsv:
      template: smooth
      x: epoch
      y: [loss, val_loss]
  - eval/history.yaml:
      template: linear
  - eval/images
"""


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one color (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _write_data(root: Path, shift: float) -> None:
    """The plot files a DVC project's stages write (dvclive's layout among them); ``shift`` changes the values."""
    files: dict[str, Any] = {
        "eval/roc/train.json": {"roc": [{"fpr": 0.0, "tpr": 0.0, "threshold": float("inf")},
                                        {"fpr": 0.1, "tpr": 0.7 + shift, "threshold": 0.8},
                                        {"fpr": 1.0, "tpr": 1.0, "threshold": 0.1}]},
        "eval/roc/test.json": {"roc": [{"fpr": 0.0, "tpr": 0.0, "threshold": 2.0},
                                       {"fpr": 0.2, "tpr": 0.6 + shift, "threshold": 0.7},
                                       {"fpr": 1.0, "tpr": 1.0, "threshold": 0.0}]},
        "eval/prc.json": {"prc": [{"precision": 0.5 + shift, "recall": 1.0}, {"precision": 0.9, "recall": 0.4}]},
        "eval/confusion.json": [{"actual": a, "predicted": p} for a, p in
                                [("0", "0"), ("1", "1"), ("1", "0"), ("2", "2"), ("0", "0"), ("2", "1")]],
        "eval/confusion_norm.json": [{"actual": a, "predicted": p} for a, p in [("cat", "cat"), ("dog", "cat")]],
        "eval/importance.json": [{"name": "petal", "importance": 0.6 - shift},
                                 {"name": "sepal", "importance": 0.3}, {"name": "stem", "importance": 0.1}],
    }
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(body))
    (root / "eval/points.csv").write_text("a,b\n1,2\n2,3.5\n3," + str(1 + shift) + "\n")
    (root / "eval/noisy.tsv").write_text("epoch\tloss\tval_loss\n" + "".join(
        f"{i}\t{1 / (i + 1) + (i % 3) * 0.05 + shift}\t{1.2 / (i + 1)}\n" for i in range(20)))
    (root / "eval/history.yaml").write_text("- {step: 0, acc: 0.5}\n- {step: 1, acc: " + str(0.7 + shift) + "}\n")
    metrics = root / "dvclive/plots/metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "loss.tsv").write_text("step\tloss\n0\t1.0\n1\t" + str(0.5 - shift) + "\n2\t0.25\n")
    (metrics / "acc.tsv").write_text("step\tacc\n0\t0.5\n1\t0.75\n2\t0.875\n")
    images = root / "eval/images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "importance.png").write_bytes(_png(40, 30, (200, 40 + int(shift * 100), 40)))
    (images / "shape.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="50" height="40">'
                                      f'<rect width="50" height="40" fill="#{"3355aa" if shift else "aa5533"}"/></svg>')


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plots") / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(SHIPYARD_YAML)
    _write_data(root, 0.0)
    git = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    _write_data(root, 0.2)  # the workspace differs from HEAD
    return root


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _shipyard(root: Path, *args: str) -> Any:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SHIPYARD_")}
    with _in(root):
        return runner.invoke(app, list(args), env=env)


# -- definitions, as dvc.yaml writes them -------------------------------------------------------------------------


def test_dvc_yaml_plot_forms_are_read_as_dvc_reads_them() -> None:
    plots = parse_plots([
        "eval/importance.png",
        {"dvclive/plots/metrics": {"x": "step"}},
        {"eval/roc.json": {"template": "simple", "x": "fpr", "y": "tpr", "title": "ROC", "cache": False}},
        {"ROC": {"x": {"a.json": "fpr", "b.json": "fpr2"}, "y": {"a.json": "tpr", "b.json": ["tpr", "tpr2"]}}},
        {"ids": {"x": "epoch", "y": {"train.csv": "loss"}, "template": "scatter"}},
        {"multi.tsv": {"y": ["loss", "acc"]}},
        "eval/importance.png",  # the same plot twice (top-level and in its stage) is drawn once
    ])
    assert [p.id for p in plots] == ["eval/importance.png", "dvclive/plots/metrics", "eval/roc.json", "ROC", "ids",
                                     "multi.tsv"]
    assert plots[0] == PlotDef("eval/importance.png", (Series("eval/importance.png"),))
    assert plots[2].template == "simple" and plots[2].title == "ROC" and plots[2].series == (
        Series("eval/roc.json", "fpr", "tpr"),)
    assert plots[3].path_id is False and plots[3].template == "linear"
    assert plots[3].series == (Series("a.json", "fpr", "tpr"), Series("b.json", "fpr2", "tpr"),
                               Series("b.json", "fpr2", "tpr2"))
    assert plots[4].series == (Series("train.csv", "epoch", "loss"),)
    assert [s.y for s in plots[5].series] == ["loss", "acc"]
    # targets: an id, a file a plot reads, a file inside a plot's folder (its options), any other file
    assert [p.id for p in select(plots, ["ROC"])] == ["ROC"]
    assert [p.id for p in select(plots, ["b.json"])] == ["ROC"]
    inside = select(plots, ["dvclive/plots/metrics/loss.tsv"])
    assert inside == [PlotDef("dvclive/plots/metrics/loss.tsv", (Series("dvclive/plots/metrics/loss.tsv", "step"),))]
    assert select(plots, ["other.csv"]) == [PlotDef("other.csv", (Series("other.csv"),))]
    forced = Overrides(template="scatter", y="acc").apply(plots[2])
    assert forced.template == "scatter" and forced.series == (Series("eval/roc.json", "fpr", "acc"),)


def test_templates_compute_what_dvc_draws() -> None:
    from shipyard.core.plots.data import Line, confusion, parse_records, pick, smoothed

    cm = Line("workspace", "cm.json", "actual", "predicted", ("b", "a", "a", "10", "2"), ("a", "a", "b", "10", "2"))
    classes, _, counts = confusion(cm, normalized=False)
    assert classes == ["2", "10", "a", "b"]  # numbers in order, then names
    assert counts[classes.index("a")][classes.index("a")] == 1 and counts[classes.index("b")][classes.index("a")] == 1
    _, _, shares = confusion(cm, normalized=True)  # each actual class's column sums to 1
    assert [sum(row[i] for row in shares) for i in range(4)] == [1.0, 1.0, 1.0, 1.0]
    assert smoothed([1.0, None, 3.0, "x"]) == [1.0, None, pytest.approx(1.8), None]
    records, key = parse_records(b'{"roc": [{"fpr": 0, "tpr": 0.5, "threshold": Infinity}]}', "roc.json")
    assert key == "roc" and pick(records, Series("roc.json"), "workspace").y == (None,)  # y: the last field
    tsv, _ = parse_records(b"step\tloss\n0\t1.5\n1\tnan\n", "loss.tsv")
    line = pick(tsv, Series("loss.tsv"), "workspace")
    assert (line.x_field, line.x, line.y) == ("step", (0.0, 1.0), (1.5, None))
    line = pick([{"step": 5, "a": 1}, {"step": 7, "a": 2}], Series("f.json"), "workspace")
    assert (line.x_field, line.x, line.y_field) == ("step", (0.0, 1.0), "a")  # DVC's: x is the row's index


def test_a_stages_plots_are_taken_from_its_wdir_as_in_dvc_yaml() -> None:
    from shipyard.core.plots.spec import declared
    from shipyard.core.project.loader import parse_config
    from shipyard.core.project.model import Project

    def load(text: str) -> Project:
        return Project.from_dict(parse_config(text).model_dump())

    project = load(
        "plots:\n  - top.csv\nstages:\n  a:\n    cmd: echo\n    wdir: sub\n    plots:\n"
        "      - ../plots/p.csv:\n          x: step\n          cache: false\n      - here.json\n"
        "  b:\n    cmd: echo\n    plots: [b.tsv]\n")
    assert [(p.id, p.series[0].x) for p in declared(project)] == [
        ("top.csv", None), ("plots/p.csv", "step"), ("sub/here.json", None), ("b.tsv", None)]
    with pytest.raises(Exception, match="outside the project"):  # a wdir is no way out of the project
        declared(load("stages:\n  a:\n    cmd: echo\n    plots: [../../x.csv]\n"))


@pytest.mark.parametrize(("entry", "message"), [
    ({"p.json": {"template": "vega-custom"}}, "plot 'p.json': template 'vega-custom' is not one Shipyard draws"),
    ({"p.json": {"colour": "red"}}, "plot 'p.json': unknown option 'colour'"),
    ({"p.json": {"y": 3}}, "plot 'p.json': y: a field name should be a non-empty string"),
    ({"ROC": {"y": {}}}, "plot 'ROC': y is an empty mapping"),
    ({"../secret.json": None}, "is outside the project"),
    ({"/etc/passwd": None}, "is outside the project"),
    ({"a.json": {}, "b.json": {}}, "a plot is a path or {path or id: options} with one key"),
    (["nested"], "a plot is a path or {path or id: options}"),
    ({"p.json": {"y": ["f"] * 101}}, "101 fields; at most 100"),
    ({"p.json": "linear"}, "its options should be a mapping"),
])
def test_a_malformed_plot_entry_is_one_line_naming_it(entry: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_plots([entry])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_shipyard_yaml_refuses_a_malformed_plot_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("plots:\n  - eval/roc.json:\n      template: nope\n")
    done = _shipyard(tmp_path, "plots", "show")
    assert done.exit_code != 0
    assert "shipyard.yaml:1: plots: plot 'eval/roc.json': template 'nope' is not one Shipyard draws" in str(
        done.exception)


# -- the page, in a real browser ----------------------------------------------------------------------------------

CHARTS = """() => [...document.querySelectorAll('.cell')].map(cell => {
    const div = cell.querySelector('.plotly-graph-div');
    return {
        template: cell.dataset.template,
        svg: div.querySelector('.main-svg') !== null,
        paths: [...div.querySelectorAll('.scatterlayer path, .barlayer path')].filter(p => {
            const d = p.getAttribute('d') || '';
            const box = p.getBBox();
            return d.length > 4 && (box.width > 0 || box.height > 0);
        }).length,
        heatmap: div.querySelectorAll('.heatmaplayer image').length,
        title: (div.querySelector('.gtitle') || {}).textContent || '',
        legend: [...div.querySelectorAll('.legendtext')].map(t => t.textContent),
    };
})"""
IMAGES = "() => [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, done: i.complete}))"


def _drawn(c: dict[str, Any]) -> bool:
    return bool(c["svg"] and (c["paths"] > 0 or c["heatmap"] > 0))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the page is not rendered")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, page_file: Path, count: int, shot: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The charts and images of ``page_file`` once ``count`` charts rendered; no console error, no request."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page, errors, requests = open_offline(
            context, page_file, f"() => {{ const c = ({CHARTS})(); return c.length >= {count} && c.every(x => "
                                "x.svg && (x.paths > 0 || x.heatmap > 0)); }", ARTIFACTS / shot)
        charts, images = page.evaluate(CHARTS), page.evaluate(IMAGES)
    finally:
        context.close()
    assert errors == [] and requests == []
    return charts, images


def test_plots_show_draws_every_template_and_image_offline(project: Path, browser: Any) -> None:
    done = _shipyard(project, "plots", "show")
    assert done.exit_code == 0, done.output
    target = project / "shipyard_plots" / "index.html"
    assert "11 charts, 2 images: " + target.as_uri() in " ".join(done.output.split())
    text = target.read_text()
    assert text.count('<script type="text/javascript">/**\n* plotly.js') == 1  # embedded once
    charts, images = _open(browser, target, 11, "plots-show.png")
    assert all(_drawn(c) for c in charts), charts
    templates = sorted(c["template"] for c in charts)
    assert templates == sorted(["simple", "simple", "confusion", "confusion_normalized", "bar_horizontal_sorted",
                                "scatter", "scatter_jitter", "smooth", "linear", "linear", "linear"])
    by_title = {c["title"]: c for c in charts}
    assert by_title["ROC"]["legend"] == ["eval/roc/train.json: tpr", "eval/roc/test.json: tpr"]
    assert by_title["Precision-Recall"]["paths"] >= 1
    assert {"dvclive/plots/metrics/loss.tsv", "dvclive/plots/metrics/acc.tsv"} <= set(by_title)
    assert [i["alt"] for i in images] == ["eval/images/importance.png", "eval/images/shape.svg"]
    assert all(i["done"] and i["width"] > 0 for i in images)


def test_plots_diff_draws_each_revision_in_its_color(project: Path, browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "diff.html"
    done = _shipyard(project, "plots", "diff", "-o", str(out), "--targets", "ROC", "--targets", "eval/images",
                     "--targets", "eval/confusion.json")
    assert done.exit_code == 0, done.output
    charts, images = _open(browser, out, 3, "plots-diff.png")
    assert all(_drawn(c) for c in charts), charts
    roc = next(c for c in charts if c["title"] == "ROC")
    head = next(n for n in roc["legend"] if n.startswith("HEAD"))
    head = head.split(":")[0]
    assert sorted(roc["legend"]) == sorted(f"{rev}: eval/roc/{split}.json: tpr" for rev in (head, "workspace")
                                           for split in ("train", "test"))
    assert sorted(c["title"] for c in charts if c["template"] == "confusion") == [
        f"eval/confusion.json ({head})", "eval/confusion.json (workspace)"]
    assert len(images) == 4 and all(i["width"] > 0 for i in images)  # each image at both revisions, side by side
    data = json.loads(_shipyard(project, "plots", "diff", "HEAD", "--json", "--targets", "eval/prc.json").output)
    assert [line["rev"].split(" ")[0] for line in data["plots"][0]["data"]] == ["HEAD", "workspace"]
    assert [line["ys"][0] for line in data["plots"][0]["data"]] == [0.5, 0.7]


def test_bad_files_are_one_line_each_and_the_rest_is_drawn(project: Path, tmp_path: Path) -> None:
    bad = project / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "broken.json").write_text("{not json")
    (bad / "scalar.json").write_text('{"acc": 0.9}')
    (bad / "latin1.csv").write_bytes(b"a,b\n\xe9,1\n")
    (bad / "fake.png").write_bytes(b"<script>alert(1)</script>")
    (bad / "big.json").write_bytes(b"[" + b"{}," * (3 * 1024 * 1024) + b"{}]")
    (bad / "ok.csv").write_text("x,<b>y</b>\n1,2\n2,3\n")
    outside = tmp_path / "secret.json"
    outside.write_text('[{"x": 1, "y": 2}]')
    (bad / "link.json").symlink_to(outside)
    done = _shipyard(project, "plots", "show", "bad", "--json")
    assert done.exit_code == 0, done.output
    page = json.loads(done.output)
    errors = "\n".join(page["errors"])
    assert "bad/broken.json (workspace): not valid JSON" in errors
    assert "scalar.json" not in errors  # in a folder, a file of no records (dvclive's metrics.json) is no plot
    assert "bad/latin1.csv (workspace): not UTF-8 text" in errors
    assert "bad/fake.png (workspace): not a PNG image" in errors
    assert "bad/big.json (workspace): larger than the 8 MiB" in errors
    assert "bad/link.json (workspace): refused: a link to outside the project" in errors
    assert len(page["errors"]) == 5 and all("\n" not in e for e in page["errors"])
    assert [p["id"] for p in page["plots"]] == ["bad/ok.csv"]
    assert "<b>" not in json.dumps(page["plots"][0]["title"] or "")
    refused = _shipyard(project, "plots", "show", "bad/broken.json")
    assert isinstance(refused.exception, InvalidInputError)
    assert "nothing to draw: bad/broken.json (workspace): not valid JSON" in str(refused.exception)
    assert "is outside the project" in str(_shipyard(project, "plots", "show", "../x.json").exception)
    assert "bad/scalar.json (workspace): holds no list of records" in str(
        _shipyard(project, "plots", "show", "bad/scalar.json").exception)
    shutil.rmtree(bad)


def test_names_in_the_page_are_text_never_markup(tmp_path: Path) -> None:
    """A field name or a file name comes from whoever wrote the data: shown as written, never as markup."""
    from shipyard.adapters.plots.render import render
    from shipyard.core.plots.data import Chart, Image, Line, Page

    evil = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
    plot = PlotDef(evil, (Series("f.json", "x", evil),), title=evil)
    page = Page(["workspace"], [Chart(plot, (Line("workspace", "f.json", "x", evil, (1.0, 2.0), (3.0, 4.0)),))],
                [Image(evil, "workspace", "image/png", _png(1, 1, (0, 0, 0)))], [evil])
    text = render(page, evil)
    assert "<img src=x" not in text and "<script>alert(2)" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_a_file_that_is_not_a_plots_page_is_never_overwritten(project: Path, tmp_path: Path) -> None:
    mine = tmp_path / "notes.html"
    mine.write_text("<html><body>my notes</body></html>")
    refused = _shipyard(project, "plots", "show", "eval/prc.json", "-o", str(mine))
    assert isinstance(refused.exception, InvalidInputError) and "is not a Shipyard plots page" in str(
        refused.exception)
    assert mine.read_text() == "<html><body>my notes</body></html>"
    link = tmp_path / "link.html"
    link.symlink_to(mine)
    assert isinstance(_shipyard(project, "plots", "show", "-o", str(link)).exception, InvalidInputError)
    folder = tmp_path / "pages"
    for _ in range(2):  # a page is replaced by the next one; -o FOLDER writes FOLDER/index.html, as DVC's -o
        done = _shipyard(project, "plots", "show", "eval/prc.json", "-o", str(folder))
        assert done.exit_code == 0, done.output
    assert (folder / "index.html").read_text().startswith("<!DOCTYPE html>")


def test_the_default_page_is_git_ignored_and_never_written_through_a_link(tmp_path: Path) -> None:
    """New-user N7 / attack F18: ``shipyard_plots/`` goes into .gitignore; a committed ``shipyard_plots -> /var/www``
    (or a linked index.html) is refused in one line and nothing is written there."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "shipyard.yaml").write_text("plots:\n  - p.csv\n")
    (root / "p.csv").write_text("step,v\n1,2\n2,3\n")
    (root / ".gitignore").write_text("/.shipyard\n")
    outside = tmp_path / "www"
    outside.mkdir()
    (root / "shipyard_plots").symlink_to(outside)
    refused = _shipyard(root, "plots", "show")
    assert isinstance(refused.exception, InvalidInputError)
    assert str(refused.exception).startswith("shipyard_plots is a symbolic link where the plots page needs a folder")
    assert list(outside.iterdir()) == [] and (root / ".gitignore").read_text() == "/.shipyard\n"
    (root / "shipyard_plots").unlink()
    (root / "shipyard_plots").mkdir()
    (root / "shipyard_plots" / "index.html").symlink_to(outside / "page.html")
    assert isinstance(_shipyard(root, "plots", "show").exception, InvalidInputError)
    assert list(outside.iterdir()) == []
    (root / "shipyard_plots" / "index.html").unlink()
    for _ in range(2):
        done = _shipyard(root, "plots", "show")
        assert done.exit_code == 0, done.output
    assert (root / ".gitignore").read_text() == "/.shipyard\n/shipyard_plots\n"  # once
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True)
    assert "shipyard_plots" not in status.stdout


def test_points_series_and_charts_drawn_per_page_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack F10: one small file drawn by many plots and fields: past the page's points, a chart is one
    "too many points" line and the others are still drawn; too many series in a chart or charts in a page too."""
    from shipyard.adapters.plots.files import WorkspaceFiles
    from shipyard.core.plots import data

    fields = [f"c{i}" for i in range(10)]
    (tmp_path / "d.csv").write_text(",".join(["x", *fields]) + "\n" +
                                    "".join(f"{r}," + ",".join(["1"] * 10) + "\n" for r in range(1000)))
    plots = [PlotDef(f"p{i}", tuple(Series("d.csv", "x", f) for f in fields)) for i in range(8)]
    source = WorkspaceFiles(tmp_path)
    monkeypatch.setattr(data, "MAX_POINTS", 35_000)  # 3.5 charts of 10 lines of 1000 points
    page = data.collect(plots, [source])
    assert [c.plot.id for c in page.charts] == ["p0", "p1", "p2"] and page.points == 30_000
    assert page.errors == [f"p{i}: too many points (40000 > 35000): show fewer plots at once" for i in range(3, 8)]
    small = PlotDef("small", (Series("d.csv", "x", "c0"),))
    page = data.collect([*plots, small], [source])
    assert page.charts[-1].plot.id == "small"  # the rest is still drawn
    monkeypatch.setattr(data, "MAX_SERIES", 9)
    page = data.collect([plots[0], small], [source])
    assert page.errors == ["p0: too many series (10 > 9): draw fewer fields or revisions in one plot"]
    assert [c.plot.id for c in page.charts] == ["small"]
    monkeypatch.setattr(data, "MAX_CHARTS", 1)
    page = data.collect([small, plots[0]], [source])
    assert [c.plot.id for c in page.charts] == ["small"]
    assert page.errors == ["p0: too many charts (2 > 1): show fewer plots at once"]


LAYOUT = """() => [...document.querySelectorAll('.plotly-graph-div')].map(div => {
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    return {title: box(div.querySelector('.gtitle')), legend: box(div.querySelector('.legend')),
            plot: box(div.querySelector('.nsewdrag'))};
})"""


def test_a_long_legend_never_covers_the_title_or_the_chart(browser: Any, tmp_path: Path) -> None:
    """New-user N10: plots diff with 4 or more series drew the wrapped legend over the chart's title."""
    from shipyard.adapters.plots.render import render
    from shipyard.core.plots.data import Chart, Line, Page

    revs = ["HEAD~2 (1234abcd)", "workspace"]
    lines = tuple(Line(rev, f"curves/{m}.csv", "step", "loss", (1.0, 2.0, 3.0), (3.0, 2.0, i + 1.0))
                  for i, (rev, m) in enumerate((r, m) for r in revs for m in ("lr", "rf")))
    two = tuple(Line(rev, "a.csv", "step", "loss", (1.0, 2.0), (1.0, 2.0)) for rev in revs)
    plot = PlotDef("Loss both", (Series("curves/lr.csv", "step", "loss"), Series("curves/rf.csv", "step", "loss")),
                   title="Training loss of both models, step by step")
    page_file = tmp_path / "p.html"
    page_file.write_text(render(Page(revs, [Chart(plot, lines), Chart(PlotDef("a.csv", ()), two)]), "t"))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(page_file.as_uri(), wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('.legend').length >= 2", timeout=20_000)
        boxes = page.evaluate(LAYOUT)
    finally:
        context.close()

    def apart(a: list[float], b: list[float]) -> bool:
        return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]

    for chart in boxes:
        assert apart(chart["legend"], chart["title"]) and apart(chart["legend"], chart["plot"]), chart
