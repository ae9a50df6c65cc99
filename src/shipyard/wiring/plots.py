"""Plots, wired: shipyard.yaml's plot definitions, the files at each revision, and the HTML page.

``show`` draws the workspace's files; ``diff`` draws each revision as a series of its own (DVC's ``plots diff``:
no revision compares the workspace with HEAD, one compares it with the workspace). The page goes to
``shipyard_plots/index.html`` by default (DVC writes ``dvc_plots/index.html``), never over a file that is not a
Shipyard plots page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shipyard.core.plots.data import FileSource, Page
    from shipyard.core.plots.spec import Overrides, PlotDef
    from shipyard.wiring.revisions import Revision, Revisions

DEFAULT_OUT = "shipyard_plots"  # beside shipyard.yaml, as DVC's dvc_plots
PAGE = "index.html"


def page_path(root: Path, out: Path | None) -> Path:
    """Where the page goes: ``-o FILE.html``, ``-o FOLDER`` (its index.html, DVC's meaning of -o), or
    ``shipyard_plots/index.html`` in the project."""
    if out is None:
        return root / DEFAULT_OUT / PAGE
    target = out.absolute()
    return target if target.suffix.lower() in (".html", ".htm") else target / PAGE


def check_page_path(path: Path, root: Path | None = None) -> None:
    """Refuse, before any work, to write the page over a file that is not one; with ``root`` (the default page in
    the project), also when a folder on its way is a symbolic link (a committed ``shipyard_plots -> /var/www``
    would publish the page there) or a file."""
    from shipyard.adapters.plots.render import check_target

    if root is not None:
        _confined(root, create=False)
    check_target(path)


def _confined(root: Path, create: bool) -> Path:
    from shipyard.core.workspace.paths import Confined

    with Confined(root, project=True) as confined:
        rel = f"{DEFAULT_OUT}/{PAGE}"
        return confined.target(rel, "the plots page") if create else confined.check(rel, "the plots page")


def definitions(root: Path) -> list[PlotDef]:
    """The plots shipyard.yaml declares (top-level, then each stage's, its paths taken from its wdir)."""
    from shipyard.core.plots.spec import declared
    from shipyard.core.project.loader import load_config

    return declared(load_config(root))


def chosen(root: Path, targets: Sequence[str], overrides: Overrides | None, cwd: Path | None = None) -> list[PlotDef]:
    """The plots to draw: those ``targets`` name (plot ids, or paths relative to ``cwd``, by default the working
    folder), else all declared ones; with the command line's options applied."""
    from shipyard.core.plots.spec import select
    from shipyard.core.workspace.paths import project_path

    declared = definitions(root)
    if targets:
        ids = {p.id for p in declared}
        named = [t if t in ids else project_path(root, t if cwd is None else cwd / t, "plot target") for t in targets]
        plots = select(declared, named)
    else:
        plots = declared
    if not plots:
        raise InvalidInputError("no plots: declare them in shipyard.yaml (plots: [eval/roc.json, ...], as in "
                                "dvc.yaml), or name files or folders: shipyard plots show dvclive/plots")
    return [overrides.apply(p) for p in plots] if overrides is not None else plots


def show(root: Path, targets: Sequence[str] = (), overrides: Overrides | None = None, cwd: Path | None = None) -> Page:
    """The page of the workspace's plots."""
    from shipyard.adapters.plots.files import WorkspaceFiles
    from shipyard.core.plots.data import collect

    return collect(chosen(root, targets, overrides, cwd), [WorkspaceFiles(root)], definitions(root))


def diff(root: Path, revisions: Sequence[str], targets: Sequence[str] = (),
         overrides: Overrides | None = None, cwd: Path | None = None) -> Page:
    """The page of the plots at each of ``revisions`` (none: HEAD and the workspace; one: it and the workspace),
    a revision a color."""
    from shipyard.wiring.revisions import open_revisions

    if len(revisions) > 8:
        raise InvalidInputError(f"{len(revisions)} revisions: compare at most 8 at once")
    revs = open_revisions(root)
    if not revisions:
        wanted = ["HEAD", "workspace"]
    elif len(revisions) == 1:
        wanted = [revisions[0], "workspace"]
    else:
        wanted = list(revisions)
    sources = [_source(revs, revs.resolve(r)) for r in dict.fromkeys(wanted)]
    from shipyard.core.plots.data import collect

    return collect(chosen(root, targets, overrides, cwd), sources, definitions(root))


def _source(revs: Revisions, rev: Revision) -> FileSource:
    from shipyard.adapters.plots.files import WorkspaceFiles

    if rev.kind == "workspace":
        return WorkspaceFiles(revs.root)
    if rev.kind != "commit":
        raise InvalidInputError(f"{rev.name} is a {rev.kind}: it records values, not plot files; compare git "
                                "revisions (HEAD, HEAD~1, a branch, a commit) or the workspace")
    return _RevisionFiles(revs, rev)


class _RevisionFiles:
    """A git revision's files (or, for files git does not track, that commit's shipyard.lock's), read-only."""

    def __init__(self, revs: Revisions, rev: Revision) -> None:
        self.revs = revs
        self.rev = rev
        self.name = rev.label

    def read(self, rel: str, limit: int) -> bytes:
        data = self.revs.read(rel, self.rev, limit)
        if data is None:
            raise FileNotFoundError(rel)
        return data

    def files_under(self, rel: str) -> list[str] | None:
        found = self.revs.list(rel, self.rev)
        return found if found and found != [rel] else None


def write_page(page: Page, path: Path, title: str, root: Path | None = None) -> Path:
    """The page written (atomically) to ``path``, which must be absent or a plots page; returns it. With ``root``
    (the default page in the project) its folder is made a real folder first, no link on the way."""
    from shipyard.adapters.plots.render import write_html

    if root is not None:
        path = _confined(root, create=True)
    return write_html(page, path, title)
