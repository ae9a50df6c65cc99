"""Objects for the trust tests: each leaves a marker file if Shipyard ever runs it while loading."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any


class PickleBomb:
    """Pickles as a call to ``os.system`` that creates a file: what a hostile model.pkl does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class SetsMarker:
    """skops rebuilds it with ``__setstate__``, which writes the marker."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("ran")
        self.__dict__.update(state)

    def predict(self, x: Any) -> Any:
        return x


class MarkerOnInit:
    """A "model class" for the torch flavor that writes the marker when it is built."""

    def __init__(self, marker: str) -> None:
        Path(marker).write_text("ran")


class Doubler:
    """A legitimate custom estimator outside scikit-learn: it needs its type trusted to load from skops."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def predict(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x) * self.factor
