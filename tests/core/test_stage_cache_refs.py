"""Stage-cache refs and shipyard.lock entries are checked field by field (issue 7, attack findings 10b, 13).

A ref may come from a shared remote: a 9 MB run id, a ``..`` output path or a digest that does not
parse must not reach shipyard.lock or the working tree. A bad ref is a cache miss with one warning
line; a bad lock entry is one error line naming shipyard.lock and the entry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.artifacts.digest import Digest
from shipyard.core.pipelines.runner import read_cache_ref
from shipyard.core.workspace.lockfile import MAX_REF_BYTES, Lock, PathEntry, StageEntry, load_lock, save_lock
from shipyard.errors import ConfigError

DIGEST = "sha256:" + "ab" * 32
RUN = "0123456789abcdef" * 2
GOOD: dict[str, Any] = {"stage": "s", "run": RUN, "outs": {"out/model": {"digest": DIGEST, "size": 12, "files": 2}}}


def _ref(**changes: Any) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps(body).encode()


def _out(**changes: Any) -> bytes:
    return _ref(outs={"out/model": {**GOOD["outs"]["out/model"], **changes}})


def test_a_ref_shipyard_wrote_is_read() -> None:
    assert read_cache_ref(_ref(), "stage-cache/fp", "the local store") == (
        RUN, {"out/model": PathEntry(Digest.parse(DIGEST), 12, 2)})
    assert read_cache_ref(_ref(run=None), "stage-cache/fp", "the local store") == (
        None, {"out/model": PathEntry(Digest.parse(DIGEST), 12, 2)})


@pytest.mark.parametrize(("raw", "problem"), [
    (_ref(run="R" * 100_000), "is not a run id"),  # the attack's 9 MB run id, smaller
    (_ref(run="../../etc"), "is not a run id"),
    (_ref(run=RUN.upper()), "is not a run id"),
    (_ref(run=RUN + "\n"), "is not a run id"),
    (_ref(run=7), "is not a run id"),
    (_ref(outs={"../escaped": GOOD["outs"]["out/model"]}), "outside its folder"),
    (_ref(outs={"/etc/cron.d/x": GOOD["outs"]["out/model"]}), "outside its folder"),
    (_ref(outs={"a/./b": GOOD["outs"]["out/model"]}), "not normalized"),
    (_ref(outs=["out/model"]), "outs is not a mapping"),
    (_out(digest="sha256:zz"), "is not a sha256 digest"),
    (_out(digest="md5:" + "0" * 32), "is not a sha256 digest"),
    (_out(digest=None), "is not a digest"),
    (_out(size="12"), "size '12' is not a whole number"),
    (_out(size=-1), "is not a whole number"),
    (_out(size=True), "is not a whole number"),
    (_out(size=1.5), "is not a whole number"),
    (_out(files="2"), "file count '2' is not a whole number"),
    (_ref(outs={"out/model": "sha256:ab"}), "is not a mapping"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"run": null}', "no outs"),
    (b'{"outs": {"work/prepared.txt": ', "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (_ref(pad="x" * MAX_REF_BYTES), "more than a ref holds"),
])
def test_a_damaged_or_hostile_ref_is_a_miss_with_one_warning_line(
        raw: bytes, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard"):
        assert read_cache_ref(raw, "stage-cache/fp", "remote /r") is None
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith("stage cache entry stage-cache/fp in remote /r is damaged (")
    assert problem in message and message.endswith("ignored (the stage runs again and replaces it)")
    assert len(message.splitlines()) == 1 and len(message) < 400


def _lock_with(tmp_path: Path, stage: dict[str, Any]) -> None:
    good = StageEntry("sha256:" + "1" * 64, RUN, "python x.py", {"x.py": DIGEST}, {"lr": 1},
                      {"out": PathEntry(Digest.parse(DIGEST), 3)})
    save_lock(tmp_path, Lock(stages={"train": good}))
    body = (tmp_path / "shipyard.lock").read_text()
    import yaml

    data = yaml.safe_load(body)
    data["stages"]["train"].update(stage)
    (tmp_path / "shipyard.lock").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(("change", "problem"), [
    ({"fingerprint": "zz"}, "fingerprint 'zz' is not a sha256 digest"),
    ({"deps": {"x.py": "sha256:zz"}}, "dependency 'x.py' digest 'sha256:zz' is not a sha256 digest"),
    ({"outs": {"out": {"digest": "zz", "size": 3}}}, "output 'out' digest 'zz' is not a sha256 digest"),
    ({"outs": {"out": {"digest": DIGEST, "size": "3"}}}, "output 'out' size '3' is not a whole number"),
    ({"outs": {"../out": {"digest": DIGEST, "size": 3}}}, "outside its folder"),
    ({"run": "R" * 5000}, "run 'RRRRRRR"),
    ({"cmd": ["python"]}, "cmd is not a string"),
])
def test_a_bad_stage_entry_in_the_lock_names_the_file_and_the_stage(
        tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    _lock_with(tmp_path, change)
    with pytest.raises(ConfigError) as exc:
        load_lock(tmp_path)
    message = str(exc.value)
    assert message.startswith("shipyard.lock is damaged: stage 'train': ") and problem in message
    assert message.endswith("; restore it from git") and len(message.splitlines()) == 1 and len(message) < 500


def test_a_bad_data_entry_in_the_lock_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "shipyard.lock").write_text("version: 1\ndata:\n  data/raw.csv:\n    digest: sha256:zz\n    size: 1\n")
    with pytest.raises(ConfigError, match=r"^shipyard.lock is damaged: path 'data/raw.csv': digest 'sha256:zz' "
                                          r"is not a sha256 digest; restore it from git$"):
        load_lock(tmp_path)


def test_a_lock_shipyard_wrote_loads_back(tmp_path: Path) -> None:
    _lock_with(tmp_path, {"deps": {"x.py": DIGEST, "made/by/upstream": ""}})
    stage = load_lock(tmp_path).stages["train"]
    assert stage.run == RUN and stage.outs == {"out": PathEntry(Digest.parse(DIGEST), 3)}
    assert load_lock(tmp_path).digests() == {Digest.parse(DIGEST)}
