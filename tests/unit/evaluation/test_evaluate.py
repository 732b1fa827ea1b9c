"""One evaluation (gridalarm.evaluation.evaluate): NAB's two views and the best point F1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gridalarm.evaluation.datasets import LabelledSet, LabelledStream
from gridalarm.evaluation.evaluate import (
    EvaluationConfig,
    evaluate,
    model_path,
    nab_files,
    point_f1_best,
    row_scores,
    warmup_groups,
)
from gridalarm.evaluation.runner import StreamRun
from gridalarm.timeutil import parse_time

W = 60.0
T0 = parse_time("2015-01-01 00:00:00")


def run_of(
    scores: Sequence[float],
    labels: Sequence[tuple[int, int]] = (),
    alerts: Sequence[int] = (),
    train_rows: int | None = None,
    name: str = "cat/a.csv",
) -> StreamRun:
    """A run of ``len(scores)`` one-minute rows from T0; labels and alerts in rows."""
    n = len(scores)
    starts = T0 + W * np.arange(n)
    stream = LabelledStream(
        name,
        starts,
        np.zeros((n, 1)),
        tuple((T0 + a * W, T0 + b * W) for a, b in labels),
        train_until=None if train_rows is None else T0 + train_rows * W,
    )
    return StreamRun(
        stream=stream,
        scores=np.array(scores, dtype=float),
        flagged=np.array(scores, dtype=float) >= 50.0,
        alerts=tuple((T0 + r * W, T0 + (r + 1) * W) for r in alerts),
        models=("test@1",),
    )


# --- NAB's files -------------------------------------------------------------------------------


def test_row_scores_are_every_rows_score_over_100_clipped() -> None:
    run = run_of([0.0, 25.0, 50.0, 100.0, 130.0, -5.0])
    np.testing.assert_array_equal(row_scores(run), [0.0, 0.25, 0.5, 1.0, 1.0, 0.0])


def test_nab_files_hand_nab_every_rows_score_by_default() -> None:
    run = run_of([10.0, 80.0, 90.0, 20.0, 120.0], alerts=[1])
    windows = {"cat/a.csv": [("2015-01-01 00:01:00", "2015-01-01 00:02:00")]}
    (file,) = nab_files([run], windows)
    assert file.name == "cat/a.csv"
    np.testing.assert_array_equal(file.timestamps, run.stream.starts)
    np.testing.assert_allclose(file.scores, [0.1, 0.8, 0.9, 0.2, 1.0])
    assert file.windows == ((T0 + W, T0 + 2 * W),)


def test_nab_files_alerts_view_keeps_only_alert_openings() -> None:
    run = run_of([10.0, 80.0, 90.0, 20.0, 120.0], alerts=[1, 4])
    (file,) = nab_files([run], {}, source="alerts")
    np.testing.assert_allclose(file.scores, [0.0, 0.8, 0.0, 0.0, 1.0])
    assert file.windows == ()


def test_nab_files_rejects_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="'rows'"):
        nab_files([run_of([1.0])], {}, source="rows")  # type: ignore[arg-type]


# --- best point F1 over streams ------------------------------------------------------------------


def test_point_f1_best_scores_only_the_test_part_of_labelled_streams() -> None:
    # Training rows 0-1 hold the highest score, on an unlabelled row: counted, it would cost a
    # false positive at any threshold that catches row 3. Dropped, row 3 alone is F1 1.0.
    trained = run_of([99.0, 5.0, 10.0, 90.0, 20.0], labels=[(3, 4)], train_rows=2)
    # Rows 1 and 2 start in the label [1, 3). F1 = 2 TP / (flagged + 2) at each threshold:
    # 70 -> 2/3, 60 -> 2/4, 10 -> 4/5 (rows 1-3 flagged), 0 -> 4/6; the best is 4/5.
    partial = run_of([0.0, 70.0, 10.0, 60.0], labels=[(1, 3)], name="cat/b.csv")
    unlabelled = run_of([0.0, 100.0], name="cat/c.csv")  # left out of the mean
    mean, counted = point_f1_best([trained, partial, unlabelled])
    assert counted == 2
    assert mean == pytest.approx((1.0 + 0.8) / 2)


def test_point_f1_best_without_labels_is_none() -> None:
    assert point_f1_best([run_of([1.0, 2.0])]) == (None, 0)


def test_evaluate_reports_the_best_point_f1_per_stream(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    streams = []
    for k in range(3):
        values = rng.normal(100.0, 2.0, size=(200, 1))
        labels: tuple[tuple[float, float], ...] = ()
        if k < 2:
            values[150:155] += 60.0
            labels = ((T0 + 150 * W, T0 + 155 * W),)
        streams.append(
            LabelledStream(f"s{k}", T0 + W * np.arange(200), values, labels, T0 + 40 * W)
        )
    data = LabelledSet("t", W, ("value",), tuple(streams))
    evaluation = evaluate(data, EvaluationConfig(detector="baseline"), tmp_path)
    metrics = evaluation.metrics
    assert metrics["point_f1_best_streams"] == 2
    assert metrics["point_f1_best_mean"] == point_f1_best(evaluation.runs)[0]
    assert metrics["point_f1_best_mean"] > 0.5  # a 30-sigma step stands out of the noise


# --- which detectors are trained ------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["baseline", "novelty"])
def test_self_fitting_detectors_are_never_trained(detector: str, tmp_path: Path) -> None:
    stream = LabelledStream("s", T0 + W * np.arange(10), np.zeros((10, 1)), (), T0 + 5 * W)
    data = LabelledSet("t", W, ("value",), (stream,))
    assert model_path(EvaluationConfig(detector=detector), data, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


# --- per-stream warm-up ---------------------------------------------------------------------------


def test_warmup_groups_give_each_stream_its_own_training_rows() -> None:
    def stream(name: str, rows: int, train: int | None) -> LabelledStream:
        until = None if train is None else T0 + train * W
        return LabelledStream(name, T0 + W * np.arange(rows), np.zeros((rows, 1)), (), until)

    data = LabelledSet(
        "t", W, ("value",), (stream("a", 300, 45), stream("b", 300, 120), stream("c", 200, 45),
                             stream("d", 50, 3), stream("e", 40, None))
    )  # fmt: skip
    groups = {warmup: [s.name for s in part.streams] for warmup, part in warmup_groups(data)}
    # 3 training rows are below the setting's floor of 16; no split: the whole stream.
    assert groups == {16: ["d"], 40: ["e"], 45: ["a", "c"], 120: ["b"]}


def test_novelty_warms_up_on_each_streams_own_split(tmp_path: Path) -> None:
    """Two streams with different training parts: each is scored from the row after its own
    split (its scores before are 0) and alone exactly as in the set."""
    rng = np.random.default_rng(5)
    streams = tuple(
        LabelledStream(
            name, T0 + W * np.arange(400), rng.normal(50.0, 5.0, (400, 1)), (), T0 + train * W
        )
        for name, train in (("early", 130), ("late", 210))
    )
    data = LabelledSet("t", W, ("value",), streams)
    evaluation = evaluate(data, EvaluationConfig(detector="novelty"), tmp_path)
    by_name = {run.stream.name: run for run in evaluation.runs}
    assert [run.stream.name for run in evaluation.runs] == ["early", "late"]
    for name, train in (("early", 130), ("late", 210)):
        scores = by_name[name].scores
        assert (scores[:train] == 0).all() and (scores[train:] > 0).any()
        alone = evaluate(replace(data, streams=(by_name[name].stream,)),
                         EvaluationConfig(detector="novelty"), tmp_path)  # fmt: skip
        np.testing.assert_array_equal(alone.runs[0].scores, scores)
