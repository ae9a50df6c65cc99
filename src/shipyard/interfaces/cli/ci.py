"""``shipyard ci github|gitlab``: CI/CD workflows for this project (pull requests checked, main promoted)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.deploy.workflows import CIPlan

app = typer.Typer(help="CI/CD workflows: GitHub Actions or GitLab CI, written for this project.",
                  no_args_is_help=True)

FLAVOR_EXTRAS = {"sklearn": "sklearn", "torch": "torch", "onnx": "onnx"}
LOCK_FILES = ("shipyard.lock", "requirements.txt", "requirements-dev.txt", "pyproject.toml")

OUTPUT = typer.Option(None, "--output", "-o", help="Where to write it (default: the CI's own place in the project).")
FORCE = typer.Option(False, "--force", help="Overwrite a file that `shipyard ci` did not write.")
PRINT = typer.Option(False, "--print", help="Print the YAML instead of writing it.")
MODEL = typer.Option(None, "--model", help="The model CI verifies, builds and promotes (default: shipyard.yaml's "
                                           "ci.model, or the registry's only model).")
REGISTRY = typer.Option(None, "--registry", help="Image repository to push to (default: ghcr.io/OWNER/REPO on "
                                                 "GitHub, $CI_REGISTRY_IMAGE on GitLab).")


@app.command("github")
def github(output: Path = OUTPUT, force: bool = FORCE, show: bool = PRINT, model: str = MODEL,
           registry: str = REGISTRY, as_json: bool = out.JSON_OPTION) -> None:
    """Write .github/workflows/shipyard.yml: checks on pull requests, promotion from main."""
    from shipyard.core.deploy import workflows

    _emit("github", workflows.GITHUB_PATH, output, force, show, as_json, model, registry)


@app.command("gitlab")
def gitlab(output: Path = OUTPUT, force: bool = FORCE, show: bool = PRINT, model: str = MODEL,
           registry: str = REGISTRY, as_json: bool = out.JSON_OPTION) -> None:
    """Write .gitlab-ci.yml: checks on merge requests, promotion from the default branch."""
    from shipyard.core.deploy import workflows

    _emit("gitlab", workflows.GITLAB_PATH, output, force, show, as_json, model, registry)


def _emit(kind: str, default: str, output: Path | None, force: bool, show: bool, as_json: bool,
          model: str | None, registry: str | None) -> None:
    from shipyard.core.deploy import workflows
    from shipyard.errors import ConflictError, InvalidInputError
    from shipyard.wiring import settings_from_environment

    if show and (output is not None or as_json):
        raise InvalidInputError("--print shows the YAML: --output and --json do not go with it")
    root = settings_from_environment().project_root
    plan = plan_for(root, model, registry)
    doc = workflows.github(plan) if kind == "github" else workflows.gitlab(plan)
    body = dump(doc)
    text = workflows.header(kind, body) + body
    if show:
        import sys

        sys.stdout.write(text)
        return
    target = output if output is not None else root / default
    if target.exists() and not force:
        from shipyard.core.boundedyaml import read_bounded

        try:
            edited = workflows.edited(read_bounded(target, str(target)).decode(errors="replace"))
        except FileNotFoundError:
            edited = False  # removed meanwhile: nothing of anyone's to keep
        if edited is None:
            raise ConflictError(f"{target} exists and was not written by `shipyard ci`: pass --force to replace "
                                "it, or --output another file")
        if edited:
            raise ConflictError(f"{target} was written by `shipyard ci` and edited since (its body no longer "
                                "matches the digest in its first line): pass --force to replace your edits, or "
                                "--output another file")
    from shipyard.core.workspace.atomic import write_atomic

    write_atomic(target, text.encode())
    if as_json:
        out.print_json({"path": str(target), "workflow": doc})
        return
    out.console().print(f"wrote {out.plain(str(target))} for {out.plain(plan.model)} (verify matrix: "
                        f"{', '.join(name for name, _ in plan.pins())})")
    secrets = ["SHIPYARD_DB_URL (optional: a team registry)"]
    if plan.s3_remote:
        secrets += list(workflows.S3_SECRETS)
    if kind == "gitlab":
        secrets += ["GITOPS_TOKEN (a project access token that may push to the GitOps repository)",
                    "SHIPYARD_NOTE_TOKEN (one that may comment on merge requests)"]
    elif plan.gitops_repo:
        secrets.append("GITOPS_TOKEN (a token that may push to the GitOps repository)")
    where = "repository secrets" if kind == "github" else "masked CI/CD variables"
    out.console().print(f"set as {where}: {', '.join(secrets)}", soft_wrap=True, markup=False)
    if plan.production:
        hint = ("add required reviewers to the `production` environment (Settings > Environments)"
                if kind == "github" else "protect the `production` environment to choose who may deploy")
        out.console().print(f"production waits for an approval: {hint}", markup=False)


def dump(doc: dict[str, Any]) -> str:
    """YAML as people write it: keys in order, no anchors (a reader of a workflow should not chase ``*id001``)."""
    import json

    import yaml

    unshared = json.loads(json.dumps(doc))  # every list and dict its own copy: nothing for yaml to alias
    return str(yaml.safe_dump(unshared, sort_keys=False, width=4096, allow_unicode=True))  # a command on one line


def plan_for(root: Path, model: str | None, registry: str | None) -> CIPlan:
    """The project's CI facts: the model (flag, ci.model, or the only one registered), its flavor's extra,
    the verify matrix, the lock files that exist, the remote's kind, the environments."""
    from shipyard import __version__
    from shipyard.core.deploy.ci_config import check_registry, ci_config
    from shipyard.core.deploy.config import deploy_config
    from shipyard.core.deploy.workflows import CIPlan
    from shipyard.core.project.loader import load_config
    from shipyard.core.registry.refs import check_model_name
    from shipyard.errors import ConfigError, InvalidInputError, NotFoundError

    config = load_config(root)
    ci, deploy = ci_config(config.ci), deploy_config(config.deploy)
    if model is not None:
        check_model_name(model)
    if registry is not None:
        try:
            check_registry(registry, "--registry")
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
    name = model or ci.model
    svc = out.services()
    try:
        if name is None:
            models = svc.registry.models()
            if len(models) != 1:
                there = ", ".join(m.name for m in models) or "none yet"
                raise ConfigError(f"which model does CI ship? set ci.model in shipyard.yaml or pass --model "
                                  f"(registered: {there})")
            name = models[0].name
        try:
            flavor = svc.registry.resolve(name).flavor
        except NotFoundError:
            if model is None and ci.model is None:
                raise
            flavor = ""  # named in shipyard.yaml before its first version: CI's pipeline registers it
    finally:
        svc.close()
    extras = sorted({"postgres", *([FLAVOR_EXTRAS[flavor]] if flavor in FLAVOR_EXTRAS else []),
                     *(["s3"] if any(r.is_s3 for r in config.remotes.values()) else [])})
    locks = tuple(f for f in LOCK_FILES if (root / f).is_file()) or ("shipyard.yaml",)
    envs: dict[str, Any] = dict(deploy.environments)
    staging = "staging" if "staging" in envs else next(iter(envs), "staging")
    gated = [e for e, spec in envs.items() if spec.approval and e != staging]
    return CIPlan(model=name, version=__version__, extras=tuple(extras), python=ci.python, matrix=dict(ci.matrix),
                  lock_files=locks, s3_remote=any(r.is_s3 for r in config.remotes.values()),
                  staging=staging, production=gated[0] if gated else None, registry=registry or ci.registry,
                  gitops_repo=deploy.repo, install_from=ci.install)


@app.command("version")
def version(model: str = typer.Argument(None, help="The model (default: ci.model, or the only one registered)."),
            as_json: bool = out.JSON_OPTION) -> None:
    """Print the version of MODEL this checkout's pipeline made (a stage run in shipyard.lock registered it, and
    its files are in this store), or nothing: CI verifies, builds and promotes that version, and skips those
    jobs when every stage came from the cache and no version was made here."""
    from shipyard.core.workspace.lockfile import load_lock
    from shipyard.errors import NotFoundError

    svc = out.services()
    try:
        name = model or _model_name(svc)
        runs = {s.run for s in load_lock(svc.settings.project_root).stages.values() if s.run}
        try:
            versions = svc.registry.versions(name)
        except NotFoundError:
            versions = []
        made = [v for v in versions if v.run_id in runs and svc.store.has(v.manifest_digest)]
        found = max(made, key=lambda v: v.version) if made else None
    finally:
        svc.close()
    if as_json:
        out.print_json({"model": name, "version": None if found is None else found.version})
        return
    import sys

    sys.stdout.write(f"{found.version}\n" if found is not None else "\n")
    if found is None:
        out.console(stderr=True).print(f"no version of {out.plain(name)} was made by this checkout's pipeline "
                                       "(its stages came from the cache, or it registers none): nothing to ship")


def _model_name(svc: Any) -> str:
    from shipyard.core.deploy.ci_config import ci_config
    from shipyard.core.project.loader import load_config
    from shipyard.errors import ConfigError

    named = ci_config(load_config(svc.settings.project_root).ci).model
    if named:
        return named
    models = svc.registry.models()
    if len(models) != 1:
        raise ConfigError("which model does CI ship? set ci.model in shipyard.yaml or name it (registered: "
                          f"{', '.join(m.name for m in models) or 'none yet'})")
    return str(models[0].name)
