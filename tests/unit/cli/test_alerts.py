"""`alerts tail`'s one-line format (gridalarm.cli.alerts.format_alert)."""

from __future__ import annotations

from gridalarm.cli.alerts import format_alert

ALERT = {
    "v": 1,
    "alert_id": "9876b00c2ebe0123456789ab",
    "state": "open",
    "stream": "schedd:fife1",
    "since": "2026-01-05T08:00:00Z",
    "start": "2026-01-05T08:01:00Z",
    "end": "2026-01-05T08:02:00Z",
    "score": 70.0,
    "severity": "warning",
    "explain": [{"feature": "JobHeldEvent", "observed": 40, "expected": 2.0, "share": 0.9}],
    "model": "baseline@2",
}


def test_an_alert_is_one_line_with_its_short_id() -> None:
    line = format_alert(ALERT)
    assert "\n" not in line
    assert "OPEN" in line and "JobHeldEvent 40 (expected 2)" in line
    assert line.endswith("id=9876b00c2ebe model=baseline@2")


def test_a_suppressed_alert_names_its_silence() -> None:
    line = format_alert({**ALERT, "state": "suppressed", "silence": "upgrade-dec"})
    assert "SUPPRESSED" in line and line.endswith("silence=upgrade-dec")
