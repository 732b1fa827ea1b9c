"""Alert messages → Alertmanager v2 alerts (gridalarm.stream.routing.alertmanager)."""

from __future__ import annotations

from typing import Any

import pytest

from gridalarm.messages import alert_id
from gridalarm.stream.routing.alertmanager import (
    AlertmanagerConfig,
    alertmanager_alert,
    explain_summary,
)
from gridalarm.timeutil import format_time, parse_time

SINCE = 1_767_600_000.0
WINDOW = 60.0
NOW = SINCE + 600.0
EXPLAIN = [
    {"feature": "JobHeldEvent", "observed": 400, "expected": 20.0, "share": 0.9},
    {"feature": "ExecuteEvent", "observed": 3, "expected": 35.25, "share": 0.05},
]


def alert(state: str = "open", k: int = 2, **fields: Any) -> dict[str, Any]:
    message = {
        "v": 1,
        "alert_id": alert_id("schedd:fife1", SINCE, "lstm-forecast@60s-1"),
        "state": state,
        "stream": "schedd:fife1",
        "since": format_time(SINCE),
        "start": format_time(SINCE + k * WINDOW),
        "end": format_time(SINCE + (k + 1) * WINDOW),
        "score": 87.5,
        "severity": "critical",
        "explain": EXPLAIN,
        "model": "lstm-forecast@60s-1",
    }
    return {**message, **fields}


def test_labels_identify_the_incident_and_annotations_explain_it() -> None:
    am = alertmanager_alert(alert(), NOW, AlertmanagerConfig())
    assert am["labels"] == {
        "alertname": "gridalarm",
        "stream": "schedd:fife1",
        "severity": "critical",
        "model": "lstm-forecast@60s-1",
        "alert_id": alert()["alert_id"],
    }
    assert am["annotations"]["score"] == "87.5"
    assert am["annotations"]["explanation"] == (
        "JobHeldEvent 400 (expected 20), ExecuteEvent 3 (expected 35.25)"
    )
    assert "schedd:fife1" in am["annotations"]["summary"]
    assert am["startsAt"] == format_time(SINCE)
    # Labels and annotations are all strings, as Alertmanager requires.
    assert all(isinstance(v, str) for v in [*am["labels"].values(), *am["annotations"].values()])


def test_an_update_is_the_same_alertmanager_alert_with_news() -> None:
    config = AlertmanagerConfig()
    opened = alertmanager_alert(alert("open", k=1), NOW, config)
    updated = alertmanager_alert(alert("update", k=5, score=99.0), NOW + 240, config)
    assert opened["labels"] == updated["labels"] and opened["startsAt"] == updated["startsAt"]
    assert updated["annotations"]["score"] == "99"


def test_a_firing_alert_ends_in_the_future_by_the_expiry() -> None:
    # Default: the larger of an hour and resolve_after + 2 windows, counted from now.
    am = alertmanager_alert(alert(), NOW, AlertmanagerConfig(resolve_after=2))
    assert parse_time(am["endsAt"]) == NOW + 3600.0
    hourly = alert(start=format_time(SINCE), end=format_time(SINCE + 3600.0))
    am = alertmanager_alert(hourly, NOW, AlertmanagerConfig(resolve_after=3))
    assert parse_time(am["endsAt"]) == NOW + 5 * 3600.0
    am = alertmanager_alert(alert(), NOW, AlertmanagerConfig(expire_after=120.0))
    assert parse_time(am["endsAt"]) == NOW + 120.0


def test_a_resolved_alert_ends_at_its_last_window_so_alertmanager_closes_it() -> None:
    am = alertmanager_alert(alert("resolved", k=4), NOW, AlertmanagerConfig())
    assert parse_time(am["endsAt"]) == SINCE + 5 * WINDOW <= NOW
    # A window ending after the wall clock (a replay ahead of time): ends now, still resolved.
    am = alertmanager_alert(alert("resolved", k=20), NOW, AlertmanagerConfig())
    assert parse_time(am["endsAt"]) == NOW


def test_ends_is_always_after_starts_which_alertmanager_insists_on() -> None:
    # A clock behind the incident: "now" is before since.
    early = SINCE - 100.0
    resolved = alertmanager_alert(alert("resolved"), early, AlertmanagerConfig())
    assert parse_time(resolved["endsAt"]) > parse_time(resolved["startsAt"])
    firing = alertmanager_alert(alert(), early - 10_000, AlertmanagerConfig(expire_after=1.0))
    assert parse_time(firing["endsAt"]) > parse_time(firing["startsAt"])


def test_suppressed_alerts_are_not_for_alertmanager() -> None:
    with pytest.raises(ValueError, match="not routed"):
        alertmanager_alert(alert("suppressed", silence="m1"), NOW, AlertmanagerConfig())


def test_explain_summary_lists_the_top_features() -> None:
    assert explain_summary([]) == ""
    many = [{**EXPLAIN[0], "feature": f"f{i}"} for i in range(5)]
    assert explain_summary(many).count("expected") == 3
