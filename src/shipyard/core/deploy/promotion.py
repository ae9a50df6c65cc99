"""Promotion as a decision over facts: the gates, the version a rollback returns to, the commit's message.

Pure: the wiring gathers the facts (the version's recorded ``build`` and ``verify`` results, the alias's audit
events) and the adapter does the git work. A gate is anything with a ``name`` and ``check(facts)``; the
governance issue's policy engine (OPA) plugs in as one more gate in the tuple given to ``decide``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shipyard.core.environments.image import check_image_name

PINNED = re.compile(r"^(?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})\Z")
ALIAS_SET = "alias.set"
ALIAS_REMOVE = "alias.remove"
ROLLBACK = "rollback"  # the first word of a rollback's alias reason: how the history tells it from a promotion
_COMMIT_IN_REASON = re.compile(r"\bcommit (?P<sha>[0-9a-f]{7,64})\b")
_TRAILER = re.compile(r"^(?P<key>Shipyard-[A-Za-z]+): (?P<value>.*)$", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_REASON = 300


def pinned(image: str) -> bool:
    """Whether ``image`` names its content by digest (``repo@sha256:<64 hex>``), so it can never move."""
    if not PINNED.match(image):
        return False
    try:
        check_image_name(image, "image")
    except ValueError:
        return False
    return True


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
            return Verdict(self.name, False, f"{facts.ref} has no pushed image: run `shipyard build {facts.ref} "
                                             "--push REGISTRY/REPO`, or pass --image REPO@sha256:DIGEST")
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
        why = f": {last.summary[:160]}" if last.summary else ""
        return Verdict(self.name, False, f"{facts.ref} failed its newest verify in the image {last.image}{why}; "
                                         f"fix it and run `shipyard verify {facts.ref} --image {last.image}` again")


DEFAULT_GATES: tuple[Gate, ...] = (ImagePinned(), ImageVerified())


def decide(facts: Facts, gates: Sequence[Gate] = DEFAULT_GATES) -> Decision:
    """Every gate's verdict; the promotion is allowed when all of them pass."""
    verdicts = tuple(g.check(facts) for g in gates)
    return Decision(all(v.passed for v in verdicts), verdicts)


# --- Facts from the records ---------------------------------------------------------------------------------

def pushed_image(builds: Iterable[Mapping[str, Any]]) -> tuple[str | None, frozenset[str]]:
    """(the newest pushed, digest-pinned image of the ``build`` records (oldest first), the other names of that
    image: its tag and local image id); (None, {}) when no build was pushed."""
    for record in reversed(list(builds)):
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


def promoted_commit(events: Iterable[Any], model: str, alias: str, version: int) -> str | None:
    """The GitOps commit of the newest move of ``alias`` to ``version`` (named in its reason), if any."""
    for e in reversed(_events(events, model, alias)):
        if e.action == ALIAS_SET and e.new == str(version):
            m = _COMMIT_IN_REASON.search(str(e.reason))
            return m["sha"] if m else None
    return None


def alias_reason(env: str, commit: str, *, reverts: str | None = None, note: str = "") -> str:
    """The alias move's audit reason: names the commit (and, for a rollback, the version it reverts from)."""
    head = f"{ROLLBACK} of {env} from {reverts}" if reverts else f"promote to {env}"
    text = f"{head}: commit {commit}"
    return f"{text}: {one_line(note)}" if note.strip() else text


# --- The commit ---------------------------------------------------------------------------------------------

def one_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` as one printable line (control characters become spaces), cut at ``limit``."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


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


def image_of(message: str, model: str, version: int) -> str | None:
    """The image a promotion commit of ``model@version`` pinned, from its trailers; None for another commit."""
    t = trailers(message)
    image = t.get("Shipyard-Image", "")
    if t.get("Shipyard-Model") != model or t.get("Shipyard-Version") != str(version) or not pinned(image):
        return None
    return image
