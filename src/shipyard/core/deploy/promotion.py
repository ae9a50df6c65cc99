"""Promotion as a decision over facts: the gates, the version a rollback returns to and the image it takes
(from Shipyard's own ``promote`` records), the commit's message.

Pure: the wiring gathers the facts (the version's recorded ``build`` and ``verify`` results, the alias's audit
events) and the adapter does the git work. A gate is anything with a ``name`` and ``check(facts)``; the
governance issue's policy engine (OPA) plugs in as one more gate in the tuple given to ``decide``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shipyard.core.deploy.imageref import PINNED

ALIAS_SET = "alias.set"
ALIAS_REMOVE = "alias.remove"
ROLLBACK = "rollback"  # the first word of a rollback's alias reason: how the history tells it from a promotion
_TRAILER = re.compile(r"^(?P<key>Shipyard-[A-Za-z]+): (?P<value>.*)$", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_REASON = 2000  # a reason quoting two digest-pinned image references is ~400: never cut one


def pinned(image: str) -> bool:
    """Whether ``image`` names its content by digest (``repo@sha256:<64 hex>``, by the registries' reference
    grammar), so it can never move."""
    return PINNED.match(image) is not None


@dataclass(frozen=True)
class VerifyFact:
    """One recorded ``verify --image`` result: the image as it was named, its local id, and the verdict."""

    image: str
    image_id: str | None
    passed: bool
    summary: str = ""


@dataclass(frozen=True)
class Facts:
    """What the gates look at for one promotion of ``ref`` to ``env``."""

    ref: str
    env: str
    image: str | None  # the image the manifests will pin: --image, or the newest pushed build
    image_from: str  # "--image" or "build"
    known_as: frozenset[str] = frozenset()  # other names of that image: the build's tag and local image id
    verified: tuple[VerifyFact, ...] = ()  # oldest first
    extra: Mapping[str, Any] = field(default_factory=dict)  # for gates plugged in later (policy input)
    model_source: str = "baked"  # registry: the image is the environment image of the version's lock


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    verdicts: tuple[Verdict, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why not: the failed gates' reasons (empty when allowed)."""
        return tuple(v.reason for v in self.verdicts if not v.passed)

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed,
                "gates": [{"gate": v.gate, "passed": v.passed, "reason": v.reason} for v in self.verdicts]}


class Gate(Protocol):
    """One check a promotion must pass: a name for the record, and a verdict over the facts."""

    name: str

    def check(self, facts: Facts) -> Verdict: ...


class ImagePinned:
    """The version has an image, pinned by digest: from ``shipyard build --push`` or ``--image``."""

    name = "image"

    def check(self, facts: Facts) -> Verdict:
        if facts.image is None:
            mode = " --model-source registry" if facts.model_source == "registry" else ""
            what = "environment image (for its lock)" if mode else "image"
            return Verdict(self.name, False, f"{facts.ref} has no pushed {what}: run `shipyard build {facts.ref}"
                                             f"{mode} --push REGISTRY/REPO`, or pass --image REPO@sha256:DIGEST")
        if not pinned(facts.image):
            return Verdict(self.name, False, f"the image {facts.image[:120]!r} is not pinned by digest: give "
                                             "REPO@sha256:<64 hex> (a tag can move after it was checked)")
        return Verdict(self.name, True, f"image {facts.image} (from {facts.image_from})")


class ImageVerified:
    """Where ``verify --image`` results are recorded for this image, the newest one passed."""

    name = "verify"

    def check(self, facts: Facts) -> Verdict:
        names = {facts.image, *facts.known_as} - {None}
        mine = [v for v in facts.verified if v.image in names or (v.image_id is not None and v.image_id in names)]
        if not mine:
            return Verdict(self.name, True, "no `verify --image` recorded for this image (not required)")
        last = mine[-1]
        if last.passed:
            return Verdict(self.name, True, f"passed verify in {last.image}")
        why = f": {one_line(last.summary, 160)}" if last.summary else ""
        return Verdict(self.name, False, f"{facts.ref} failed its newest verify in the image {last.image}{why}; "
                                         f"fix it and run `shipyard verify {facts.ref} --image {last.image}` again")


DEFAULT_GATES: tuple[Gate, ...] = (ImagePinned(), ImageVerified())


def decide(facts: Facts, gates: Sequence[Gate] = DEFAULT_GATES) -> Decision:
    """Every gate's verdict; the promotion is allowed when all of them pass."""
    verdicts = tuple(g.check(facts) for g in gates)
    return Decision(all(v.passed for v in verdicts), verdicts)


# --- Facts from the records ---------------------------------------------------------------------------------

def pushed_image(builds: Iterable[Mapping[str, Any]],
                 model_source: str = "baked") -> tuple[str | None, frozenset[str]]:
    """(the newest pushed, digest-pinned image of the ``build`` records (oldest first), the other names of that
    image: its tag and local image id); (None, {}) when no build was pushed. ``model_source``: the images that
    hold the version (baked), or the environment images a registry-mode server runs (registry): neither ever
    stands for the other."""
    for record in reversed(list(builds)):
        if (record.get("model_source") or "baked") != model_source:
            continue
        pushed = record.get("pushed")
        if isinstance(pushed, str) and pinned(pushed):
            others = {str(record[k]) for k in ("image", "image_id") if isinstance(record.get(k), str)}
            return pushed, frozenset(others)
    return None, frozenset()


def verify_fact(record: Mapping[str, Any], summary: str = "") -> VerifyFact | None:
    """A ``verify`` record made by ``verify --image``, or None for the other kinds (venv, current)."""
    image = record.get("image")
    if not isinstance(image, str) or not image:
        return None
    env = record.get("environment")
    words = env.split() if isinstance(env, str) else []
    image_id = words[1] if len(words) > 1 else None  # "IMAGE IMAGE_ID", as verify --image records it
    return VerifyFact(image, image_id, record.get("passed") is True, summary)


# --- The alias history: what a rollback returns to ------------------------------------------------------------

def _events(events: Iterable[Any], model: str, alias: str) -> list[Any]:
    return [e for e in events if e.model == model and e.name == alias and e.action in (ALIAS_SET, ALIAS_REMOVE)]


def is_rollback(event: Any) -> bool:
    return str(event.reason).split(" ", 1)[0].rstrip(":") == ROLLBACK


def promoted_versions(events: Iterable[Any], model: str, alias: str) -> list[int]:
    """The versions ``model@alias`` was promoted to, as a stack (the current one last).

    A promotion (any alias move) pushes its version; a rollback pops back to the version it returned to, so
    rolling back twice goes two versions back rather than flipping between the last two. Removing the alias
    empties the stack. ``events``: audit events, oldest first.
    """
    stack: list[int] = []
    for e in _events(events, model, alias):
        if e.action == ALIAS_REMOVE or e.new is None or not str(e.new).isdigit():
            stack.clear()
            continue
        version = int(e.new)
        if is_rollback(e) and version in stack:
            while stack[-1] != version:
                stack.pop()
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def previous_version(events: Iterable[Any], model: str, alias: str) -> int | None:
    """The version before the current one of ``model@alias``, or None when there is nothing to go back to."""
    stack = promoted_versions(events, model, alias)
    return stack[-2] if len(stack) > 1 else None


def promotion_record(*, env: str, alias: str, image: str, commit: str | None, head: str | None, repo: str,
                     branch: str, reverts: str | None, review: bool, stable_version: int | None) -> dict[str, Any]:
    """What Shipyard records of a promotion it pushed (``Registry.record_result(mv, "promote", ...)``): the
    image it gated and rendered, the commit it made (None when git already held those bytes; ``head`` is then
    the branch's commit, whoever wrote it), and the stable version the manifests were rendered with."""
    return {"env": env, "alias": alias, "image": image, "commit": commit, "head": head, "repo": repo,
            "branch": branch, "reverts": reverts, "review": review, "stable_version": stable_version}


def promotion_summary(ref: str, record: Mapping[str, Any]) -> str:
    """The history's line for a promotion record."""
    env = record.get("env")
    where = f"{record.get('branch')} of {record.get('repo')}"
    if record.get("review"):
        return f"pushed {ref} for {env} to the review branch {where}: commit {record.get('commit')}"
    what = f"rollback of {env} to {ref} (from {record.get('reverts')})" if record.get("reverts") else \
        f"promote {ref} to {env}"
    if record.get("commit") is None:
        return f"{what}: nothing to commit, {where} already held it (head {record.get('head')})"
    return f"{what}: commit {record.get('commit')} pushed to {where}"


def last_promotion(records: Iterable[Mapping[str, Any]], env: str) -> Mapping[str, Any] | None:
    """The newest record (of records oldest first) of a promotion to ``env`` itself, not a review branch."""
    found: list[Mapping[str, Any]] = [r for r in records if r.get("env") == env and not r.get("review")]
    return found[-1] if found else None


def promoted_image(records: Iterable[Mapping[str, Any]], env: str) -> str | None:
    """The pinned image a version was last promoted to ``env`` with, from Shipyard's own promote records
    (never from a commit's text, which anyone with push access writes); None when none is recorded."""
    record = last_promotion(records, env)
    image = record.get("image") if record is not None else None
    return image if isinstance(image, str) and pinned(image) else None


def kept_stable(records: Iterable[Mapping[str, Any]], env: str) -> tuple[bool, int | None]:
    """(whether one is recorded, the stable version) the version's last promotion to ``env`` rendered with:
    re-promoting the version an environment already runs renders the same bytes, hence no commit."""
    record = last_promotion(records, env)
    if record is None or "stable_version" not in record:
        return False, None
    stable = record["stable_version"]
    if stable is None or (isinstance(stable, int) and not isinstance(stable, bool) and stable > 0):
        return True, stable
    return False, None


def alias_reason(env: str, commit: str | None, *, head: str | None = None, reverts: str | None = None,
                 note: str = "") -> str:
    """The alias move's audit reason: names the commit Shipyard pushed (and, for a rollback, the version it
    reverts from); when git already held the change, the branch's head, as a head, not as Shipyard's commit."""
    what = f"{ROLLBACK} of {env} from {reverts}" if reverts else f"promote to {env}"
    text = f"{what}: commit {commit}" if commit else f"{what}: nothing to commit (git already held it, head {head})"
    return f"{text}: {one_line(note)}" if note.strip() else text


# --- The commit ---------------------------------------------------------------------------------------------

def one_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` as one printable line (control characters become spaces); past ``limit`` characters it is cut
    and ends with "…", so a cut command never passes for a whole one."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def commit_message(model: str, version: int, env: str, *, record: str | None, image: str, actor: str,
                   reverts: str | None = None, reason: str = "") -> str:
    """The GitOps commit's message: a subject a reviewer reads in ``git log --oneline``, then git trailers
    (``git interpret-trailers --parse`` reads them back) naming model, version, record, image and actor."""
    ref = f"{model}@{version}"
    subject = f"rollback {env} to {ref} (from {reverts})" if reverts else f"promote {ref} to {env}"
    trailers = [("Shipyard-Model", model), ("Shipyard-Version", str(version)), ("Shipyard-Environment", env),
                ("Shipyard-Image", image), ("Shipyard-Record", record or "unknown"), ("Shipyard-Actor", actor)]
    if reverts:
        trailers.append(("Shipyard-Reverts", reverts))
    body = f"{one_line(reason)}\n\n" if reason.strip() else ""
    return f"{one_line(subject, 200)}\n\n{body}" + "".join(f"{k}: {one_line(v, 200)}\n" for k, v in trailers)


def trailers(message: str) -> dict[str, str]:
    """The ``Shipyard-*`` trailers of a commit message (the last of each kind)."""
    return {m["key"]: m["value"].strip() for m in _TRAILER.finditer(message[:64 * 1024])}
