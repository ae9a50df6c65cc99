"""``shipyard policy``: evaluate the project's Rego policies, run their unit tests, write the default bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

app = typer.Typer(help="Policy as code: the Rego bundle in policies/ decides at every gate.", no_args_is_help=True)

ACTIONS = ("promote", "deploy", "alias", "serve")


@app.command("eval")
def evaluate(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME (latest)."),
    action: str = typer.Option("promote", "--action", "-a", help="promote, deploy, alias or serve."),
    env: str = typer.Option(None, "--env", "-e", help="The environment the action is for: required for promote, "
                                                      "deploy and alias; one of deploy.environments, "
                                                      "policy.production (or, for alias, a protected alias)."),
    image: str = typer.Option(None, "--image", help="The image being deployed (REPO@sha256:...; default: the one "
                                                    "promote or deploy would take)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Show the policy's decision on ACTION for REF in ENV, and why: each check, the reasons, the bundle's and
    the input's digests. A dry run: nothing is recorded. Exits 0 when allowed, 11 (as a denied gate) when
    denied."""
    from shipyard.core.policy.decision import NO_BUNDLE
    from shipyard.errors import InvalidInputError, PolicyDeniedError
    from shipyard.wiring.policy import check_environment
    from shipyard.wiring.policy import evaluate as run_policy

    if action not in ACTIONS:
        raise InvalidInputError(f"--action {action!r}: use one of {', '.join(ACTIONS)}")
    svc = out.services()
    try:
        check_environment(svc, action, env)
        mv = svc.registry.resolve(ref)
        decision = run_policy(svc, mv, action, env, image=image, record=False)
    finally:
        svc.close()
    if as_json:
        out.print_json({**decision.to_dict(), "input_document": dict(decision.document)})
    else:
        con = out.console()
        where = f" to {env}" if env else ""
        verdict = "[green]allow[/green]" if decision.allowed else "[red]deny[/red]"
        con.print(f"policy {verdict} {out.plain(action)} {out.plain(decision.ref)}{out.plain(where)}",
                  soft_wrap=True)
        if not decision.evaluated:
            con.print(NO_BUNDLE, markup=False, soft_wrap=True)
        else:
            if decision.checks:
                out.table(None, [out.Col("check", ident=True), out.Col("result", ident=True)],
                          [(c, result(c, p, decision.allowed, decision.skipped)) for c, p in decision.checks])
            for r in decision.reasons:
                con.print(f"  - {r}", markup=False, soft_wrap=True)
            notes = list(decision.notes)
            if decision.allowed and not notes:  # a bundle of one's own may not say why a row is a note
                notes = [f"{c} did not pass (not required here)" for c, p in decision.checks
                         if not p and c not in decision.skipped]
            for n in notes:
                con.print(f"  note: {n}", markup=False, soft_wrap=True)
            con.print(f"bundle {decision.bundle}", markup=False, soft_wrap=True)
            con.print(f"input  {decision.input} (--json shows the document)", markup=False, soft_wrap=True)
    if not decision.allowed:
        raise typer.Exit(PolicyDeniedError.exit_code)


def result(check: str, passed: bool, allowed: bool, skipped: tuple[str, ...]) -> str:
    """A check's row: pass, FAIL (it is why the decision denies), note (failed, not required here), or n/a
    (it does not apply: the metric with no policy.primary_metric)."""
    if check in skipped:
        return "n/a"
    return "pass" if passed else "FAIL" if not allowed else "note"


@app.command("test")
def test(as_json: bool = out.JSON_OPTION) -> None:
    """Run the Rego unit tests of policies/ (every test_* rule of its *_test.rego files; passed when exactly
    true). Exits 1 when one fails."""
    from shipyard.errors import ConfigError
    from shipyard.wiring.policy import engine

    svc = out.services()
    try:
        bundle = engine(svc)
    finally:
        svc.close()
    if bundle is None:
        raise ConfigError("no policy bundle in policies/: `shipyard policy init` writes the default one")
    results = bundle.run_tests()
    failed = [r for r in results if not r[1]]
    if as_json:
        out.print_json({"bundle": str(bundle.digest), "passed": len(results) - len(failed), "failed": len(failed),
                        "tests": [{"test": n, "passed": p, "detail": d} for n, p, d in results]})
    else:
        con = out.console()
        for name, passed, detail in results:
            con.print(f"{'PASS' if passed else 'FAIL'} {name}" + (f": {detail}" if detail else ""), markup=False,
                      soft_wrap=True)
        con.print(f"{len(results) - len(failed)} passed, {len(failed)} failed (bundle {bundle.digest})",
                  markup=False, soft_wrap=True)
        if not results:
            con.print("no test_* rules in a *_test.rego file", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command("init")
def init(folder: Path = typer.Argument(Path("."), help="The project folder (default: here).")) -> None:
    """Write Shipyard's default policy bundle into the project's policies/ folder (policy.folder); never
    overwrites a file, and says what it wrote."""
    from shipyard.config import find_project_root, not_a_project
    from shipyard.core.governance.config import policy_config
    from shipyard.core.project.loader import load_config
    from shipyard.wiring.policy import init_bundle

    root = find_project_root(folder.resolve())
    if root is None:
        raise not_a_project(folder.resolve())
    spec = policy_config(load_config(root).policy)
    con = out.console()
    for path, written in init_bundle(root, spec.folder):
        con.print(f"{'wrote' if written else 'kept '} {out.plain(path)}" + ("" if written else " (it exists)"),
                  soft_wrap=True)
    con.print("next: `shipyard policy test`, then `shipyard policy eval MODEL@V --action promote --env production`",
              markup=False, soft_wrap=True)
