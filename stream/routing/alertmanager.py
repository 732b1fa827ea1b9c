"""An alert message as Prometheus Alertmanager's v2 API takes it (``POST /api/v2/alerts``).

Alertmanager identifies an alert by its label set, so each incident carries its ``alert_id``
as a label: a repeated message updates the same Alertmanager alert, never pages twice.

``startsAt`` is the incident's start (``since``). ``endsAt`` closes the page: a resolved alert
gets the end of its last window (at most now), and Alertmanager marks it resolved. An open
alert needs an ``endsAt`` in the future: Alertmanager expects clients to re-send firing alerts
(Prometheus does every minute) and resolves an alert whose ``endsAt`` has passed, or, without
one, ``resolve_timeout`` (5 minutes by default) after it last heard of it. gridalarm sends one
message per window, so an open alert's ``endsAt`` is now + :meth:`AlertmanagerConfig.expiry`:
long enough to outlast the quiet windows of an ongoing incident (the worker's ``resolve_after``
normal windows emit nothing), short enough that an incident whose worker died does not page
forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridalarm.timeutil import format_time, parse_time

ALERTNAME = "gridalarm"


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    """How long a firing alert lasts in Alertmanager without news."""

    expire_after: float | None = None  # seconds; None: derived from the alert's window
    resolve_after: int = 2  # the worker's setting: quiet windows before an incident resolves
    min_expiry: float = 3600.0

    def expiry(self, alert: dict[str, Any]) -> float:
        """Seconds after now at which Alertmanager resolves ``alert`` if nothing follows it."""
        if self.expire_after is not None:
            return self.expire_after
        window = parse_time(alert["end"]) - parse_time(alert["start"])
        return max(self.min_expiry, (self.resolve_after + 2) * window)


def explain_summary(explain: list[dict[str, Any]], top: int = 3) -> str:
    """``JobHeldEvent 400 (expected 20), ...``: the features that made the score."""
    return ", ".join(
        f"{item['feature']} {item['observed']:g} (expected {item['expected']:g})"
        for item in explain[:top]
    )


def alertmanager_alert(
    alert: dict[str, Any], now: float, config: AlertmanagerConfig
) -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` body for an open, update or resolved alert."""
    if alert["state"] not in ("open", "update", "resolved"):
        raise ValueError(f"alert state {alert['state']!r} is not routed")
    since = parse_time(alert["since"])
    if alert["state"] == "resolved":
        end = parse_time(alert["end"])
        ends = min(end, now)
        if ends <= since:  # a clock behind event time: Alertmanager refuses endsAt <= startsAt
            ends = max(end, since + 1.0)
    else:
        ends = max(now + config.expiry(alert), since + 1.0)
    explanation = explain_summary(alert.get("explain", []))
    annotations = {
        "summary": f"{alert['stream']}: anomaly score {alert['score']:g} since {alert['since']}",
        "score": f"{alert['score']:g}",
        "window": f"{alert['start']} .. {alert['end']}",
    }
    if explanation:
        annotations["explanation"] = explanation
    return {
        "labels": {
            "alertname": ALERTNAME,
            "stream": alert["stream"],
            "severity": alert["severity"],
            "model": alert["model"],
            "alert_id": alert["alert_id"],
        },
        "annotations": annotations,
        "startsAt": format_time(since),
        "endsAt": format_time(ends),
    }
