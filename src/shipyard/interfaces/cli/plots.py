"""``shipyard plots show`` and ``plots diff``: DVC's plots, drawn into one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.plots.data import Page
    from shipyard.core.plots.spec import Overrides

app = typer.Typer(help="Draw the plots of shipyard.yaml (DVC's plots: JSON/CSV/TSV/YAML data, images) into one "
                       "HTML page, viewable offline.", no_args_is_help=True)

OUT_HELP = ("Where the page goes: a FILE.html, or a folder (its index.html); default shipyard_plots/index.html "
            "in the project. Never over a file that is not a Shipyard plots page.")


def _overrides(template: str | None, x: str | None, y: str | None, title: str | None, x_label: str | None,
               y_label: str | None) -> Overrides | None:
    from shipyard.core.plots.spec import Overrides

    if all(v is None for v in (template, x, y, title, x_label, y_label)):
        return None
    return Overrides(template, x, y, title, x_label, y_label)


TEMPLATE = typer.Option(None, "--template", "-t", help="linear, simple, scatter, scatter_jitter, smooth, confusion, "
                                                       "confusion_normalized, bar_horizontal, bar_horizontal_sorted.")
X = typer.Option(None, "-x", help="The field on the x axis (default: the row's index, named step).")
Y = typer.Option(None, "-y", help="The field on the y axis (default: the data's last field).")
TITLE = typer.Option(None, "--title", help="The plots' title.")
X_LABEL = typer.Option(None, "--x-label", help="The x axis' label.")
Y_LABEL = typer.Option(None, "--y-label", help="The y axis' label.")


@app.command("show")
def show(
    targets: list[str] = typer.Argument(None, help="Plot ids or files of shipyard.yaml's plots, or any data file, "
                                                   "image or folder of the project; default: all declared plots."),
    out_path: Path = typer.Option(None, "--out", "-o", help=OUT_HELP),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    as_json: bool = typer.Option(False, "--json", help="Print the plots' data as JSON instead (the page is "
                                                       "written only with -o)."),
    template: str = TEMPLATE, x: str = X, y: str = Y, title: str = TITLE, x_label: str = X_LABEL,
    y_label: str = Y_LABEL,
) -> None:
    """Draw the workspace's plots (as `dvc plots show`)."""
    from shipyard.wiring import plots, settings_from_environment

    root = settings_from_environment().project_root
    target = _target(root, out_path, as_json)
    page = plots.show(root, targets or [], _overrides(template, x, y, title, x_label, y_label))
    _finish(page, target, "Plots", as_json, open_page, root if out_path is None else None)


@app.command("diff")
def diff(
    revisions: list[str] = typer.Argument(None, help="Git revisions to compare (HEAD~1, a branch, a commit, "
                                                     "workspace); none: HEAD and the workspace; one: it and the "
                                                     "workspace."),
    targets: list[str] = typer.Option(None, "--targets", help="Plot ids or files to draw (repeatable); default all."),
    out_path: Path = typer.Option(None, "--out", "-o", help=OUT_HELP),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    as_json: bool = typer.Option(False, "--json", help="Print the plots' data as JSON instead (the page is "
                                                       "written only with -o)."),
    template: str = TEMPLATE, x: str = X, y: str = Y, title: str = TITLE, x_label: str = X_LABEL,
    y_label: str = Y_LABEL,
) -> None:
    """Draw the plots of several revisions over each other, a revision a color (as `dvc plots diff`)."""
    from shipyard.wiring import plots, settings_from_environment

    root = settings_from_environment().project_root
    target = _target(root, out_path, as_json)
    page = plots.diff(root, revisions or [], targets or [], _overrides(template, x, y, title, x_label, y_label))
    _finish(page, target, "Plots: " + " vs ".join(page.revs), as_json, open_page,
            root if out_path is None else None)


def _target(root: Path, out_path: Path | None, as_json: bool) -> Path | None:
    from shipyard.wiring.plots import check_page_path, page_path

    if as_json and out_path is None:
        return None
    target = page_path(root, out_path)
    check_page_path(target, root if out_path is None else None)  # -o is the user's choice; the default is confined
    return target


def _finish(page: Page, target: Path | None, title: str, as_json: bool, open_page: bool,
            root: Path | None = None) -> None:
    """Write the page (``root``: the default one, in the project: written with no link on the way, and its folder
    added to .gitignore, as ``run`` does for outputs: a generated page is no source) and say where."""
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.cli.gitignore import ignore
    from shipyard.wiring.plots import DEFAULT_OUT, write_page

    if not page.charts and not page.images:
        raise InvalidInputError("nothing to draw: " + ("; ".join(page.errors[:3]) or "no plot files"))
    written = write_page(page, target, title, root) if target is not None else None
    if written is not None and root is not None and ignore(root, DEFAULT_OUT) and not as_json:
        out.console(stderr=True).print(out.plain(f"added /{DEFAULT_OUT} to .gitignore (a generated page)"))
    if as_json:
        out.print_json({**page.to_dict(), "page": None if written is None else str(written)})
    else:
        err = out.console(stderr=True)
        for line in page.errors:
            err.print(out.plain(f"not drawn: {line}"))
        shown = f"{out.plural(len(page.charts), 'chart')}, {out.plural(len(page.images), 'image')}"
        if written is not None:
            out.console().print(out.plain(f"{shown}: {written.as_uri()}"))
    if open_page and written is not None:
        import webbrowser

        webbrowser.open(written.as_uri())
