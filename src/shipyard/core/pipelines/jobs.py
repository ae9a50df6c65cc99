"""What an executor is asked to run, and what the runner tells the interface while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StageJob:
    name: str
    cmd: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)  # added to the runner's own environment


class Events(Protocol):
    """How a pipeline run reports progress; the CLI draws it, tests record it."""

    def started(self, stage: str, how: str) -> None: ...
    def line(self, stage: str, text: str) -> None: ...
    def finished(self, stage: str, outcome: str, seconds: float, detail: str = "") -> None: ...


class NoEvents:
    def started(self, stage: str, how: str) -> None:
        return None

    def line(self, stage: str, text: str) -> None:
        return None

    def finished(self, stage: str, outcome: str, seconds: float, detail: str = "") -> None:
        return None
