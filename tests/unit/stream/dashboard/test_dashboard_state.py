"""The dashboard's state: streams and their states, alerts and their order, labels, changes."""

from __future__ import annotations

from typing import Any

import pytest

from gridalarm.stream.dashboard.state import DashboardState, ViewLimits
from gridalarm.timeutil import format_time

W = 60.0
T0 = 1_700_000_040.0 - 1_700_000_040.0 % W
AID = "a1" * 12


def score(stream: str, i: int, value: float, explain: list | None = None) -> dict[str, Any]:
    return {
        "v": 1, "stream": stream, "start": format_time(T0 + i * W),
        "end": format_time(T0 + (i + 1) * W), "score": value, "anomalous": value >= 50,
        "model": "m@1", "explain": explain or [],
    }  # fmt: skip


def alert(state: str, i: int, alert_id: str = AID, stream: str = "s1", **extra: Any) -> dict:
    return {
        "v": 1, "alert_id": alert_id, "state": state, "stream": stream,
        "since": format_time(T0), "start": format_time(T0 + i * W),
        "end": format_time(T0 + (i + 1) * W), "score": 80.0, "severity": "critical",
        "explain": [{"feature": "JobHeldEvent", "observed": 9, "expected": 1, "share": 1.0}],
        "model": "m@1", **extra,
    }  # fmt: skip


def test_a_score_creates_the_stream_with_its_overview_row() -> None:
    state = DashboardState()
    assert state.apply("scores", score("s1", 0, 12.34), 0.0)
    name, start, end, value, kind, spark, seq = state.overview_row("s1")
    assert (name, start, end, value, kind, spark) == ("s1", T0, T0 + W, 12.3, "normal", [12.3])
    assert seq > 0


def test_the_row_shows_the_latest_window_even_when_an_older_one_arrives_after_it() -> None:
    state = DashboardState()
    state.apply_score(score("s1", 5, 10.0))
    state.apply_score(score("s1", 4, 70.0))
    row = state.overview_row("s1")
    assert row[1] == T0 + 5 * W and row[3] == 10.0 and row[4] == "normal"
    assert row[5] == [70.0, 10.0]  # the sparkline still has both, in time order


def test_sparklines_hold_the_last_n_scores() -> None:
    state = DashboardState(ViewLimits(keep_windows=50, spark=24))
    for i in range(30):
        state.apply_score(score("s1", i, float(i)))
    assert state.overview_row("s1")[5] == [float(i) for i in range(6, 30)]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "normal"),
        ([("scores", score("s1", 1, 75.0))], "anomalous"),
        ([("alerts", alert("open", 1))], "critical"),
        ([("alerts", alert("open", 1, severity="warning"))], "warning"),
        ([("alerts", alert("suppressed", 1, silence="maint-1"))], "suppressed"),
        ([("alerts", alert("open", 1)), ("alerts", alert("resolved", 3))], "normal"),
    ],
)
def test_stream_states(messages: list, expected: str) -> None:
    state = DashboardState()
    state.apply_score(score("s1", 0, 10.0))
    for kind, message in messages:
        assert state.apply(kind, message, 1.0)
    assert state.overview_row("s1")[4] == expected


def test_a_stream_known_only_from_an_alert_is_unscored_until_its_alert_ends() -> None:
    state = DashboardState()
    state.apply_alert(alert("open", 1, stream="quiet"), 1.0)
    assert state.overview_row("quiet")[4] == "critical"
    state.apply_alert(alert("resolved", 2, stream="quiet"), 2.0)
    assert state.overview_row("quiet")[4] == "unscored"


def test_alert_repeats_and_stale_messages_change_nothing() -> None:
    state = DashboardState()
    state.apply_alert(alert("open", 1), 100.0)
    state.apply_alert(alert("update", 2), 160.0)
    state.take_changes()
    state.apply_alert(alert("update", 2), 170.0)  # repeat (a restarted worker)
    state.apply_alert(alert("open", 1), 175.0)  # older, read late
    assert not state.take_changes().alerts
    held = state.alerts[AID]
    assert (held.state, held.first_seen, held.updated) == ("update", 100.0, 160.0)


def test_resolution_at_the_same_window_as_an_update_wins() -> None:
    state = DashboardState()
    state.apply_alert(alert("update", 3), 1.0)
    state.apply_alert(alert("resolved", 3), 2.0)
    assert state.alerts[AID].section == "resolved"
    state.apply_alert(alert("update", 3), 3.0)
    assert state.alerts[AID].section == "resolved"


def test_sections_list_the_latest_change_first() -> None:
    state = DashboardState()
    state.apply_alert(alert("open", 1, "b" * 24, "s2"), 10.0)
    state.apply_alert(alert("open", 1, "c" * 24, "s3"), 20.0)
    state.apply_alert(alert("open", 1, "d" * 24, "s4"), 15.0)
    state.apply_alert(alert("resolved", 4, "d" * 24, "s4"), 30.0)
    assert [a.stream for a in state.alerts_in("open")] == ["s3", "s2"]
    assert [a.stream for a in state.alerts_in("resolved")] == ["s4"]
    assert state.counts()["open"] == 2 and state.counts()["resolved"] == 1
    with pytest.raises(ValueError):
        state.alerts_in("closed")


def test_only_so_many_resolved_alerts_are_kept_and_active_ones_always() -> None:
    state = DashboardState(ViewLimits(keep_resolved=2))
    state.apply_alert(alert("open", 1, "f" * 24, "active"), 1.0)
    for n in range(4):
        aid = f"{n:x}" * 24
        state.apply_alert(alert("open", 1, aid, f"s{n}"), 1.0)
        state.apply_alert(alert("resolved", 3, aid, f"s{n}"), 2.0 + n)
    kept = {a.stream for a in state.alerts.values()}
    assert kept == {"active", "s2", "s3"}
    assert {"0" * 24, "1" * 24} <= state.take_changes().alerts  # pages drop the evicted rows
    detail = state.stream_detail("s0")
    assert detail is not None and detail.alerts == []


def test_labels_and_tombstones() -> None:
    state = DashboardState()
    state.apply_alert(alert("open", 1), 1.0)
    before = state.alerts[AID].seq
    state.take_changes()
    label = {"v": 1, "alert_id": AID, "label": "false-positive", "at": "x", "by": "dashboard"}
    assert state.apply("labels", label, 2.0)
    assert state.labels[AID].label == "false-positive"
    assert state.take_changes().alerts == {AID}
    assert state.alerts[AID].seq > before
    state.apply_label(None, alert_id=AID)
    assert AID not in state.labels
    state.apply_label({**label, "alert_id": "9" * 24}, None)  # alert not (yet) known: kept
    assert state.labels["9" * 24].by == "dashboard"
    with pytest.raises(ValueError):
        state.apply_label(None)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("scores", {"stream": "s1"}),
        ("scores", ["not", "an", "object"]),
        ("scores", {**score("s1", 0, 1.0), "start": "yesterday"}),
        ("windows", {**score("s1", 0, 1.0), "features": None}),
        ("alerts", alert("pending", 1)),
        ("labels", {"alert_id": AID}),
        ("deadletter", {}),
    ],
)
def test_unusable_messages_are_counted_not_raised(kind: str, message: Any) -> None:
    state = DashboardState()
    assert not state.apply(kind, message, 0.0)
    assert state.skipped == 1


def test_changes_separate_rows_from_stream_pages_and_are_taken_once() -> None:
    state = DashboardState()
    state.apply_score(score("s1", 0, 1.0))
    state.apply_window({**score("s2", 0, 1.0), "features": {"a": 1}, "events": 1, "late": 0})
    changes = state.take_changes()
    assert changes.rows == {"s1"} and changes.streams == {"s1", "s2"}
    assert not state.take_changes()
    state.set_progress(0.5, live=False)
    assert state.take_changes().status
    state.set_progress(0.501, live=False)  # not a visible step
    assert not state.take_changes()
    state.set_progress(0.7, live=True)
    assert state.take_changes().status and state.phase == "live" and state.progress == 1.0


def test_stream_detail_has_the_series_and_the_streams_alerts() -> None:
    state = DashboardState()
    explain = [{"feature": "JobHeldEvent", "observed": 9, "expected": 1.5, "share": 1.0}]
    state.apply_window({**score("s1", 1, 0), "features": {"JobHeldEvent": 9}, "events": 9,
                        "late": 0})  # fmt: skip
    state.apply_score(score("s1", 1, 90.0, explain))
    state.apply_alert(alert("open", 1), 1.0)
    state.apply_alert(alert("open", 1, "e" * 24, "other"), 1.0)
    detail = state.stream_detail("s1")
    assert detail is not None
    assert detail.state == "critical" and detail.score == 90.0 and detail.model == "m@1"
    assert [a.alert_id for a in detail.alerts] == [AID]
    assert detail.series.expected[0, 0] == pytest.approx(1.5)
    assert state.stream_detail("nope") is None


def test_a_resolved_alert_keeps_its_explanation_and_peak() -> None:
    state = DashboardState()
    state.apply_alert({**alert("open", 1), "score": 70.0}, 1.0)
    state.apply_alert({**alert("update", 2), "score": 95.0}, 2.0)
    state.apply_alert({**alert("resolved", 4), "score": 3.0, "explain": []}, 3.0)
    held = state.alerts[AID]
    assert (held.score, held.peak) == (3.0, 95.0)
    assert held.explain and held.explain[0]["feature"] == "JobHeldEvent"
