"""A project with two registered versions of an iris model, as the deploy tests render it (a module fixture)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.wiring import Services


@dataclass
class Lab:
    root: Path
    svc: Services


def make_lab(root: Path, config: str, origin: str, environ: Mapping[str, str] | None = None) -> Lab:
    """``root`` as a git repository (``origin`` its remote) holding ``config`` as shipyard.yaml, with iris@1 and
    iris@2 registered from one environment (one lock); the caller closes ``lab.svc``."""
    from sklearn.linear_model import LogisticRegression

    from shipyard.core.registry.saving import save_model
    from shipyard.wiring import flavor, from_environment

    (root / "shipyard.yaml").write_text(config)
    (root / ".shipyard").mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", origin]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    svc = from_environment({"SHIPYARD_ACTOR": "tester@ci", **(environ or {})}, root)
    x = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    save_model(flavor("sklearn"), LogisticRegression().fit(x, [0, 1, 0, 1]), root / "m", examples=x)
    for _ in range(2):  # two versions from one environment: one lock
        svc.registry.register("iris", root / "m", trust_as_registrant=True)
    return Lab(root, svc)
