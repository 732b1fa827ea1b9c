"""QuantileThreshold (per-stream empirical alarm level) and ProbabilityThreshold, by hand."""

from __future__ import annotations

import base64
from dataclasses import FrozenInstanceError
from typing import Any

import numpy as np
import pytest

from gridalarm.models.thresholds import (
    ProbabilityThreshold,
    QuantileThreshold,
    QuantileThresholdConfig,
)

# QuantileThresholdConfig's documented defaults (models/thresholds.py): the one place to
# change when they are retuned. With the default priors (median 1, q95 2) the alarm level of a
# young stream is 2 + margin * (2 - 1).
DEFAULT_MARGIN = 2.0
PRIOR_ALARM = 2.0 + DEFAULT_MARGIN * 1.0  # 4.0


def decode(state: str) -> tuple[np.ndarray, float]:
    """(ring, stored count) of a state, read without the module's own unpacking."""
    values = np.frombuffer(base64.b64decode(state), dtype="<f2").astype(np.float64)
    return values[:-1], float(values[-1])


def expected_score(raw: float, median: float, alarm: float) -> float:
    excess = max(raw - median, 0.0) / max(alarm - median, 1e-9)
    return 100.0 * excess / (1.0 + excess)


class Reference:
    """The class docstring's rules for one stream, on a plain list of the values kept.

    A value is kept iff (it scores below 50 or the stream has fewer than ``min_samples``
    values) and the detector does not withhold it (``learn`` False); it is kept clipped at the
    alarm level it was judged by, as float16.
    """

    def __init__(self, cfg: QuantileThresholdConfig) -> None:
        self.cfg = cfg
        self.kept: list[float] = []

    def score(self, raw: float, learn: bool = True) -> float:
        cfg = self.cfg
        raw = max(raw, 0.0)
        young = len(self.kept) < cfg.min_samples
        if young:
            median, high = cfg.prior_median, cfg.prior_high
        else:
            median, high = np.quantile(self.kept[-cfg.size :], [0.5, cfg.quantile])
        alarm = max(high + cfg.margin * max(high - median, 0.0), cfg.min_alarm)
        score = expected_score(raw, median, alarm)
        if (score < 50.0 or young) and learn:
            self.kept.append(float(np.float16(min(raw, alarm))))
        return score


def feed(
    thr: QuantileThreshold,
    values: list[float],
    state: Any = None,
    learn: list[bool] | None = None,
) -> tuple[list[float], Any]:
    scores = []
    for t, v in enumerate(values):
        if learn is None:
            got, (state,) = thr.apply(np.array([v]), [state])
        else:
            got, (state,) = thr.apply(np.array([v]), [state], np.array([learn[t]]))
        scores.append(float(got[0]))
    return scores, state


def stored_count(kept: int, size: int) -> float:
    """The count a state stores after ``kept`` values: exact below a full ring, then the slot."""
    return float(kept if kept < size else size + kept % size)


def test_default_priors_put_the_alarm_at_prior_high_plus_margin_spreads() -> None:
    # alarm = prior_high + margin * (prior_high - prior_median) = 2 + 2 * 1 = 4 (> min_alarm)
    thr = QuantileThreshold(QuantileThresholdConfig())
    a = PRIOR_ALARM
    scores, _ = thr.apply(np.array([0.0, 1.0, 2.0, a, 6.0, -4.0]), [None] * 6)
    # excess (raw - 1) / (a - 1), score 100 e / (1 + e): for a = 4, 2 -> 1/3 -> 25 and
    # 6 -> 5/3 -> 62.5
    e2, e6 = 1.0 / (a - 1.0), 5.0 / (a - 1.0)
    expected = [0.0, 0.0, 100 * e2 / (1 + e2), 50.0, 100 * e6 / (1 + e6), 0.0]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("min_alarm", "expected"),
    [
        (3.0, 100.0 / 3.0),  # alarm 1.7 floored at 3: excess (2 - 1) / (3 - 1) = 0.5
        (0.0, 100.0 / 1.7),  # alarm 1.2 + 2.5 * 0.2 = 1.7: excess 1 / 0.7 -> 100 / 1.7
    ],
)
def test_prior_score_by_hand(min_alarm: float, expected: float) -> None:
    cfg = QuantileThresholdConfig(prior_median=1.0, prior_high=1.2, min_alarm=min_alarm, margin=2.5)
    scores, _ = QuantileThreshold(cfg).apply(np.array([2.0]), [None])
    assert scores[0] == pytest.approx(expected, abs=1e-9)


def test_fewer_than_min_samples_are_judged_by_the_priors() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig())  # min_samples 32
    _, state = feed(thr, [0.0] * 31)
    assert decode(state)[1] == 31.0
    # 31 own values: still the prior (median 1, alarm 4): excess (2 - 1) / 3 -> 25
    (first,), state = feed(thr, [2.0], state)
    assert first == pytest.approx(expected_score(2.0, 1.0, PRIOR_ALARM), abs=1e-12)
    # 32 own values (31 zeros and that 2.0): median 0, q95 0 -> alarm floored at 3
    (second,), _ = feed(thr, [2.0], state)
    assert second == pytest.approx(40.0, abs=1e-12)


def test_enough_values_use_their_own_median_and_quantile() -> None:
    cfg = QuantileThresholdConfig(
        size=64, quantile=0.9, margin=1.0, min_samples=16, prior_median=100.0,
        prior_high=200.0, min_alarm=0.0,
    )  # fmt: skip
    thr = QuantileThreshold(cfg)
    rng = np.random.default_rng(0)
    values = rng.integers(0, 40, size=40) / 8.0  # exact in float16
    _, state = feed(thr, values.tolist())
    ring, count = decode(state)
    assert count == 40.0
    np.testing.assert_array_equal(ring[:40], values)
    assert np.isnan(ring[40:]).all()

    median, high = np.quantile(values, [0.5, 0.9])
    alarm = high + (high - median)
    probes = np.array([0.0, median, (median + alarm) / 2, alarm, 2 * alarm, 50.0])
    scores, _ = thr.apply(probes, [state] * len(probes))
    expected = [expected_score(p, median, alarm) for p in probes]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)
    assert scores[3] == pytest.approx(50.0, abs=1e-9)


def test_levels_by_hand() -> None:
    cfg = QuantileThresholdConfig(size=8, min_samples=4, margin=2.5)
    buffers = np.full((2, 8), np.nan)
    buffers[0, :4] = [1.0, 2.0, 3.0, 4.0]
    buffers[1, :3] = [9.0, 9.0, 9.0]
    median, alarm = QuantileThreshold(cfg).levels(buffers, np.array([4, 3]))
    # row 0: median 2.5, q95 = 1 + 0.95 * 3 = 3.85, alarm 3.85 + 2.5 * 1.35 = 7.225
    # row 1: 3 < min_samples values: priors 1 and 2, alarm 2 + 2.5 * 1 = 4.5
    np.testing.assert_allclose(median, [2.5, 1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(alarm, [7.225, 4.5], rtol=0, atol=1e-12)


@pytest.mark.parametrize("withhold", [0.0, 0.2])
def test_a_long_mixed_stream_matches_the_reference_rules(withhold: float) -> None:
    cfg = QuantileThresholdConfig(size=32, min_samples=8, margin=1.0, min_alarm=0.5)
    thr = QuantileThreshold(cfg)
    ref = Reference(cfg)
    rng = np.random.default_rng(1)
    values = rng.integers(0, 24, size=400) / 16.0
    values[rng.random(400) < 0.05] = 40.0  # incidents
    values[:3] = 40.0  # incidents while still judged by the prior: kept, clipped
    learn = (rng.random(400) >= withhold).tolist()
    learn[:3] = [True] * 3
    scores, state = feed(thr, values.tolist(), learn=None if withhold == 0.0 else learn)
    expected = [ref.score(v, ok or withhold == 0.0) for v, ok in zip(values, learn, strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert 10 < sum(s >= 50 for s in expected) < 60  # both branches were exercised
    kept = len(ref.kept)
    # anomalous values once the stream has its own levels, and withheld ones, are not kept
    assert kept < 400 - 10
    ring, count = decode(state)
    assert count == stored_count(kept, cfg.size)
    for t in range(kept - cfg.size, kept):
        assert ring[t % cfg.size] == ref.kept[t]
    # the reference itself, by hand: the prior alarm is 2 + 1.0 * (2 - 1) = 3
    assert ref.kept[:3] == [3.0, 3.0, 3.0]
    assert ring.max() < 40.0  # incidents are kept only up to the alarm level


def test_an_anomalous_value_is_kept_clipped_at_the_alarm_level_while_young() -> None:
    cfg = QuantileThresholdConfig(margin=2.5)  # prior alarm 2 + 2.5 * 1 = 4.5
    scores, states = QuantileThreshold(cfg).apply(np.array([4.5, 1000.0, 2.0]), [None] * 3)
    assert scores[0] == 50.0
    assert scores[1] == pytest.approx(100 * (999 / 3.5) / (1 + 999 / 3.5), abs=1e-9)
    for state, kept in zip(states, [4.5, 4.5, 2.0], strict=True):
        ring, count = decode(state)
        assert count == 1.0 and ring[0] == kept and np.isnan(ring[1:]).all()


def test_once_a_stream_has_its_own_levels_an_anomalous_value_is_not_kept() -> None:
    cfg = QuantileThresholdConfig(size=16, min_samples=4, margin=2.5)
    thr = QuantileThreshold(cfg)
    _, state = feed(thr, [0.0, 0.5, 1.0, 1.5])  # 4 own values: median 0.75
    # q95 of [0, 0.5, 1, 1.5] = 1 + 0.85 * 0.5 = 1.425; alarm 1.425 + 2.5 * 0.675 = 3.1125
    alarm = 1.425 + 2.5 * 0.675
    scores, states = thr.apply(np.array([alarm, 3.0, 9.0]), [state] * 3)
    np.testing.assert_allclose(
        scores, [50.0, expected_score(3.0, 0.75, alarm), expected_score(9.0, 0.75, alarm)],
        rtol=0, atol=1e-9,
    )  # fmt: skip
    assert scores[1] < 50.0 < scores[2]
    ring_before, _ = decode(state)
    # at the alarm level (50) and above: the state is returned unchanged
    for k in (0, 2):
        ring, count = decode(states[k])
        assert count == 4.0
        np.testing.assert_array_equal(ring, ring_before)
    # just below it: kept as it is (below the alarm level, no clipping)
    ring, count = decode(states[1])
    assert count == 5.0 and ring[4] == 3.0 and np.isnan(ring[5:]).all()


def test_a_run_of_anomalies_does_not_raise_the_bar() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig())
    normal_values = [k / 16.0 for k in range(32)] * 4  # fills the ring of 128
    normal, state = feed(thr, normal_values)
    assert max(normal) < 50.0
    ring_before, count_before = decode(state)
    assert count_before == 128.0  # a full ring: the next value would go to slot 0
    # own values: median 15.5 / 16 = 0.96875; q95 at rank 0.95 * 127 = 120.65 of the sorted
    # values (each k four times): k = 30, 1.875; alarm 1.875 + margin * 0.90625 (3.6875 for
    # the margin 2, above min_alarm 3)
    alarm = 1.875 + DEFAULT_MARGIN * 0.90625
    assert alarm > 3.0
    excess = (10.0 - 0.96875) / (alarm - 0.96875)
    run, state = feed(thr, [10.0] * 30, state)
    assert run[0] == pytest.approx(100 * excess / (1 + excess), abs=1e-9)
    assert min(run) >= 50.0  # a sustained incident keeps alarming
    assert run == pytest.approx([run[0]] * 30, abs=1e-9)
    ring, count = decode(state)  # and none of it reached the ring
    assert count == 128.0
    np.testing.assert_array_equal(ring, ring_before)
    # the first normal window after the incident is kept again, in slot 0
    (after,), state = feed(thr, [0.5], state)
    assert after == 0.0
    ring, count = decode(state)
    assert count == 129.0 and ring[0] == 0.5


def test_learn_false_withholds_the_value_but_not_the_score() -> None:
    cfg = QuantileThresholdConfig(size=8, min_samples=4, margin=2.5)
    thr = QuantileThreshold(cfg)
    _, own = feed(thr, [0.0, 0.5, 1.0, 1.5])  # median 0.75, alarm 3.1125 (see above)
    alarm = 1.425 + 2.5 * 0.675
    raw = np.array([1.0, 1.0, 2.0, 2.0, 7.0, 1.0])
    states = [own, own, None, None, None, own]
    learn = np.array([True, False, True, False, True, False])
    scores, new = thr.apply(raw, states, learn)
    expected = [
        expected_score(1.0, 0.75, alarm),
        expected_score(1.0, 0.75, alarm),
        100.0 / 4.5,  # the priors: excess (2 - 1) / 3.5
        100.0 / 4.5,
        100.0 * (6.0 / 3.5) / (1.0 + 6.0 / 3.5),
        expected_score(1.0, 0.75, alarm),
    ]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)
    # learn does not change the scores
    unmasked, _ = thr.apply(raw, states)
    np.testing.assert_array_equal(scores, unmasked)

    ring_own, _ = decode(own)
    rows = [decode(state) for state in new]
    assert rows[0][1] == 5.0 and rows[0][0][4] == 1.0  # learned
    for k in (1, 5):  # withheld: the state is the one it was
        assert rows[k][1] == 4.0
        np.testing.assert_array_equal(rows[k][0], ring_own)
    assert rows[2][1] == 1.0 and rows[2][0][0] == 2.0  # a young stream learns ...
    assert rows[3][1] == 0.0 and np.isnan(rows[3][0]).all()  # ... unless withheld
    assert rows[4][1] == 1.0 and rows[4][0][0] == 4.5  # young, anomalous: kept clipped


def test_learn_none_and_all_true_are_the_same() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig(size=8, min_samples=4, margin=2.5))
    _, own = feed(thr, [0.0, 0.5, 1.0, 1.5])
    raw = np.array([0.2, 9.0, 1.0])
    states = [own, own, None]
    a = thr.apply(raw, states)
    b = thr.apply(raw, states, np.ones(3, dtype=bool))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert [decode(s)[1] for s in a[1]] == [5.0, 4.0, 1.0]  # the anomalous 9.0 is not kept


def test_a_withheld_run_of_silence_does_not_raise_the_bar_of_a_young_stream() -> None:
    # While young, every value is kept (clipped); withheld ones are not, so a building-up
    # evidence cannot fill a young ring with alarm-level values.
    cfg = QuantileThresholdConfig(size=8, min_samples=4, margin=2.5)
    thr = QuantileThreshold(cfg)
    values = [0.5, 6.0, 7.0, 8.0, 0.25, 0.75, 1.0, 5.0]
    learn = [True, False, False, False, True, True, True, True]
    scores, state = feed(thr, values, learn=learn)
    ref = Reference(cfg)
    expected = [ref.score(v, ok) for v, ok in zip(values, learn, strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)
    ring, count = decode(state)
    # kept: 0.5, 0.25, 0.75, 1.0 (young, judged by the priors); then own levels: median
    # 0.625, q95 0.75 + 0.85 * 0.25 = 0.9625, alarm max(0.9625 + 2.5 * 0.3375, 3) = 3,
    # so 5.0 scores above 50 and is not kept
    assert count == 4.0
    np.testing.assert_array_equal(ring[:4], [0.5, 0.25, 0.75, 1.0])
    assert scores[-1] == pytest.approx(expected_score(5.0, 0.625, 3.0), abs=1e-9)
    assert scores[-1] > 50.0


def test_ring_wraps_and_the_count_stays_exact_past_2048_steps() -> None:
    cfg = QuantileThresholdConfig()  # size 128
    thr = QuantileThreshold(cfg)
    values = [(t % 50) / 64.0 for t in range(3000)]  # exact in float16, all below the alarm
    state: Any = None
    lengths = set()
    for v in values:
        (score,), (state,) = thr.apply(np.array([v]), [state])
        assert score < 50.0
        lengths.add(len(state))
    assert lengths == {344}  # 129 float16 = 258 bytes = 86 base64 groups, at every step

    ring, count = decode(state)
    assert count == 128 + 3000 % 128  # 184: the next value goes to slot 56
    expected_ring = np.empty(128)
    for t in range(3000 - 128, 3000):
        expected_ring[t % 128] = values[t]
    np.testing.assert_array_equal(ring, expected_ring)

    median, high = np.quantile(values[-128:], [0.5, 0.95])
    alarm = max(high + DEFAULT_MARGIN * (high - median), 3.0)
    (score,), (state,) = thr.apply(np.array([0.7]), [state])
    assert score == pytest.approx(expected_score(0.7, median, alarm), abs=1e-9)
    ring, count = decode(state)
    assert count == 185.0 and ring[56] == np.float16(0.7)


@pytest.mark.parametrize(("size", "chars"), [(8, 24), (31, 88), (128, 344)])
def test_state_length_is_constant(size: int, chars: int) -> None:
    thr = QuantileThreshold(QuantileThresholdConfig(size=size, min_samples=min(size, 32)))
    rng = np.random.default_rng(2)
    state: Any = None
    for v in rng.exponential(1.0, size=3 * size):
        _, (state,) = thr.apply(np.array([v]), [state])
        assert len(state) == chars


def test_scores_are_monotone_in_the_evidence_and_below_100() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig())
    rng = np.random.default_rng(3)
    _, state = feed(thr, (rng.integers(0, 32, size=100) / 16.0).tolist())
    raw = np.concatenate([np.linspace(-1.0, 50.0, 2001), [1e3, 1e6, 1e9]])
    scores, _ = thr.apply(raw, [state] * len(raw))
    assert np.all(np.diff(scores) >= 0.0)
    ring, _ = decode(state)
    median = float(np.nanmedian(ring))  # 100 values in a ring of 128
    above = raw > median
    assert np.all(np.diff(scores[above]) > 0.0)
    assert np.all(scores[~above] == 0.0)
    assert scores.min() >= 0.0 and scores.max() < 100.0


def test_a_flat_stream_is_floored_by_min_alarm() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig())  # min_alarm 3
    _, state = feed(thr, [0.0] * 40)
    # own median and q95 are both 0: the alarm level is min_alarm, not 0
    scores, _ = thr.apply(np.array([0.0, 0.01, 0.5, 3.0]), [state] * 4)
    expected = [0.0, 100 * (0.01 / 3) / (1 + 0.01 / 3), 100 / 7, 50.0]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)


def test_a_state_of_another_size_starts_over() -> None:
    _, small = feed(QuantileThreshold(QuantileThresholdConfig(size=8)), [0.0] * 40)
    big = QuantileThreshold(QuantileThresholdConfig(size=16))
    (score,), (state,) = big.apply(np.array([2.0]), [small])
    assert score == pytest.approx(expected_score(2.0, 1.0, PRIOR_ALARM), abs=1e-12)  # priors
    ring, count = decode(state)
    assert len(ring) == 16 and count == 1.0 and ring[0] == 2.0


def test_streams_in_a_batch_do_not_mix() -> None:
    thr = QuantileThreshold(QuantileThresholdConfig(size=16, min_samples=4))
    _, zeros = feed(thr, [0.0] * 10)
    scores, states = thr.apply(np.array([2.0, 2.0]), [zeros, None])
    assert scores[0] == pytest.approx(40.0, abs=1e-12)  # own: median 0, alarm 3
    assert scores[1] == pytest.approx(expected_score(2.0, 1.0, PRIOR_ALARM), abs=1e-12)
    assert decode(states[0])[1] == 11.0 and decode(states[1])[1] == 1.0


def test_config_is_frozen_with_documented_defaults() -> None:
    cfg = QuantileThresholdConfig()
    assert (cfg.size, cfg.quantile, cfg.margin, cfg.min_samples) == (128, 0.95, DEFAULT_MARGIN, 32)
    assert (cfg.prior_median, cfg.prior_high, cfg.min_alarm) == (1.0, 2.0, 3.0)
    with pytest.raises(FrozenInstanceError):
        cfg.size = 3  # type: ignore[misc]


def test_probability_threshold_is_100_p_clipped() -> None:
    states: list[Any] = [None, {"a": 1}, [2], "x", None, 7]
    scores, new = ProbabilityThreshold().apply(np.array([-0.5, 0.0, 0.25, 0.5, 1.0, 3.0]), states)
    assert scores.tolist() == [0.0, 0.0, 25.0, 50.0, 100.0, 100.0]
    assert new == states and new is not states
