"""Small python-flavor models for the rollout tests and bench: a stable one, a good new version, one that
raises on about 5% of its inputs, and one whose answers shift with no error at all."""

from __future__ import annotations

import random
from typing import Any


def _key(row: Any) -> int:
    return int(abs(float(row[0])) * 1000) % 100


class Threshold:
    """A classifier: ``"high"`` when the row's sum passes ``cut``."""

    def __init__(self, cut: float = 1.0) -> None:
        self.cut = cut

    def predict(self, rows: Any) -> list[str]:
        return ["high" if sum(float(v) for v in row) > self.cut else "low" for row in rows]


class Flaky(Threshold):
    """Answers as ``Threshold`` but raises on rows whose key falls in the first ``percent`` of 100."""

    def __init__(self, cut: float = 1.0, percent: int = 5) -> None:
        super().__init__(cut)
        self.percent = percent

    def predict(self, rows: Any) -> list[str]:
        if any(_key(row) < self.percent for row in rows):
            raise ValueError("flaky model: this input breaks it")
        return super().predict(rows)


class Shifted(Threshold):
    """Never fails, but calls ``high`` on another cut: its answers move for a share of the inputs."""


def rows(n: int = 400, seed: int = 7) -> list[list[list[float]]]:
    """``n`` one-row batches of two features in [0, 1)."""
    rng = random.Random(seed)
    return [[[round(rng.random(), 4), round(rng.random(), 4)]] for _ in range(n)]


class StartsFailing(Threshold):
    """Answers as ``Threshold``, then raises on every other input once ``FAIL_FLAG`` exists (set by the bench
    at a moment it notes), so the onset of failures is known to the millisecond."""

    def __init__(self, flag: str, cut: float = 1.0) -> None:
        super().__init__(cut)
        self.flag = flag

    def predict(self, rows: Any) -> list[str]:
        import os

        if os.path.exists(self.flag) and any(_key(row) % 2 == 0 for row in rows):
            raise ValueError("this version started failing")
        return super().predict(rows)


class Hangs(Threshold):
    """Answers as ``Threshold``, but takes ``seconds`` over every answer but its golden examples' (``golden``: the
    warm-up is quick) once the file ``flag`` exists."""

    def __init__(self, flag: str, seconds: float, golden: list[list[float]], cut: float = 1.0) -> None:
        super().__init__(cut)
        self.flag = flag
        self.seconds = seconds
        self.golden = golden

    def predict(self, rows: Any) -> list[str]:
        import os
        import time

        if os.path.exists(self.flag) and [[float(v) for v in row] for row in rows] != self.golden:
            time.sleep(self.seconds)
        return super().predict(rows)
