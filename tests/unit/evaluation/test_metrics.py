"""Detection metrics (gridalarm.evaluation.metrics) on hand-built runs with known answers."""

from __future__ import annotations

import doctest
import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

from gridalarm.evaluation import metrics
from gridalarm.evaluation.metrics import (
    DetectionMetrics,
    StreamOutcome,
    best_point_f1,
    detection_metrics,
    mean_best_point_f1,
)

H = 3600.0
T0 = 1_700_000_000.0 - 1_700_000_000.0 % H


def outcome(
    n: int,
    flagged: Sequence[int] = (),
    alerts: Sequence[tuple[float, float]] = (),
    labels: Sequence[tuple[float, float]] = (),
    window: float = H,
    stream: str = "schedd:a",
) -> StreamOutcome:
    """``n`` windows from T0; alerts and labels in windows from T0 (so 2.5 is half past 2)."""
    return StreamOutcome(
        stream=stream,
        starts=T0 + np.arange(n) * window,
        window=window,
        scores=np.where(np.isin(np.arange(n), flagged), 80.0, 10.0),
        flagged=np.isin(np.arange(n), flagged),
        alerts=tuple((T0 + a * window, T0 + b * window) for a, b in alerts),
        labels=tuple((T0 + a * window, T0 + b * window) for a, b in labels),
    )


# --- point-wise ---------------------------------------------------------------------------------


def test_point_metrics_of_one_stream() -> None:
    # Labelled windows 2, 3, 4; flagged 1, 3, 4, 7: 2 hits of 4 flags and 3 labelled windows.
    m = detection_metrics([outcome(10, flagged=[1, 3, 4, 7], labels=[(2, 5)])])
    assert (m.windows, m.labelled_windows, m.flagged_windows) == (10, 3, 4)
    assert m.point_precision == 0.5
    assert m.point_recall == pytest.approx(2 / 3)
    assert m.point_f1 == pytest.approx(4 / 7)  # 2 * (1/2) * (2/3) / (1/2 + 2/3)


def test_point_metrics_pool_windows_over_streams() -> None:
    # A second, unlabelled stream adds one false flag: precision 2/5, recall 2/3, F1 1/2.
    runs = [
        outcome(10, flagged=[1, 3, 4, 7], labels=[(2, 5)]),
        outcome(5, flagged=[0], stream="schedd:b"),
    ]
    m = detection_metrics(runs)
    assert m.windows == 15
    assert m.point_precision == pytest.approx(0.4)
    assert m.point_recall == pytest.approx(2 / 3)
    assert m.point_f1 == pytest.approx(0.5)


def test_no_point_adjustment_one_caught_window_is_not_a_caught_incident() -> None:
    m = detection_metrics([outcome(20, flagged=[9], labels=[(5, 15)])])
    assert m.point_precision == 1.0
    assert m.point_recall == pytest.approx(0.1)


def test_a_window_is_labelled_when_it_overlaps_a_label_half_open() -> None:
    # [2.5, 3.2) touches windows 2 and 3; [6, 7) is exactly window 6, not 5 nor 7.
    m = detection_metrics([outcome(10, flagged=[2, 3, 5, 7], labels=[(2.5, 3.2), (6, 7)])])
    assert m.labelled_windows == 3
    assert m.point_precision == 0.5
    assert m.point_recall == pytest.approx(2 / 3)


def test_an_instant_label_labels_the_window_holding_it() -> None:
    m = detection_metrics([outcome(10, flagged=[4], labels=[(4, 4)])])
    assert (m.labelled_windows, m.point_precision, m.point_recall) == (1, 1.0, 1.0)


def test_starts_that_step_back_are_scored_window_by_window() -> None:
    # A clock change replays hour 2: windows 0, 1, 2, 3, 2, 3 (hours). The label [2, 3) covers
    # both copies of hour 2; flags on the first copy and on the second hour 3.
    starts = T0 + np.array([0.0, 1, 2, 3, 2, 3]) * H
    run = StreamOutcome("s", starts, H, np.zeros(6), np.isin(np.arange(6), [2, 5]), (), ())
    labelled = StreamOutcome(
        "s", starts, H, np.zeros(6), run.flagged, (), ((T0 + 2 * H, T0 + 3 * H),)
    )
    m = detection_metrics([labelled])
    assert (m.labelled_windows, m.flagged_windows) == (2, 2)
    assert (m.point_precision, m.point_recall) == (0.5, 0.5)
    assert detection_metrics([run]).labelled_windows == 0


# --- event-wise ---------------------------------------------------------------------------------


def event_runs() -> list[StreamOutcome]:
    return [
        # Incident A (2-4) caught by an alert from 3; incident B (20-22) caught by one from 23,
        # inside the 2-window grace; the alert over 10-12 explains nothing.
        outcome(30, alerts=[(3, 6), (10, 12), (23, 25)], labels=[(2, 4), (20, 22)]),
        # Incident C (5-6) is missed; the alert over 1-2 is a false alarm.
        outcome(24, alerts=[(1, 2)], labels=[(5, 6)], stream="schedd:b"),
    ]


def test_event_metrics_with_grace() -> None:
    m = detection_metrics(event_runs())
    assert (m.events, m.detected, m.alerts, m.false_alarms) == (3, 2, 4, 2)
    assert m.event_recall == pytest.approx(2 / 3)
    assert m.event_precision == 0.5
    assert m.event_f1 == pytest.approx(4 / 7)
    assert [e.time_to_detect_windows for e in m.event_outcomes] == [1.0, 3.0, None]
    assert [e.detected for e in m.event_outcomes] == [True, True, False]
    assert [e.stream for e in m.event_outcomes] == ["schedd:a", "schedd:a", "schedd:b"]
    assert m.event_outcomes[1].start == T0 + 20 * H
    assert m.mean_time_to_detect_windows == 2.0


def test_false_alarms_per_stream_day_and_week() -> None:
    m = detection_metrics(event_runs())
    # (30 + 24) hourly windows = 2.25 stream-days; 2 false alarms.
    assert m.stream_days == 2.25
    assert m.false_alarms_per_stream_day == pytest.approx(2 / 2.25)
    assert m.false_alarms_per_stream_week == pytest.approx(7 * 2 / 2.25)


def test_stream_days_weigh_each_stream_by_its_own_window() -> None:
    runs = [
        outcome(288, alerts=[(10, 11), (100, 101)], window=300.0),  # 1 day of 5-minute windows
        outcome(48, alerts=[(3, 4)], window=H, stream="schedd:b"),  # 2 days of hourly windows
    ]
    m = detection_metrics(runs)
    assert m.stream_days == 3.0
    assert (m.false_alarms, m.false_alarms_per_stream_day) == (3, 1.0)
    assert m.false_alarms_per_stream_week == 7.0


def test_without_grace_a_late_alert_is_a_miss_and_a_false_alarm() -> None:
    m = detection_metrics(event_runs(), grace_windows=0)
    assert (m.detected, m.false_alarms) == (1, 3)
    assert [e.time_to_detect_windows for e in m.event_outcomes] == [1.0, None, None]
    assert m.mean_time_to_detect_windows == 1.0
    assert m.event_precision == 0.25


def test_grace_is_half_open() -> None:
    # Label 2-4: with one window of grace an alert from 5 is late; from 4.9 it is in time.
    late = detection_metrics([outcome(10, alerts=[(5, 7)], labels=[(2, 4)])], grace_windows=1)
    in_time = detection_metrics([outcome(10, alerts=[(4.9, 7)], labels=[(2, 4)])], grace_windows=1)
    assert (late.detected, late.false_alarms) == (0, 1)
    assert (in_time.detected, in_time.false_alarms) == (1, 0)
    assert in_time.mean_time_to_detect_windows == pytest.approx(2.9)


def test_alert_open_before_the_incident_detects_it_at_once() -> None:
    m = detection_metrics([outcome(10, alerts=[(1, 5)], labels=[(3, 4)])])
    assert m.event_outcomes[0].time_to_detect_windows == 0.0
    assert m.false_alarms == 0


def test_time_to_detect_uses_the_earliest_overlapping_alert() -> None:
    # Both alerts overlap the incident 2-8; the earlier (from 4) counts, listed second or not.
    m = detection_metrics([outcome(12, alerts=[(6, 7), (4, 5)], labels=[(2, 8)])])
    assert m.mean_time_to_detect_windows == 2.0
    assert (m.alerts, m.false_alarms, m.event_precision) == (2, 0, 1.0)


def test_one_alert_may_cover_two_events() -> None:
    m = detection_metrics([outcome(12, alerts=[(2, 9)], labels=[(3, 4), (6, 7)])])
    assert (m.events, m.detected, m.alerts) == (2, 2, 1)
    assert (m.event_precision, m.event_recall, m.event_f1) == (1.0, 1.0, 1.0)
    assert m.mean_time_to_detect_windows == 0.0


def test_alert_ending_where_an_incident_starts_does_not_detect_it() -> None:
    m = detection_metrics([outcome(10, alerts=[(1, 3)], labels=[(3, 5)])])
    assert (m.detected, m.false_alarms) == (0, 1)


# --- best point F1 over thresholds -------------------------------------------------------------


def best(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    return best_point_f1(np.array(scores, dtype=float), np.array(labels, dtype=bool))


def test_best_point_f1_finds_the_threshold_that_separates() -> None:
    # 0.9 flags only the positive row: TP 1, FP 0, FN 0.
    assert best([0.1, 0.9, 0.8, 0.2], [0, 1, 0, 0]) == (1.0, 0.9)


def test_best_point_f1_flags_a_tie_of_scores_whole() -> None:
    # 0.7 flags both tied rows (TP 1, FP 1: 2/3); 0.1 flags all three (TP 1, FP 2: 2/4).
    assert best([0.7, 0.7, 0.1], [1, 0, 0]) == (pytest.approx(2 / 3), 0.7)


def test_best_point_f1_tie_of_f1_goes_to_the_highest_threshold() -> None:
    # 0.9: TP 1 of 1 flag, FN 1 -> 2/3. 0.2: TP 2 of 4 flags -> 4/6 = 2/3 too. 0.8, 0.3: less.
    assert best([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 1]) == (pytest.approx(2 / 3), 0.9)


def test_best_point_f1_may_flag_everything() -> None:
    # Every row positive: the lowest score flags them all, F1 1.0; 0.3 alone gives 2/3.
    assert best([0.3, 0.1], [1, 1]) == (1.0, 0.1)


def test_best_point_f1_has_no_point_adjustment() -> None:
    # One incident of four rows, one of them scored high: 0.9 is F1 2/5 and 0.1 flags all six
    # rows (TP 4, FP 2: 8/10); point adjustment would have called 0.9 perfect.
    assert best([0.1, 0.1, 0.9, 0.1, 0.1, 0.1], [0, 1, 1, 1, 1, 0]) == (0.8, 0.1)


@pytest.mark.parametrize(("scores", "labels"), [([0.5, 0.9], [0, 0]), ([], [])])
def test_best_point_f1_without_positive_labels_is_nan(
    scores: list[float], labels: list[int]
) -> None:
    f1, threshold = best(scores, labels)
    assert math.isnan(f1) and math.isnan(threshold)


@pytest.mark.parametrize("seed", range(5))
def test_best_point_f1_agrees_with_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 20, size=200) * 5.0  # many ties, 0..100 like a run's scores
    labels = rng.random(200) < 0.1
    expected: tuple[float, float] = (-1.0, math.nan)
    for threshold in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= threshold
        tp = int((flagged & labels).sum())
        fp = int((flagged & ~labels).sum())
        fn = int((~flagged & labels).sum())
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > expected[0]:
            expected = (f1, threshold)
    f1, threshold = best_point_f1(scores, labels)
    assert f1 == pytest.approx(expected[0]) and threshold == expected[1]


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, 0.2], [1], "same length"),
        ([0.1, math.nan], [1, 0], "finite"),
    ],
)
def test_best_point_f1_rejects_bad_input(
    scores: list[float], labels: list[int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        best(scores, labels)


def test_mean_best_point_f1_leaves_out_streams_without_labels() -> None:
    streams = [
        (np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0, 0], dtype=bool)),  # 1.0
        (np.array([0.7, 0.7, 0.1]), np.array([1, 0, 0], dtype=bool)),  # 2/3
        (np.array([0.9, 0.1]), np.zeros(2, dtype=bool)),  # no labels: left out
    ]
    mean, counted = mean_best_point_f1(streams)
    assert mean == pytest.approx(5 / 6) and counted == 2


def test_mean_best_point_f1_of_no_labelled_stream_is_none() -> None:
    assert mean_best_point_f1([(np.array([0.5]), np.array([False]))]) == (None, 0)
    assert mean_best_point_f1([]) == (None, 0)


# --- 0/0, empty runs, output, validation ------------------------------------------------------


def test_nothing_flagged_labelled_or_alerted_is_all_zero() -> None:
    m = detection_metrics([outcome(24)])
    assert (m.point_precision, m.point_recall, m.point_f1) == (0.0, 0.0, 0.0)
    assert (m.event_precision, m.event_recall, m.event_f1) == (0.0, 0.0, 0.0)
    assert (m.events, m.detected, m.alerts, m.false_alarms) == (0, 0, 0, 0)
    assert m.mean_time_to_detect_windows is None
    assert (m.stream_days, m.false_alarms_per_stream_day) == (1.0, 0.0)


def test_flags_without_labels_have_zero_precision_and_zero_recall() -> None:
    m = detection_metrics([outcome(24, flagged=[3], alerts=[(3, 5)])])
    assert (m.point_precision, m.point_recall, m.point_f1) == (0.0, 0.0, 0.0)
    assert (m.event_precision, m.event_recall) == (0.0, 0.0)
    assert m.false_alarms_per_stream_day == 1.0


def test_missed_events_only() -> None:
    m = detection_metrics([outcome(24, labels=[(3, 5)])])
    assert (m.events, m.detected, m.event_recall, m.event_precision) == (1, 0, 0.0, 0.0)
    assert m.mean_time_to_detect_windows is None


def test_no_streams_at_all() -> None:
    m = detection_metrics([])
    assert (m.windows, m.stream_days, m.false_alarms_per_stream_day) == (0, 0.0, 0.0)
    assert m.mean_time_to_detect_windows is None


def test_to_dict_is_flat_and_json_ready() -> None:
    d = detection_metrics(event_runs()).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {
        "point_precision",
        "point_recall",
        "point_f1",
        "event_precision",
        "event_recall",
        "event_f1",
        "events",
        "detected",
        "mean_time_to_detect_windows",
        "alerts",
        "false_alarms",
        "false_alarms_per_stream_day",
        "false_alarms_per_stream_week",
        "windows",
        "stream_days",
    } <= set(d)
    assert all(not isinstance(v, dict) for v in d.values())
    assert (d["events"], d["detected"], d["alerts"], d["false_alarms"]) == (3, 2, 4, 2)
    assert (d["event_precision"], d["mean_time_to_detect_windows"]) == (0.5, 2.0)
    assert d["time_to_detect_windows"] == [1.0, 3.0, None]
    assert d["windows"] == 54 and d["stream_days"] == 2.25
    assert all(type(v) in (int, float, type(None), list) for v in d.values())


def test_metrics_are_frozen() -> None:
    m = detection_metrics([outcome(3)])
    assert isinstance(m, DetectionMetrics)
    with pytest.raises(AttributeError):
        m.point_f1 = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": np.zeros(3)}, "same length"),
        ({"flagged": np.zeros(5, dtype=bool)}, "same length"),
        ({"starts": T0 + np.array([0.0, H, np.nan, 3 * H])}, "finite"),
        ({"window": 0.0}, "positive"),
        ({"alerts": ((T0 + H, T0),)}, "alert"),
        ({"labels": ((T0 + H, T0),)}, "label"),
    ],
)
def test_bad_outcomes_are_rejected(kwargs: dict, match: str) -> None:
    fields = {
        "stream": "s",
        "starts": T0 + np.arange(4) * H,
        "window": H,
        "scores": np.zeros(4),
        "flagged": np.zeros(4, dtype=bool),
        "alerts": (),
        "labels": (),
    }
    with pytest.raises(ValueError, match=match):
        StreamOutcome(**{**fields, **kwargs})


def test_negative_grace_is_rejected() -> None:
    with pytest.raises(ValueError, match="grace_windows"):
        detection_metrics([outcome(3)], grace_windows=-1)


def test_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(metrics)
    assert tried > 0 and failures == 0
