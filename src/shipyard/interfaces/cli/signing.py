"""``shipyard sign`` and ``shipyard keys``: sign a version's files, check a signature, make a key pair."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

keys_app = typer.Typer(help="Signing keys: make a key pair for `shipyard sign`.", no_args_is_help=True)


@keys_app.command("generate")
def generate(
    path: Path = typer.Option(Path("keys/shipyard"), "--out", help="Writes OUT.key (private, mode 0600) and OUT.pub."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Make an EC P-256 key pair (PEM); existing files are never overwritten."""
    from shipyard.wiring.signing import generate_keys as make

    private, public, fp = make(path)
    root = _project_of_cwd()
    shown_private, shown_public = _in_project(private, root), _in_project(public, root)
    if as_json:
        out.print_json({"private_key": str(private), "public_key": str(public), "fingerprint": fp,
                        "project": None if root is None else str(root),
                        "in_project": None if root is None else {"key": shown_private, "trusted_keys": [shown_public]}})
        return
    where = "in shipyard.yaml" if root is not None else "in your project's shipyard.yaml"
    out.console().print(f"wrote {shown_private} (private, keep it secret: never commit it) and {shown_public}"
                        f"{' (paths from the project root)' if root is not None else ''}\n"
                        f"fingerprint {fp}\n"
                        f"{where}:  signing: {{key: {shown_private}, trusted_keys: [{shown_public}]}}",
                        highlight=False, soft_wrap=True, markup=False)


def _project_of_cwd() -> Path | None:
    from shipyard.config import find_project_root
    from shipyard.errors import ConfigError

    try:
        return find_project_root(Path.cwd())
    except ConfigError:
        return None


def _in_project(path: Path, root: Path | None) -> str:
    """``path`` as shipyard.yaml names it: relative to the project root when inside it, else absolute."""
    full = path.absolute()
    if root is None:
        return str(full)
    try:
        return full.relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(full)


def sign(
    ref: str = typer.Argument(..., help="The version to sign: NAME@VERSION or NAME@ALIAS."),
    key: str = typer.Option(None, "--key", help="The EC private key (PEM); default: signing.key."),
    certificate: str = typer.Option(None, "--certificate", help="Sign with this certificate (PEM) for --key."),
    chain: list[str] = typer.Option([], "--chain", help="Certificates of the chain (PEM), with --certificate."),
    sigstore: bool = typer.Option(False, "--sigstore", help="Keyless Sigstore signing with the CI's OIDC "
                                                            "identity (ambient credentials)."),
    verify: bool = typer.Option(False, "--verify", help="Sign nothing: check the version's signature with "
                                                        "signing.trusted_keys (exit 15 if it does not verify)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Sign a version's files (OpenSSF model-signing); `--verify` checks its signature instead."""
    from shipyard.wiring.signing import sign_version, signature_status, untrusted_note

    svc = out.services()
    mv = svc.registry.resolve(ref)
    if verify:
        from shipyard.errors import SignatureError

        status = signature_status(svc, mv)
        if as_json:
            out.print_json({"version": mv.ref, **status.to_dict()})
        elif status.verified:
            out.console().print(f"{mv.ref}: {status.reason}", highlight=False, soft_wrap=True, markup=False)
        if not status.verified:
            raise SignatureError(f"{mv.ref}: {status.reason}")
        return
    event, record = sign_version(svc, mv, key=key, certificate=certificate, chain=chain, sigstore=sigstore)
    note = untrusted_note(svc, str(record["key"]))
    if note is not None:
        out.console(stderr=True).print(note, highlight=False, soft_wrap=True, markup=False)
    if as_json:
        out.print_json({"version": mv.ref, **record, "event": event.id})
    else:
        out.console().print(f"signed {mv.ref} ({record['method']}) by {record['key']}: bundle "
                            f"{out.short(record['bundle'])}", highlight=False, soft_wrap=True, markup=False)
