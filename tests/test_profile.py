"""A version's reference profile (issue 12's first step): log_model(reference=X) records DataSketches profiles of
the training data and of the model's answers, content-addressed and read back bounded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard.adapters.monitoring.sketches import build_profile, frequencies, quantiles
from shipyard.core.monitoring.profile import CATEGORICAL, NUMERIC, OUTPUTS, Profile
from shipyard.core.registry.records import PROFILE_ACTION
from shipyard.errors import InvalidInputError
from shipyard.wiring import from_environment
from shipyard.wiring.monitoring import reference_profile


def test_numeric_quantiles_ranges_and_missing_rates_follow_the_data() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(10, 2, 50_000), rng.uniform(0, 1, 50_000)])
    x[:500, 1] = np.nan  # 1% missing in the second column
    profile = build_profile(x)
    first, second = profile.inputs
    assert (first.name, first.kind, first.count, first.missing) == ("x0", NUMERIC, 50_000, 0)
    assert second.missing == 500 and second.missing_rate == pytest.approx(0.01)
    assert (first.low, first.high) == (float(x[:, 0].min()), float(x[:, 0].max()))
    expected = np.quantile(x[:, 0], [0.1, 0.5, 0.9])
    assert quantiles(first, [0.1, 0.5, 0.9]) == pytest.approx(list(expected), abs=0.15)  # KLL's rank error


def test_categories_keep_their_frequencies_and_their_missing_values() -> None:
    rows = [["red", 1.0]] * 700 + [["blue", 2.0]] * 200 + [[None, 3.0]] * 100
    profile = build_profile(rows, np.array(["yes"] * 600 + ["no"] * 400))
    color, size = profile.inputs
    assert color.kind == CATEGORICAL and color.missing == 100 and color.count == 1000
    assert frequencies(color) == {"red": 700, "blue": 200}
    assert size.kind == NUMERIC and quantiles(size, [0.5]) == [1.0]  # numbers among a mixed list's objects
    assert frequencies(profile.column("y0", OUTPUTS)) == {"yes": 600, "no": 400}


def test_log_model_records_the_profile_of_the_data_and_of_the_answers(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    monkeypatch.chdir(tmp_path)
    client = shipyard.Client(tmp_path)
    try:
        run = client.start_run("train")
        mv = client.log_model(run.id, LogisticRegression(max_iter=500).fit(x, y), "iris", examples=x[:3],
                              reference=x)
    finally:
        client.close()
    svc = from_environment({"SHIPYARD_HOME": str(tmp_path / ".shipyard")}, tmp_path)
    try:
        current = svc.registry.resolve(mv.ref)
        [(event, record)] = svc.registry.results(current, PROFILE_ACTION)
        profile = reference_profile(svc, current)
    finally:
        svc.close()
    assert record["rows"] == 150 and record["inputs"] == 4 and record["outputs"] == 1
    assert event.reason.startswith(f"reference profile of {mv.ref}: 150 rows")
    assert profile is not None and [c.name for c in profile.inputs] == ["x0", "x1", "x2", "x3"]
    assert profile.inputs[2].low == pytest.approx(float(x[:, 2].min()))
    answers = profile.outputs[0]
    assert answers.kind == CATEGORICAL and answers.count == 150  # class indices: classes, by share
    assert sorted(dict(answers.top)) == ["0", "1", "2"] and sum(dict(answers.top).values()) == 150


@pytest.mark.parametrize("broken", [
    {"format": 2, "rows": 1, "inputs": [], "outputs": []},
    {"format": 1, "rows": -1, "inputs": [], "outputs": []},
    {"format": 1, "rows": 1, "inputs": [{"name": "a", "kind": "numeric", "count": 1, "missing": 2,
                                         "sketch": ""}], "outputs": []},
    {"format": 1, "rows": 1, "inputs": [{"name": "a\x1b[2J", "kind": "numeric", "count": 1, "missing": 0,
                                         "sketch": ""}], "outputs": []},
    {"format": 1, "rows": 1, "inputs": [{"name": "a", "kind": "numeric", "count": 1, "missing": 0,
                                         "sketch": "not base64!"}], "outputs": []},
    {"format": 1, "rows": 1, "inputs": [{"name": "a", "kind": "numeric", "count": 1, "missing": 0,
                                         "sketch": "A" * (2 << 20)}], "outputs": []},
    {"format": 1, "rows": 1, "inputs": [{}] * 10_001, "outputs": []},
])
def test_a_stored_profile_is_untrusted_input(broken: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        Profile.from_dict(json.loads(json.dumps(broken)))


def test_a_profile_round_trips() -> None:
    profile = build_profile(np.arange(20.0).reshape(10, 2), np.arange(10))
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile and quantiles(again.inputs[0], [0.5]) == quantiles(profile.inputs[0], [0.5])


def test_drift_never_parses_a_stored_sketch() -> None:
    """DataSketches' deserializer trusts its bytes (a few changed bytes crash the process): the bins drift uses are
    plain numbers in the profile, checked as such, and a profile recorded without them is refused in one line."""
    from shipyard.adapters.monitoring.bins import baseline_of

    profile = build_profile(np.random.default_rng(0).normal(size=(1000, 2)), np.arange(1000) % 3)
    stored = json.loads(json.dumps(profile.to_dict()))
    for column in (*stored["inputs"], *stored["outputs"]):
        column["sketch"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # not a sketch at all
    bins = baseline_of(Profile.from_dict(stored), "sha256:x")
    assert bins.inputs[0].edges == profile.inputs[0].edges and bins.outputs[0].categories == ("0", "1", "2")
    for column, bad in ((0, {}), (0, {"edges": [1.0, 0.5], "shares": [0.3, 0.3, 0.4]}),
                        (0, {"edges": [0.0], "shares": [0.5, 0.6]}), (0, {"edges": [1e400], "shares": [0.5, 0.5]})):
        broken = json.loads(json.dumps(stored))
        broken["inputs"][column]["bins"] = bad
        with pytest.raises(InvalidInputError, match="bins"):
            Profile.from_dict(broken)
    twice = json.loads(json.dumps(stored))
    twice["inputs"][1]["name"] = twice["inputs"][0]["name"]
    with pytest.raises(InvalidInputError, match="same name"):
        Profile.from_dict(twice)


def test_a_reference_the_model_cannot_answer_on_registers_nothing(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(60, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    monkeypatch.chdir(tmp_path)
    client = shipyard.Client(tmp_path)
    try:
        run = client.start_run("train")
        for bad in (x[:, :2], np.empty((0, 4)), np.full((5, 4), np.nan)):
            with pytest.raises(InvalidInputError, match="reference"):
                client.log_model(run.id, model, "m", examples=x[:3], reference=bad)
        assert client.log_model(run.id, model, "m", examples=x[:3], reference=x).version == 1  # nothing before
    finally:
        client.close()
