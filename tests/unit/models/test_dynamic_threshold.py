"""Telemanom's dynamic error threshold: epsilon search, pruning and the streaming form."""

from __future__ import annotations

import numpy as np
import pytest

from gridalarm.models.dynamic_threshold import (
    DynamicThreshold,
    DynamicThresholdConfig,
    find_epsilon,
    prune_sequences,
)

Z = DynamicThresholdConfig().z_grid


def noise(n: int, seed: int = 0) -> np.ndarray:
    return 1.0 + 0.1 * np.random.default_rng(seed).standard_normal(n)


def test_epsilon_separates_a_compact_incident_from_the_noise_around_it() -> None:
    e = noise(200)
    e[120:126] = 4.0
    eps, mean, sd = find_epsilon(e[None, :], Z)
    assert noise(200).max() < eps[0] < 4.0
    # Exactly the incident is above it.
    assert np.flatnonzero(e >= eps[0]).tolist() == list(range(120, 126))
    assert mean[0] == pytest.approx(e.mean())
    assert sd[0] == pytest.approx(e.std())


def test_the_search_answers_with_the_grid_value_a_hand_count_gives() -> None:
    # mean 1.5 and sd 1.5 (nine ones and one 6): every z from 1.0 to 3.0 cuts out just the
    # 6, removing the same mean and spread with the same one sequence of three windows; ties
    # go to the largest z, 3.0 (epsilon 6.0: the 6 is at it); z 3.5 cuts out nothing.
    e = np.array([[1.0] * 7 + [6.0] + [1.0] * 2])
    eps, mean, sd = find_epsilon(e, np.arange(1.0, 4.01, 0.5), buffer=1)
    assert (mean[0], sd[0]) == pytest.approx((1.5, 1.5))
    assert eps[0] == pytest.approx(6.0)


def test_scattered_exceedances_are_no_answer_and_the_largest_z_is_used() -> None:
    # Ten far-apart spikes are ten sequences: more than max_sequences at every z.
    e = np.ones(200)
    e[::20] = 3.0
    eps, mean, sd = find_epsilon(e[None, :], np.array([1.0, 2.0]), max_sequences=5)
    assert eps[0] == pytest.approx(mean[0] + 2.0 * sd[0])


def test_rows_are_searched_independently_and_nan_marks_a_short_history() -> None:
    a = noise(100, 1)
    a[50:53] = 5.0
    b = np.full(100, np.nan)
    b[40:] = noise(60, 2)
    b[80:82] = 3.0
    eps, _, _ = find_epsilon(np.vstack([a, b]), Z)
    alone_a, _, _ = find_epsilon(a[None, :], Z)
    alone_b, _, _ = find_epsilon(b[None, 40:], Z)
    assert eps.tolist() == pytest.approx([alone_a[0], alone_b[0]])


def test_pruning_keeps_everything_above_the_last_clear_drop() -> None:
    assert prune_sequences([10.0, 9.5, 2.1], 2.0, 0.13) == [True, True, False]
    assert prune_sequences([2.1, 10.0], 2.0, 0.13) == [False, True]
    # No drop of 13 % anywhere: all of them look like the normal errors.
    assert prune_sequences([2.2, 2.1], 2.0, 0.13) == [False, False]
    assert prune_sequences([], 2.0, 0.13) == []


def run(thr: DynamicThreshold, values: np.ndarray) -> np.ndarray:
    states: list = [None]
    out = []
    for value in values:
        scores, states = thr.apply(np.array([value]), states)
        out.append(scores[0])
    return np.array(out)


def test_streaming_threshold_flags_the_incident_and_not_the_noise() -> None:
    values = noise(400, 3)
    values[300:310] = 3.0
    scores = run(DynamicThreshold(DynamicThresholdConfig(span=2)), values)
    assert (scores[:32] == 0).all()  # not judged before min_samples
    assert (scores[32:300] < 50).all()
    assert (scores[301:310] >= 50).all()


def test_a_bump_just_above_epsilon_but_close_to_the_normal_maximum_is_pruned() -> None:
    # Normal errors up to 1.0 with a few at 1.0 exactly; a bump to 1.05 clears epsilon (the
    # spread is small) but stands only 5 % above the largest normal error: pruned (< 50).
    values = np.full(300, 0.5)
    values[::25] = 1.0
    values[280] = 1.05
    cfg = DynamicThresholdConfig(span=1, refit=1)
    scores = run(DynamicThreshold(cfg), values)
    assert scores[280] < 50
    values[280] = 1.5  # 33 % clear of it: kept
    assert run(DynamicThreshold(cfg), values)[280] >= 50


def test_streams_in_one_call_score_as_they_would_alone() -> None:
    a, b = noise(120, 4), noise(120, 5) * 3
    b[100] = 20.0
    thr = DynamicThreshold(DynamicThresholdConfig(span=2))
    states: list = [None, None]
    together = []
    for x, y in zip(a, b, strict=True):
        scores, states = thr.apply(np.array([x, y]), states)
        together.append(scores)
    together_arr = np.array(together)
    assert together_arr[:, 0] == pytest.approx(run(thr, a))
    assert together_arr[:, 1] == pytest.approx(run(thr, b))


def test_withheld_windows_do_not_enter_the_history() -> None:
    thr = DynamicThreshold(DynamicThresholdConfig(span=1))
    states: list = [None]
    for value in noise(40, 6):
        _, states = thr.apply(np.array([value]), states)
    _, kept = thr.apply(np.array([50.0]), states, learn=np.array([False]))
    _, taught = thr.apply(np.array([50.0]), states, learn=np.array([True]))
    assert kept[0][0] == states[0][0]  # the ring is unchanged
    assert taught[0][0] != states[0][0]


def test_state_survives_a_long_run_and_stays_small() -> None:
    cfg = DynamicThresholdConfig(history=64, min_samples=32, refit=4, span=1)
    thr = DynamicThreshold(cfg)
    values = noise(64 * 4 * 3 + 50, 7)
    scores = run(thr, values)
    assert (scores[32:] < 50).all()
    states: list = [None]
    for value in values:
        _, states = thr.apply(np.array([value]), states)
    ring, scalars = states[0]
    assert len(ring) + len(scalars) < 4 * 64  # base64 of 64 float16 and 5 float32
    assert thr.apply(np.array([10.0]), states)[0][0] > 50


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="prune"):
        DynamicThresholdConfig(prune=1.5)
    with pytest.raises(ValueError, match="min_samples"):
        DynamicThresholdConfig(history=16, min_samples=32)
