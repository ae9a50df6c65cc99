"""The drift statistics (core/monitoring/drift.py) and the counting into a reference's bins
(adapters/monitoring/bins.py), checked against scipy on known distributions.

The reference's bins come from its KLL sketch (rank error about 1.65% at k=200, and randomized), so a figure that
goes through a profile is compared within a tolerance stated beside it; the statistics themselves are compared
with scipy to 1e-9.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from shipyard.adapters.monitoring.bins import baseline_of, count_column, count_rows
from shipyard.adapters.monitoring.sketches import build_profile
from shipyard.core.monitoring.drift import (
    DRIFT,
    EPSILON,
    FEW_ROWS,
    JS,
    OK,
    PSI,
    QUALITY,
    Baseline,
    FeatureBins,
    FeatureCounts,
    Thresholds,
    Window,
    assess,
    js_distance,
    psi,
    total,
)
from shipyard.errors import InvalidInputError

REFERENCE_ROWS = 100_000
CURRENT_ROWS = 400_000


def scipy_psi(p: np.ndarray, q: np.ndarray) -> float:
    """PSI as the symmetric KL divergence, from scipy: sum of rel_entr(q, p) + rel_entr(p, q)."""
    return float(np.sum(rel_entr(q, p) + rel_entr(p, q)))


@pytest.fixture(scope="module")
def normal() -> tuple[np.ndarray, Baseline]:
    """A 100k-row reference of three standard normal features, and its baseline."""
    x = np.random.default_rng(1).standard_normal((REFERENCE_ROWS, 3))
    return x, baseline_of(build_profile(x), "sha256:normal")


def test_psi_and_js_are_scipy_s_divergences() -> None:
    rng = np.random.default_rng(2)
    for bins in (2, 10, 21):
        p, q = rng.dirichlet(np.ones(bins)), rng.dirichlet(np.ones(bins))
        p, q = np.maximum(p, 2 * EPSILON), np.maximum(q, 2 * EPSILON)  # above the floor: no flooring in play
        p, q = p / p.sum(), q / q.sum()
        if p.min() <= EPSILON or q.min() <= EPSILON:
            continue
        assert psi(p.tolist(), q.tolist()) == pytest.approx(scipy_psi(p, q), rel=1e-9, abs=1e-12)
        assert js_distance(p.tolist(), q.tolist()) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)
        counts = (q * 1_000_003).tolist()  # counts and shares give the same statistic
        assert js_distance(p.tolist(), counts) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-6)
    same = [0.2, 0.3, 0.5]
    assert psi(same, same) == 0.0 and js_distance(same, [2, 3, 5]) == pytest.approx(0.0, abs=1e-7)


def test_identical_data_gives_about_zero(normal: tuple[np.ndarray, Baseline]) -> None:
    """The reference counted on its own bins, and a fresh sample of the same distribution: PSI and JS near 0
    (PSI under 0.01: the sketch's rank error, far below the 0.1 at which a shift is watched; JS under 0.04)."""
    x, baseline = normal
    for rows in (x, np.random.default_rng(3).standard_normal((CURRENT_ROWS, 3))):
        window = count_rows(baseline, "m", "1", rows, None, 0.0)
        for found in assess(baseline, window):
            assert found.statistic == PSI and found.score is not None
            assert 0 <= found.score < 0.01 and found.verdict == OK
            bins = next(b for b in baseline.inputs if b.name == found.feature)
            assert js_distance(bins.expected, window.inputs[found.feature].bins) < 0.04  # a square root: the
            # sketch's share errors (about 0.005 a bin) alone give about 0.02


def test_a_half_sigma_shift_gives_the_psi_of_the_exact_normal_cdfs(normal: tuple[np.ndarray, Baseline]) -> None:
    """N(0, 1) against N(0.5, 1): the PSI of the counted window equals the PSI computed exactly from
    scipy.stats.norm's CDF on the same edges within 0.03 absolute (12% of 0.24): the reference's shares come from
    its KLL sketch, whose rank error moves the PSI by up to 0.022 (sd 0.006 over 120 trials). With the reference
    sample's own shares on those edges, the same PSI is within 0.012 of the exact one (sampling noise alone), and
    the JS distance within 0.01."""
    x, baseline = normal
    current = np.random.default_rng(4).standard_normal((CURRENT_ROWS, 3))
    current[:, 0] += 0.5
    current[:, 1] -= 0.5
    window = count_rows(baseline, "m", "1", current, None, 0.0)
    found = {f.feature: f for f in assess(baseline, window)}
    for name, shift in (("x0", 0.5), ("x1", -0.5), ("x2", 0.0)):
        bins = next(b for b in baseline.inputs if b.name == name)
        assert len(bins.edges) == 9  # deciles of a continuous feature: ten bins
        cuts = np.array([-np.inf, *bins.edges, np.inf])
        p = np.diff(stats.norm.cdf(cuts))
        q = np.diff(stats.norm.cdf(cuts, loc=shift))
        exact = scipy_psi(p, q)
        score = found[name].score
        assert score is not None and score == pytest.approx(exact, abs=0.03)
        column = np.sort(x[:, int(name[1])])
        own = np.diff(np.searchsorted(column, bins.edges, side="right"), prepend=0, append=len(column))
        assert psi(own.tolist(), window.inputs[name].bins) == pytest.approx(exact, abs=0.012)
        assert js_distance(own.tolist(), window.inputs[name].bins) == pytest.approx(
            jensenshannon(p, q, base=2), abs=0.01)
        assert found[name].verdict == (DRIFT if shift else OK)
    assert found["x0"].score is not None and 0.2 < found["x0"].score < 0.3  # about 0.24, as drift.py says


def test_a_categorical_shift_gives_scipy_s_jensen_shannon_distance() -> None:
    rng = np.random.default_rng(5)
    names = np.array(["red", "green", "blue", "black"])
    before, after = np.array([0.5, 0.3, 0.15, 0.05]), np.array([0.3, 0.3, 0.25, 0.15])
    reference = rng.choice(names, size=REFERENCE_ROWS, p=before).astype(object)
    current = rng.choice(names, size=CURRENT_ROWS, p=after).astype(object)
    current[:1000] = "violet"  # a category the reference never had: the "other" bin, and counted as unseen
    current[1000:1100] = None
    baseline = baseline_of(build_profile(reference.reshape(-1, 1)), "sha256:colors")
    color = baseline.inputs[0]
    assert color.statistic == JS and color.categories == ("red", "green", "blue", "black")
    assert color.expected == pytest.approx([*before, 0.0], abs=0.01)
    window = count_rows(baseline, "m", "1", current.reshape(-1, 1), None, 0.0)
    counts = window.inputs[color.name]
    assert (counts.missing, counts.unseen, counts.bins[-1]) == (100, 1000, 1000)
    [found] = assess(baseline, window)
    expected = jensenshannon([*before, 0.0], [*after, 0.0], base=2)  # the 1000 unseen move it by less than 0.005
    assert found.score == pytest.approx(expected, abs=0.01) and found.verdict == DRIFT
    same = count_rows(baseline, "m", "1", rng.choice(names, size=CURRENT_ROWS, p=before).reshape(-1, 1), None, 0.0)
    assert assess(baseline, same)[0].score == pytest.approx(0.0, abs=0.01)


def test_a_discrete_numeric_feature_gets_a_bin_per_value() -> None:
    """Three values with ties: the deciles merge into one cut per value, and PSI is scipy's on the exact shares."""
    rng = np.random.default_rng(6)
    before, after = np.array([0.45, 0.35, 0.2]), np.array([0.3, 0.4, 0.3])
    reference = rng.choice([0.0, 1.0, 2.0], size=REFERENCE_ROWS, p=before).reshape(-1, 1)
    current = rng.choice([0, 1, 2], size=CURRENT_ROWS, p=after).reshape(-1, 1)  # integers count as numbers
    baseline = baseline_of(build_profile(reference), "sha256:discrete")
    bins = baseline.inputs[0]
    assert bins.edges == (0.0, 1.0, 2.0) and bins.labels == ["<= 0", "(0, 1]", "(1, 2]", "> 2"]
    assert bins.expected == pytest.approx([*before, 0.0], abs=0.02)  # the sketch's rank error; none above 2
    window = count_rows(baseline, "m", "1", current, None, 0.0)
    assert window.inputs["x0"].bins[3] == 0 and sum(window.inputs["x0"].bins) == CURRENT_ROWS
    [found] = assess(baseline, window)
    assert found.score == pytest.approx(scipy_psi(before, after), abs=0.015) and found.verdict == OK
    assert scipy_psi(before, after) < 0.2 < scipy_psi(before, np.array([0.2, 0.3, 0.5]))
    moved = count_rows(baseline, "m", "1", rng.choice([0, 1, 2], size=10_000, p=[0.2, 0.3, 0.5]).reshape(-1, 1),
                       None, 0.0)
    assert assess(baseline, moved)[0].verdict == DRIFT


def test_empty_bins_stay_finite() -> None:
    """A bin empty on either side counts with EPSILON: large but finite; JS of disjoint bins is exactly 1."""
    p, q = [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]
    expected = 2 * (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi(p, q) == pytest.approx(expected) and math.isfinite(psi(p, q))
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    bins = FeatureBins("f", "numeric", (0.5, 0.5), edges=(0.0,), low=-1.0, high=1.0)
    window = Window("m", "1", "d", 0, 1, 200, {"f": FeatureCounts([200, 0])})
    [found] = assess(Baseline("d", 100, (bins,)), window)
    assert found.score is not None and math.isfinite(found.score) and found.verdict == DRIFT


def reference_counts(bins: FeatureBins, values: np.ndarray) -> FeatureCounts:
    """What counting must give, written plainly: NaN missing, each other value in (edges[i-1], edges[i]]."""
    present = values[~np.isnan(values)]
    placed = [int(np.count_nonzero(present <= bins.edges[0]))]
    for a, b in itertools.pairwise(bins.edges):
        placed.append(int(np.count_nonzero((present > a) & (present <= b))))
    placed.append(int(np.count_nonzero(present > bins.edges[-1])))
    assert bins.low is not None and bins.high is not None
    outside = int(np.count_nonzero((present < bins.low) | (present > bins.high)))
    return FeatureCounts(placed, int(values.size - present.size), outside)


def test_counting_matches_a_plain_count_whatever_the_input(normal: tuple[np.ndarray, Baseline]) -> None:
    """Values on the edges and range ends, NaN, infinities, integers; a 2-D array (in blocks), a list of rows,
    one column at a time and one row at a time all count the same."""
    _, baseline = normal
    rng = np.random.default_rng(7)
    current = rng.standard_normal((70_000, 3)) * 1.5
    for i, bins in enumerate(baseline.inputs):
        assert bins.low is not None and bins.high is not None
        current[:9, i] = bins.edges
        current[9:12, i] = [bins.low, bins.high, np.nextafter(bins.low, -np.inf)]
    current[12:20, 0] = np.nan
    current[20:22, 1] = [np.inf, -np.inf]
    window = count_rows(baseline, "m", "1", current, None, 0.0)
    assert window.rows == 70_000
    for i, bins in enumerate(baseline.inputs):
        expected = reference_counts(bins, current[:, i])
        assert window.inputs[bins.name] == expected
        assert count_column(bins, current[:, i]) == expected
    assert window.inputs["x0"].missing == 8 and window.inputs["x1"].out_of_range >= 2
    few = current[:300]
    assert count_rows(baseline, "m", "1", few.tolist(), None, 0.0).to_dict() == \
        count_rows(baseline, "m", "1", few, None, 0.0).to_dict()
    one_by_one = total(count_rows(baseline, "m", "1", few[i:i + 1], None, float(i)) for i in range(300))
    assert one_by_one is not None and one_by_one.inputs == count_rows(baseline, "m", "1", few, None, 0.0).inputs
    integers = np.rint(current[22:, :]).astype(np.int64)
    assert count_rows(baseline, "m", "1", integers, None, 0.0).inputs == \
        count_rows(baseline, "m", "1", integers.astype(np.float64), None, 0.0).inputs
    # a category among numbers: counted by position, the numeric ones still in blocks
    mixed = Baseline("d", 1, (FeatureBins("c", "categorical", (0.5, 0.5), categories=("1.0",),
                                          known=frozenset({"1.0"})), *baseline.inputs[:2]))
    rows = np.column_stack([np.ones(1000), current[:1000, :2]])
    counted = count_rows(mixed, "m", "1", rows, None, 0.0)
    assert counted.inputs["c"] == FeatureCounts([1000, 0])
    assert counted.inputs["x0"] == reference_counts(baseline.inputs[0], rows[:, 1])
    assert counted.inputs["x1"] == reference_counts(baseline.inputs[1], rows[:, 2])


def test_windows_add_up_to_counting_everything_at_once(normal: tuple[np.ndarray, Baseline]) -> None:
    _, baseline = normal
    rows = np.random.default_rng(8).standard_normal((50_000, 3)) + 0.2
    rows[::97, 2] = np.nan
    predictions = (rows[:, 0] > 0).astype(np.int64)
    cuts = [0, 1, 17, 5_000, 5_001, 31_000, 50_000]
    parts = [count_rows(baseline, "m", "1", rows[a:b], predictions[a:b], float(a), float(b))
             for a, b in itertools.pairwise(cuts)]
    whole = count_rows(baseline, "m", "1", rows, predictions, 0.0, 50_000.0)
    summed = total(parts)
    assert summed is not None and summed.to_dict() == whole.to_dict()
    again = Window.empty("m", "1", baseline, 0.0)
    for part in parts:
        again.add(Window.from_dict(part.to_dict(), baseline))  # through the log's form, as a reader adds them
    assert again.to_dict() == whole.to_dict()
    assert [f.to_dict() for f in assess(baseline, again)] == [f.to_dict() for f in assess(baseline, whole)]


def test_verdicts_at_the_thresholds() -> None:
    numbers = FeatureBins("n", "numeric", (0.25, 0.25, 0.25, 0.25), edges=(1.0, 2.0, 3.0), low=0.0, high=4.0,
                          missing_rate=0.02)
    colors = FeatureBins("c", "categorical", (0.5, 0.5), categories=("red",), known=frozenset({"red"}))
    baseline = Baseline("d", 1000, (numbers, colors))
    shifted, recolored = [13_000, 12_000, 12_000, 13_000], [15_000, 10_000]  # rows enough that
    # sampling noise (about 3 / 50,000 PSI) is far below these scores
    psi_value, js_value = psi(numbers.expected, shifted), js_distance(colors.expected, recolored)

    def verdicts(thresholds: Thresholds, n: FeatureCounts | None = None, c: FeatureCounts | None = None,
                 rows: int = 50_000) -> list[str]:
        window = Window("m", "1", "d", 0, 60, rows, {"n": n or FeatureCounts(list(shifted)),
                                                      "c": c or FeatureCounts(list(recolored))})
        return [f.verdict for f in assess(baseline, window, thresholds)]

    # a score above the threshold drifts; one equal to it does not
    assert verdicts(Thresholds(psi=psi_value * 0.999, js=js_value * 0.999)) == [DRIFT, DRIFT]
    assert verdicts(Thresholds(psi=psi_value, js=js_value)) == [OK, OK]
    # below min_rows the statistic is noise: "few rows", never drift, whatever the score
    assert verdicts(Thresholds(psi=psi_value * 0.999, min_rows=50_001)) == [FEW_ROWS, FEW_ROWS]
    assert verdicts(Thresholds(psi=psi_value * 0.999, min_rows=50_000)) == [DRIFT, FEW_ROWS]  # rows per feature:
    assert verdicts(Thresholds(psi=psi_value * 0.999, min_rows=25_000)) == [DRIFT, OK]  # the colors have 25,000
    # quality: a missing share beyond the reference's own by more than `quality`, or out-of-range, or unseen
    calm = Thresholds(psi=1.0, js=1.0, quality=0.05)
    assert verdicts(calm, n=FeatureCounts(list(shifted), missing=3600)) == [OK, OK]  # 3600/53600 - 0.02 = 0.047
    assert verdicts(calm, n=FeatureCounts(list(shifted), missing=4000)) == [QUALITY, OK]  # 4000/54000 - 0.02 = 0.054
    assert verdicts(calm, n=FeatureCounts(list(shifted), out_of_range=2600)) == [QUALITY, OK]  # 2600/50000 = 0.052
    assert verdicts(calm, n=FeatureCounts(list(shifted), out_of_range=2500)) == [OK, OK]  # 0.05, not above
    assert verdicts(calm, c=FeatureCounts(list(recolored), unseen=1300)) == [OK, QUALITY]
    # drift is told first when both hold; a window without a feature's values is "few rows", its score None
    assert verdicts(Thresholds(psi=0.001), n=FeatureCounts(list(shifted), missing=10_000)) == [DRIFT, OK]
    # a score within sampling noise is no drift: PSI 0.004 on 500 rows (noise about 3 / 500) is not, whatever the
    # threshold; on 50,000 rows it is
    small = [130, 120, 120, 130]
    assert psi(numbers.expected, small) == pytest.approx(psi_value)
    assert verdicts(Thresholds(psi=psi_value * 0.999), n=FeatureCounts(small), rows=500)[0] == OK
    empty = assess(baseline, Window("m", "1", "d", 0, 60, 0, {}))
    assert [(f.verdict, f.score, f.drifted) for f in empty] == [(FEW_ROWS, None, False)] * 2


def test_a_window_with_a_number_no_float_holds_is_refused_not_a_crash() -> None:
    bins = FeatureBins("n", "numeric", (0.5, 0.5), edges=(0.0,))
    baseline = Baseline("d", 10, (bins,))
    good = Window("m", "1", "d", 0, 60, 2, {"n": FeatureCounts([1, 1])}).to_dict()
    assert Window.from_dict(json.loads(json.dumps(good)), baseline).rows == 2
    for key in ("start", "end"):
        with pytest.raises(InvalidInputError, match="times"):
            Window.from_dict(json.loads(json.dumps({**good, key: 10 ** 400})), baseline)
