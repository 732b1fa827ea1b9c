"""Feedback labels as ground truth (gridalarm.evaluation.feedback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gridalarm.evaluation.datasets import LabelledSet, LabelledStream
from gridalarm.evaluation.evaluate import EvaluationConfig, evaluate, training_data
from gridalarm.evaluation.feedback import (
    Feedback,
    feedback,
    merged,
    with_feedback,
    without_labelled,
)
from gridalarm.evaluation.runner import RunConfig
from gridalarm.labels import Incident, label_message
from gridalarm.messages import alert_id
from gridalarm.models.registry import ModelOptions
from gridalarm.stream.alerting import AlertPolicy

W = 60.0
T0 = 1_767_600_000.0
FEATURES = ("a", "b")
MODEL = "baseline@2"


def stream(
    name: str, n: int = 200, spike: tuple[int, int] | None = None, seed: int = 0
) -> LabelledStream:
    rng = np.random.default_rng(seed)
    values = rng.poisson(30.0, size=(n, len(FEATURES))).astype(float)
    if spike:
        values[spike[0] : spike[1], 0] = 600.0
    return LabelledStream(name, T0 + W * np.arange(n), values, ())


def labelled(aid: str, verdict: str, **fields: Any) -> dict[str, Any]:
    return label_message(aid, verdict, "test", at=T0, **fields)


def test_spans_come_from_the_alerts_topic_else_from_the_label() -> None:
    a, b, c = (alert_id(s, T0, MODEL) for s in ("s0", "s1", "s2"))
    labels = {
        a: labelled(a, "confirmed", stream="s0", since=T0, end=T0 + W),  # stale end
        b: labelled(b, "false-positive", stream="s1", since=T0 + 60 * W, end=T0 + 63 * W),
        c: labelled(c, "confirmed"),  # no span anywhere
    }
    known = {a: Incident(a, "s0", T0 + 100 * W, T0 + 104 * W, MODEL)}
    result = feedback(labels, known)
    assert result.confirmed == {"s0": ((T0 + 100 * W, T0 + 104 * W),)}
    assert result.false_positive == {"s1": ((T0 + 60 * W, T0 + 63 * W),)}
    assert result.unplaced == (c,)
    assert result.summary() == "1 confirmed, 1 false-positive, 1 without a known span (not used)"


def test_confirmed_spans_join_the_data_labels_and_false_positives_add_nothing() -> None:
    data = LabelledSet("t", W, FEATURES, (stream("s0"), stream("s1")))
    data = with_feedback(data, Feedback({"s0": ((T0, T0 + W),), "gone": ((T0, T0 + W),)},
                                        {"s1": ((T0, T0 + W),)}, ()))  # fmt: skip
    assert data.streams[0].labels == ((T0, T0 + W),)
    assert data.streams[1].labels == ()


def test_merged_unites_overlapping_intervals() -> None:
    assert merged([(5.0, 7.0), (1.0, 3.0), (2.0, 4.0), (4.0, 4.5)]) == ((1.0, 4.5), (5.0, 7.0))


def test_evaluate_counts_a_confirmed_alert_as_detected_and_a_false_positive_as_false(
    tmp_path: Path,
) -> None:
    # s0's spike is a real incident (confirmed), s1's one an operator marked false-positive.
    data = LabelledSet(
        "t", W, FEATURES, (stream("s0", spike=(120, 124)), stream("s1", spike=(150, 153), seed=1))
    )
    config = EvaluationConfig(
        detector="baseline",
        run=RunConfig(policy=AlertPolicy(open_after=1, resolve_after=2)),
        options=ModelOptions(min_history=12),
    )
    before = evaluate(data, config, tmp_path).metrics
    assert before["events"] == 0 and before["false_alarms"] >= 2  # no ground truth: all false
    s0, s1 = alert_id("s0", T0 + 120 * W, MODEL), alert_id("s1", T0 + 150 * W, MODEL)
    known = {
        s0: Incident(s0, "s0", T0 + 120 * W, T0 + 124 * W, MODEL),
        s1: Incident(s1, "s1", T0 + 150 * W, T0 + 153 * W, MODEL),
    }
    labels = {s0: labelled(s0, "confirmed"), s1: labelled(s1, "false-positive")}
    after = evaluate(with_feedback(data, feedback(labels, known)), config, tmp_path).metrics
    assert after["events"] == 1 and after["detected"] == 1
    assert after["false_alarms"] == before["false_alarms"] - 1  # s1's alert is still false


def test_forecast_training_data_leaves_labelled_windows_out_and_stays_evenly_spaced() -> None:
    s = LabelledStream("s0", T0 + W * np.arange(20), np.ones((20, 2)),
                       ((T0 + 5 * W, T0 + 8 * W), (T0 + 18.5 * W, T0 + 30 * W)))  # fmt: skip
    data = without_labelled(LabelledSet("t", W, FEATURES, (s, stream("s1", n=10))))
    pieces = {p.name: p for p in data.streams}
    assert set(pieces) == {"s0", "s0~2", "s1"}
    assert len(pieces["s0"]) == 5 and len(pieces["s0~2"]) == 10  # rows 0-4 and 8-17
    assert pieces["s0~2"].starts[0] == T0 + 8 * W
    series = training_data(data, labelled=False).series
    assert sum(len(x.values) for x in series) == 5 + 10 + 10
