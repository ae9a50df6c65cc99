"""``shipyard models``: registered models, their versions, and registering a saved folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import models_sync
from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.registry.diff import Side
    from shipyard.core.registry.records import AuditEvent, ModelVersion
    from shipyard.wiring import Services
    from shipyard.wiring.signing import SignatureStatus

app = typer.Typer(help="Registered models and their immutable versions.", no_args_is_help=True)


@app.command("list")
def list_models(as_json: bool = out.JSON_OPTION) -> None:
    """List registered models with their latest version and aliases."""
    models = out.services().registry.models()
    if as_json:
        out.print_json([m.to_dict() for m in models])
        return
    if not models:
        out.console().print("no models registered yet: try `shipyard demo`")
        return
    out.table(None, [out.Col("model", ident=True), out.Col("latest", ident=True), "aliases",
                     out.Col("created", ident=True, drop=1)],
              ((m.name, m.latest_version, ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())) or "-",
                out.when(m.created_at)) for m in models))


@app.command("versions")
def versions(name: str = typer.Argument(..., help="Model name."),
             metric: list[str] = typer.Option(None, "--metric", "-m",
                                              help="A metric column to show (repeatable), in this order; by default "
                                                   "every metric, the ones most versions have first, as many as fit."),
             as_json: bool = out.JSON_OPTION) -> None:
    """List every version of a model."""
    svc = out.services()
    rows = svc.registry.versions(name)
    if as_json:
        out.print_json([v.to_dict() for v in rows])
        return
    keys = out.metric_columns((v.metrics for v in rows), metric, "version")
    counts = svc.meta.metric_counts([v.run_id for v in rows if v.run_id])
    width = out.id_width(v.run_id for v in rows if v.run_id)
    out.table(f"{name}: {out.plural(len(rows), 'version')}",
              [out.Col("version", ident=True), "aliases", out.Col("flavor", ident=True),
               out.Col("artifacts", ident=True, drop=4), out.Col("run", ident=True),
               out.Col("registered", ident=True, drop=3),
               *(out.Col(k, drop=1 if i == 0 else 2) for i, k in enumerate(keys))],
              ((v.version, ", ".join(v.aliases) or "-", v.flavor, out.short(v.manifest_digest),
                (v.run_id or "-")[:width], out.when(v.created_at),
                *(out.series(v.metrics[k], counts.get(v.run_id or "", {}).get(k, 1)) if k in v.metrics else ""
                  for k in keys)) for v in rows),
              hint="--metric KEY picks the metric columns, --json shows all")


@app.command("show")
def show(ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
         as_json: bool = out.JSON_OPTION) -> None:
    """Show one model version: artifacts digest, lineage, I/O schema, trust, whether it is signed (by which key,
    and whether that signature verifies with signing.trusted_keys; the files are not re-hashed: `shipyard sign
    --verify` does), its newest vulnerability scan, metrics."""
    svc = out.services()
    registry = svc.registry
    mv = registry.resolve(ref)
    decision = registry.trust_event(mv)
    other = registry.others_trust(mv)
    from shipyard.wiring.signing import signature_summary
    from shipyard.wiring.supply import scan_summary

    signed = signature_summary(svc, mv)
    scanned = scan_summary(svc, mv)
    if as_json:
        out.print_json({**mv.to_dict(), "trust": None if decision is None else decision.to_dict(),
                        "trust_by_others": None if other is None else other.to_dict(),
                        "signed": signed.to_dict(), "scan": scanned})
        return
    out.console().print(f"[bold]{mv.ref}[/bold]  {out.plain(mv.description)}")
    out.table(None, [out.Col("field", ident=True), "value"], [
        ("aliases", ", ".join(mv.aliases) or "-"), ("flavor", mv.flavor), ("artifacts", mv.manifest_digest),
        ("size", out.size(mv.size)), ("run", mv.run_id or "-"), ("environment", mv.env_digest or "-"),
        ("golden examples", mv.examples_digest or "-"),
        ("registered", f"{out.when(mv.created_at, seconds=True)} by {mv.created_by}"),
        ("schema", _signature(mv.signature)), ("trusted", _trust(decision)),
        ("signed", out.plain(_signed(signed))), ("scan", out.plain(_scanned(scanned))),
        *([("trusted by others", _trust(other) + " (does not count for you: not you or a listed reviewer)")]
          if other is not None else []),
    ])
    if mv.metrics:
        counts = svc.meta.metric_counts([mv.run_id]).get(mv.run_id, {}) if mv.run_id else {}
        out.table("metrics at registration", ["key", "value"],
                  ((k, out.series(v, counts.get(k, 1))) for k, v in sorted(mv.metrics.items())))
    if mv.params:
        out.table("params", ["key", "value"], sorted(mv.params.items()))


def _signed(status: SignatureStatus) -> str:
    if not status.signed:
        return "not signed"
    if status.verified:
        return f"by {status.key} (trusted: verifies with signing.trusted_keys)"
    return f"by {status.key or '?'}, not verified: {status.reason}"


def _scanned(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "never scanned"
    at = f" {out.when(summary['when'])}" if summary.get("when") else ""
    if not summary["checked"]:
        why = summary["errors"][-1] if summary["errors"] else "no source answered"
        return f"not checked{at} ({why})"
    counts = ", ".join(f"{n} {sev}" for sev, n in sorted(summary["counts"].items(),
                                                         key=lambda kv: _RANK.get(kv[0], 9)))
    waived = f" ({summary['waived']} waived)" if summary["waived"] else ""
    return f"checked{at} against {summary['source']}: {counts or 'no known vulnerabilities'}{waived}"


_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "unknown": 4}


def _trust(event: AuditEvent | None) -> str:
    from rich.markup import escape

    if event is None or not event.trusted:
        return "nothing beyond the allowlist" + ("" if event is None else
                                                 escape(f" ({out.when(event.at)} by {event.actor})"))
    return escape(f"{', '.join(event.trusted)} ({out.when(event.at)} by {event.actor}: {event.reason})")


def _signature(sig: dict[str, object]) -> str:
    if not sig:
        return "-"
    parts = []
    for side in ("inputs", "outputs"):
        spec = sig.get(side)
        if isinstance(spec, dict):
            parts.append(f"{side}: {spec.get('dtype')} {spec.get('shape')}")
    return "; ".join(parts)


@app.command("register")
def register(
    folder: Path = typer.Argument(..., help="A folder written by shipyard.save_model()."),
    name: str = typer.Option(..., "--name", help="Model name to register under."),
    version: int = typer.Option(None, "--version",
                                help="Expected version number; fails if it exists (versions never change)."),
    description: str = typer.Option("", "--description", "-d"),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Register a saved model folder as the next version of NAME.

    A folder from anywhere is untrusted: if loading it would run code (a pickle, a class to import,
    stored code, skops types beyond Shipyard's allowlist), this says what, and the version loads
    only after `shipyard models trust`. A folder that could never load is refused (exit 2).
    """
    from rich.markup import escape

    registry = out.services().registry
    mv = registry.register(name, folder, description=description, version=version)  # refuses what can never load
    needed = registry.requirements(folder)
    if as_json:
        out.print_json({**mv.to_dict(), "needs_trust": needed.items()})
        return
    out.console().print(f"registered [bold]{mv.ref}[/bold] ({out.short(mv.manifest_digest)})")
    if needed:
        out.console().print(f"[yellow]{mv.ref} will not load until trusted[/yellow]: it contains "
                            f"{escape(needed.describe())}; if you trust its author: "
                            f"shipyard models trust {mv.ref} {escape(needed.flags())} -m REASON", soft_wrap=True)


@app.command("trust")
def trust(
    ref: str = typer.Argument(..., help="NAME@VERSION (an alias is resolved to its version now)."),
    reason: str = typer.Option(..., "--reason", "-m", help="Why you trust it; kept in the audit log."),
    pickle: bool = typer.Option(False, "--pickle", help="Allow unpickling its files (pickle, joblib)."),
    code: bool = typer.Option(False, "--code", help="Allow running its stored program (TorchScript)."),
    types: list[str] = typer.Option([], "--type", help="A skops type or function to allow, e.g. mypkg.MyTransformer."),
    classes: list[str] = typer.Option([], "--class", help="A class to import and build, e.g. mypackage.nets:Net."),
    revoke: bool = typer.Option(False, "--revoke", help="Trust nothing beyond the allowlist from now on."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Trust what loading one version may run (audited). Each decision replaces your last one.

    Only trust a version whose author you trust: a pickle or a class runs code on the machine that
    loads or serves it. The decision counts for you (SHIPYARD_ACTOR) and for those who list you in
    SHIPYARD_TRUSTED_ACTORS. `shipyard models show` shows the decision in force for you.
    """
    from shipyard.core.registry.trust import TrustSet
    from shipyard.errors import InvalidInputError

    items = TrustSet.of(pickle, code, types, classes)
    if revoke == bool(items):
        raise InvalidInputError("name what to trust (--pickle, --code, --type T, --class module:Class), "
                                "or give --revoke alone")
    registry = out.services().registry
    event = registry.trust(ref, items, reason)
    if as_json:
        out.print_json(event.to_dict())
    elif revoke:
        out.console().print(f"{event.model}@{event.name} now trusts nothing beyond the allowlist (audited)")
    else:
        out.console().print(f"{event.model}@{event.name} may now load {items.describe()} (audited)",
                            markup=False, soft_wrap=True)


@app.command("history")
def history(name: str = typer.Argument(None, help="Model name (all models if omitted)."),
            as_json: bool = out.JSON_OPTION) -> None:
    """The audit trail (who, when, from, to, why): registrations, alias moves, trust decisions, and the checks
    recorded with each version: verify, build, rollout, promote, policy decisions, SBOMs, scans, waivers,
    signatures and provenance (each record's digest in the change column; --json gives them whole)."""
    events = out.services().registry.history(name)
    if as_json:
        out.print_json([e.to_dict() for e in events])
        return
    # model@name is the reference the event is about (iris@3, iris@production); the reason is never dropped,
    # and keeps its words whole: who, change and then when are hidden to make room for it
    out.table(None, [out.Col("when", ident=True, drop=1), out.Col("who", drop=3), out.Col("action", ident=True),
                     out.Col("ref", ident=True), out.Col("change", drop=2), "reason"],
              ((out.when(e.at), e.actor, e.action, f"{e.model}@{e.name}", f"{out.short(e.old)} → {out.short(e.new)}",
                e.reason or "-") for e in events))


@app.command("lineage")
def lineage(ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
            as_json: bool = out.JSON_OPTION) -> None:
    """The chain behind a version: its run, the runs that made that run's inputs, back to raw data digests."""
    from rich.tree import Tree

    from shipyard.core.lineage.graph import Node
    from shipyard.core.lineage.graph import lineage as build_lineage
    from shipyard.core.workspace.lockfile import load_lock

    svc = out.services()
    mv = svc.registry.resolve(ref)
    tracked = {e.digest: path for path, e in load_lock(svc.settings.project_root).data.items()}
    root = build_lineage(svc.meta, mv, tracked)
    if as_json:
        out.print_json(root.to_dict())
        return

    def grow(tree: Tree, node: Node) -> None:
        style = {"model": "bold", "run": "cyan", "raw": "green"}.get(node.kind, "")
        text = node.label + (f"  {out.short(node.digest)}" if node.digest else "")
        branch = tree.add(f"[{style}]{text}[/{style}]" if style else text)
        for child in node.children:
            grow(branch, child)

    top = Tree(f"[bold]{root.label}[/bold]  {out.short(root.digest)}")
    for child in root.children:
        grow(top, child)
    out.console().print(top)


@app.command("diff")
def diff(base: str = typer.Argument(..., help="The version to compare against: NAME@ALIAS, NAME@V or NAME."),
         head: str = typer.Argument(..., help="The new version: NAME@V, NAME@ALIAS or NAME (its latest)."),
         markdown: bool = typer.Option(False, "--markdown", help="Print Markdown (a pull request's comment)."),
         missing_ok: bool = typer.Option(False, "--missing-ok",
                                         help="If BASE does not exist yet (no such alias), show HEAD's metrics alone "
                                              "instead of failing."),
         output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of printing."),
         as_json: bool = out.JSON_OPTION) -> None:
    """Metrics of two versions' producing runs side by side, with the change, and the params that differ."""
    import json

    from shipyard.core.registry import diff as metrics_diff
    from shipyard.errors import InvalidInputError, NotFoundError

    if markdown and as_json:
        raise InvalidInputError("--markdown or --json, not both")
    svc = out.services()
    try:
        new = _side(svc, svc.registry.resolve(head), head)
        try:
            old = _side(svc, svc.registry.resolve(base), base)
        except NotFoundError:
            if not missing_ok:
                raise
            old = metrics_diff.Side(base, None)
    finally:
        svc.close()
    result = metrics_diff.diff(old, new)
    text = (metrics_diff.markdown(result) if markdown
            else json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n" if as_json or output else None)
    if text is not None and output is not None:
        from shipyard.core.workspace.atomic import write_atomic

        write_atomic(output, text.encode())
        out.console(stderr=True).print(f"wrote {out.plain(str(output))}")
    elif text is not None:
        import sys

        sys.stdout.write(text)
    else:
        if old.metrics is None:
            out.console().print(f"{out.plain(old.label)} does not exist yet: {out.plain(new.label)} alone")
        out.table(f"{old.label} → {new.label}", [out.Col("metric", ident=True), old.label, new.label, "change"],
                  ((r.key, metrics_diff.number(r.old), metrics_diff.number(r.new), r.change_text())
                   for r in result.metrics))
        if result.params:
            out.table("params that differ", ["param", old.label, new.label],
                      ((k, a or "-", b or "-") for k, a, b in result.params))


def _side(svc: Services, mv: ModelVersion, given: str) -> Side:
    """A version's metrics: those recorded with it, and its producing run's (a later value of a series wins);
    labelled ``iris@1 (production)`` when named by an alias."""
    from shipyard.core.registry.diff import Side
    from shipyard.errors import NotFoundError

    metrics, params = dict(mv.metrics), dict(mv.params)
    if mv.run_id:
        try:
            run = svc.meta.get_run(mv.run_id)
        except NotFoundError:
            pass
        else:
            metrics.update(run.metrics)
            params = {**run.params, **params}
    alias = given.partition("@")[2]
    label = mv.ref if alias in ("", str(mv.version)) else f"{mv.ref} ({alias})"
    return Side(label, metrics, params)


app.command("push")(models_sync.push)  # a version's files to and from a remote (models_sync.py)
app.command("pull")(models_sync.pull)
