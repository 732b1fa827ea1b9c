"""Replaying labelled windows through the worker's scoring code, and the metrics on top."""

from __future__ import annotations

import numpy as np

from gridalarm.evaluation.datasets import LabelledSet, LabelledStream
from gridalarm.evaluation.evaluate import alert_scores, scored_part, window_labels
from gridalarm.evaluation.runner import RunConfig, replay
from gridalarm.models.registry import ModelOptions, build_model
from gridalarm.stream.alerting import AlertPolicy
from gridalarm.stream.scoring import Scorer, ScoringConfig
from gridalarm.stream.windows import ClosedWindow, StreamState

FEATURES = ("a", "b", "c")
W = 60.0


def streams(n: int = 3, windows: int = 120, seed: int = 0) -> list[LabelledStream]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        values = rng.poisson(20.0 + 10 * k, size=(windows, len(FEATURES))).astype(float)
        starts = 1_000_020.0 + W * np.arange(windows) + (k * W)  # streams start apart
        out.append(LabelledStream(f"s{k}", starts, values, ()))
    return out


def test_replay_equals_the_worker_scoring_in_time_order() -> None:
    data = LabelledSet("t", W, FEATURES, tuple(streams()))
    runs = replay(build_model("baseline", ModelOptions(min_history=5)), data)

    # Independent path: a Scorer fed one window start at a time, as the worker's steps do.
    scorer = Scorer(
        build_model("baseline", ModelOptions(min_history=5)), ScoringConfig(features=FEATURES)
    )
    states = {s.name: StreamState() for s in data.streams}
    expected: dict[tuple[str, float], float] = {}
    for start in sorted({float(t) for s in data.streams for t in s.starts}):
        closed = [
            ClosedWindow(s.name, start, start + W, tuple(s.values[i]), 0, 0)
            for s in data.streams
            for i in np.flatnonzero(s.starts == start)
        ]
        for message in scorer.score(closed, states).scores:
            expected[(message["stream"], start)] = message["score"]
    for run in runs:
        got = {
            (run.stream.name, float(t)): float(v)
            for t, v in zip(run.stream.starts, run.scores, strict=True)
        }
        assert got == {k: v for k, v in expected.items() if k[0] == run.stream.name}


def test_no_look_ahead_a_later_change_leaves_earlier_scores_alone() -> None:
    base = streams(2)
    changed = [LabelledStream(s.name, s.starts, s.values.copy(), ()) for s in base]
    changed[0].values.setflags(write=True) if not changed[0].values.flags.writeable else None
    values = base[0].values.copy()
    values[80:] *= 10
    changed[0] = LabelledStream(base[0].name, base[0].starts, values, ())
    model = lambda: build_model("baseline", ModelOptions(min_history=5))  # noqa: E731
    a = replay(model(), LabelledSet("a", W, FEATURES, tuple(base)))
    b = replay(model(), LabelledSet("b", W, FEATURES, tuple(changed)))
    np.testing.assert_array_equal(a[0].scores[:80], b[0].scores[:80])
    assert b[0].scores[80:].max() > a[0].scores[80:].max()
    np.testing.assert_array_equal(a[1].scores, b[1].scores)  # other streams never notice


def test_alert_intervals_run_from_the_opening_window_to_resolution() -> None:
    s = streams(1, windows=100)[0]
    values = s.values.copy()
    values[60:66, 0] = 400.0  # a six-window storm
    stream = LabelledStream(s.name, s.starts, values, ((s.starts[60], s.starts[66]),))
    config = RunConfig(policy=AlertPolicy(open_after=2, resolve_after=2))
    (run,) = replay(
        build_model("baseline", ModelOptions(min_history=5)),
        LabelledSet("t", W, FEATURES, (stream,)),
        config,
    )
    assert run.flagged[60:66].all()
    assert len(run.alerts) == 1
    opened, resolved = run.alerts[0]
    assert opened == s.starts[61]  # the second anomalous window opens it
    assert resolved == s.starts[67] + W  # two normal windows resolve it
    scores01 = alert_scores(run)
    assert np.flatnonzero(scores01).tolist() == [61]
    assert scores01[61] == run.scores[61] / 100.0


def test_window_labels_and_test_part() -> None:
    s = streams(1, windows=10)[0]
    labelled = LabelledStream(
        s.name, s.starts, s.values, ((s.starts[3] + 1.0, s.starts[5]),), train_until=s.starts[4]
    )
    assert np.flatnonzero(window_labels(labelled)).tolist() == [3, 4]
    (run,) = replay(build_model("baseline"), LabelledSet("t", W, FEATURES, (labelled,)))
    part = scored_part(run)
    assert len(part.stream.starts) == 6 and part.stream.starts[0] == s.starts[4]
    np.testing.assert_array_equal(part.scores, run.scores[4:])


def test_streams_with_repeated_times_are_replayed_row_by_row() -> None:
    s = streams(1, windows=40)[0]
    starts = s.starts.copy()
    starts[20] = starts[19]  # a repeated timestamp, as in NAB's ec2_request_latency file
    odd = LabelledStream("odd", starts, s.values, ())
    (run,) = replay(build_model("baseline", ModelOptions(min_history=5)),
                    LabelledSet("t", 0.0, FEATURES, (odd,)))  # fmt: skip
    (ref,) = replay(build_model("baseline", ModelOptions(min_history=5)),
                    LabelledSet("t", W, FEATURES, (s,)))  # fmt: skip
    np.testing.assert_array_equal(run.scores, ref.scores)
