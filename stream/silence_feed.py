"""The worker's copy of the silences topic: read to its end first, then followed live.

Every worker needs every silence, whichever partitions of the events topic it holds, so the
feed reads all partitions of ``<prefix>.silences`` with a plain consumer that is in no consumer
group (a Faust agent would join the worker's group and receive the topic's one partition on one
worker only). A Faust ``GlobalTable`` would give every worker the whole topic too, but it
couples the topic to a changelog's naming and partition checks and has had recovery bugs in
faust-streaming; this reader is short and does only what is needed.

:attr:`SilenceFeed.ready` is set once the topic has been read up to the end offsets seen at
start; the worker routes no alert before then, so a worker that starts never mis-states an
alert for a silence that existed before it. After that, a silence added or removed reaches
the worker within about a second, and applies to windows it closes from then on.
"""

from __future__ import annotations

import asyncio
import logging

from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.stream.silences import SilenceError, Silences
from gridalarm.timeutil import format_time

log = logging.getLogger("gridalarm.silences")

POLL_MS = 500
RETRY_S = 2.0
ASSIGN_WAIT_S = 10.0  # for the topic's metadata after start


class SilenceFeed:
    """The current silences (:attr:`silences`) of one topic, kept up to date by :meth:`run`."""

    def __init__(self, bootstrap: KafkaTarget, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.silences = Silences()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnect (and re-read it) after a Kafka error."""
        from aiokafka.errors import KafkaError

        while True:
            try:
                await self._follow()
            except (KafkaError, OSError, SilenceTopicMissing) as err:
                log.warning("silences topic %s: %s; reading it again in %gs", self.topic, err,
                            RETRY_S)  # fmt: skip
                await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        # Subscribed without a group id, aiokafka assigns this consumer every partition of the
        # topic, and starts each at the beginning (no committed offsets without a group).
        consumer = AIOKafkaConsumer(
            self.topic,
            **access_of(self.bootstrap).aiokafka(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="gridalarm-silences",
        )
        await consumer.start()
        try:
            for _ in range(int(ASSIGN_WAIT_S / 0.1)):
                if consumer.assignment():
                    break
                await asyncio.sleep(0.1)
            else:
                raise SilenceTopicMissing(f"no such topic at {self.bootstrap}")
            tps = sorted(consumer.assignment())
            ends = await consumer.end_offsets(tps)
            # A re-read after an error builds a fresh set and swaps it in only when complete,
            # so the worker keeps using the last complete one meanwhile.
            fresh = Silences()
            behind = {tp for tp in tps if ends[tp] > 0}
            while True:
                batches = await consumer.getmany(timeout_ms=POLL_MS)
                for records in batches.values():
                    for record in records:
                        self._apply(fresh, record.key, record.value)
                if behind:
                    for tp in list(behind):
                        if await consumer.position(tp) >= ends[tp]:
                            behind.discard(tp)
                    if behind:
                        continue
                if fresh is not self.silences:
                    self.silences = fresh
                    log.info("silences: %d read from %s", len(fresh), self.topic)
                    self.ready.set()
        finally:
            await consumer.stop()

    def _apply(self, silences: Silences, key: bytes | None, value: bytes | None) -> None:
        try:
            silence = silences.apply(key, value)
        except SilenceError as err:
            # Written by hand or by a newer version: skipping it is all a worker can do.
            log.warning("silences topic %s: message %r skipped: %s", self.topic, key, err)
            return
        if silences is not self.silences:
            return  # still catching up: the summary is logged when the read is complete
        if silence is None:
            log.info("silence %s removed", (key or b"").decode("utf-8", "replace"))
        else:
            log.info("silence %s on %s from %s until %s", silence.id, silence.stream,
                     format_time(silence.start), format_time(silence.until))  # fmt: skip


class SilenceTopicMissing(RuntimeError):
    """The silences topic does not exist (yet)."""
