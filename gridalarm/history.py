"""Read a history topic (windows or scores) back: training and evaluation replay from Kafka.

The windows topic is the pool's history: every closed window of every stream, exactly as the
worker saw it. ``train --topic`` learns from it and ``evaluate --topic`` scores it again with
another model, so a model can be judged on the pool's own past before anyone trusts it.

A window re-published after a worker restart carries identical values (the pipeline's
guarantee), so the reader keeps one message per (stream, start).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.timeutil import parse_time


class HistoryError(ValueError):
    """The topic is missing or holds no usable messages; one line for the operator."""


@dataclass(frozen=True, slots=True)
class HistoryRange:
    """Which part of a topic to read: event-time bounds on the window start (None: open)."""

    since: float | None = None
    until: float | None = None

    def holds(self, start: float) -> bool:
        return (self.since is None or start >= self.since) and (
            self.until is None or start < self.until
        )


def read_topic(bootstrap: KafkaTarget, topic: str, idle_ms: int = 3000) -> Iterator[dict[str, Any]]:
    """Every message of ``topic`` from the beginning to the end offsets seen at the start."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **access_of(bootstrap).kafka_python(),
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise HistoryError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = consumer.poll(timeout_ms=idle_ms, max_records=10_000)
            if not batch:
                break  # the end offsets were not reached in time: the topic shrank (retention)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        yield orjson.loads(record.value)
                if records and records[-1].offset >= end[tp] - 1:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


def read_windows(
    bootstrap: KafkaTarget, topic: str, span: HistoryRange | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Window messages per stream, in start order, one per (stream, start)."""
    span = span or HistoryRange()
    seen: dict[str, dict[float, dict[str, Any]]] = {}
    for message in read_topic(bootstrap, topic):
        try:
            start = parse_time(message["start"])
            stream = str(message["stream"])
            message["features"]
        except (KeyError, TypeError, ValueError):
            continue  # not a window message: ignore rather than guess
        if span.holds(start):
            seen.setdefault(stream, {})[start] = message
    if not seen:
        raise HistoryError(f"topic {topic!r} holds no window messages in the range asked for")
    return {stream: [rows[k] for k in sorted(rows)] for stream, rows in seen.items()}
