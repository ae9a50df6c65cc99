"""``shipyard promote`` and ``shipyard rollback``: promotion as a git commit that Argo CD applies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.wiring.gitops import Promotion


def promote(
    ref: str = typer.Argument(..., help="MODEL@VERSION to promote (an alias or NAME resolves to its version now)."),
    env: str = typer.Option(..., "--env", "-e", help="Environment of shipyard.yaml's deploy.environments."),
    branch: str = typer.Option(None, "--branch",
                               help="Push the change to this branch for review; the environment and its alias "
                                    "stay as they are."),
    image: str = typer.Option(None, "--image",
                              help="REPO@sha256:DIGEST to deploy (default: the newest `shipyard build --push`)."),
    reason: str = typer.Option("", "--reason", "-m", help="Why, for the commit and the audit log."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Promote a version to an environment: check the gates, commit the rendered manifests to
    the GitOps repository and push, then move the environment's alias (only after the push).

    Gates: the version has an image pinned by digest, and where `verify --image` results are
    recorded for that image, the newest one passed. The GitOps repository is deploy.repo in
    shipyard.yaml, or else the project's own `origin`; Shipyard works in a private clone
    under .shipyard/gitops/ and never touches your working tree.
    """
    from shipyard.wiring.gitops import promote as run

    svc = out.services()
    try:
        done = run(svc, ref, env, branch=branch, image=image, reason=reason)
    finally:
        svc.close()
    _report(done, as_json)


def rollback(
    env: str = typer.Option(..., "--env", "-e", help="Environment to roll back."),
    model: str = typer.Argument(None, help="Model to roll back (default: the only one the environment's alias "
                                           "names)."),
    reason: str = typer.Option("", "--reason", "-m", help="Why, for the commit and the audit log."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Return an environment to the version it had before the current one, as promote does it:
    a commit pushed to the GitOps repository, then the alias moved (see `shipyard models history`).

    The version comes back with the image it was promoted with then. Rolling back twice goes two
    promotions back.
    """
    from shipyard.wiring.gitops import rollback as run

    svc = out.services()
    try:
        done = run(svc, env, model, reason=reason)
    finally:
        svc.close()
    _report(done, as_json)


def _report(done: Promotion, as_json: bool) -> None:
    if as_json:
        out.print_json(done.to_dict())
        return
    con = out.console()
    what = f"rolled back {done.env} to {done.ref} (from {done.reverts})" if done.reverts else \
        f"promoted {done.ref} to {done.env}"
    where = f"{out.plain(done.branch)} of {out.plain(done.repo)}"
    if done.commit is None and done.review:
        con.print(f"nothing to push for review: {out.plain(done.repo)} already deploys {done.ref} to {done.env}")
        return
    if done.commit is None:
        head = (done.head or "?")[:12]
        con.print(f"{done.ref} is already in {done.env} ({where} at {head}): nothing to commit")
    elif done.review:
        con.print(f"pushed {done.ref} for {done.env} to the review branch {where}: commit {done.commit[:12]}")
        con.print(f"{done.env} and its alias {done.alias!r} are unchanged until that branch is merged and promoted")
        return
    else:
        con.print(f"{what}: commit {done.commit[:12]} pushed to {where}")
    con.print(f"  image  {out.plain(done.image)}")
    if done.alias_moved:
        was = f" (was {done.alias_was})" if done.alias_was is not None else ""
        con.print(f"  alias  {done.model}@{done.alias} -> {done.version}{was}")
    else:
        con.print(f"  alias  {done.model}@{done.alias} already names {done.version}")
