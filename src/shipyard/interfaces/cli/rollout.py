"""``shipyard rollout MODEL@NEW --from MODEL@STABLE``: a canary rollout on one machine, judged by the same
rules as the rendered AnalysisTemplate, promoted (an alias moved, or with ``--env`` a GitOps promotion: commit,
push, then the environment's alias) or rolled back by itself."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from rich.console import RenderableType

    from shipyard.core.deploy.config import AnalysisSpec, CanaryStep, DeploySpec
    from shipyard.core.deploy.rollout import Plan, State
    from shipyard.core.registry.records import ModelVersion
    from shipyard.interfaces.serving.rollout import Tick
    from shipyard.wiring.gitops import Promotion

SHORT = {"pass": "ok", "fail": "FAIL", "inconclusive": "?"}
VERDICT_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


def rollout(
    new: str = typer.Argument(..., help="The version to roll out: NAME@V or NAME@ALIAS."),
    stable: str = typer.Option(..., "--from", metavar="REF", help="The version serving now (NAME@V or NAME@ALIAS)."),
    steps: str | None = typer.Option(None, "--steps", metavar="STEPS",
                                     help="Canary steps, e.g. 10,analysis,50,pause=5s,analysis (default: "
                                          "shipyard.yaml's deploy.canary)."),
    interval: str | None = typer.Option(None, "--interval", metavar="DURATION",
                                        help="Analysis interval, e.g. 2s (default: deploy.analysis.interval)."),
    count: int | None = typer.Option(None, "--count", min=1, help="Measurements per analysis step."),
    min_requests: int | None = typer.Option(None, "--min-requests", min=1,
                                            help="Fewer requests to a version in an interval: inconclusive."),
    alias: str | None = typer.Option(None, "--alias", help="The alias to move when every step passes "
                                                           "(default: production). Not a deploy environment's "
                                                           "alias when deploy.repo is set: use --env."),
    env: str | None = typer.Option(None, "--env", metavar="ENV",
                                   help="When every step passes, promote to this environment (shipyard.yaml "
                                        "deploy.environments) as `shipyard promote --env` does: rendered, "
                                        "committed and pushed to the GitOps repository, then its alias moved."),
    image: str | None = typer.Option(None, "--image", metavar="REPO@sha256:DIGEST",
                                     help="With --env: the image to pin (default: the newest `build --push`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Where the model server listens."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Its port (0: any free one)."),
    replay: str | None = typer.Option(None, "--replay", metavar="LOGS",
                                      help="Drive traffic from recorded inference logs (`shipyard serve --log "
                                           "--log-payloads`): the serve run's id, a .jsonl file or a folder."),
    rate: float = typer.Option(200.0, "--rate", min=1.0, help="With --replay: requests a second."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Roll NEW out against STABLE on the local model server: the weight steps up, every interval the
    analysis (error rate, p99 against stable, prediction disagreement, drift) is measured on the server's
    metrics, and when every step passes the alias moves to NEW (with --env, NEW is promoted as `shipyard
    promote` does: committed and pushed to the GitOps repository, then the environment's alias moved). A failing
    rule rolls back at once (weight 0); the verdict, with the failing metric and its value, is recorded in
    `shipyard models history`.

    Traffic comes from clients of http://HOST:PORT, or from --replay; a request not answered within one
    interval is a timeout. Exits 0 when promoted, 1 when rolled back, 12 when inconclusive (no verdict: too
    little traffic); a refused promotion gate (--env) exits 11.
    """
    try:
        from shipyard.interfaces.serving.rollout import run_rollout
    except ModuleNotFoundError as exc:
        from shipyard.errors import MissingExtraError

        raise MissingExtraError("the model server", "serve") from exc
    from shipyard.core.deploy.rollout import Plan, describe
    from shipyard.core.registry.refs import ModelRef
    from shipyard.errors import ConfigError, InvalidInputError

    if ModelRef.parse(new).name != ModelRef.parse(stable).name:
        raise InvalidInputError(f"--from {stable} is not a version of {ModelRef.parse(new).name}")
    if image is not None and env is None:
        raise InvalidInputError("--image is the image to promote with: give it with --env ENV")
    svc = out.services()
    try:
        plan_steps, spec, target = _configure(svc.settings.project_root, steps, interval, count, min_requests, alias,
                                              env)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    if target.env is not None:  # no GitOps repository to promote to (no deploy.repo, no origin): said before
        from shipyard.wiring.deploy import deploy_spec
        from shipyard.wiring.gitops import gitops_repo

        gitops_repo(svc, deploy_spec(svc))
    new_mv, stable_mv = svc.registry.resolve(new), svc.registry.resolve(stable)
    if new_mv.version == stable_mv.version:
        raise InvalidInputError(f"{new} and {stable} are the same version ({new_mv.ref}): nothing to roll out")
    from shipyard.wiring.signing import require_signature

    for served in (stable_mv, new_mv):  # with signing.require_signed, both are checked before either loads
        require_signature(svc, served, "serve")
    if port:  # a taken port is said before any model loads (seconds)
        from shipyard.interfaces.cli.serve import _check_port

        _check_port(host, port)
    batches = _replayed(svc, replay) if replay is not None else None
    plan = Plan.of(plan_steps, spec)
    view = _View(plan, spec, new_mv.ref, stable_mv.ref, quiet=as_json)
    ticks: list[dict[str, Any]] = []
    where: list[int] = [port]
    idle = [0]  # intervals in a row with no request at all

    def hint(some: bool = False) -> str:
        url = f"http://{host}:{where[0]}"
        if replay is not None:
            return f"{'too few' if some else 'no'} replayed requests reached {url}: raise --rate, or replay more logs"
        if some:
            return (f"too few requests reached {url} (fewer than {spec.min_requests} to a version in an interval): "
                    "send more, or lower --min-requests")
        return (f"no requests reached {url}: send traffic there (POST /predict), or use --replay RUN (the id of a "
                "`shipyard serve --log --log-payloads` run, or its .jsonl logs)")

    def on_tick(tick: Tick) -> None:
        ticks.append({"at": round(tick.elapsed, 3), "step": tick.state.step, "weight": tick.state.weight,
                      "requests": tick.requests, "measurements": [m.to_dict() for m in tick.measured]})
        view.update(tick)
        if tick.elapsed > 0:
            idle[0] = idle[0] + 1 if tick.requests == 0 else 0
            if idle[0] == 1 and not tick.state.done:  # said early, once per idle stretch
                view.note(hint())

    def on_ready(bound: int) -> None:
        where[0] = bound
        view.note(f"serving {stable_mv.ref} (stable) and {new_mv.ref} (canary) on http://{host}:{bound}; steps "
                  f"{', '.join(describe(s) for s in plan.steps)}; every {spec.interval}"
                  + (f"; replaying {len(batches)} logged requests" if batches else ""))

    with view:
        state = run_rollout(svc.registry, new_mv, stable_mv, plan, spec, port, host, batches, rate, on_tick,
                            on_ready)
    summary, promoted = finish(svc, new_mv, stable_mv, state, target, _detail(plan, spec), image=image)
    if as_json:
        out.print_json({"model": new_mv.model, "version": new_mv.version, "from": stable_mv.version,
                        "status": state.status, "why": state.why, "env": target.env,
                        "alias": target.alias if state.status == "promoted" else None,
                        "commit": promoted.commit if promoted else None, "ticks": ticks})
    else:
        style = "green" if state.status == "promoted" else "bold red"
        out.console().print(f"[{style}]{out.plain(summary)}[/{style}]")
        if state.status == "inconclusive":
            out.console(stderr=True).print(out.plain(f"no verdict: {hint(some=not idle[0])}"))
    svc.close()
    if state.status != "promoted":
        raise typer.Exit(EXIT_INCONCLUSIVE if state.status == "inconclusive" else 1)


def _replayed(svc: Any, logs: str) -> list[Any]:
    """The request inputs of ``logs``: a path, or the id of a ``serve --log`` run (its inference-log artifacts)."""
    from shipyard.core.artifacts.tree import read_verified
    from shipyard.interfaces.serving.rollout import MAX_REPLAY_BYTES, logged_rows, replay_rows

    if Path(logs).exists():
        return replay_rows(Path(logs))
    run = svc.tracker.get_run(logs)
    found = [a for a in run.artifacts if a.path.startswith("inference-logs/") and not a.is_dir]
    if not found:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError(f"--replay {logs}: run {run.id[:8]} ({run.name}) recorded no inference logs; give "
                                "the run of `shipyard serve --log --log-payloads`, or a .jsonl file")
    return logged_rows((read_verified(svc.store, a.digest, limit=MAX_REPLAY_BYTES, what=f"inference log {a.path}",
                                      too_large="; replay a part of it from a file")
                        for a in found), f"--replay {logs}")


EXIT_INCONCLUSIVE = 12  # no verdict: the new version got too little traffic to judge (rolled back: 1)


@dataclass(frozen=True)
class Target:
    """What a passing rollout moves: ``alias`` directly, or with ``env`` a promotion through git (its alias)."""

    alias: str
    env: str | None = None


def finish(svc: Any, new: ModelVersion, stable: ModelVersion, state: State, target: Target,
           detail: dict[str, Any], *, image: str | None = None, spec: DeploySpec | None = None,
           ) -> tuple[str, Promotion | None]:
    """Record the verdict on ``new`` (``models history``), then, when it passed, move ``target``: an alias at once,
    an environment as ``shipyard promote`` does (commit and push, then its alias). (summary, the promotion).
    A refused gate or a failed push raises after the verdict is recorded."""
    from shipyard.errors import PolicyDeniedError
    from shipyard.interfaces.serving.rollout import conclude
    from shipyard.wiring.policy import gate_alias

    alias = target.alias if target.env is None else None
    if state.status == "promoted" and alias is not None:
        try:  # a protected alias moves only when the policy allows it, as with `alias set`
            gate_alias(svc, new.model, alias, new.version)
        except PolicyDeniedError as exc:
            conclude(svc.registry, new, stable, state, None, {**detail, "env": None, "alias_refused": alias})
            raise PolicyDeniedError(f"{new.ref} passed every step (its verdict is in `shipyard models history "
                                    f"{new.model}`), but {exc}") from None
    summary = conclude(svc.registry, new, stable, state, alias, {**detail, "env": target.env})
    if state.status != "promoted" or target.env is None:
        return summary, None
    from shipyard.wiring.gitops import promote

    try:
        done = promote(svc, new.ref, target.env, image=image, spec=spec,
                       reason=f"rollout from {stable.ref}: every step passed")
    except PolicyDeniedError as exc:
        raise PolicyDeniedError(f"{new.ref} passed every step (its verdict is in `shipyard models history "
                                f"{new.model}`), but {exc}") from None
    if done.commit is None:
        summary += f"; {target.env} already holds it in git (commit {(done.head or '?')[:12]})"
    else:
        summary += f"; committed {done.commit[:12]} to {done.branch} of {done.repo}"
    if done.alias_moved:
        summary += f"; {new.model}@{done.alias} -> {new.ref}"
    return summary, done


def _detail(plan: Plan, spec: AnalysisSpec) -> dict[str, Any]:
    from shipyard.core.deploy.rollout import describe

    return {"steps": [describe(s) for s in plan.steps], "interval": spec.interval, "count": spec.count,
            "failure_limit": spec.failure_limit, "min_requests": spec.min_requests}


def _configure(root: Path, steps: str | None, interval: str | None, count: int | None, min_requests: int | None,
               alias: str | None, env: str | None) -> tuple[tuple[CanaryStep, ...], AnalysisSpec, Target]:
    """(steps, analysis spec, what a pass moves) from shipyard.yaml's deploy section, then the flags."""
    from shipyard.core.deploy.config import deploy_config, seconds
    from shipyard.core.deploy.rollout import parse_steps
    from shipyard.core.project.loader import load_config
    from shipyard.wiring.deploy import has_gitops_repository

    deploy = deploy_config(load_config(root).deploy)
    changes: dict[str, Any] = {}
    if interval is not None:
        seconds(interval)
        changes["interval"] = interval
    if count is not None:
        changes["count"] = count
    if min_requests is not None:
        changes["min_requests"] = min_requests
    spec = deploy.analysis.model_copy(update=changes)
    if spec.failure_limit >= spec.count:
        raise ValueError(f"--count {spec.count}: a step takes more measurements than the failures it tolerates "
                         f"(deploy.analysis.failure_limit is {spec.failure_limit}), or it would pass with every "
                         f"measurement failing: use --count {spec.failure_limit + 1} or more")
    if alias is not None and env is not None:
        raise ValueError("give --alias or --env, not both")
    if env is not None:
        target = Target(deploy.environment(env).alias or env, env)
    else:
        target = Target(alias or "production")
        followed = [e for e, s in sorted(deploy.environments.items()) if (s.alias or e) == target.alias]
        # that alias says what the GitOps repository (deploy.repo, or the project's origin) runs: it moves with a
        # commit, never by itself
        if followed and has_gitops_repository(root, deploy):
            raise ValueError(f"--alias {target.alias}{' (the default)' if alias is None else ''} is the alias of "
                             f"deploy environment {followed[0]!r}, which moves only with a commit to its GitOps "
                             f"repository ({'deploy.repo' if deploy.repo else 'this project' + chr(39) + 's origin'}): "
                             f"use --env {followed[0]} (commits, then moves it), or another --alias")
    return (parse_steps(steps) if steps is not None else deploy.canary), spec, target


class _View:
    """The progress view: a Rich Live table on a terminal, one plain line per interval otherwise."""

    def __init__(self, plan: Plan, spec: AnalysisSpec, new: str, stable: str, quiet: bool) -> None:
        self.plan, self.spec, self.new, self.stable, self.quiet = plan, spec, new, stable, quiet
        self.console = out.console(stderr=True)
        self.live: Any = None
        self.tick: Tick | None = None

    def __enter__(self) -> _View:
        if not self.quiet and sys.stderr.isatty():
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(out.plain(text))

    def update(self, tick: Tick) -> None:
        self.tick = tick
        if self.live is not None:
            self.live.update(self._render())
        elif not self.quiet:
            self.console.print(out.plain(tick_line(self.plan, tick)))

    def _step(self, tick: Tick) -> str:
        return step_text(self.plan, tick)

    def _render(self) -> RenderableType:
        from rich.table import Table

        tick = self.tick
        title = f"rollout {self.new} (from {self.stable})"
        if tick is not None:
            title += f" · step {self._step(tick)} · weight {tick.state.weight}% · {tick.elapsed:.1f}s"
        table = Table(title=title, title_justify="left")
        for col in ("rule", "value", "limit", "verdict", "note"):
            table.add_column(col)
        for m in tick.measured if tick else ():
            style = VERDICT_STYLE[m.verdict]
            table.add_row(m.rule, _value(m.value), f"{m.limit:g}", f"[{style}]{m.verdict}[/{style}]",
                          out.plain(m.note))
        if tick is not None and tick.state.done:
            table.caption = f"{tick.state.status}: {tick.state.why}"
        return table


def step_text(plan: Plan, tick: Tick) -> str:
    from shipyard.core.deploy.rollout import describe

    s = tick.state
    where = describe(plan.steps[s.step]) if s.step < len(plan.steps) else "done"
    return f"{min(s.step + 1, len(plan.steps))}/{len(plan.steps)} {where}"


def tick_line(plan: Plan, tick: Tick) -> str:
    """One interval as a line: the step, the weight, each rule's value against its limit, the verdict."""
    parts = [f"{tick.elapsed:4.1f}s {step_text(plan, tick)} {tick.state.weight:3d}%"]
    parts += [f"{m.rule} {_value(m.value)}/{m.limit:g} {SHORT[m.verdict]}" for m in tick.measured]
    return " | ".join(parts)


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"
