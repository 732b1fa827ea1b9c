"""What the notifier routes and what it skips (gridalarm.stream.routing.notifier).

Its consumer loop, commits included, is tested on a real broker in
tests/integration/test_notify.py.
"""

from __future__ import annotations

import orjson
import pytest

from gridalarm.messages import alert_id
from gridalarm.stream.routing.notifier import RecentKeys, routable

ALERT = {
    "v": 1,
    "alert_id": alert_id("schedd:fife1", 1_767_600_000.0, "baseline@2"),
    "state": "open",
    "stream": "schedd:fife1",
    "since": "2026-01-05T08:00:00Z",
    "start": "2026-01-05T08:00:00Z",
    "end": "2026-01-05T08:01:00Z",
    "score": 70.0,
    "severity": "warning",
    "explain": [],
    "model": "baseline@2",
}


@pytest.mark.parametrize("state", ["open", "update", "resolved"])
def test_open_update_and_resolved_alerts_are_routed(state: str) -> None:
    alert, why = routable(orjson.dumps({**ALERT, "state": state}))
    assert alert == {**ALERT, "state": state} and why == ""


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (orjson.dumps({**ALERT, "state": "suppressed", "silence": "m1"}), "suppressed"),
        (b"{not json", "not an alert"),
        (b"[1, 2]", "not a JSON object"),
        (None, "not a JSON object"),
        (orjson.dumps({**ALERT, "state": "closed"}), "not an alert"),
        (orjson.dumps({"v": 1, "stream": "s", "start": "x"}), "not an alert"),
    ],
)
def test_suppressed_alerts_and_foreign_messages_are_not_routed(value: bytes, why: str) -> None:
    alert, reason = routable(value)
    assert alert is None and reason.startswith(why)


def test_recent_keys_forget_the_oldest_beyond_their_size() -> None:
    recent = RecentKeys(2)
    for key in ("a", "b", "a", "c"):
        recent.add(key)
    assert "a" in recent and "c" in recent and "b" not in recent
