"""The environment image of registry mode, as text (no I/O): the locked dependencies and Shipyard, no model.

A registry-mode server loads its version from the team's registry when it starts, so its image depends only
on the environment: every version (of any model) whose lock, base image and Shipyard are the same runs in the
same image, built once and named by them (``shipyard/env:<key-12>``). The lock is taken without the header
that names the version it was made for, so two versions with one lock write identical contexts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shipyard.core.environments.image import (
    APP_DIR,
    DEFAULT_PORT,
    IMAGE_ACTOR,
    LABEL_PREFIX,
    PORT_VARIABLE,
    SERVE_DIR,
    SITE_DIR,
    USER_ID,
    healthcheck_command,
)

REPOSITORY = "shipyard/env"
SUMMARY = "environment image"  # the first words of a registry-mode build record's summary (found without reading it)
MODEL_SOURCE = "registry"


def lock_text(python: str, requirements: Sequence[str]) -> str:
    """The requirements file of the environment image: the pins alone, under a header naming no version."""
    return f"# The environment lock (Python {python}) of a Shipyard environment image\n" + \
        "".join(f"{line}\n" for line in requirements)


def lock_digest(python: str, requirements: Sequence[str]) -> str:
    """The lock's identity: its Python and its pins (``sha256:<hex>``)."""
    return "sha256:" + hashlib.sha256(lock_text(python, requirements).encode()).hexdigest()


def env_key(lock: str, base_image: str, shipyard_version: str) -> str:
    """What an environment image is made of: the lock, the base it starts from, the Shipyard it runs."""
    return hashlib.sha256(f"{lock}\0{base_image}\0{shipyard_version}".encode()).hexdigest()


def env_tag(key: str) -> str:
    return f"{REPOSITORY}:{key[:12]}"


def labels(lock: str, key: str, base_image: str, shipyard_version: str) -> dict[str, str]:
    oci = "org.opencontainers.image"
    return {f"{oci}.title": "shipyard-env",
            f"{oci}.description": f"Shipyard {shipyard_version} and a locked environment; the model is loaded "
                                  "from the registry",
            f"{oci}.version": shipyard_version,
            f"{oci}.base.name": base_image,
            f"{LABEL_PREFIX}.lock-digest": lock,
            f"{LABEL_PREFIX}.env-key": key,
            f"{LABEL_PREFIX}.model-source": MODEL_SOURCE,
            f"{LABEL_PREFIX}.shipyard-version": shipyard_version}


def dockerfile(deps_image: str, lock: str, key: str, base_image: str, shipyard_version: str) -> str:
    """On the dependencies image, Shipyard, as a non-root user; ``python3 -m shipyard`` is the entrypoint, and
    the Deployment gives ``serve MODEL@VERSION`` with the registry's variables. Nothing here names a version,
    and nothing changes with the time of the build: the same inputs give the same bytes."""
    lines = [
        f"# Rendered by Shipyard {shipyard_version}: an environment image (lock {lock[:19]}...), no model in it.",
        "# Self-contained: nothing is downloaded while it builds. Build deps/ first (tagged as below), then this.",
        f"FROM {deps_image}",
        f"ENV PYTHONPATH={SITE_DIR}:{APP_DIR} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\",
        f"    {PORT_VARIABLE}={DEFAULT_PORT} HOME={SERVE_DIR} SHIPYARD_ACTOR={IMAGE_ACTOR}",
        f"COPY app/ {APP_DIR}/",
        "LABEL " + " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in
                                      labels(lock, key, base_image, shipyard_version).items()),
        f"USER {USER_ID}:{USER_ID}",
        f"WORKDIR {SERVE_DIR}",
        f"EXPOSE {DEFAULT_PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        f"  CMD {json.dumps(healthcheck_command())}",
        'ENTRYPOINT ["python3", "-m", "shipyard"]',
        'CMD ["--help"]',
    ]
    return "\n".join(lines) + "\n"


def record(*, lock: str, key: str, tag: str, base_image: str, deps_image: str, image_id: str | None,
           engine: str | None, pushed: str | None, reused_from: str | None = None) -> dict[str, Any]:
    """A version's ``build`` record in registry mode (``Registry.record_result(mv, "build", ...)``)."""
    out: dict[str, Any] = {"model_source": MODEL_SOURCE, "lock": lock, "env_key": key, "image": tag,
                           "image_id": image_id, "engine": engine, "base": base_image, "deps_image": deps_image}
    if pushed is not None:
        out["pushed"] = pushed
    if reused_from is not None:
        out["reused_from"] = reused_from
    return out


def summary(tag: str, image_id: str | None, pushed: str | None, reused_from: str | None = None) -> str:
    text = f"{SUMMARY} {tag} {image_id or ''}".rstrip()
    if pushed:
        text += f", pushed {pushed}"
    if reused_from:
        text += f" (reused: built for {reused_from})"
    return text


def same_environment(records: Iterable[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The newest registry-mode build record (of records oldest first) of an image made of ``key``, preferring
    one that was pushed; None when there is none."""
    mine = [r for r in records if r.get("model_source") == MODEL_SOURCE and r.get("env_key") == key
            and isinstance(r.get("image"), str)]
    pushed = [r for r in mine if isinstance(r.get("pushed"), str)]
    chosen = pushed or mine
    return chosen[-1] if chosen else None
