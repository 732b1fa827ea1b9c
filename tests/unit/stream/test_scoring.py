"""Closed windows → window, score and alert messages (gridalarm.stream.scoring.Scorer).

The detector here is a small fake of our own Detector interface that records its calls: the
point is how the Scorer batches, threads state and builds messages, not what a model says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pytest

from gridalarm.messages import validate
from gridalarm.models.compose import Thresholded
from gridalarm.models.detector import DetectorOutput
from gridalarm.models.thresholds import RatioThreshold
from gridalarm.stream.alerting import AlertPolicy
from gridalarm.stream.scoring import Scorer, ScoringConfig, window_message
from gridalarm.stream.windows import ClosedWindow, StreamState
from gridalarm.timeutil import format_time

T0 = 1_699_999_200.0
SIZE = 3600.0
FEATURES = ("ExecuteEvent", "JobHeldEvent", "JobEvictedEvent", "other")
POLICY = AlertPolicy(open_after=1, resolve_after=2)


class SpyDetector:
    """Raw evidence = the window's first feature; share = the features' relative values.

    Its per-stream state counts the steps it has seen, so the test can check that each stream's
    state comes back to it; streams are ``ready`` once they have seen ``warmup`` windows.
    """

    name = "spy"
    version = "7"

    def __init__(self, warmup: int = 0) -> None:
        self.warmup = warmup
        self.calls: list[tuple[np.ndarray, list[Any]]] = []

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        x = np.asarray(x, dtype=float)
        self.calls.append((x.copy(), list(states)))
        seen = np.array([(s or {"seen": 0})["seen"] for s in states])
        totals = x.sum(axis=1, keepdims=True)
        share = np.divide(x, totals, out=np.zeros_like(x), where=totals > 0)
        return DetectorOutput(
            raw=x[:, 0].copy(),
            expected=np.full_like(x, 1.5),
            share=share,
            states=[{"seen": int(k) + 1} for k in seen],
            ready=seen >= self.warmup,
        )


def window(stream: str, k: int, values: Sequence[float], events: int = 0) -> ClosedWindow:
    return ClosedWindow(
        stream=stream,
        start=T0 + k * SIZE,
        end=T0 + (k + 1) * SIZE,
        values=tuple(float(v) for v in values),
        events=events or int(sum(values)),
        late=0,
    )


def scorer(detector: Any, threshold: float = 50.0, **config: Any) -> Scorer:
    return Scorer(
        Thresholded(detector, RatioThreshold(alarm=4.0)),  # raw 4 -> score 50
        ScoringConfig(features=FEATURES, threshold=threshold, policy=POLICY, **config),
    )


def roundtrip(data: Any) -> Any:
    return orjson.loads(orjson.dumps(data))


def states_for(*streams: str) -> dict[str, StreamState]:
    return {name: StreamState() for name in streams}


# --- batching ---------------------------------------------------------------------------------


def test_one_batched_detector_call_per_window_start_in_time_order() -> None:
    spy = SpyDetector()
    streams = ["s1", "s2", "s3"]
    closed = [window(s, k, [k, i, 0, 0]) for k in range(4) for i, s in enumerate(streams)]
    random.Random(1).shuffle(closed)
    states = states_for(*streams)
    out = scorer(spy).score(closed, states)
    assert len(spy.calls) == 4
    for k, (x, _) in enumerate(spy.calls):
        assert x.shape == (3, len(FEATURES))
        assert sorted(x[:, 0].tolist()) == [k, k, k]  # the rows of window k, all streams
    starts = [w["start"] for w in out.windows]
    assert starts == sorted(starts)
    assert len(out.windows) == len(out.scores) == 12


def test_each_stream_gets_its_own_state_back_on_the_next_window() -> None:
    spy = SpyDetector()
    states = states_for("a", "b")
    sc = scorer(spy)
    sc.score([window("a", 0, [1, 0, 0, 0]), window("b", 0, [2, 0, 0, 0])], states)
    sc.score([window("a", 1, [1, 0, 0, 0])], states)  # only a closed a window
    sc.score([window("b", 1, [1, 0, 0, 0]), window("a", 2, [1, 0, 0, 0])], states)
    assert spy.calls[0][1] == [None, None]
    assert spy.calls[1][1] == [{"seen": 1}]
    # The third call groups by start: b's window 1 first, then a's window 2 alone.
    assert [c[1] for c in spy.calls[2:]] == [[{"seen": 1}], [{"seen": 2}]]
    assert states["a"].detector[0] == {"seen": 3}
    assert states["b"].detector[0] == {"seen": 2}


def test_detector_state_survives_the_json_round_trip_of_the_table() -> None:
    spy = SpyDetector(warmup=2)
    states = states_for("a")
    sc = scorer(spy)
    scores = []
    for k in range(5):
        out = sc.score([window("a", k, [8, 1, 0, 0])], states)
        scores.append(out.scores[0]["score"])
        states = {
            n: StreamState.from_json(orjson.loads(orjson.dumps(s.to_json())))
            for n, s in states.items()
        }
    assert scores == [0.0, 0.0, pytest.approx(200 / 3, abs=0.01), pytest.approx(66.67), 66.67]


def test_scores_are_zero_while_the_detector_is_warming_up() -> None:
    spy = SpyDetector(warmup=3)
    states = states_for("a")
    sc = scorer(spy)
    out = [sc.score([window("a", k, [1000, 0, 0, 0])], states) for k in range(5)]
    scores = [o.scores[0]["score"] for o in out]
    assert scores[:3] == [0.0, 0.0, 0.0]
    assert scores[3] > 99.0
    assert [o.scores[0]["anomalous"] for o in out] == [False, False, False, True, True]
    assert [len(o.alerts) for o in out] == [0, 0, 0, 1, 1]


# --- messages ---------------------------------------------------------------------------------


def test_threshold_decides_anomalous_inclusively() -> None:
    states = states_for("at", "below", "above")
    out = scorer(SpyDetector()).score(
        [
            window("at", 0, [4, 0, 0, 0]),  # score 50
            window("below", 0, [3.99, 0, 0, 0]),
            window("above", 0, [12, 0, 0, 0]),  # score 75
        ],
        states,
    )
    by_stream = {s["stream"]: s for s in out.scores}
    assert by_stream["at"]["score"] == 50.0 and by_stream["at"]["anomalous"] is True
    assert by_stream["below"]["anomalous"] is False
    assert by_stream["above"]["score"] == 75.0
    assert sorted(a["stream"] for a in out.alerts) == ["above", "at"]


def test_score_window_and_alert_messages_validate_against_their_schemas() -> None:
    states = states_for("a", "b")
    sc = scorer(SpyDetector())
    outs = [
        sc.score([window("a", k, [v, 1, 2, 0]), window("b", k, [0.5, 3, 0, 0])], states)
        for k, v in enumerate([0, 9, 30, 0, 0, 1])
    ]
    windows = [m for o in outs for m in o.windows]
    scores = [m for o in outs for m in o.scores]
    alerts = [m for o in outs for m in o.alerts]
    assert [a["state"] for a in alerts] == ["open", "update", "resolved"]
    for message in windows:
        validate("window", message)
    for message in scores:
        validate("score", message)
        assert message["model"] == "spy@7"
        orjson.dumps(message)  # serialisable as it is (no numpy scalars orjson refuses)
    for message in alerts:
        validate("alert", message)
        assert message["model"] == "spy@7"


def test_window_message_carries_the_window_values_by_feature_name() -> None:
    w = ClosedWindow("schedd:x", T0, T0 + SIZE, (3.0, 0.0, 2.5, 1e-7), 6, 2)
    message = window_message(w, FEATURES)
    validate("window", message)
    assert message == {
        "v": 1,
        "stream": "schedd:x",
        "start": format_time(T0),
        "end": format_time(T0 + SIZE),
        "features": {"ExecuteEvent": 3, "JobHeldEvent": 0, "JobEvictedEvent": 2.5, "other": 0},
        "events": 6,
        "late": 2,
    }
    assert isinstance(message["features"]["ExecuteEvent"], int)


def test_explanation_lists_top_features_with_shares_in_unit_interval() -> None:
    states = states_for("a")
    out = scorer(SpyDetector(), explain_top=2, explain_min_share=0.05).score(
        [window("a", 0, [60, 30, 9, 1])], states
    )
    (score,) = out.scores
    assert score["anomalous"]
    explain = score["explain"]
    assert [e["feature"] for e in explain] == ["ExecuteEvent", "JobHeldEvent"]
    assert [e["share"] for e in explain] == [0.6, 0.3]
    assert all(0.0 <= e["share"] <= 1.0 for e in explain)
    assert explain[0]["observed"] == 60 and explain[0]["expected"] == 1.5
    out = scorer(SpyDetector(), explain_top=5, explain_min_share=0.05).score(
        [window("a", 1, [60, 30, 9, 1])], states
    )
    # 'other' has a 1 % share: below explain_min_share, left out.
    assert [e["feature"] for e in out.scores[0]["explain"]] == [
        "ExecuteEvent",
        "JobHeldEvent",
        "JobEvictedEvent",
    ]


def test_normal_windows_carry_no_explanation() -> None:
    out = scorer(SpyDetector()).score([window("a", 0, [1, 5, 5, 5])], states_for("a"))
    assert out.scores[0]["anomalous"] is False
    assert out.scores[0]["explain"] == []


def test_scores_are_clipped_to_0_100() -> None:
    class Wild:
        def apply(self, raw: np.ndarray, states: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
            return np.where(raw > 5, 250.0, -20.0), list(states)

    sc = Scorer(Thresholded(SpyDetector(), Wild()), ScoringConfig(features=FEATURES, policy=POLICY))
    out = sc.score(
        [window("a", 0, [9, 0, 0, 0]), window("b", 0, [1, 0, 0, 0])], states_for("a", "b")
    )
    assert [s["score"] for s in out.scores] == [100.0, 0.0]
    for message in out.scores:
        validate("score", message)


def test_alerts_follow_each_stream_separately() -> None:
    states = states_for("a", "b")
    sc = scorer(SpyDetector())
    series = {"a": [0, 9, 9, 0, 0], "b": [9, 0, 0, 9, 0]}
    alerts = []
    for k in range(5):
        out = sc.score([window(s, k, [series[s][k], 0, 0, 0]) for s in "ab"], states)
        alerts += [(a["stream"], a["state"], a["start"]) for a in out.alerts]
    assert alerts == [
        ("b", "open", format_time(T0)),
        ("a", "open", format_time(T0 + SIZE)),
        ("a", "update", format_time(T0 + 2 * SIZE)),
        ("b", "resolved", format_time(T0 + 2 * SIZE)),
        ("b", "open", format_time(T0 + 3 * SIZE)),
        ("a", "resolved", format_time(T0 + 4 * SIZE)),
    ]


# --- silences ---------------------------------------------------------------------------------


def test_alerts_of_windows_inside_a_silence_of_their_stream_come_out_suppressed() -> None:
    from gridalarm.stream.silences import Silences, new_silence

    # Windows 1 and 2 of streams matching "s-a*" lie in the silence; window 3 does not.
    maintenance = new_silence("m", "s-a*", T0 + SIZE, T0 + 3 * SIZE, "upgrade", "test", T0)
    silences = Silences([maintenance])
    states = states_for("s-a1", "s-b1")
    sc = scorer(SpyDetector())
    alerts = []
    for k in range(4):
        closed = [window("s-a1", k, [9, 0, 0, 0]), window("s-b1", k, [9, 0, 0, 0])]
        alerts.extend(sc.score(closed, states, silences).alerts)
    by_stream = {
        s: [(a["state"], a.get("silence")) for a in alerts if a["stream"] == s]
        for s in ("s-a1", "s-b1")
    }
    assert by_stream["s-b1"] == [("open", None), ("update", None), ("update", None),
                                 ("update", None)]  # fmt: skip
    # Routed as open before the silence, its updates inside are suppressed, then update again.
    assert by_stream["s-a1"] == [("open", None), ("suppressed", "m"), ("suppressed", "m"),
                                 ("update", None)]  # fmt: skip
    for alert in alerts:
        validate("alert", alert)


def test_a_silent_window_message_is_the_same_as_any_other_and_its_own() -> None:
    # The all-zeros fast path of window_message: the same message as the general path would
    # give (integer zeros), and a dict of its own, so that changing one changes no other.
    silent = ClosedWindow("schedd:x", T0, T0 + SIZE, (0.0, -0.0, 0.0, 0.0), 0, 0)
    first, second = window_message(silent, FEATURES), window_message(silent, FEATURES)
    validate("window", first)
    assert orjson.dumps(first["features"]) == orjson.dumps(dict.fromkeys(FEATURES, 0))
    assert first["start"] == format_time(T0) and first["end"] == format_time(T0 + SIZE)
    first["features"]["other"] = 5
    assert second["features"]["other"] == 0
    with pytest.raises(ValueError):
        window_message(ClosedWindow("schedd:x", T0, T0 + SIZE, (0.0,), 0, 0), FEATURES)
