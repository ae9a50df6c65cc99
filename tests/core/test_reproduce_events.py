"""What reproduce tells the interface while it re-runs a stage: the real time each stage took."""

from __future__ import annotations

from pathlib import Path

from sklearn.dummy import DummyClassifier

from shipyard.adapters.executors.local import LocalExecutor
from shipyard.core.pipelines.reproduce import reproduce
from shipyard.core.registry.saving import save_model
from shipyard.wiring import Services


class Recorder:
    """Events as a list, in the order they came."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []

    def started(self, stage: str, how: str) -> None:
        self.seen.append(("started", stage, how))

    def line(self, stage: str, text: str) -> None:
        self.seen.append(("line", stage, text))

    def finished(self, stage: str, outcome: str, seconds: float, detail: str = "") -> None:
        self.seen.append(("finished", stage, seconds))


def test_each_stage_reports_the_time_its_command_took(services: Services, tmp_path: Path) -> None:
    run = services.tracker.start_run(name="train")
    services.meta.set_tags(run.id, {"shipyard.cmd": "sleep 0.3; echo trained", "shipyard.stage": "train"})
    folder = tmp_path / "saved"
    save_model(services.registry.flavors("sklearn"), DummyClassifier().fit([[0], [1]], [0, 1]), folder, None, {})
    version = services.registry.register("m", folder, run_id=run.id)
    services.tracker.end_run(run.id)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    events = Recorder()
    reproduce(services.meta, services.store, version, scratch, LocalExecutor(), {}, events)
    assert [(kind, stage) for kind, stage, _ in events.seen] == [("started", "train"), ("line", "train"),
                                                                 ("finished", "train")]
    assert events.seen[1][2] == "trained"
    seconds = events.seen[2][2]
    assert isinstance(seconds, float) and seconds >= 0.3  # the command sleeps that long: it was 0.0 before
