"""The ``shipyard`` command: Typer app, command groups, and the one place errors become exit codes."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence

import typer

from shipyard import __version__
from shipyard.errors import ShipyardError
from shipyard.interfaces.cli import (
    alerts,
    alias,
    build,
    ci,
    data,
    env,
    exp,
    importing,
    models,
    monitor,
    pipeline,
    plots,
    policy,
    project,
    promote,
    rollout,
    runs,
    serve,
    signing,
    store,
    supply,
    verify,
)
from shipyard.interfaces.cli import deploy as deploy_cli
from shipyard.interfaces.cli import output as out

app = typer.Typer(
    name="shipyard",
    help="The DevOps backbone of AI: tracked runs, content-addressed artifacts, an immutable model registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(alias.app, name="alias")
app.add_typer(store.app, name="store")
app.add_typer(data.app, name="data")
app.add_typer(env.app, name="env")
app.add_typer(ci.app, name="ci")
app.add_typer(policy.app, name="policy")
app.add_typer(signing.keys_app, name="keys")
app.add_typer(alerts.app, name="alerts")
app.add_typer(exp.app, name="exp")
app.add_typer(exp.metrics_app, name="metrics")
app.add_typer(exp.params_app, name="params")
app.add_typer(plots.app, name="plots")
app.add_typer(importing.app, name="import")
app.command("init")(project.init)
app.command("run")(pipeline.run)
app.command("status")(pipeline.status)
app.command("reproduce")(pipeline.reproduce)
app.command("serve")(serve.serve)
app.command("build")(build.build)
app.command("verify")(verify.verify)
app.command("deploy")(deploy_cli.deploy)
app.command("rollout")(rollout.rollout)
app.command("monitor")(monitor.monitor)
app.command("promote")(promote.promote)
app.command("rollback")(promote.rollback)
app.command("sbom")(supply.sbom)
app.command("scan")(supply.scan)
app.command("waive")(supply.waive)
app.command("sign")(signing.sign)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"shipyard {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Data and model versions with lineage, run tracking, and a registry whose versions never change.

    Commands work on the project around the current folder: the nearest folder at or above it that
    holds shipyard.yaml or .shipyard/ (`shipyard init` makes one). Data lives in the project's
    .shipyard/ folder (SQLite + object store) unless SHIPYARD_HOME, SHIPYARD_DB_URL (e.g.
    postgresql://user@host/db) or SHIPYARD_STORE (a folder, or s3://bucket/prefix: a team's store, read
    through a local cache) say otherwise.
    """


@app.command()
def demo(
    name: str = typer.Option("iris", "--name", help="Model name to register."),
) -> None:
    """The tour in seven parts: track and register an iris model, run the example pipeline (cached, its runs
    side by side), serve it, verify it elsewhere, roll new versions out (one rolled back by itself, one promoted),
    sign, scan and ask the policy about one, and watch its traffic drift."""
    from shipyard.interfaces.cli.demo import run_demo

    run_demo(name)


def reflow(doc: str) -> str:
    """A docstring as help text: the lines of each paragraph joined, so Rich wraps them to the terminal
    (it keeps the line breaks of every paragraph after the first); a paragraph with an indented or a
    ``-`` line (a list, an example) is kept as written."""
    paragraphs = doc.split("\n\n")
    return "\n\n".join(p if any(ln.startswith((" ", "-")) for ln in p.splitlines()) else " ".join(p.split("\n"))
                       for p in paragraphs)


def _reflow_help(typer_app: typer.Typer) -> None:
    import inspect

    for info in typer_app.registered_commands:
        doc = inspect.getdoc(info.callback) if info.help is None and info.callback is not None else None
        if doc:
            info.help = reflow(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


def for_command_line(argv: Sequence[str]) -> typer.Typer:
    """``app`` with only the group or command that ``argv`` names first (``shipyard data status``, ``shipyard
    run``): Typer builds the Click object of every command at each start (~25 ms for 57 commands), and no other
    can run. Anything else (an option or an unknown name first: the whole list helps; shell completion) gets
    the whole app."""
    if len(argv) < 2 or any(k.startswith("_SHIPYARD_COMPLETE") for k in os.environ):
        return app
    name = argv[1]
    groups = [g for g in app.registered_groups if g.name == name]
    commands = [c for c in app.registered_commands if c.name == name]
    if len(groups) + len(commands) != 1:
        return app
    only = copy.copy(app)
    only.registered_groups = groups
    only.registered_commands = commands
    return only


def main() -> None:
    import click

    cli = for_command_line(sys.argv)
    _reflow_help(cli)
    try:
        code = cli(prog_name="shipyard", standalone_mode=False)  # usage errors come here: one line each
    except click.exceptions.NoArgsIsHelpError as exc:  # the help is already printed
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        out.error(out.usage_message(exc))
        sys.exit(exc.exit_code)
    except click.Abort:
        out.error("aborted")
        sys.exit(1)
    except ShipyardError as exc:
        out.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        out.error("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
