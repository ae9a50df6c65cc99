"""``shipyard run`` and ``shipyard status``: the pipeline in shipyard.yaml."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shipyard.core.pipelines.runner import Outcome, PipelineRunner
    from shipyard.core.pipelines.status import StageStatus
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services
    from shipyard.wiring.declared_models import Declared

COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")


class ConsoleEvents:
    """Streams each stage's output, prefixed with its name, and says when stages start and end."""

    def __init__(self, scratch: bool = False) -> None:
        self.console = out.console()
        self._colors: dict[str, str] = {}
        self._lock = threading.Lock()
        # a re-run in a scratch folder: what its stages say (e.g. "registered iris@1") is not about your registry
        self._suffix = " [dim](scratch)[/dim]" if scratch else ""

    def _tag(self, stage: str) -> str:
        from rich.markup import escape

        color = self._colors.setdefault(stage, COLORS[len(self._colors) % len(COLORS)])
        return f"[{color}]{escape(stage)}[/{color}]{self._suffix}"

    def started(self, stage: str, how: str) -> None:
        with self._lock:
            self.console.print(f"{self._tag(stage)} ▶ {how}")

    def line(self, stage: str, text: str) -> None:
        from rich.markup import escape

        with self._lock:
            self.console.print(f"{self._tag(stage)} │ {escape(text)}")

    def finished(self, stage: str, outcome: str, seconds: float, detail: str = "") -> None:
        mark = {"ran": "[green]✔ done[/green]", "cached": "[green]✔ restored from cache[/green]",
                "failed": "[red]✘ failed[/red]", "frozen": "[cyan]frozen: its recorded outputs are used[/cyan]",
                }.get(outcome, outcome)
        with self._lock:
            # the detail is an error's text, which may quote a path or a command: data, never markup
            said = f": {out.plain(detail)}" if detail else ""
            self.console.print(f"{self._tag(stage)} {mark} in {seconds:.2f} s{said}")


def _runner(events: ConsoleEvents | None = None) -> PipelineRunner:
    from shipyard.wiring import open_pipeline, settings_from_environment

    return open_pipeline(settings_from_environment(), os.environ, events)


def run(
    stages: list[str] = typer.Argument(None, help="Stages to bring up to date (and what they depend on); default all."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Run up to N independent stages at once."),
    force: bool = typer.Option(False, "--force", "-f",
                               help="Run the named stages (all, if none is named) even if up to date, skipping the "
                                    "cache, and remove their outputs even if they hold changes that are not in the "
                                    "store; their upstream stages still run only if out of date."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would run and why."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Run what is out of date in shipyard.yaml's pipeline; unchanged stages come from cache."""
    from shipyard.errors import InvalidInputError

    if jobs < 1:
        raise InvalidInputError(f"--jobs must be at least 1, not {jobs}")
    if dry_run:
        _show_status(_runner().status(stages or None, force), as_json)
        return
    from shipyard.core.pipelines.runner import run_lock

    runner = _runner(None if as_json else ConsoleEvents())
    _check_declared(runner)
    with run_lock(runner.ws.root, os.environ):  # one run at a time, its models registered before the next starts
        report = runner.run(stages or None, jobs=jobs, force=force)
        ignored = _ignore_outputs(runner, [o.stage for o in report.outcomes if o.result != "failed"])
        declared = _register_declared(runner, report.outcomes) if report.ok else None
    if as_json:
        refs: dict[str, list[str]] = {}
        for r in declared.registered if declared else ():
            refs.setdefault(r.stage, []).append(r.ref)
        notes = dict(declared.by_stage) if declared else {}  # models not registered: why, on their stage's line
        if "" in notes and report.outcomes:  # a model no stage produces: on the last line
            notes.setdefault(report.outcomes[-1].stage, []).extend(notes.pop(""))
        out.print_json([{**o.to_dict(), **({"registered": refs[o.stage]} if o.stage in refs else {}),
                         **({"not_registered": notes[o.stage]} if o.stage in notes else {})}
                        for o in report.outcomes])
    else:
        show_outcomes(report.outcomes)
        for r in declared.registered if declared else ():
            out.console().print(f"registered [bold]{out.plain(r.ref)}[/bold] from {out.plain(r.path)} "
                                f"(stage {out.plain(r.stage)})")
        for line in declared.waiting if declared else ():
            out.console().print(out.plain(line))
        if ignored:
            names = out.plain(", ".join(ignored))
            them = "it" if len(ignored) == 1 else "them"
            out.console().print(f"added {names} to .gitignore: commit shipyard.lock, which pins {them} by digest, "
                                "rather than the outputs")
    if not report.ok:
        from shipyard.errors import StageFailed

        failed = [o.stage for o in report.outcomes if o.result == "failed"]
        raise StageFailed(f"stage(s) failed: {', '.join(failed) or 'see above'}; nothing of theirs was cached")
    if declared is not None and declared.problems:
        from shipyard.errors import ConfigError

        raise ConfigError("\n".join(declared.problems))


def _check_declared(runner: PipelineRunner) -> None:
    """shipyard.yaml's ``models:``, what can be checked before anything runs (a metrics stage's name)."""
    from shipyard.core.project.loader import load_config

    if load_config(runner.ws.root).models:
        from shipyard.wiring.declared_models import check_declarations

        check_declarations(runner)


def _register_declared(runner: PipelineRunner, outcomes: Sequence[Outcome]) -> Declared | None:
    """shipyard.yaml's ``models:``: a new version of each whose stage output changed."""
    from shipyard.core.project.loader import load_config

    if not load_config(runner.ws.root).models:  # read once already: cached by the file's digest
        return None
    from shipyard.wiring import settings_from_environment
    from shipyard.wiring.declared_models import register_declared

    return register_declared(settings_from_environment(), runner, outcomes)


def _ignore_outputs(runner: PipelineRunner, stages: list[str]) -> list[str]:
    """Keep the outputs of ``stages`` out of git, as ``data add`` keeps tracked data out (and DVC its outs):
    shipyard.lock pins them by digest and the store restores them. Returns the paths newly ignored."""
    from shipyard.interfaces.cli.gitignore import ignore

    root = runner.ws.root
    # cache: false outputs are git's to keep (DVC's meaning), so they are not ignored
    paths = [p for name in stages for p in runner.pipeline.stages[name].stored]
    paths = [p for p in paths if not any(p.startswith(f"{q}/") for q in paths)]  # eval/metrics.json: in eval
    return [p for p in [".shipyard", *paths] if ignore(root, p) and p != ".shipyard"]


def show_outcomes(outcomes: Sequence[Outcome]) -> None:
    """A pipeline run's summary, the same for ``shipyard run`` and the demo: a table of the stages that ran (or
    came from the cache, or failed), then one line counting those that were up to date."""
    acted = [o for o in outcomes if o.result != "up-to-date"]
    if acted:
        width = out.id_width(o.run_id for o in acted if o.run_id)
        out.table(None, [out.Col("stage", ident=True), out.Col("result", ident=True), out.Col("time", drop=1),
                         out.Col("run", ident=True), "detail"],
                  ((o.stage, o.result, f"{o.seconds:.2f} s", (o.run_id or "-")[:width], o.detail) for o in acted))
    fresh = len(outcomes) - len(acted)
    if fresh:
        names = ", ".join(o.stage for o in outcomes if o.result == "up-to-date")
        counted = out.plural(fresh, "stage")
        out.console().print(f"{counted} up to date ({names})" if acted else
                            f"{'' if fresh == 1 else 'all '}{counted} up to date ({names}): nothing to run")


def status(
    stages: list[str] = typer.Argument(None, help="Stages to check (with what they depend on); all by default. "
                                                  "With --env: the model (default: ci.model, or the only one)."),
    env: str = typer.Option(None, "--env", help="Instead: what runs in this deploy environment (workload, rollout, "
                                                "Argo CD), read from the kubeconfig's current context's cluster."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """For each stage: up to date, or why it would run (which dependency, param or output changed)."""
    if env is not None:
        from shipyard.interfaces.cli.cluster import env_status

        env_status(env, stages, as_json)
        return
    _show_status(_runner().status(stages or None), as_json)


def _show_status(report: list[StageStatus], as_json: bool) -> None:
    if as_json:
        out.print_json([s.to_dict() for s in report])
        return
    if not report:
        out.console().print("no stages in shipyard.yaml")
    for s in report:
        what = f" ({out.plain(s.desc)})" if s.desc else ""
        if s.must_run:
            out.console().print(f"[yellow]{out.plain(s.name)}[/yellow]{what} would run: {'; '.join(s.reasons)}")
        elif s.state == "frozen":
            out.console().print(f"[cyan]{out.plain(s.name)}[/cyan]{what} is {'; '.join(s.reasons)}")
        else:
            out.console().print(f"[green]{out.plain(s.name)}[/green]{what} is up to date")


def reproduce(
    ref: str = typer.Argument(..., help="The model version to reproduce: NAME@VERSION, NAME@ALIAS or NAME."),
    tolerance: float = typer.Option(1e-6, "--tolerance", help="Relative tolerance for metrics that differ in bytes."),
    keep: bool = typer.Option(False, "--keep", help="Keep the scratch folder and print where it is."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Restore the data and params recorded for a version, re-run its stages, and compare every output.

    Exit code 0 when every output is identical, gives the same predictions, or has metrics within --tolerance;
    9 otherwise.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from shipyard.core.pipelines.reproduce import check_tolerance
    from shipyard.core.pipelines.reproduce import reproduce as run_reproduction
    from shipyard.wiring import open_executor

    tolerance = check_tolerance(tolerance)
    svc = out.services()
    mv = svc.registry.resolve(ref)
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-reproduce-"))
    home = scratch / ".shipyard-reproduce"  # models the stages register go here, not into your registry
    env = {"SHIPYARD_HOME": str(home), "SHIPYARD_DB_URL": f"sqlite:///{home / 'shipyard.db'}",
           "SHIPYARD_STORE": str(home / "objects"), "SHIPYARD_ACTOR": svc.settings.actor}
    from shipyard.core.project.loader import load_config

    executor = open_executor(load_config(svc.settings.project_root).executor)
    work = scratch / "workspace"
    work.mkdir()
    def golden() -> tuple[bool, str]:
        return _golden_check(svc, mv, home, tolerance, work)

    if not as_json:
        out.console().print(f"reproducing [bold]{mv.ref}[/bold] in a scratch folder: its stages re-run from the "
                            "record, and what they register goes to a scratch registry, deleted afterwards",
                            soft_wrap=True)
    try:
        result = run_reproduction(svc.meta, svc.store, mv, work, executor, env,
                                  None if as_json else ConsoleEvents(scratch=True), tolerance, golden)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if as_json:
        out.print_json(result.to_dict())
    else:
        out.table(f"{mv.ref}: stages {' → '.join(result.stages)}",
                  [out.Col("stage", ident=True), "output", out.Col("verdict", ident=True), "detail"],
                  ((c.stage, c.path, c.verdict, c.detail) for c in result.checks))
        out.console().print(("[green]reproduced[/green]" if result.reproduced else "[red]not reproduced[/red]")
                            + (f"; scratch folder kept at {work}" if keep else ""))
    if not result.reproduced:
        from shipyard.errors import NotReproducedError

        differ = [f"{c.stage}: {c.path}" for c in result.checks if c.verdict in ("different", "missing")]
        raise NotReproducedError(f"{mv.ref} was not reproduced: {', '.join(differ[:5]) or 'see above'} "
                                 f"{'differ' if len(differ) > 1 else 'differs'} from the record")


def _golden_check(svc: Services, mv: ModelVersion, home: Path, tolerance: float, work: Path) -> tuple[bool, str]:
    """Load the model the re-run registered (in the scratch registry), or wrote (a model shipyard.yaml
    declares, which ``shipyard run`` registers), and predict the golden examples."""
    import math

    from shipyard.config import Settings
    from shipyard.errors import ShipyardError
    from shipyard.wiring import build

    golden = svc.registry.examples(mv)
    if golden is None:
        return False, f"{mv.ref} has no golden examples to compare predictions on"
    scratch = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                             actor=svc.settings.actor))
    try:
        model = _rerun_model(svc, scratch, mv, work)
        flavor = scratch.registry.flavors(mv.flavor)  # the wiring's flavors: no adapter import here
        import numpy as np

        read = getattr(flavor, "from_json", None)  # a sparse matrix's CSR parts, a table, text: as the model takes
        inputs = read(golden["inputs"]) if callable(read) else np.asarray(golden["inputs"])
        predicted = flavor.to_json(flavor.predict(model, inputs))
    except ShipyardError as exc:
        return False, f"the re-run registered no usable {mv.model}: {exc}"
    finally:
        scratch.close()
    flat_new, flat_old = np.ravel(predicted).tolist(), np.ravel(golden["outputs"]).tolist()
    same = len(flat_new) == len(flat_old) and all(
        a == b or (isinstance(a, float) and math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance))
        for a, b in zip(flat_new, flat_old, strict=True))
    return same, f"{len(golden['outputs'])} golden example(s): " + ("all agree" if same else "predictions differ")


def _rerun_model(svc: Services, scratch: Services, mv: ModelVersion, work: Path) -> Any:
    from shipyard.wiring.declared_models import rerun_model

    if not scratch.registry.models():  # the stage registers nothing itself: shipyard.yaml declares the model
        model = rerun_model(svc.settings.project_root, mv, work)
        if model is not None:
            return model
    return scratch.registry.load(mv.model)
