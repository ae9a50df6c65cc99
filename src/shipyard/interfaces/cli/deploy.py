"""``shipyard deploy``: render a version's Kubernetes manifests for one environment into the GitOps folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.errors import InvalidInputError
from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.deploy.manifests import Options
    from shipyard.wiring import Services

FORMATS = ("kubernetes", "kserve")
STRATEGIES = ("deployment", "rollout")
MODEL_SOURCES = ("baked", "registry")


def deploy(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME (latest)."),
    env: str = typer.Option(..., "--env", "-e", help="The environment (shipyard.yaml's deploy.environments)."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write into this folder instead of the project's deploy.folder (deploy/)."),
    fmt: str = typer.Option(None, "--format", help="kubernetes (Deployment or Argo Rollout) or kserve "
                                                   "(InferenceService); default: deploy.format."),
    strategy: str = typer.Option(None, "--strategy", help="deployment or rollout (Argo Rollouts canary)."),
    image: str = typer.Option(None, "--image", help="REPO@sha256:... (default: the image `shipyard build --push` "
                                                    "recorded for the version)."),
    model_source: str = typer.Option(None, "--model-source",
                                     help="baked (the image holds the version) or registry (the server loads it "
                                          "from PostgreSQL and S3, deploy.registry; the image is the environment "
                                          "image of its lock); default: deploy.model_source."),
    replicas: int = typer.Option(None, "--replicas", min=0, help="Replicas (ignored when an autoscaler owns them)."),
    cpu: str = typer.Option(None, "--cpu", help="CPU request, e.g. 500m."),
    memory: str = typer.Option(None, "--memory", help="Memory request and limit, e.g. 1Gi."),
    gpu: int = typer.Option(None, "--gpu", min=0, help="nvidia.com/gpu per pod (default: 1 for a GPU model)."),
    steps: str = typer.Option(None, "--steps", help="Canary steps, e.g. 10,pause=30s,analysis,50,analysis."),
    as_json: bool = out.JSON_OPTION,
    apply: bool = typer.Option(False, "--apply", help="Also apply the objects to the current kubectl context's "
                                                      "cluster (needs shipyard\\[k8s])."),
) -> None:
    """Render MODEL@REF's manifests for one environment as kustomize (base/ + overlays/ENV/) with its Argo CD
    Application (argocd/ENV.yaml), the image pinned by digest. Commit the folder, and Argo CD syncs it."""
    from shipyard.wiring.deploy import render_environment, write_target

    options = _options(fmt, strategy, replicas, cpu, memory, gpu, steps, model_source)
    svc = out.services()
    try:
        folder = write_target(svc, output)
        rendered = render_environment(svc, ref, env, image=image, options=options, folder=folder)
        local = _local_registry(svc) if rendered.model_source == "registry" else None
    finally:
        svc.close()
    changed = rendered.write(folder)
    applied: list[str] = []
    if apply:
        apply_objects = _cluster_apply(folder, env)
        result = apply_objects(rendered.documents(), kubeconfig=None, context=None, dry_run=False)
        applied = [str(r) for r in result] if isinstance(result, list | tuple) else []
    if as_json:
        out.print_json({"model": rendered.model, "version": rendered.version, "env": rendered.env,
                        "image": rendered.image, "record_digest": rendered.record_digest, "folder": str(folder),
                        "format": rendered.format, "strategy": _strategy(rendered),
                        "stable_version": rendered.stable_version, "model_source": rendered.model_source,
                        "files": sorted(rendered.files),
                        "changed": changed, "applied": applied})
        return
    con = out.console()
    con.print(f"rendered {out.plain(rendered.model)}@{rendered.version} for {out.plain(env)} "
              f"({kind(rendered)}) into {out.plain(str(folder))}/", soft_wrap=True)
    con.print(f"image {out.plain(rendered.image)}" + (f" (environment image: {out.plain(rendered.model)}@"
              f"{rendered.version} is loaded from the registry)" if rendered.model_source == "registry" else ""),
              soft_wrap=True)
    if local:
        con.print(f"note: {out.plain(rendered.model)}@{rendered.version} is registered {local} on this machine; "
                  "the pods load it from the database and the store deploy.registry names: they must hold it "
                  "(register into the team's PostgreSQL and S3 store)", soft_wrap=True)
    for path in sorted(set(rendered.files) | set(changed)):
        mark = "removed" if path not in rendered.files else "written" if path in changed else "unchanged"
        con.print(f"  {out.plain(path):<52} {mark}")
    if not changed:
        con.print("nothing changed")
    if apply:
        con.print(f"applied {out.plural(len(rendered.documents()), 'object')}")


def _strategy(rendered: Any) -> str | None:
    """The workload's strategy; none for an InferenceService (KServe runs its own canary)."""
    return None if rendered.format == "kserve" else str(rendered.strategy)


def kind(rendered: Any) -> str:
    """What was rendered, in the words of its objects: ``kubernetes, rollout`` or ``kserve InferenceService``."""
    if rendered.format == "kserve":
        return "kserve InferenceService"
    return f"{rendered.format}, {'Argo Rollout' if rendered.strategy == 'rollout' else 'Deployment'}"


def _options(fmt: str | None, strategy: str | None, replicas: int | None, cpu: str | None, memory: str | None,
             gpu: int | None, steps: str | None, model_source: str | None = None) -> Options:
    from shipyard.core.deploy.config import QUANTITY
    from shipyard.core.deploy.layout import parse_steps
    from shipyard.core.deploy.manifests import Options

    if fmt is not None and fmt not in FORMATS:
        raise InvalidInputError(f"--format {fmt!r}: use kubernetes or kserve")
    if model_source is not None and model_source not in MODEL_SOURCES:
        raise InvalidInputError(f"--model-source {model_source!r}: use baked or registry")
    if strategy is not None and strategy not in STRATEGIES:
        raise InvalidInputError(f"--strategy {strategy!r}: use deployment or rollout")
    for flag, value in (("--cpu", cpu), ("--memory", memory)):
        if value is not None and not QUANTITY.match(value):
            raise InvalidInputError(f"{flag} {value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    try:
        parsed = parse_steps(steps) if steps is not None else None
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    return Options(format=fmt, strategy=strategy, replicas=replicas, cpu=cpu, memory=memory,  # type: ignore[arg-type]
                   gpu=gpu, steps=parsed, model_source=model_source)  # type: ignore[arg-type]


def _cluster_apply(folder: Path, env: str) -> Any:
    """``shipyard.wiring.cluster.apply``, imported on first use (the kubernetes client is an extra)."""
    try:
        from shipyard.wiring.cluster import apply  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        from shipyard.errors import BackendUnavailableError, MissingExtraError

        if (exc.name or "").split(".")[0] == "kubernetes":
            raise MissingExtraError("shipyard deploy --apply", "k8s") from exc
        raise BackendUnavailableError(f"--apply is not available in this installation: the files are written; "
                                      f"apply them with kubectl apply -k {folder}/overlays/{env}") from exc
    return apply


def _local_registry(svc: Services) -> str | None:
    """Where this machine's registry is, when pods could not read it (a SQLite file, or a store that is not in
    S3); None when it is shared."""
    settings = svc.settings
    if settings.db_url.startswith("sqlite"):
        return "in a SQLite database"
    if settings.store_remote is None:
        return f"with its files in the local store {settings.store_path}"
    return None
