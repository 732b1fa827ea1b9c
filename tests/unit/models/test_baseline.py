"""The statistical baseline detector, as the worker builds it (registry: detector + threshold).

Behaviour only: cold start, steady Poisson-like streams, a schedd falling silent, a surge of one
event kind, the shape of its output and its JSON-ready state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from gridalarm.models.baseline import BaselineConfig, RobustZBaseline
from gridalarm.models.compose import Thresholded
from gridalarm.models.registry import baseline_parts
from gridalarm.stream.alerting import AlertPolicy
from gridalarm.stream.scoring import Scorer, ScoringConfig
from gridalarm.stream.windows import ClosedWindow, StreamState

FEATURES = (
    "ExecuteEvent",
    "JobAbortedEvent",
    "JobDisconnectedEvent",
    "JobEvictedEvent",
    "JobHeldEvent",
    "JobImageSizeEvent",
    "JobReconnectFailedEvent",
    "JobReconnectedEvent",
    "SubmitEvent",
    "JobTerminatedEvent",
    "JobReleaseEvent",
    "ShadowExceptionEvent",
    "other",
)
HELD = FEATURES.index("JobHeldEvent")
# Hourly rates of a busy schedd, and per-minute rates of a quieter one.
BUSY = np.array([200, 2, 5, 3, 4, 150, 0.5, 4, 180, 170, 2, 1, 0.3])
MINUTE = np.array([6, 0.1, 0.2, 0.1, 0.2, 4, 0.05, 0.2, 6, 6, 0.1, 0.05, 0.02])
MIN_HISTORY = 12
T0 = 1_699_999_200.0
SIZE = 3600.0


def baseline() -> tuple[Any, Any]:
    return baseline_parts(MIN_HISTORY, 168)


class Series:
    """Steps a detector and its threshold over windows of many streams at once."""

    def __init__(self, n_streams: int) -> None:
        self.detector, self.threshold = baseline()
        self.states: list[Any] = [None] * n_streams
        self.thr_states: list[Any] = [None] * n_streams

    def step(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out = self.detector.step(np.asarray(x, dtype=float), self.states)
        scores, self.thr_states = self.threshold.apply(out.raw, self.thr_states)
        self.states = out.states
        return np.where(out.ready, scores, 0.0), out

    def warm(self, rng: np.random.Generator, rates: np.ndarray, windows: int) -> None:
        for _ in range(windows):
            self.step(rng.poisson(rates, size=(len(self.states), len(rates))))


def test_registry_builds_the_baseline_with_a_name_and_version() -> None:
    detector, _ = baseline()
    assert detector.name == "baseline"
    assert detector.version


def test_cold_start_scores_zero_until_min_history() -> None:
    rng = np.random.default_rng(0)
    series = Series(4)
    scores = []
    for k in range(MIN_HISTORY):
        x = rng.poisson(BUSY, size=(4, len(FEATURES))) * (50 if k % 2 else 0.01)
        s, out = series.step(x)
        assert not out.ready.any()
        assert (out.raw == 0).all()
        scores.append(s)
    assert np.all(np.array(scores) == 0.0)
    # With min_history windows behind it a stream is scored: a wild window now counts.
    s, out = series.step(np.full((4, len(FEATURES)), 1e5))
    assert out.ready.all()
    assert (s >= 50).all()


def test_cold_start_through_the_scorer() -> None:
    detector, threshold = baseline()
    scorer = Scorer(
        Thresholded(detector, threshold),
        ScoringConfig(features=FEATURES, policy=AlertPolicy(open_after=1)),
    )
    states = {"a": StreamState()}
    rng = np.random.default_rng(3)
    scores = []
    for k in range(MIN_HISTORY + 1):
        values = rng.poisson(BUSY) * (20 if k % 3 == 0 else 1)
        if k == MIN_HISTORY:
            values = np.zeros(len(FEATURES))
        closed = ClosedWindow("a", T0 + k * SIZE, T0 + (k + 1) * SIZE, tuple(values), 1, 0)
        out = scorer.score([closed], states)
        scores.append(out.scores[0]["score"])
        assert (out.alerts == []) == (k < MIN_HISTORY)
    assert scores[:MIN_HISTORY] == [0.0] * MIN_HISTORY


@pytest.mark.parametrize("rates", [BUSY, MINUTE], ids=["hourly-busy", "minute-quiet"])
def test_a_stream_that_goes_silent_after_steady_history_is_anomalous(rates: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    series = Series(20)
    series.warm(rng, rates, 72)
    scores, out = series.step(np.zeros((20, len(FEATURES))))
    assert (scores >= 50).all(), scores.round(1)
    assert out.ready.all()


@pytest.mark.parametrize("rates", [BUSY, MINUTE], ids=["hourly-busy", "minute-quiet"])
def test_steady_poisson_counts_stay_mostly_below_50(rates: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    series = Series(20)
    series.warm(rng, rates, MIN_HISTORY)
    scores = np.array(
        [series.step(rng.poisson(rates, size=(20, len(FEATURES))))[0] for _ in range(200)]
    )
    anomalous = (scores >= 50).mean()
    assert anomalous <= 0.05, f"{anomalous:.1%} of steady windows anomalous"


def test_a_surge_of_one_kind_is_anomalous_and_explained_by_that_kind() -> None:
    rng = np.random.default_rng(2)
    series = Series(10)
    series.warm(rng, BUSY, 48)
    x = rng.poisson(BUSY, size=(10, len(FEATURES))).astype(float)
    x[:, HELD] = 80.0  # holds: 4 an hour usually
    scores, out = series.step(x)
    assert (scores >= 50).all()
    assert (out.share.argmax(axis=1) == HELD).all()
    assert np.all((out.share >= 0) & (out.share <= 1))
    row_sums = out.share.sum(axis=1)
    assert np.allclose(row_sums, 1.0) or np.all(np.isclose(row_sums, 1) | (row_sums == 0))
    # What it expected for the surging kind is near the usual rate, not the surge.
    assert out.expected.shape == x.shape
    assert np.all(np.abs(out.expected[:, HELD] - BUSY[HELD]) < 3)


def test_explanation_through_the_scorer_names_the_feature_that_moved() -> None:
    detector, threshold = baseline()
    scorer = Scorer(
        Thresholded(detector, threshold),
        ScoringConfig(features=FEATURES, policy=AlertPolicy(open_after=1)),
    )
    states = {"a": StreamState()}
    rng = np.random.default_rng(4)
    for k in range(48):
        w = ClosedWindow("a", T0 + k * SIZE, T0 + (k + 1) * SIZE, tuple(rng.poisson(BUSY)), 1, 0)
        scorer.score([w], states)
    values = rng.poisson(BUSY).astype(float)
    values[FEATURES.index("JobEvictedEvent")] = 90
    w = ClosedWindow("a", T0 + 48 * SIZE, T0 + 49 * SIZE, tuple(values), 1, 0)
    out = scorer.score([w], states)
    (score,) = out.scores
    assert score["anomalous"] is True
    assert score["explain"][0]["feature"] == "JobEvictedEvent"
    assert score["explain"][0]["observed"] == 90
    assert all(0.0 <= e["share"] <= 1.0 for e in score["explain"])
    (alert,) = out.alerts
    assert alert["state"] == "open" and alert["explain"] == score["explain"]


def test_streams_in_one_batch_are_scored_as_if_alone() -> None:
    rng = np.random.default_rng(8)
    x_all = rng.poisson(BUSY, size=(30, 5, len(FEATURES))).astype(float)
    x_all[25:, 2] = 0.0  # stream 2 falls silent at the end
    together = Series(5)
    alone = [Series(1) for _ in range(5)]
    for x in x_all:
        s_all, _ = together.step(x)
        s_one = [alone[i].step(x[i : i + 1])[0][0] for i in range(5)]
        np.testing.assert_allclose(s_all, s_one)


def test_state_is_json_ready_and_resumes_identically() -> None:
    rng = np.random.default_rng(9)
    xs = rng.poisson(BUSY, size=(40, 3, len(FEATURES))).astype(float)
    live = Series(3)
    resumed = Series(3)
    for i, x in enumerate(xs):
        a, _ = live.step(x)
        b, _ = resumed.step(x)
        np.testing.assert_allclose(a, b)
        if i % 7 == 0:  # a restart: the states come back from the table's JSON
            resumed.states = orjson.loads(orjson.dumps(resumed.states))
            resumed.thr_states = orjson.loads(orjson.dumps(resumed.thr_states))


def test_a_state_of_another_width_is_treated_as_a_new_stream() -> None:
    detector = RobustZBaseline(BaselineConfig(min_history=2))
    x = np.full((1, 4), 3.0)
    state = detector.step(x, [None]).states[0]
    wider = np.full((1, 6), 3.0)
    out = detector.step(wider, [state])  # the feature list changed: start over, no crash
    assert not out.ready.any()
    assert out.states[0]["n"] == 1
