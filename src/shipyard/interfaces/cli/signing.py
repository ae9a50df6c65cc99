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
    if as_json:
        out.print_json({"private_key": str(private), "public_key": str(public), "fingerprint": fp})
        return
    out.console().print(f"wrote {private} (private, keep it secret: never commit it) and {public}\n"
                        f"fingerprint {fp}\n"
                        f"in shipyard.yaml:  signing: {{key: {private}, trusted_keys: [{public}]}}",
                        highlight=False, soft_wrap=True, markup=False)


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
    from shipyard.wiring.signing import sign_version, signature_status

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
    if as_json:
        out.print_json({"version": mv.ref, **record, "event": event.id})
    else:
        out.console().print(f"signed {mv.ref} ({record['method']}) by {record['key']}: bundle "
                            f"{out.short(record['bundle'])}", highlight=False, soft_wrap=True, markup=False)
