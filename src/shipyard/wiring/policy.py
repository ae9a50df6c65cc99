"""Policy as code, wired: the facts a gate gathers, the bundle in ``policies/`` (compiled once per process), the
decision recorded in the audit log, and the gates at ``alias set``, ``promote``, ``deploy`` and ``serve``.

Without a bundle folder (a project made before policies existed, most tests) every gate passes with the reason
``NO_BUNDLE`` and nothing is recorded: the history only holds decisions a bundle made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.core.deploy.promotion import Facts
    from shipyard.core.governance.config import PolicySpec
    from shipyard.core.policy.decision import PolicyDecision
    from shipyard.core.registry.records import AuditEvent, ModelVersion
    from shipyard.ports import PolicyEngine
    from shipyard.wiring import Services
    from shipyard.wiring.signing import SignatureStatus


def policy_spec(svc: Services) -> PolicySpec:
    from shipyard.core.governance.config import policy_config
    from shipyard.core.project.loader import load_config

    return policy_config(load_config(svc.settings.project_root).policy)


def bundle_folder(root: Path, spec: PolicySpec) -> Path:
    from shipyard.core.workspace.paths import declared_path
    from shipyard.errors import ConfigError, InvalidInputError

    try:
        return root / declared_path(spec.folder, "policy.folder")
    except (InvalidInputError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def engine(svc: Services, spec: PolicySpec | None = None) -> PolicyEngine | None:
    """The project's compiled bundle; None when its folder (policy.folder, policies/) does not exist."""
    from shipyard.adapters.policy.opa import load_bundle

    spec = spec or policy_spec(svc)
    folder = bundle_folder(svc.settings.project_root, spec)
    if not folder.exists() and not folder.is_symlink():
        return None
    return load_bundle(folder, spec.folder.rstrip("/") or "policies")


def environment_of(svc: Services, alias: str) -> str:
    """The environment a (protected) alias stands for: the deploy environment whose alias it is, else its name."""
    from shipyard.errors import ShipyardError
    from shipyard.wiring.deploy import deploy_spec

    try:
        spec = deploy_spec(svc)
    except ShipyardError:
        return alias
    followed = sorted(e for e, s in spec.environments.items() if (s.alias or e) == alias)
    return followed[0] if followed else alias


ENV_ACTIONS = ("promote", "deploy", "alias")  # the actions that are always for an environment


def known_environments(svc: Services, action: str, spec: PolicySpec | None = None) -> list[str]:
    """The environments ``policy eval --env`` accepts for ``action``: deploy.environments, policy.production
    and, for ``alias``, the protected aliases."""
    from shipyard.errors import ShipyardError
    from shipyard.wiring.deploy import deploy_spec

    spec = spec or policy_spec(svc)
    try:
        known = list(deploy_spec(svc).environments)
    except ShipyardError:
        known = []
    extra = [*spec.production, *(spec.protected_aliases if action == "alias" else ())]
    return known + [e for e in dict.fromkeys(extra) if e not in known]


def check_environment(svc: Services, action: str, env: str | None) -> None:
    """``policy eval``'s --env: required for promote, deploy and alias, and a known environment (a typo must
    never read as an environment with no production rules); an InvalidInputError says which ones there are."""
    from shipyard.errors import InvalidInputError

    known = known_environments(svc, action)
    listed = ", ".join(known) or "none (add deploy.environments or policy.production to shipyard.yaml)"
    if env is None:
        if action in ENV_ACTIONS:
            raise InvalidInputError(f"--env is required for --action {action}: one of {listed}")
        return
    if env in known:
        return
    close = [k for k in known if k.startswith(env) or env.startswith(k)]
    if not close:
        import difflib

        close = difflib.get_close_matches(env, known, n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise InvalidInputError(f"--env {env!r} is not an environment of this project: {guess}known: {listed} "
                            "(deploy.environments, policy.production"
                            f"{', policy.protected_aliases' if action == 'alias' else ''})")


def _alias_of(svc: Services, env: str) -> str:
    from shipyard.errors import ShipyardError
    from shipyard.wiring.deploy import deploy_spec

    try:
        chosen = deploy_spec(svc).environments.get(env)
    except ShipyardError:
        return env
    return (chosen.alias or env) if chosen is not None else env


def _current(svc: Services, mv: ModelVersion, env: str | None) -> ModelVersion | None:
    from shipyard.errors import NotFoundError

    if env is None:
        return None
    try:
        return svc.registry.resolve(f"{mv.model}@{_alias_of(svc, env)}")
    except NotFoundError:
        return None
    except ValueError:  # not a valid alias name
        return None


def document(svc: Services, mv: ModelVersion, action: str, env: str | None, *, facts: Facts | None = None,
             image: str | None = None, spec: PolicySpec | None = None, now: float | None = None,
             signature: SignatureStatus | None = None) -> dict[str, Any]:
    """The input document of one decision: every fact the bundle may look at. ``signature``: the status a
    ``require_signature`` just found (the files hashed once per gate), else it is found here."""
    from shipyard.core.policy import document as doc
    from shipyard.core.registry.records import VERIFY_ACTION
    from shipyard.errors import NotFoundError
    from shipyard.wiring.signing import signature_status
    from shipyard.wiring.supply import scan_status

    spec = spec or policy_spec(svc)
    run = None
    if mv.run_id is not None:
        try:
            run = svc.tracker.get_run(mv.run_id)
        except NotFoundError:
            run = None
    if facts is None and action in ("promote", "deploy") and env is not None:
        facts = _facts(svc, mv, env, image)
    verify_records = svc.registry.results(mv, VERIFY_ACTION)
    if facts is not None:
        image_part = doc.image_part(facts.image, facts.known_as, facts.verified)
    else:
        from shipyard.core.deploy.promotion import verify_fact

        verified = [f for f in (verify_fact(r, e.reason) for e, r in verify_records) if f is not None]
        image_part = doc.image_part(image, (), verified)
    current = _current(svc, mv, env)
    metrics = doc.metrics_part(mv.metrics, current.version if current else None,
                               current.metrics if current else None, spec.primary_metric, spec.higher_is_better,
                               spec.margin)
    return doc.input_document(
        action=action, env=env, actor=svc.settings.actor, version=doc.version_part(mv),
        lineage=doc.lineage_part(mv.run_id, run), verify=doc.verify_part(verify_records), image=image_part,
        scan=scan_status(svc, mv, now), signature=(signature or signature_status(svc, mv)).to_dict(), metrics=metrics,
        settings=spec.model_dump(mode="json"), now=now)


def _facts(svc: Services, mv: ModelVersion, env: str, image: str | None) -> Facts:
    from shipyard.errors import ShipyardError
    from shipyard.wiring.deploy import deploy_spec
    from shipyard.wiring.gitops import gate_facts

    try:
        source = deploy_spec(svc).model_source_of(env)
    except (ShipyardError, ValueError):
        source = "baked"
    return gate_facts(svc, mv, env, image, source)


def evaluate(svc: Services, mv: ModelVersion, action: str, env: str | None, *, image: str | None = None,
             facts: Facts | None = None, record: bool = True, now: float | None = None,
             signature: SignatureStatus | None = None) -> PolicyDecision:
    """The bundle's decision on ``action`` for ``mv`` in ``env``. ``record``: store the input document and
    audit the decision (a ``policy`` record in ``models history``); ``shipyard policy eval`` does neither."""
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.policy.decision import NO_BUNDLE, PolicyDecision, read_decision
    from shipyard.core.policy.document import canonical
    from shipyard.core.registry.records import POLICY_ACTION

    spec = policy_spec(svc)
    bundle = engine(svc, spec)
    if bundle is None:
        return PolicyDecision(action, env, mv.ref, svc.settings.actor, True, (), None, None, notes=(NO_BUNDLE,))
    body = document(svc, mv, action, env, facts=facts, image=image, spec=spec, now=now, signature=signature)
    data = canonical(body)
    allowed, reasons, notes, checks, skipped = read_decision(bundle.decide(body))
    if not record:
        return PolicyDecision(action, env, mv.ref, svc.settings.actor, allowed, reasons, str(bundle.digest),
                              str(Digest.of_bytes(data)), notes=notes, checks=checks, skipped=skipped, document=body)
    with svc.registry.writing():  # the stored input and its record, as one write gc on a shared store waits for
        digest = svc.store.put_bytes(data)
        decision = PolicyDecision(action, env, mv.ref, svc.settings.actor, allowed, reasons, str(bundle.digest),
                                  str(digest), notes=notes, checks=checks, skipped=skipped, document=body)
        svc.registry.record_result(mv, POLICY_ACTION, decision.record(), decision.summary())
    return decision


def decide_gate(svc: Services, mv: ModelVersion, action: str, env: str | None, *, image: str | None = None,
                facts: Facts | None = None, checked: SignatureStatus | None = None) -> PolicyDecision:
    """``require_signature`` (signing.require_signed), then the decision, recorded; a deny is returned, not
    raised (``check_gates`` adds it to the promotion's other gates). ``checked``: the status the caller's own
    ``require_signature`` returned for ``mv``, so the files are not hashed again."""
    from shipyard.wiring.signing import require_signature

    status = checked or require_signature(svc, mv, action)
    return evaluate(svc, mv, action, env, image=image, facts=facts, signature=status)


def gate(svc: Services, mv: ModelVersion, action: str, env: str | None, image: str | None = None,
         checked: SignatureStatus | None = None) -> PolicyDecision:
    """The policy gate of ``action``: the signature check, the decision (recorded), and a PolicyDeniedError
    with one line per reason when it denies."""
    from shipyard.errors import PolicyDeniedError

    decision = decide_gate(svc, mv, action, env, image=image, checked=checked)
    if not decision.allowed:
        raise PolicyDeniedError(decision.denied_message())
    return decision


def gate_alias(svc: Services, model: str, alias: str, version: int) -> PolicyDecision | None:
    """``alias set`` on a protected alias (``policy.protected_aliases``) asks the policy, for the environment the
    alias stands for; other aliases move freely (None)."""
    spec = policy_spec(svc)
    env = environment_of(svc, alias)
    protected = alias in spec.protected_aliases or env in spec.protected_aliases or env in spec.production
    if not protected or engine(svc, spec) is None:  # `prod`, the alias of deploy environment production, counts
        return None  # without a bundle the move is the registry's alone, as before policies existed
    mv = svc.registry.resolve(f"{model}@{version}")
    return gate(svc, mv, "alias", env)


def move_alias(svc: Services, model: str, alias: str, version: int, reason: str = "") -> AuditEvent:
    """Every manual alias move (``alias set``, the Python API's ``set_alias``, a rollout's ``--alias``): the
    policy first when the alias is protected (PolicyDeniedError, nothing moved), then the audited move."""
    gate_alias(svc, model, alias, version)
    return svc.registry.set_alias(model, alias, version, reason)


def gate_serve(svc: Services, ref: str, versions: Iterable[ModelVersion],
               checked: Mapping[int, SignatureStatus | None] | None = None) -> list[PolicyDecision]:
    """With ``policy.require_on_serve``: each version ``serve`` would load asks the policy (action serve) for
    the environment its alias stands for (``serve iris@production``), none for a version named by number.
    ``checked``: version -> the status serve's own ``require_signature`` found for it."""
    from shipyard.core.registry.refs import ModelRef

    spec = policy_spec(svc)
    if not spec.require_on_serve:
        return []
    alias = ModelRef.parse(ref).alias
    env = environment_of(svc, alias) if alias else None
    return [gate(svc, mv, "serve", env, checked=(checked or {}).get(mv.version)) for mv in versions]


# --- the default bundle ---------------------------------------------------------------------------------------

def default_bundle() -> dict[str, bytes]:
    """The default bundle shipped in the package (core/policy/bundle/): file name -> bytes."""
    from shipyard.core.policy.document import POLICY_BUNDLE_FILES

    folder = resources.files("shipyard.core.policy") / "bundle"
    return {name: (folder / name).read_bytes() for name in POLICY_BUNDLE_FILES}


def init_bundle(root: Path, folder: str = "policies") -> list[tuple[str, bool]]:
    """Write the default bundle into ``root/folder``, never over an existing file: (path, written) for each."""
    from shipyard.core.workspace.atomic import write_atomic
    from shipyard.core.workspace.paths import declared_path
    from shipyard.errors import ConfigError, InvalidInputError

    try:
        target = root / declared_path(folder, "policy.folder")
    except (InvalidInputError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{target} is not a folder; nothing was written: move it away and run "
                          "`shipyard policy init` again")
    target.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, bool]] = []
    for name, data in default_bundle().items():
        path = target / name
        if path.exists() or path.is_symlink():
            done.append((str(path.relative_to(root)), False))
            continue
        write_atomic(path, data)
        done.append((str(path.relative_to(root)), True))
    return done
