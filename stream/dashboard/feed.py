"""The dashboard's Kafka reader: back-fill the last hours of the scores, windows and alerts
topics, read the whole labels topic, then follow all of them live.

It assigns itself every partition and commits nothing, rather than joining a consumer group:
each dashboard process must see every stream (in a group, two dashboards would split the
partitions and each show half the pool), and it never resumes from a committed offset because
every start back-fills by time instead. Being in no group, it takes nothing from the worker's
or any other reader's group either.

The back-fill seeks by record timestamp (``offsets_for_times``). Those are the times the worker
published each record, wall-clock time, not the windows' event times, so "the last 6 hours"
means what the pipeline produced in the last 6 hours even when it replays old history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.stream.dashboard.state import DashboardState

log = logging.getLogger("gridalarm.dashboard")

TIMED_KINDS = ("scores", "windows", "alerts")  # back-filled by time
WHOLE_KINDS = ("labels",)  # compacted: the latest label per alert is the state, read it all
YIELD_EVERY = 500  # records between yields to the web server during a big back-fill


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Where the feed reads from."""

    bootstrap: KafkaTarget
    topics: dict[str, str]  # kind (scores, windows, alerts, labels) -> topic name
    backfill: float  # seconds of history to read at start (by record time)


class Feed:
    """Reads the topics into a :class:`DashboardState` until cancelled."""

    def __init__(
        self, config: FeedConfig, state: DashboardState, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.state = state
        self.clock = clock
        self._kind_of = {name: kind for kind, name in config.topics.items()}

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **access_of(self.config.bootstrap).aiokafka(),
            group_id=None,
            enable_auto_commit=False,
            client_id="gridalarm-dashboard",
            # Only reached when retention removed what the back-fill pointed at.
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = await self._assign(consumer)
            pending = await self._seek(consumer, partitions)
            await self._follow(consumer, pending)
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # The admin client, because a consumer that assigns itself partitions has no metadata
        # for a topic yet: its partitions_for_topic answers None even after topics().
        admin = AIOKafkaAdminClient(**access_of(self.config.bootstrap).aiokafka())
        await admin.start()
        try:
            described = await admin.describe_topics(list(self.config.topics.values()))
        finally:
            await admin.close()
        found = {
            t["topic"]: [p["partition"] for p in t["partitions"]]
            for t in described
            if t.get("error_code") == 0
        }
        partitions: list[TopicPartition] = []
        for kind, name in self.config.topics.items():
            ids = found.get(name)
            if not ids:
                log.warning("topic %s (%s) does not exist; the dashboard shows no %s", name,
                            kind, kind)  # fmt: skip
                continue
            partitions.extend(TopicPartition(name, p) for p in sorted(ids))
        if not partitions:
            raise RuntimeError(f"none of the topics {sorted(self._kind_of)} exists")
        consumer.assign(partitions)
        return partitions

    async def _seek(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Position every partition; returns the back-fill still to read, (start, end) each."""
        timed = [tp for tp in partitions if self._kind_of[tp.topic] in TIMED_KINDS]
        whole = [tp for tp in partitions if self._kind_of[tp.topic] in WHOLE_KINDS]
        if whole:
            await consumer.seek_to_beginning(*whole)
        if timed:
            since_ms = int((self.clock() - self.config.backfill) * 1000)
            found = await consumer.offsets_for_times({tp: since_ms for tp in timed})
            newer = [tp for tp in timed if found.get(tp) is None]
            for tp in timed:
                if found.get(tp) is not None:
                    consumer.seek(tp, found[tp].offset)
            if newer:  # nothing at or after that time: start at the end
                await consumer.seek_to_end(*newer)
        ends = await consumer.end_offsets(partitions)
        pending = {}
        for tp in partitions:
            start = await consumer.position(tp)
            if start < ends[tp]:
                pending[tp] = (start, ends[tp])
        total = sum(end - start for start, end in pending.values())
        log.info("back-filling %d messages from %d partitions", total, len(pending))
        self.state.set_progress(0.0, live=not pending)
        return pending

    async def _follow(
        self, consumer: AIOKafkaConsumer, pending: dict[TopicPartition, tuple[int, int]]
    ) -> None:
        total = sum(end - start for start, end in pending.values()) or 1
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            applied = 0
            for tp, records in batches.items():
                kind = self._kind_of[tp.topic]
                for record in records:
                    self._apply(kind, record)
                    applied += 1
                    if applied % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            if pending:
                for tp in list(pending):
                    # position, not the last offset read: a compacted topic's end may sit
                    # past its last record.
                    if await consumer.position(tp) >= pending[tp][1]:
                        del pending[tp]
                left = 0
                for tp, (_, end) in pending.items():
                    left += end - await consumer.position(tp)
                self.state.set_progress(1.0 - left / total, live=not pending)
                if not pending:
                    log.info("back-fill read; following live")

    def _apply(self, kind: str, record) -> None:  # record: aiokafka ConsumerRecord
        self.state.consumed[kind] += 1
        if record.value is None:
            if kind == "labels" and record.key:  # a tombstone withdraws a label
                self.state.apply_label(None, alert_id=record.key.decode("utf-8", "replace"))
            return
        try:
            message = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            self.state.skipped += 1
            return
        self.state.apply(kind, message, record.timestamp / 1000.0)
