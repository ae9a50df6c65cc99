"""The composition root's part for promotion: ``shipyard promote`` and ``shipyard rollback``.

Gates (core.deploy.promotion) over the registry's records, the environment rendered (wiring.deploy), committed
and pushed to the GitOps repository (adapters.deploy.gitops), and only then the environment's alias moved,
with a reason naming the commit: the alias never says a version is in an environment that git does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.wiring import Services

if TYPE_CHECKING:
    from shipyard.adapters.deploy.gitops import GitOpsRepo
    from shipyard.core.deploy.config import DeploySpec, EnvironmentSpec
    from shipyard.core.deploy.promotion import Decision, Facts
    from shipyard.core.registry.records import ModelVersion

GITOPS_FOLDER = "gitops"  # the private clones, in the project's data folder (.shipyard/gitops/)


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` (or ``rollback``) did."""

    model: str
    version: int
    env: str
    alias: str
    image: str
    repo: str
    branch: str
    commit: str | None  # the commit made and pushed; None when git already held this
    head: str | None  # the branch's commit now
    alias_was: int | None
    alias_moved: bool
    reverts: str | None
    decision: Decision
    files: tuple[str, ...]
    review: bool = False  # pushed to a review branch: the environment and its alias are unchanged

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "env": self.env, "alias": self.alias,
                "image": self.image, "repo": self.repo, "branch": self.branch, "commit": self.commit,
                "head": self.head, "changed": self.commit is not None, "alias_was": self.alias_was,
                "alias_moved": self.alias_moved, "review": self.review, "reverts": self.reverts,
                "gates": self.decision.to_dict(), "files": list(self.files)}


def environment(spec: DeploySpec, env: str) -> tuple[EnvironmentSpec, str]:
    """(the environment ``env``, the alias that follows it); an unknown one names those there are. An alias the
    registry would refuse to set is a ConfigError here, before anything is pushed."""
    from shipyard.core.registry.refs import check_new_alias
    from shipyard.errors import ConfigError, InvalidInputError

    try:
        chosen = spec.environment(env)
    except ValueError as exc:
        raise InvalidInputError(f"{str(exc)[:300]}: add it under deploy.environments, or pick one of those") from None
    alias = chosen.alias or env
    try:
        check_new_alias(alias)
    except ValueError as exc:
        key = f"deploy.environments.{env}.alias" if chosen.alias else \
            f"deploy.environments.{env} (with no alias, its name is the alias)"
        raise ConfigError(f"{key[:120]}: {exc}; set a valid alias in shipyard.yaml") from None
    return chosen, alias


def gitops_repo(svc: Services, spec: DeploySpec) -> tuple[GitOpsRepo, str]:
    """(the GitOps repository, the GitOps folder's path in it): ``deploy.repo`` and ``deploy.folder``, else the
    project's own ``origin`` and the folder's place in its working tree (where Argo CD reads it)."""
    from shipyard.adapters.deploy.gitops import GitOpsRepo
    from shipyard.wiring.deploy import git_location

    where = git_location(svc, spec, None)
    url = where.repo_url
    if url.startswith(("./", "../")):  # a path beside the project, written relative to it
        url = str((svc.settings.project_root / url).resolve())
    credentials: Callable[[], tuple[str, str]] | None = None
    if spec.git_token is not None:
        from shipyard.wiring.secrets import secret_source

        token = secret_source(svc, spec.git_token, "deploy.git_token")  # read (and checked) now, cached after
        user = spec.git_user
        credentials = lambda: (user, token())  # noqa: E731

    return GitOpsRepo(url, svc.settings.home / GITOPS_FOLDER, spec.branch, credentials=credentials), where.folder


def local_repository(path: Path) -> str:
    """A bare git repository at ``path`` on this machine (made if absent), as the URL ``deploy.repo`` takes."""
    from shipyard.adapters.deploy.gitops import init_bare

    return init_bare(path)


def commit_message(svc: Services, spec: DeploySpec, commit: str) -> str | None:
    """The message of ``commit`` in the GitOps repository; None when it does not hold it."""
    repo, _ = gitops_repo(svc, spec)
    return repo.message_of(commit)


def gate_facts(svc: Services, mv: ModelVersion, env: str, image: str | None,
               model_source: str = "baked") -> Facts:
    """What the gates look at: the pushed image (``--image`` or the newest ``build --push``; in registry mode
    the environment image pushed for ``mv``'s lock, by ``mv`` or another version with the same lock), its other
    names, and the version's ``verify --image`` results."""
    from shipyard.core.deploy.promotion import Facts, pushed_image, verify_fact
    from shipyard.core.registry.records import BUILD_ACTION, VERIFY_ACTION
    from shipyard.wiring.deploy import pushed_env_image

    builds = [record for _, record in svc.registry.results(mv, BUILD_ACTION)]
    verified = tuple(f for f in (verify_fact(record, event.reason)
                                 for event, record in svc.registry.results(mv, VERIFY_ACTION)) if f is not None)
    if image is None:
        image, known = pushed_env_image(svc, mv) if model_source == "registry" else pushed_image(builds)
        return Facts(mv.ref, env, image, "build", known, verified, model_source=model_source)
    known = frozenset(str(r[k]) for r in builds if r.get("pushed") == image for k in ("image", "image_id")
                      if isinstance(r.get(k), str))
    return Facts(mv.ref, env, image, "--image", known, verified, model_source=model_source)


def check_gates(svc: Services, mv: ModelVersion, env: str, image: str | None,
                model_source: str = "baked") -> tuple[Decision, str]:
    """(every gate's verdict on promoting ``mv`` to ``env``, the pinned image); refused, a PolicyDeniedError
    with each reason. The policy bundle (policies/) is the last gate: its decision is recorded either way."""
    from shipyard.core.deploy.promotion import DEFAULT_GATES, decide
    from shipyard.core.policy.decision import PolicyGate
    from shipyard.errors import PolicyDeniedError
    from shipyard.wiring.policy import decide_gate

    facts = gate_facts(svc, mv, env, image, model_source)
    policy = decide_gate(svc, mv, "promote", env, facts=facts)  # the signature check, then the bundle (recorded)
    decision = decide(facts, (*DEFAULT_GATES, PolicyGate(policy)))
    if policy.evaluated and not policy.allowed:  # the same refusal as deploy's and alias set's, with the image
        # gates' reasons first (the policy's own "no pinned image" says what a missing one would)
        said = "verified" in {c for c, passed in policy.checks if not passed}
        own = [v.reason for v in decision.verdicts if not v.passed and v.gate != "policy"
               and not (said and v.gate == "image" and facts.image is None)]
        raise PolicyDeniedError(policy.denied_message(own))
    if not decision.allowed or facts.image is None:
        raise PolicyDeniedError(f"cannot promote {mv.ref} to {env}: " + "; ".join(decision.reasons))
    return decision, facts.image


def _alias_version(svc: Services, model: str, alias: str) -> int | None:
    from shipyard.errors import NotFoundError

    try:
        return svc.registry.resolve(f"{model}@{alias}").version
    except NotFoundError:
        return None


def promote(svc: Services, ref: str, env: str, *, branch: str | None = None, image: str | None = None,
            reason: str = "", reverts: str | None = None, spec: DeploySpec | None = None) -> Promotion:
    """``shipyard promote REF --env ENV``: gates, then the rendered environment committed and pushed, then the
    environment's alias moved (not with ``branch``: that pushes a review branch and changes nothing else).

    Each promotion that pushed a commit or moved the alias is recorded (``Registry.record_result(mv,
    "promote", ...)``: environment, image, commit, repository, branch): ``models history`` lists it, and a
    rollback takes the image from these records. ``reverts`` (a rollback): the reference this promotion returns
    from, named in the commit and the alias move. ``spec``: the deploy configuration when not shipyard.yaml's.
    """
    from shipyard.adapters.deploy.gitops import Published, check_branch
    from shipyard.core.deploy.promotion import (
        alias_reason,
        commit_message,
        kept_stable,
        promotion_record,
        promotion_summary,
    )
    from shipyard.core.registry.records import PROMOTE_ACTION
    from shipyard.wiring.deploy import deploy_spec, render_environment

    spec = spec or deploy_spec(svc)
    _, alias = environment(spec, env)
    if branch is not None:
        check_branch(branch)
    mv = svc.registry.resolve(ref)
    decision, chosen = check_gates(svc, mv, env, image, spec.model_source_of(env))
    repo, folder = gitops_repo(svc, spec)
    message = commit_message(mv.model, mv.version, env, record=mv.record_digest(), image=chosen,
                             actor=svc.settings.actor, reverts=reverts, reason=reason)
    rendered_with: list[int | None] = []

    def after_push(pushed: Published) -> tuple[int | None, bool]:
        """(where the alias was, whether it moved). Run after the push, still holding the repository's lock, so
        records and alias moves follow the pushes' order: the record first, then the alias."""
        was = _alias_version(svc, mv.model, alias)
        moves = branch is None and was != mv.version
        if pushed.commit is None and not moves:
            return was, False  # nothing happened: nothing to record
        record = promotion_record(env=env, alias=alias, image=chosen, commit=pushed.commit, head=pushed.head,
                                  repo=repo.shown, branch=pushed.branch, reverts=reverts, review=branch is not None,
                                  stable_version=rendered_with[-1] if rendered_with else None)
        svc.registry.record_result(mv, PROMOTE_ACTION, record, promotion_summary(mv.ref, record))
        if not moves:
            return was, False
        svc.registry.set_alias(mv.model, alias, mv.version,
                               alias_reason(env, pushed.commit, head=pushed.head, reverts=reverts, note=reason))
        return was, True

    def write(where: Path) -> list[str]:  # rendered afresh on each try: the stable version may have moved
        stable: int | Literal["alias"] | None = "alias"
        if branch is None and _alias_version(svc, mv.model, alias) == mv.version:
            known, kept = kept_stable((r for _, r in svc.registry.results(mv, PROMOTE_ACTION)), env)
            stable = kept if known else "alias"  # the environment runs mv already: render it as it was
        rendered = render_environment(svc, mv.ref, env, image=chosen, spec=spec, stable=stable,
                                      policy=False)  # check_gates asked the policy (action promote)
        rendered_with.append(rendered.stable_version)
        return rendered.write(where)

    published, after = repo.publish(write, message, svc.settings.actor, folder=folder, branch=branch,
                                    on_pushed=after_push)
    was, moved = after if after is not None else (None, False)
    return Promotion(mv.model, mv.version, env, alias, chosen, repo.shown, published.branch, published.commit,
                     published.head, was, moved, reverts, decision, published.files, review=branch is not None)


def rollback(svc: Services, env: str, model: str | None = None, *, reason: str = "") -> Promotion:
    """``shipyard rollback --env ENV [MODEL]``: promote again the version the environment had before this one
    (from the alias's audit history), with the image Shipyard recorded promoting it with to that environment
    (its ``promote`` records; never a commit's text, which anyone who can push writes), else the newest
    ``build --push``; the gates check that image again."""
    from shipyard.core.deploy.promotion import previous_version, promoted_image
    from shipyard.core.registry.records import PROMOTE_ACTION
    from shipyard.errors import InvalidInputError, NotFoundError
    from shipyard.wiring.deploy import deploy_spec

    spec = deploy_spec(svc)
    _, alias = environment(spec, env)
    if model is None:
        having = sorted(m.name for m in svc.registry.models() if alias in m.aliases)
        if len(having) != 1:
            listed = ", ".join(having[:10]) if having else "none"
            raise InvalidInputError(f"name the model to roll back in {env} (models with the alias {alias!r}: "
                                    f"{listed}): shipyard rollback --env {env} MODEL")
        model = having[0]
    current = svc.registry.resolve(f"{model}@{alias}")
    previous = previous_version(svc.registry.history(model), model, alias)
    if previous is None:
        raise NotFoundError(f"{model}@{alias} has no earlier promoted version to roll back to "
                            f"(`shipyard models history {model}` shows its moves)")
    back = svc.registry.resolve(f"{model}@{previous}")
    image = promoted_image((r for _, r in svc.registry.results(back, PROMOTE_ACTION)), env)
    return promote(svc, back.ref, env, image=image, reason=reason, reverts=current.ref)
