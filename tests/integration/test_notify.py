"""`gridalarm notify` on a real broker, to a real Alertmanager and a real HTTP receiver.

The alerts are written straight to the alerts topic (the worker's part is tested elsewhere;
tests/integration/test_silence_pipeline.py runs both): what is checked here is what notify
makes of them, and when it commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import wait_until
from routing_kit import (
    alertmanager,
    alertmanager_alerts,
    committed_offsets,
    notify_process,
    receiver,
    send_alerts,
)

from gridalarm.config import Settings
from gridalarm.messages import alert_id, validate
from gridalarm.timeutil import format_time, parse_time

pytestmark = pytest.mark.integration

SINCE = 1_767_600_000.0  # 2026-01-05T08:00:00Z
W = 60.0
MODEL = "baseline@2"


def alert(state: str, k: int, stream: str = "schedd:fife1", **fields: Any) -> dict[str, Any]:
    message = {
        "v": 1,
        "alert_id": alert_id(stream, SINCE, MODEL),
        "state": state,
        "stream": stream,
        "since": format_time(SINCE),
        "start": format_time(SINCE + k * W),
        "end": format_time(SINCE + (k + 1) * W),
        "score": 91.0 if state != "resolved" else 3.0,
        "severity": "critical",
        "explain": [{"feature": "JobHeldEvent", "observed": 400, "expected": 20.0, "share": 0.9}],
        "model": MODEL,
        **fields,
    }
    validate("alert", message)
    return message


def _in_alertmanager(url: str, aid: str) -> list[dict[str, Any]]:
    return [a for a in alertmanager_alerts(url) if a["labels"].get("alert_id") == aid]


def test_an_alert_fires_in_alertmanager_and_a_webhook_then_resolves(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    opened = alert("open", 1)
    aid = opened["alert_id"]
    quiet = alert("suppressed", 2, stream="schedd:fife9", silence="maint")
    with (
        alertmanager(tmp_path / "am") as am,
        receiver() as hook,
        notify_process(
            kafka_settings, tmp_path / "notify.log",
            "--to", f"alertmanager={am}", "--to", f"webhook={hook.url}", "--group", "g-fire",
        ),
    ):  # fmt: skip
        send_alerts(kafka_settings, [opened, quiet])
        wait_until(lambda: _in_alertmanager(am, aid), 60, "the alert in Alertmanager", 0.5)
        (firing,) = _in_alertmanager(am, aid)
        assert firing["status"]["state"] == "active"
        assert firing["labels"] == {
            "alertname": "gridalarm",
            "stream": "schedd:fife1",
            "severity": "critical",
            "model": MODEL,
            "alert_id": aid,
        }
        assert firing["annotations"]["score"] == "91"
        assert "JobHeldEvent 400 (expected 20)" in firing["annotations"]["explanation"]
        assert parse_time(firing["startsAt"]) == SINCE
        wait_until(lambda: hook.accepted(), 30, "the webhook to get the alert", 0.5)

        send_alerts(kafka_settings, [alert("update", 2), alert("resolved", 5)])
        # Alertmanager lists firing alerts only: a resolved one drops out of the list.
        wait_until(lambda: not _in_alertmanager(am, aid), 60, "Alertmanager to resolve it", 0.5)
        wait_until(lambda: len(hook.accepted()) == 3, 30, "the webhook to get 3 messages", 0.5)
        assert [m["state"] for m in hook.accepted()] == ["open", "update", "resolved"]
        assert hook.accepted()[0] == opened  # a webhook gets the alert message itself
        # The suppressed alert (written before the others) was never sent anywhere.
        assert all(m["stream"] == "schedd:fife1" for m in hook.accepted())
        # Everything handled is committed, the suppressed message included.
        wait_until(lambda: committed_offsets(kafka_settings, "g-fire")[0] == 4, 30, "commits")


def test_a_failing_receiver_gets_the_alert_once_it_recovers_and_nothing_is_committed_before(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    group = "g-retry"
    seen_while_failing: list[int | None] = []

    def record_commit() -> None:
        # Runs inside the receiver's failing request, while notify waits for the answer.
        seen_while_failing.append(committed_offsets(kafka_settings, group)[0])

    opened = alert("open", 1, stream="schedd:fife2")
    with (
        receiver(fail_first=3, on_failure=record_commit) as hook,
        notify_process(
            kafka_settings, tmp_path / "notify.log", "--to", f"webhook={hook.url}",
            "--group", group,
        ),
    ):  # fmt: skip
        offset = send_alerts(kafka_settings, [opened])
        wait_until(lambda: hook.accepted(), 60, "the receiver to accept the alert", 0.5)
        wait_until(
            lambda: committed_offsets(kafka_settings, group)[0] == offset + 1, 30, "the commit"
        )
        assert len(seen_while_failing) == 3
        assert all(c is None or c <= offset for c in seen_while_failing), seen_while_failing
        # One accepted delivery after three failures, all of the same message, none since.
        assert [r.status for r in hook.requests] == [503, 503, 503, 200]
        assert hook.accepted() == [opened]
        keys = {r.headers["Idempotency-Key"] for r in hook.requests}
        assert keys == {f"{opened['alert_id']}:open:{opened['start']}"}
