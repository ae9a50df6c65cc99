"""The demo's governance part: sign a version, scan it, and ask the default policy whether it may go to production.

It works in a project of its own beside the pipeline's (``.shipyard/demo/governance``: a ``shipyard.yaml`` whose
``signing:`` trusts the demo's key, and the default Rego bundle that ``shipyard init`` writes into ``policies/``),
sharing the clone's database and store. Nothing waits on the network for long: the scan asks the OSV API
(``scan.timeout``) and, offline, says "not checked", which the policy counts as not scanned.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.markup import escape

from shipyard.errors import MissingExtraError, ShipyardError
from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.config import Settings

CONFIG = "signing:\n  key: keys/demo.key\n  trusted_keys: [keys/demo.pub]\n"


def governance_project(settings: Settings) -> Path:
    """The demo's governance project: its keys (made once), its shipyard.yaml and the default bundle."""
    from shipyard.wiring.policy import init_bundle
    from shipyard.wiring.signing import generate_keys

    folder = settings.home / "demo" / "governance"
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    if not (folder / "keys" / "demo.key").exists():
        for leftover in (folder / "keys" / "demo.key", folder / "keys" / "demo.pub"):
            leftover.unlink(missing_ok=True)  # a pair is made whole or not at all
        generate_keys(folder / "keys" / "demo")
    (folder / "shipyard.yaml").write_text(CONFIG)
    init_bundle(folder)
    return folder


def governance_demo(ref: str) -> bool:
    """Sign ``ref``, scan it, and show the default policy's decision on promoting it to production; False when
    the governance extra is missing."""
    from shipyard.wiring import build, settings_from_environment

    c = out.console()
    if any(importlib.util.find_spec(name) is None for name in ("model_signing", "regopy", "cyclonedx")):
        c.print(out.plain(str(MissingExtraError("signing, scanning and policies", "governance"))))
        return False
    from shipyard.wiring.policy import evaluate
    from shipyard.wiring.signing import sign_version, verify_signature
    from shipyard.wiring.supply import run_scan

    settings = settings_from_environment()
    folder = governance_project(settings)
    svc = build(replace(settings, root=folder), folder)
    try:
        mv = svc.registry.resolve(ref)
        c.print(f"\n[bold]6a. Sign {escape(mv.ref)}: its files' digests, signed with a key (OpenSSF model-signing)")
        sign_version(svc, mv)
        fingerprint, files = verify_signature(svc, mv)
        c.print(out.plain(f"signed {mv.ref} by the key {fingerprint[:23]}…; verified: the signature checked "
                          f"with the trusted key, its {files} files re-hashed"))
        c.print(f"\n[bold]6b. Scan {escape(mv.ref)}: its SBOM (CycloneDX 1.6) against OSV's advisories")
        result = run_scan(svc, mv.ref)
        if result.checked:
            bad = [f for f in result.findings if f.severity in ("critical", "high")]
            c.print(out.plain(f"{mv.ref}: {result.packages} packages checked against {result.source}: "
                              f"{len(result.findings)} known vulnerabilities, {len(bad)} critical or high"))
        else:
            why = result.errors[0] if result.errors else "no source answered"
            c.print(out.plain(f"NOT CHECKED: {mv.ref}: no OSV source answered ({why}); its {result.packages} "
                              "packages are neither clean nor vulnerable (recorded as not checked)"))
        c.print(f"\n[bold]6c. Ask the policy: may {escape(mv.ref)} be promoted to production?")
        decision = evaluate(svc, mv, "promote", "production", record=False)
        staging = evaluate(svc, mv, "promote", "staging", record=False)
    except ShipyardError as exc:
        c.print(out.plain(f"skipped: {exc}"))
        return True
    finally:
        svc.close()
    c.print(out.plain(f"policy {'allow' if decision.allowed else 'deny'}: promote {mv.ref} to production"))
    from shipyard.interfaces.cli.policy import result as shown

    out.table(None, ["check", "result"],
              ((name, shown(name, passed, decision.allowed, decision.skipped)) for name, passed in decision.checks))
    for reason in decision.reasons:
        c.print(f"  - {escape(reason)}")
    c.print(out.plain(f"to staging: {'allow' if staging.allowed else 'deny'} (the same findings are notes there); "
                      "production allows once every check passes"))
    c.print(f"[dim]the default bundle is in {escape(str(folder / 'policies'))} (digest "
            f"{escape(str(decision.bundle)[:19])}…); to ask it again: cd {escape(str(folder))} && "
            f"SHIPYARD_HOME={escape(str(settings.home))} shipyard policy eval {escape(mv.ref)} --action promote "
            f"--env production[/dim]")
    return True
