"""The ``novelty`` detector on small series whose answers are known: warm-up, alarms on novel
patterns and out-of-range values, quiet on repeating ones, one alarm per incident, batching,
state size and the median tracker."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

from gridalarm.models import novelty
from gridalarm.models.novelty import NoveltyConfig, NoveltyDetector
from gridalarm.models.registry import ModelOptions, build_model, open_after


def run(detector: NoveltyDetector, series: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Step a (T, F) series window by window; raw evidence, ready flags, final state."""
    states: list = [None]
    raw, ready = np.zeros(len(series)), np.zeros(len(series), bool)
    for t in range(len(series)):
        out = detector.step(series[t : t + 1], states)
        states = out.states
        raw[t], ready[t] = out.raw[0], out.ready[0]
    return raw, ready, states


def daily(days: int, period: int = 24, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """A square-ish daily cycle (low at night, high by day) with a little noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * period) % period
    level = np.where((hours >= 8) & (hours < 18), 80.0, 20.0)
    return (level + rng.normal(0.0, noise, level.size)).reshape(-1, 1)


def test_module_doctests_pass() -> None:
    failures, tried = doctest.testmod(novelty)
    assert tried > 0 and failures == 0


def test_stride_and_fit_follow_the_warmup() -> None:
    assert (NoveltyConfig(warmup=104).stride, NoveltyConfig(warmup=104).fit_at) == (1, 104)
    assert (NoveltyConfig(warmup=750).stride, NoveltyConfig(warmup=750).fit_at) == (7, 107)
    assert (NoveltyConfig(warmup=605).stride, NoveltyConfig(warmup=605).fit_at) == (5, 120)
    with pytest.raises(ValueError, match="warmup"):
        NoveltyConfig(warmup=10)
    with pytest.raises(ValueError, match="power of two"):
        NoveltyConfig(pattern=6)


def test_nothing_is_scored_during_the_warmup_and_everything_after() -> None:
    detector = NoveltyDetector(NoveltyConfig(warmup=120, target=0))
    raw, ready, _ = run(detector, daily(8))
    assert not ready[:120].any() and (raw[:120] == 0).all()
    assert ready[120:].all()


def test_a_repeating_cycle_raises_no_alarm() -> None:
    detector = NoveltyDetector(NoveltyConfig(warmup=24 * 6, target=0))
    raw, _, _ = run(detector, daily(30))
    assert raw.max() < 0.5


@pytest.mark.parametrize("warmup", [24 * 6, 24 * 6 + 1, 301, 24 * 13 + 5])
def test_the_fit_runs_whether_or_not_a_block_ends_at_the_warmup(warmup: int) -> None:
    """A warm-up that is no multiple of the stride (NAB's probation: 15 % of a file) is fitted
    at its last window like any other: a cycle it has seen raises nothing afterwards."""
    detector = NoveltyDetector(NoveltyConfig(warmup=warmup, target=0))
    raw, ready, states = run(detector, daily(30))
    fitted = detector._decode(states)[0]
    assert fitted["count"] > 0  # categories were learned
    assert ready[warmup:].all()
    assert raw[warmup:].max() < 0.5


def test_a_value_far_outside_the_seen_range_is_an_alarm_once() -> None:
    series = daily(12)
    series[200:206, 0] = 300.0  # a spike wave, far above anything seen
    raw, _, _ = run(NoveltyDetector(NoveltyConfig(warmup=24 * 6, target=0)), series)
    assert raw[200] == 1.0
    assert (raw[201:206] < 1.0).all()  # the range has grown: the same level is not new again
    assert (raw[:200] < 0.5).all()


def test_a_new_level_inside_the_range_is_found() -> None:
    series = daily(14)
    day = 24 * 10
    # The day's high part flattens half way (NAB's art_daily_flatmiddle): within the range.
    series[day + 8 : day + 18, 0] = 50.0 + np.random.default_rng(3).normal(0, 0.5, 10)
    raw, _, _ = run(NoveltyDetector(NoveltyConfig(warmup=24 * 6, target=0)), series)
    assert raw[day + 8 : day + 24].max() >= 0.5  # the new shape alarms ...
    assert raw[24 * 6 : day].max() < 0.5  # ... and nothing before it did
    assert (raw[day + 8 : day + 24] >= 0.5).sum() <= 2  # one incident, one or two alarms


def test_deviation_tier_ranks_values_below_the_alarm_level() -> None:
    """Noise around 100 (spread about 1), a spike in the warm-up that widens the range to 120,
    then 30 windows at 106: inside the range, an alarm at most at the shift, and after it every
    window ranked above every calm one, under the alarm level."""
    rng = np.random.default_rng(4)
    series = rng.normal(100.0, 1.0, (400, 1))
    series[50, 0] = 120.0
    series[300:330, 0] += 6.0
    raw, _, _ = run(NoveltyDetector(NoveltyConfig(warmup=104, target=0)), series)
    calm = raw[110:300]
    assert 0.0 < calm.max() < 0.49
    assert raw[301:330].max() < 0.5
    assert (raw[303:330] > calm.max()).all()


def test_deviation_is_smoothed_so_a_run_outranks_a_lone_value() -> None:
    """The tier's deviation is an average over a pattern's span (8 windows): one value 6
    spreads off moves it about 2/9 of the way, ten such values nearly all of it."""
    rng = np.random.default_rng(4)
    series = rng.normal(100.0, 1.0, (320, 1))
    series[300:310, 0] += 6.0
    detector = NoveltyDetector(NoveltyConfig(warmup=104, target=0))
    _, _, after_one = run(detector, series[:301])
    _, _, after_ten = run(detector, series[:310])
    one = float(detector._decode(after_one)[0]["deviation"])
    ten = float(detector._decode(after_ten)[0]["deviation"])
    assert 0.5 < one < 2.5 and ten > 4.5


def test_batched_streams_step_exactly_as_they_would_alone() -> None:
    detector = NoveltyDetector(NoveltyConfig(warmup=48, target=0))
    series = [daily(6, seed=s) for s in (1, 2, 3)]
    series[1][100:103, 0] = -40.0
    alone = [run(detector, s) for s in series]
    states: list = [None, None, None]
    raw = np.zeros((len(series[0]), 3))
    for t in range(len(series[0])):
        x = np.array([s[t] for s in series])
        out = detector.step(x, states)
        states, raw[t] = out.states, out.raw
    for k in range(3):
        assert np.array_equal(raw[:, k], alone[k][0])
        assert states[k] == alone[k][2][0]
    assert raw[:, 1].max() == 1.0 and raw[:, 0].max() < 1.0


def test_total_of_all_features_when_no_target() -> None:
    counts = np.concatenate([daily(6, seed=5), daily(6, seed=6)], axis=1)
    by_total, _, _ = run(NoveltyDetector(NoveltyConfig(warmup=48)), counts)
    summed, _, _ = run(NoveltyDetector(NoveltyConfig(warmup=48, target=0)),
                       counts.sum(axis=1, keepdims=True))  # fmt: skip
    assert np.array_equal(by_total, summed)


def test_state_fits_in_four_kilobytes_of_json() -> None:
    model = build_model("novelty", ModelOptions(warmup=750, features=("value",), target="value"))
    states: list = [None]
    for t, row in enumerate(daily(40)):
        states = model.score(row.reshape(1, 1), states).states
        if t in (10, 749, 959):
            assert len(json.dumps(states[0])) <= 4096


def test_a_state_of_other_settings_starts_the_stream_afresh() -> None:
    _, _, states = run(NoveltyDetector(NoveltyConfig(warmup=48, target=0)), daily(3))
    other = NoveltyDetector(NoveltyConfig(warmup=96, target=0))
    out = other.step(daily(1)[:1], states)
    assert not out.ready[0]


def test_a_damaged_state_starts_its_stream_afresh_and_spares_the_others() -> None:
    detector = NoveltyDetector(NoveltyConfig(warmup=48, target=0))
    _, _, states = run(detector, daily(3))
    damaged = "!" + states[0][1:]  # right length, not base64
    out = detector.step(np.vstack([daily(1)[:1]] * 2), [damaged, states[0]])
    assert list(out.ready) == [False, True]


def test_median_tracker_matches_a_plain_reference() -> None:
    rng = np.random.default_rng(7)
    levels = np.clip(np.rint(rng.normal(40, 12, 400)), 0, 80).astype(int)
    detector = NoveltyDetector(NoveltyConfig(warmup=104))
    s = detector._fresh(1)
    got = [int(detector._track_median(s, np.array([lv]))[0]) for lv in levels]
    # Reference: ARTime's tracker written as a plain loop over a histogram.
    hist, median, above, below, want = np.zeros(81, int), 0, 0, 0, []
    for count, level in enumerate(levels, start=1):
        hist[level] += 1
        median = level if count == 1 else median
        above, below = above + (median < level), below + (median > level)
        if count // 2 < above:
            below += hist[median]
            median += 1
            while hist[median] == 0:
                median += 1
            above -= hist[median]
        elif count // 2 < below:
            above += hist[median]
            median -= 1
            while hist[median] == 0:
                median -= 1
            below -= hist[median]
        want.append(median)
    assert got == want
    assert abs(want[-1] - np.median(levels)) <= 2  # it does track the median


def test_registry_builds_novelty_for_a_feature_and_rejects_an_unknown_one() -> None:
    model = build_model("novelty", ModelOptions(features=("a", "b"), target="b"))
    assert model.name == "novelty"
    with pytest.raises(ValueError, match="target 'c'"):
        build_model("novelty", ModelOptions(features=("a", "b"), target="c"))


def test_alerts_open_on_novelty_s_single_window_alarms_unless_the_setting_says_otherwise() -> None:
    """One alarm per incident: a worker running novelty opens an alert on the first anomalous
    window; the other detectors keep two, and an explicit setting wins for every detector."""
    from gridalarm.config import Settings
    from gridalarm.stream.pipeline import Pipeline

    assert open_after("novelty") == 1 and open_after("baseline") == 2
    assert open_after("novelty", 3) == 3
    policy = Pipeline.from_settings(Settings(detector="novelty")).scorer.config.policy
    assert policy.open_after == 1
    policy = Pipeline.from_settings(Settings(detector="baseline")).scorer.config.policy
    assert policy.open_after == 2
    policy = Pipeline.from_settings(Settings(detector="novelty", open_after=2)).scorer.config.policy
    assert policy.open_after == 2
