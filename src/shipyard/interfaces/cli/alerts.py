"""``shipyard alerts render``: the alert rules (a Prometheus rules file and a prometheus-operator PrometheusRule)
and a Grafana dashboard for the served models, from shipyard.yaml's ``monitoring:`` section."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

app = typer.Typer(help="Alert rules and dashboards as code: Prometheus rules, a PrometheusRule, a Grafana dashboard.",
                  no_args_is_help=True)

RULES_FILE = "shipyard-rules.yml"
OPERATOR_FILE = "prometheusrule.yaml"
DASHBOARD_FILE = "grafana-dashboard.json"
DEFAULT_DIR = "monitoring"
HEAD_BYTES = 512
JOB_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,200}\Z")


@app.command("render")
def render(
    model: str = typer.Argument(None, help="Only this model's series (default: every model the servers serve)."),
    output: Path = typer.Option(None, "--output", "-o", metavar="DIR",
                                help="Folder to write into (default: monitoring/ in the project for every model, "
                                     "monitoring/MODEL/ for one)."),
    job: str = typer.Option("shipyard", "--job", help="The Prometheus scrape job of the Shipyard servers (the "
                                                      "server-down rules watch its `up` series)."),
    force: bool = typer.Option(False, "--force", help="Replace files that `shipyard alerts render` did not "
                                                      "write."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Write DIR/shipyard-rules.yml (a Prometheus rules file: `rule_files:` in prometheus.yml),
    DIR/prometheusrule.yaml (the same rules for the Prometheus operator: `kubectl apply -f`) and
    DIR/grafana-dashboard.json (Grafana: Dashboards > New > Import).

    The rules cover the error rate, the p99 latency SLO, feature and prediction drift, no traffic, the server
    down or absent, model load failures, canary and shadow disagreement, and data quality; each has a runbook
    in its annotations. Thresholds and `for` durations come from shipyard.yaml's monitoring: section
    (monitoring.alerts, and psi, js, quality, min_rows). Rendering again gives the same bytes; a file that
    `shipyard alerts render` did not write is never replaced without --force.
    """
    from shipyard.core.deploy.manifests import k8s_name
    from shipyard.core.monitoring import alerts, dashboard
    from shipyard.core.registry.refs import check_model_name
    from shipyard.errors import InvalidInputError
    from shipyard.wiring import settings_from_environment
    from shipyard.wiring.monitoring import monitoring_spec

    if not JOB_RE.match(job):
        raise InvalidInputError(f"--job {job[:40]!r}: write a Prometheus job name (letters, digits, . _ : / -)")
    root = settings_from_environment().project_root
    spec = monitoring_spec(root)
    if model is not None:
        check_model_name(model)
        _check_registered(model)
    # one model's rules have a folder of their own: rendering another model's never replaces them
    folder = output if output is not None else root / DEFAULT_DIR / model if model else root / DEFAULT_DIR
    if output is None and any(p.is_symlink() for p in (root / DEFAULT_DIR, folder)):
        raise InvalidInputError(f"{root / DEFAULT_DIR} (or its folder for {model}) is a link: the default folder is "
                                "written only inside the project; remove the link, or give --output")
    name = f"shipyard-{k8s_name(model)}" if model else "shipyard"
    labels = {"app.kubernetes.io/part-of": "shipyard", "app.kubernetes.io/managed-by": "shipyard",
              **({"app.kubernetes.io/name": k8s_name(model)} if model else {})}
    groups = alerts.rule_groups(spec, model, job=job)
    files = {
        RULES_FILE: alerts.encode_rules(groups, model),
        OPERATOR_FILE: alerts.encode_rules(alerts.prometheus_rule(spec, name, labels, model, job=job), model),
        DASHBOARD_FILE: dashboard.encode(dashboard.dashboard(spec, model)),
    }
    written = write_files(folder, files, force)
    rules = groups["groups"][0]["rules"]
    if as_json:
        out.print_json({"model": model, "job": job, "folder": str(folder),
                        "files": [{"path": str(folder / f), "changed": f in written} for f in files],
                        "rules": [{"alert": r["alert"], "severity": r["labels"]["severity"], "for": r.get("for")}
                                  for r in rules]})
        return
    c = out.console()
    shown = _shown(folder)
    scope = f"model {out.plain(model)}" if model else "every model"
    for f in files:
        path = out.plain(str(shown / f))
        c.print(f"{'wrote' if f in written else 'unchanged'} {path}")
    c.print(f"{len(rules)} alert rules for {scope} (job {out.plain(job)}): "
            f"{', '.join(r['alert'] for r in rules)}", soft_wrap=True)


def _shown(folder: Path) -> Path:
    """``folder`` relative to the current one when it is inside it (what a person typed), else as it is."""
    try:
        return folder.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return folder


def _check_registered(model: str) -> None:
    """A model the registry does not know gets rules that never fire: say so instead."""
    from shipyard.errors import NotFoundError

    svc = out.services()
    try:
        names = [m.name for m in svc.registry.models()]
    finally:
        svc.close()
    if model not in names:
        raise NotFoundError(f"no model named {model!r} is registered (registered: {', '.join(names) or 'none yet'})"
                            ": check the name, or render the rules for every model (no MODEL)")


def write_files(folder: Path, files: dict[str, bytes], force: bool) -> list[str]:
    """Write each of ``files`` into ``folder`` (names), all or none: a file there that ``shipyard alerts render``
    did not write stops everything unless ``force``; an unchanged file is left alone. The names written."""
    from shipyard.core.monitoring import alerts, dashboard
    from shipyard.core.workspace.atomic import write_atomic
    from shipyard.errors import ConflictError, InvalidInputError

    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--output {folder}: not a folder")
    changed: list[str] = []
    for name, data in files.items():
        path = folder / name
        if not path.exists() and not path.is_symlink():
            changed.append(name)
            continue
        if path.is_symlink() or not path.is_file():
            raise ConflictError(f"{path} is not a plain file: remove it, or --output another folder")
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            same = head == data[:HEAD_BYTES] and f.read(len(data) + 1 - len(head)) == data[len(head):]
        if same:
            continue
        ours = dashboard.generated(head) if name.endswith(".json") else alerts.generated(head)
        if not ours and not force:
            raise ConflictError(f"{path} exists and was not written by `shipyard alerts render`: pass --force to "
                                "replace it, or --output another folder")
        changed.append(name)
    for name in changed:
        write_atomic(folder / name, files[name])
    return changed

