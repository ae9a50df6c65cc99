"""``shipyard status --env ENV``: what runs in a deploy environment, read from the cluster."""

from __future__ import annotations

import os

from shipyard.interfaces.cli import output as out


def env_status(env: str, names: list[str] | None, as_json: bool) -> None:
    """``shipyard status [MODEL] --env ENV``: the positional argument, which names stages without --env, names
    the model here (default: ci.model, or the registry's only model)."""
    from shipyard.core.deploy.ci_config import ci_config
    from shipyard.core.deploy.config import deploy_config
    from shipyard.core.project.loader import load_config
    from shipyard.core.registry.refs import check_model_name
    from shipyard.errors import ConfigError, InvalidInputError
    from shipyard.wiring.cluster import status

    if names and len(names) > 1:
        raise InvalidInputError(f"--env shows one model in an environment: name one (shipyard status MODEL --env "
                                f"{env}), not {len(names)}")
    model = check_model_name(names[0]) if names else None
    svc = out.services()
    try:
        config = load_config(svc.settings.project_root)
        model = model or ci_config(config.ci).model
        if model is None:
            models = svc.registry.models()
            if len(models) != 1:
                raise ConfigError(f"which model? name it (shipyard status MODEL --env {env}) or set ci.model in "
                                  f"shipyard.yaml (registered: {', '.join(m.name for m in models) or 'none'})")
            model = models[0].name
        spec = deploy_config(config.deploy)
    finally:
        svc.close()
    result = status(env, spec, model, kubeconfig=os.environ.get("KUBECONFIG") or None)
    if as_json:
        out.print_json(result.to_dict())
        return
    c = out.console()
    c.print(f"[bold]{out.plain(env)}[/bold]: {out.plain(result.name)} in namespace {out.plain(result.namespace)} "
            f"at {out.plain(result.server)}", soft_wrap=True)
    w = result.workload
    if w is not None and w.get("kind") == "InferenceService":
        c.print(f"  InferenceService ready: {w['ready']}  url: {out.plain(str(w['url']))}  "
                f"canary: {w['canary_percent'] if w['canary_percent'] is not None else '-'}%", soft_wrap=True)
    elif w is not None:
        c.print(f"  {w['kind']}: {w['ready']}/{w['replicas'] if w['replicas'] is not None else w['current']} ready, "
                f"{w['updated']} updated, {w['available']} available  image {out.plain(str(w['image']))}",
                soft_wrap=True)
    r = result.rollout
    if r is not None:
        step = f"step {r['step']}/{r['steps']}" if r["step"] is not None else "no step yet"
        c.print(f"  rollout: {r['phase'] or 'unknown'}, {step}, canary weight {r['weight']}%"
                + (" (aborted)" if r["aborted"] else "") + (f": {out.plain(r['message'])}" if r["message"] else ""),
                soft_wrap=True)
    a = result.application
    if a is not None:
        c.print(f"  Argo CD {out.plain(str(a['name']))}: sync {a['sync'] or 'unknown'}, "
                f"health {a['health'] or 'unknown'}"
                + (f" at {str(a['revision'])[:12]}" if a["revision"] else ""), soft_wrap=True)
    else:
        c.print("  no Argo CD Application for it in the cluster")
    for note in result.notes:
        c.print(f"  {out.plain(note)}", soft_wrap=True)
