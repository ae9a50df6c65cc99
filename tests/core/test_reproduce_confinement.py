"""reproduce writes only inside its scratch folder, whatever the recorded run says."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.executors.local import LocalExecutor
from shipyard.core.pipelines.reproduce import reproduce
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.saving import save_model
from shipyard.errors import InvalidInputError
from shipyard.wiring import Services


def _version_with(services: Services, tmp_path: Path, inputs: dict[str, str], tags: dict[str, str]) -> ModelVersion:
    from sklearn.dummy import DummyClassifier

    run = services.tracker.start_run(name="train")
    services.meta.set_tags(run.id, {"shipyard.cmd": "true", "shipyard.stage": "train", **tags})
    services.meta.add_inputs(run.id, inputs)
    folder = tmp_path / "saved"
    save_model(services.registry.flavors("sklearn"), DummyClassifier().fit([[0], [1]], [0, 1]), folder, None, {})
    version = services.registry.register("m", folder, run_id=run.id)
    services.tracker.end_run(run.id)
    return version


@pytest.mark.parametrize("hostile", [
    {"inputs": {"../escaped.txt": "OBJ"}, "tags": {}},
    {"inputs": {"ABS/escaped.txt": "OBJ"}, "tags": {}},  # ABS: an absolute path beside the scratch folder
    {"inputs": {}, "tags": {"shipyard.wdir": "../.."}},
])
def test_reproduce_refuses_recorded_paths_outside_its_scratch_folder(
        services: Services, tmp_path: Path, hostile: dict[str, dict[str, str]]) -> None:
    digest = str(services.store.put_bytes(b"payload\n"))
    inputs = {k.replace("ABS", str(tmp_path / "work")): digest for k in hostile["inputs"]}
    version = _version_with(services, tmp_path, inputs, hostile["tags"])
    scratch = tmp_path / "work" / "scratch"
    scratch.mkdir(parents=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidInputError, match=r"outside its folder|not normalized"):
        reproduce(services.meta, services.store, version, scratch, LocalExecutor(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "work" / "escaped.txt").exists()
