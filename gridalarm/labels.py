"""Feedback labels: an operator's verdict on an alert, kept on the compacted labels topic.

A label is keyed by its ``alert_id``, so the topic keeps the latest verdict per alert (an
operator who changes their mind overwrites the earlier one). The CLI (``gridalarm label``) and
the dashboard write labels through :func:`send_label`; ``train`` and ``evaluate`` read them
back with :func:`read_labels`.

A label names an alert; what it says about the data is the alert's incident: its stream and
the span from ``since`` to the end of its last anomalous window. :func:`incidents` works those
out from the alert messages (the alerts topic is the authority: a label given while an
incident was still open carries the span known then); the label's own ``stream``, ``since``
and ``end`` are the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.messages import VERSION, InvalidMessage, dumps, validate
from gridalarm.timeutil import format_time, parse_time

Verdict = Literal["confirmed", "false-positive"]
VERDICTS: tuple[str, ...] = ("confirmed", "false-positive")


class LabelError(ValueError):
    """A label that cannot be sent; the message is one line for the operator."""


def label_message(
    alert_id: str,
    label: str,
    by: str,
    *,
    stream: str | None = None,
    since: float | None = None,
    end: float | None = None,
    model: str | None = None,
    note: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """A label as it goes on the wire; raises :class:`LabelError` for a bad id or verdict."""
    if label not in VERDICTS:
        raise LabelError(f"label {label!r}: use one of {', '.join(VERDICTS)}")
    message: dict[str, Any] = {
        "v": VERSION,
        "alert_id": alert_id,
        "label": label,
        "at": format_time(time.time() if at is None else at),
        "by": by,
    }
    optional = {
        "stream": stream,
        "since": None if since is None else format_time(since),
        "end": None if end is None else format_time(end),
        "model": model,
        "note": note,
    }
    message.update({k: v for k, v in optional.items() if v is not None})
    try:
        validate("label", message)
    except InvalidMessage as err:
        raise LabelError(f"label for alert {alert_id!r}: {err.detail}") from None
    return message


async def send_label(bootstrap: KafkaTarget, topic: str, message: dict[str, Any]) -> None:
    """Write one label (keyed by its alert id) and wait until the broker acknowledged it."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(
        **access_of(bootstrap).aiokafka(), enable_idempotence=True, acks="all"
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, dumps(message), key=message["alert_id"].encode())
    except KafkaError as err:
        raise LabelError(f"cannot write the label to {topic} at {bootstrap}: {err}") from None
    finally:
        await producer.stop()


@dataclass(frozen=True, slots=True)
class Incident:
    """What the alert messages of one ``alert_id`` say about its incident."""

    alert_id: str
    stream: str
    since: float
    end: float  # end of the last anomalous window seen (of the resolving one if none other)
    model: str


def incidents(alerts: Iterable[dict[str, Any]]) -> dict[str, Incident]:
    """Alert id → its incident, from alert messages in any order (repeats are harmless)."""
    found: dict[str, Incident] = {}
    resolved_only: dict[str, Incident] = {}
    for alert in alerts:
        try:
            incident = Incident(
                alert["alert_id"],
                alert["stream"],
                parse_time(alert["since"]),
                parse_time(alert["end"]),
                alert["model"],
            )
            resolving = alert["state"] == "resolved"
        except (KeyError, TypeError, ValueError):
            continue  # not an alert message
        # A resolution comes after `resolve_after` normal windows: its end is not the
        # incident's. It stands in only for an incident whose other messages are gone.
        table = resolved_only if resolving else found
        known = table.get(incident.alert_id)
        if known is None or incident.end > known.end:
            table[incident.alert_id] = incident
    return {**resolved_only, **found}


def find_alert(alert_id: str, known: dict[str, Incident]) -> Incident | None:
    """The incident of ``alert_id``, or of the one alert whose id starts with it (``alerts
    tail`` shows 12 characters); raises :class:`LabelError` when a prefix is ambiguous."""
    if alert_id in known:
        return known[alert_id]
    hits = [incident for key, incident in known.items() if key.startswith(alert_id)]
    if len(hits) > 1:
        raise LabelError(f"alert id {alert_id!r} is ambiguous: {len(hits)} alerts start with it")
    return hits[0] if hits else None


def read_labels(bootstrap: KafkaTarget, topic: str) -> dict[str, dict[str, Any]]:
    """Alert id → its latest label on ``topic``, read to the end offsets seen at the start.

    Messages that are not valid labels (written by hand, or by a newer version) are skipped: a
    stray message must not stop a training run that has hundreds of good labels.
    """
    import orjson

    from gridalarm.compacted import read_compacted

    labels: dict[str, dict[str, Any]] = {}
    for key, value in read_compacted(bootstrap, topic).items():
        try:
            message = orjson.loads(value)
            validate("label", message)
        except (orjson.JSONDecodeError, InvalidMessage):
            continue
        if message["alert_id"] == key.decode("utf-8", "replace"):
            labels[message["alert_id"]] = message
    return labels


__all__ = [
    "VERDICTS",
    "Incident",
    "LabelError",
    "Verdict",
    "find_alert",
    "incidents",
    "label_message",
    "read_labels",
    "send_label",
]
