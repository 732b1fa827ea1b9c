"""A stream's ring of recent windows: slots, repeats, ageing out, features, expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridalarm.stream.dashboard.series import WindowRing

W = 60.0
T0 = 1_700_000_000.0 - 1_700_000_000.0 % W


def test_scores_come_back_in_time_order_whatever_the_arrival_order() -> None:
    ring = WindowRing(8)
    for i in (2, 0, 1, 3):
        assert ring.put_score(T0 + i * W, T0 + (i + 1) * W, 10.0 * i, False, [])
    series = ring.series()
    assert list(series.starts) == [T0 + i * W for i in range(4)]
    assert list(series.scores) == [0.0, 10.0, 20.0, 30.0]
    assert series.width == W
    assert ring.latest_scores(2) == [20.0, 30.0]


def test_a_repeated_window_overwrites_its_slot_instead_of_adding_one() -> None:
    ring = WindowRing(8)
    ring.put_score(T0, T0 + W, 10.0, False, [])
    ring.put_score(T0, T0 + W, 12.5, False, [])
    assert list(ring.series().scores) == [12.5]


def test_only_the_newest_capacity_windows_are_kept_and_older_ones_are_refused() -> None:
    ring = WindowRing(4)
    for i in range(10):
        ring.put_score(T0 + i * W, T0 + (i + 1) * W, float(i), False, [])
    assert list(ring.series().scores) == [6.0, 7.0, 8.0, 9.0]
    # Window 5 maps to the slot now holding window 9: it has aged out.
    assert not ring.put_score(T0 + 5 * W, T0 + 6 * W, 99.0, False, [])
    assert list(ring.series().scores) == [6.0, 7.0, 8.0, 9.0]


def test_a_late_window_in_a_stale_slot_does_not_stretch_the_time_axis() -> None:
    ring = WindowRing(4)
    ring.put_score(T0, T0 + W, 1.0, False, [])
    ring.put_score(T0 + 9 * W, T0 + 10 * W, 9.0, False, [])  # slot 1, newer
    # Window 4 lands in slot 0 (holding window 0, older): accepted, yet outside the span of
    # the newest 4 windows (6..9), so the series leaves both old ones out.
    ring.put_score(T0 + 4 * W, T0 + 5 * W, 4.0, False, [])
    assert list(ring.series().starts) == [T0 + 9 * W]


def test_windows_and_scores_of_the_same_window_share_a_slot() -> None:
    ring = WindowRing(8)
    ring.put_window(T0, T0 + W, {"JobHeldEvent": 3, "ExecuteEvent": 10})
    ring.put_score(T0, T0 + W, 70.0, True, [
        {"feature": "JobHeldEvent", "observed": 3, "expected": 0.5, "share": 0.9},
    ])  # fmt: skip
    series = ring.series()
    assert series.features == ("JobHeldEvent", "ExecuteEvent")
    assert series.values.tolist() == [[3.0, 10.0]]
    assert series.expected[0, 0] == pytest.approx(0.5)
    assert math.isnan(series.expected[0, 1])  # the model said nothing about ExecuteEvent
    assert bool(series.anomalous[0]) and series.explain[0][0]["feature"] == "JobHeldEvent"


def test_a_feature_seen_later_gets_a_column_that_is_empty_before_it() -> None:
    ring = WindowRing(8)
    ring.put_window(T0, T0 + W, {"a": 1})
    ring.put_window(T0 + W, T0 + 2 * W, {"a": 2, "b": 5})
    values = ring.series().values
    assert values[:, 0].tolist() == [1.0, 2.0]
    assert math.isnan(values[0, 1]) and values[1, 1] == 5.0


def test_a_normal_score_clears_an_explanation_left_by_a_repeat() -> None:
    ring = WindowRing(8)
    ring.put_score(T0, T0 + W, 80.0, True, [{"feature": "a", "expected": 1.0, "share": 1.0}])
    ring.put_score(T0, T0 + W, 10.0, False, [])
    assert ring.series().explain == ([],)


def test_a_new_window_size_starts_the_ring_over() -> None:
    ring = WindowRing(8)
    ring.put_score(T0, T0 + W, 1.0, False, [])
    ring.put_score(T0 + 3600, T0 + 7200, 2.0, False, [])
    series = ring.series()
    assert series.width == 3600 and list(series.scores) == [2.0]


def test_empty_and_nonsense_windows() -> None:
    ring = WindowRing(3)
    assert ring.latest_scores(24) == []
    assert ring.series().starts.size == 0
    assert not ring.put_score(T0, T0, 1.0, False, [])  # zero width
    assert not ring.put_score(math.nan, T0, 1.0, False, [])
    with pytest.raises(ValueError):
        WindowRing(0)
    assert np.isnan(ring.scores).all()
