"""``shipyard run`` and ``shipyard status``: the pipeline in shipyard.yaml."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.pipelines.runner import PipelineRunner

COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")


class ConsoleEvents:
    """Streams each stage's output, prefixed with its name, and says when stages start and end."""

    def __init__(self) -> None:
        self.console = out.console()
        self._colors: dict[str, str] = {}
        self._lock = threading.Lock()

    def _tag(self, stage: str) -> str:
        color = self._colors.setdefault(stage, COLORS[len(self._colors) % len(COLORS)])
        return f"[{color}]{stage}[/{color}]"

    def started(self, stage: str, how: str) -> None:
        with self._lock:
            self.console.print(f"{self._tag(stage)} ▶ {how}")

    def line(self, stage: str, text: str) -> None:
        from rich.markup import escape

        with self._lock:
            self.console.print(f"{self._tag(stage)} │ {escape(text)}")

    def finished(self, stage: str, outcome: str, seconds: float, detail: str = "") -> None:
        mark = {"ran": "[green]✔ done[/green]", "cached": "[green]✔ restored from cache[/green]",
                "failed": "[red]✘ failed[/red]"}.get(outcome, outcome)
        with self._lock:
            self.console.print(f"{self._tag(stage)} {mark} in {seconds:.2f} s" + (f": {detail}" if detail else ""))


def _runner(events: ConsoleEvents | None = None) -> PipelineRunner:
    from shipyard.wiring import open_pipeline, settings_from_environment

    return open_pipeline(settings_from_environment(), os.environ, events)


def run(
    stages: list[str] = typer.Argument(None, help="Stages to bring up to date (and what they depend on); default all."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Run up to N independent stages at once."),
    force: bool = typer.Option(False, "--force", "-f", help="Run the stages even if up to date (skips the cache)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would run and why."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Run what is out of date in shipyard.yaml's pipeline; unchanged stages come from cache."""
    from shipyard.errors import InvalidInputError

    if jobs < 1:
        raise InvalidInputError(f"--jobs must be at least 1, not {jobs}")
    if dry_run:
        status(stages, as_json)
        return
    runner = _runner(None if as_json else ConsoleEvents())
    report = runner.run(stages or None, jobs=jobs, force=force)
    if as_json:
        out.print_json([o.to_dict() for o in report.outcomes])
    else:
        out.table(None, ["stage", "result", "time", "run", "detail"],
                  ((o.stage, o.result, f"{o.seconds:.2f} s", (o.run_id or "-")[:8], o.detail)
                   for o in report.outcomes))
    if not report.ok:
        failed = [o.stage for o in report.outcomes if o.result == "failed"]
        out.error(f"stage(s) failed: {', '.join(failed) or 'see above'}; nothing of theirs was cached")
        raise typer.Exit(8)


def status(
    stages: list[str] = typer.Argument(None, help="Stages to check (with what they depend on); all by default."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """For each stage: up to date, or why it would run (which dependency, param or output changed)."""
    report = _runner().status(stages or None)
    if as_json:
        out.print_json([s.to_dict() for s in report])
        return
    if not report:
        out.console().print("no stages in shipyard.yaml")
    for s in report:
        if s.must_run:
            out.console().print(f"[yellow]{s.name}[/yellow] would run: {'; '.join(s.reasons)}")
        else:
            out.console().print(f"[green]{s.name}[/green] is up to date")
