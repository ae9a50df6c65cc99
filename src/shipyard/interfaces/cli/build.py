"""``shipyard build``: a model version's container image (or its build context, where no engine answers)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from shipyard.interfaces.cli import output as out


def build(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME (latest)."),
    base: str = typer.Option(None, "--base",
                             help="Base image to build on (default: from the version's environment: "
                                  "python:X.Y-slim, or a CUDA runtime image for a GPU build)."),
    tag: str = typer.Option(None, "--tag", "-t", help="Image tag (default: shipyard/NAME:VERSION)."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write the build context into this new or empty folder (kept) "
                                     "(default: .shipyard/images/NAME-VERSION)."),
    push: str = typer.Option(None, "--push", help="REGISTRY/REPO[:TAG]: push the image there after building."),
    context_only: bool = typer.Option(False, "--context-only",
                                      help="Only write the context and print the two `docker build` commands "
                                           "that build it."),
    model_source: str = typer.Option("baked", "--model-source",
                                     help="baked (the version's files in the image) or registry (the environment "
                                          "image of the version's lock: its dependencies and Shipyard, no model, "
                                          "tagged shipyard/env:KEY; built once per lock, reused by every version "
                                          "with the same lock; the server loads the model from the registry)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="Print the result as JSON (context, build commands, image id, push digest)."),
) -> None:
    """Build a container image that serves a model version: `shipyard serve` on port $PORT (8080).

    The context is self-contained (the model's locked requirements installed for the image's Python,
    Shipyard, and the version's files by digest in a one-version registry), so the build downloads
    nothing. The image runs as a non-root user, has a HEALTHCHECK on /v2/health/ready and OCI labels.
    Where Docker (DOCKER_HOST or its default socket) or podman answers, the image is built and its id
    recorded with the version; otherwise the command that builds the context is printed.
    """
    from shipyard.wiring import build_image

    if push and context_only:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError("--push needs an image: drop --context-only")
    if model_source not in ("baked", "registry"):
        from shipyard.errors import InvalidInputError

        raise InvalidInputError(f"--model-source {model_source!r}: use baked or registry")
    if model_source == "registry":
        _build_env(ref, base, tag, output, push, context_only, as_json)
        return
    result = _with_steps(build_image, ref, as_json, base=base, tag=tag, output=output, push=push,
                         engine=not context_only)
    if result is None:
        return
    con, ref_text = out.console(), f"{result.model}@{result.version}"
    con.print(f"context for {ref_text} in {result.context} (base {result.base.image}: {result.base.reason}"
              f"{'; dependencies from the cache' if result.site_cached else ''})")
    for note in result.base.notes:
        con.print(f"note: {note}")
    if _built(result, ref_text, push, context_only):
        con.print(f"run it:    docker run --rm -p 8080:8080 {result.tag}")
        con.print(f"verify it: shipyard verify {ref_text} --image {result.tag}")


def _build_env(ref: str, base: str | None, tag: str | None, output: Path | None, push: str | None,
               context_only: bool, as_json: bool) -> None:
    """``--model-source registry``: the environment image of the version's lock."""
    from shipyard.errors import InvalidInputError
    from shipyard.wiring.deploy import build_env_image

    if tag is not None:
        raise InvalidInputError("--tag: an environment image is named by its lock (shipyard/env:KEY); drop --tag")
    result = _with_steps(build_env_image, ref, as_json, base=base, output=output, push=push,
                         engine=not context_only)
    if result is None:
        return
    con, ref_text = out.console(), f"{result.model}@{result.version}"
    if result.reused_from is not None:
        con.print(f"environment image {result.tag} (lock {result.lock[:19]}) was built for {result.reused_from} "
                  f"with the same lock: reused, nothing built; recorded with {ref_text}")
        if result.pushed:
            con.print(f"pushed {result.pushed}")
        return
    con.print(f"context for the environment image of {ref_text} (lock {result.lock[:19]}, no model) in "
              f"{result.context} (base {result.base.image}: {result.base.reason}"
              f"{'; dependencies from the cache' if result.site_cached else ''})")
    _built(result, ref_text, push, context_only, " (every version with this lock runs in it)")
    con.print(f"deploy it: shipyard deploy {ref_text} --env ENV --model-source registry")


def _built(result: Any, ref_text: str, push: str | None, context_only: bool, note: str = "") -> bool:
    """Say what was built and pushed (True), or, with no engine, how to build the context (False): the same
    lines for a version's image and for an environment image."""
    con = out.console()
    if result.image_id is None:
        if push:
            from shipyard.errors import BackendUnavailableError

            raise BackendUnavailableError("no container engine answers, so nothing was pushed: build the "
                                          f"context with `{' && '.join(map(shlex.join, result.commands))}` and "
                                          "push it yourself")
        con.print("build it with:" if context_only else "no container engine answers here (Docker at "
                  "DOCKER_HOST or /var/run/docker.sock, or podman); build it with:")
        for command in result.commands:
            con.print(f"  {shlex.join(command)}", soft_wrap=True)
        return False
    con.print(f"built {result.tag} ({result.image_id[:19]}, {out.size(result.size or 0)}) with {result.engine} "
              f"in {result.seconds.get('build', 0):.1f} s; recorded with {ref_text}{note}")
    if result.pushed:
        con.print(f"pushed {result.pushed}")
    return True


def _with_steps(build_fn: Callable[..., Any], ref: str, as_json: bool, **options: Any) -> Any:
    """Run a build with the project's services, each step it reports printed dim on stderr; with --json, print
    the result as JSON instead and return None."""
    svc = out.services()
    err = out.console(stderr=True)

    def step(text: str) -> None:
        if not as_json:
            err.print(f"[dim]{out.plain(text)}[/dim]")

    try:
        result = build_fn(svc, ref, os.environ, progress=step, **options)
    finally:
        svc.close()
    if as_json:
        out.print_json(result.to_dict())
        return None
    return result
