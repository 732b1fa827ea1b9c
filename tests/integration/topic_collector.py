"""A topic read incrementally while producers write to it: what the producer tests wait on.

Besides the messages so far, it keeps the newest heartbeat time seen on each partition. A
producer sends a partition's events before the heartbeat that says its source holds nothing
earlier, so once every partition has a heartbeat at or past ``t``, everything the producer
read before ``t`` is in hand: an observable point at which "nothing more may come" can be
checked, instead of a fixed sleep.

Producers coalesce by default: a message may count ``n`` events and carry their ids in
``attrs.eids``. :func:`event_ids` and :func:`tally` read messages as the events they count.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from gridalarm.config import Settings
from gridalarm.timeutil import parse_time


def event_ids(message: dict[str, Any]) -> list[str]:
    """The ids of the events a message counts: ``attrs.eid``, or a coalesced one's ``eids``."""
    attrs = message.get("attrs") or {}
    return [attrs["eid"]] if "eid" in attrs else list(attrs.get("eids", []))


def tally(messages: list[dict[str, Any]], *fields: str) -> Counter[tuple]:
    """Events (each message counting its ``n``) by the values of ``fields``."""
    counts: Counter[tuple] = Counter()
    for message in messages:
        counts[tuple(message[f] for f in fields)] += message.get("n", 1)
    return counts


class TopicCollector:
    """Every message of one topic of ``settings`` so far, from the beginning."""

    def __init__(self, settings: Settings, kind: str = "events") -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False)
        self.partitions = [
            TopicPartition(settings.topic(kind), p) for p in range(settings.partitions)
        ]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.messages: list[dict[str, Any]] = []
        self.heartbeat_ts: dict[int, float] = {}

    def poll(self) -> None:
        for tp, records in self.consumer.poll(timeout_ms=200, max_records=100_000).items():
            for record in records:
                message = orjson.loads(record.value)
                self.messages.append(message)
                if message.get("heartbeat"):
                    ts = parse_time(message["ts"])
                    self.heartbeat_ts[tp.partition] = max(
                        ts, self.heartbeat_ts.get(tp.partition, ts)
                    )

    def events(self) -> list[dict[str, Any]]:
        """The messages so far that are not heartbeats."""
        self.poll()
        return [m for m in self.messages if not m.get("heartbeat")]

    def wait_for(self, count: int, timeout: float = 90.0) -> list[dict]:
        """The messages once they count ``count`` events (each counting its ``n``)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events()
            have = sum(m.get("n", 1) for m in got)
            if have >= count:
                return got
            assert time.monotonic() < deadline, f"{have} of {count} arrived"

    def wait_for_heartbeats(self, ts: float, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The events once every partition has had a heartbeat at or past event time ``ts``."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            behind = [
                tp.partition
                for tp in self.partitions
                if self.heartbeat_ts.get(tp.partition, float("-inf")) < ts
            ]
            if not behind:
                return self.events()
            assert time.monotonic() < deadline, f"no heartbeat at {ts} on partitions {behind}"

    def read_to_end(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The events once the topic is read up to its end as it is now (for a producer that
        has stopped: everything it sent)."""
        ends = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + timeout
        while any(self.consumer.position(tp) < end for tp, end in ends.items()):
            self.poll()
            assert time.monotonic() < deadline, "the topic was not read to its end"
        return self.events()

    def close(self) -> None:
        self.consumer.close()
