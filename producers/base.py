"""What every checkpointed producer shares: send each event once, dead-letter, checkpoint on acks.

A producer reads a source (event logs, Elasticsearch, a plug-in probe) and subclasses
:class:`CheckpointedProducer`, which does the Kafka side the same way for all of them:

- **Send once.** :meth:`~CheckpointedProducer.emit` queues an event on the
  :class:`~gridalarm.producers.sink.EventSink` (idempotent producer, acks=all, keyed by stream,
  batched). An event that a crashed run delivered after its last checkpoint is found again on
  the events topic at start (:class:`TopicReader`, by ``attrs.eid``) and is not sent twice.
- **Checkpoint after delivery.** :meth:`~CheckpointedProducer.commit` flushes the sinks (the
  broker acknowledged everything queued) and only then asks the subclass to save its read
  position, with the events topic's end offsets at that moment: everything sent after the
  checkpoint lies past them, which is where a restarted producer looks for it.
- **Dead letters.** What the source cannot turn into an event goes to ``<prefix>.deadletter``
  with a reason, and the producer goes on.
- **Heartbeats and shutdown.** The sink sends heartbeats on the subclass's :meth:`clock`; a
  cancelled run (Ctrl-C, SIGTERM) still commits its last checkpoint; a one-shot run ends with
  the heartbeat that closes its last window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridalarm.config import Settings
from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.messages import deadletter_message, dumps
from gridalarm.producers.replay import final_heartbeat_time
from gridalarm.producers.sink import EventSink, SinkError
from gridalarm.producers.warn import Warn, no_warning


class TopicReader:
    """Reads the events topic back: end offsets, and the event ids written past some offsets.

    How a restarted producer keeps a crash from duplicating events (see the module docstring).
    """

    def __init__(self, bootstrap: KafkaTarget, topic: str, partitions: Iterable[int]) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        self.topic = topic
        self._tps = [TopicPartition(topic, p) for p in partitions]
        self._consumer = AIOKafkaConsumer(
            **access_of(bootstrap).aiokafka(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )

    async def start(self) -> None:
        from aiokafka.errors import KafkaError

        try:
            await self._consumer.start()
        except KafkaError as err:
            await self._consumer.stop()
            raise SinkError(f"cannot read {self.topic}: {err}") from None

    async def stop(self) -> None:
        await self._consumer.stop()

    async def ends(self) -> dict[int, int]:
        """The end offset of each partition now."""
        offsets = await self._consumer.end_offsets(self._tps)
        return {tp.partition: offset for tp, offset in offsets.items()}

    async def event_ids_since(self, since: Mapping[int, int], timeout: float = 120.0) -> set[str]:
        """``attrs.eid`` (or a coalesced message's ``attrs.eids``) of every event written at or
        after ``since`` (per partition)."""
        import orjson

        ends = await self.ends()
        todo = {tp for tp in self._tps if ends[tp.partition] > since.get(tp.partition, 0)}
        found: set[str] = set()
        if not todo:
            return found
        consumer = self._consumer
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, since.get(tp.partition, 0))
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise SinkError(f"could not read {self.topic} back within {timeout:.0f}s")
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for record in records:
                    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                        attrs = orjson.loads(record.value).get("attrs", {})
                        eid = attrs.get("eid")
                        if isinstance(eid, str):
                            found.add(eid)
                        # A coalesced message carries the ids of all the events it counts.
                        eids = attrs.get("eids")
                        if isinstance(eids, list):
                            found.update(eid for eid in eids if isinstance(eid, str))
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp.partition]:
                    todo.discard(tp)
        consumer.unsubscribe()
        return found


@dataclass(slots=True)
class ProducerStats:
    """What a producer run did; subclasses add their own counters."""

    events: int = 0  # messages sent
    deadletters: int = 0
    duplicates: int = 0  # delivered before a crash, found on the topic, not sent again
    heartbeats: int = 0
    checkpoints: int = 0
    checkpointed_at: float | None = None  # wall-clock time of the last checkpoint
    resumed: bool = False
    stopped: bool = False
    final_heartbeat_ts: float | None = None
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a producer's messages and checkpoints go.

    ``resumed_ends`` are the events topic's end offsets saved in the checkpoint a restarted
    producer resumes from (None on a first run): events past them may have been delivered by
    the run that crashed. ``checkpoint_path`` None: no checkpoint, no read-back.
    """

    settings: Settings
    sink: EventSink
    deadletters: EventSink | None = None
    checkpoint_path: Path | None = None
    resumed_ends: Mapping[int, int] | None = None
    resumed: bool = False
    checkpoint_interval: float = 1.0
    warn: Warn = no_warning


class CheckpointedProducer(ABC):
    """Base of the producers: subclasses read their source in :meth:`produce` and save their
    position in :meth:`save_checkpoint`; this class does the rest (see the module docstring)."""

    stats: ProducerStats
    # Errors after which the run ends without a last checkpoint: delivery failed (what was
    # queued may be lost, so the position must not move), or the checkpoint itself cannot be
    # written. Subclasses add theirs.
    fatal: tuple[type[Exception], ...] = (SinkError,)

    def __init__(self, delivery: Delivery, stats: ProducerStats | None = None) -> None:
        self.delivery = delivery
        self.sink = delivery.sink
        self.warn = delivery.warn
        self.stats = stats if stats is not None else ProducerStats()
        self.stats.resumed = delivery.resumed
        self._topic: TopicReader | None = None
        # Ids delivered by a crashed run and not met again yet, and the offsets they were
        # searched from: until the source is read past them, checkpoints keep that start.
        self.skip: set[str] = set()
        self._skip_from: dict[int, int] | None = None
        self._next_commit = 0.0

    # -- what a subclass provides ---------------------------------------------------------

    @abstractmethod
    async def produce(self, stop: asyncio.Event | None) -> None:
        """Read the source and :meth:`emit` its events; return when done (one-shot) or when
        ``stop`` is set (follow). Call :meth:`maybe_commit` between batches."""

    @abstractmethod
    def save_checkpoint(self, path: Path, kafka_ends: dict[int, int] | None) -> None:
        """Save the position of everything emitted so far (all of it is delivered now)."""

    @property
    def follows(self) -> bool:
        """True when the run reads on until stopped (no final heartbeat then)."""
        return False

    def clock(self) -> float | None:
        """Event time before which the source holds nothing more (heartbeats), if known."""
        return None

    def finish(self) -> None:
        """Called once the run ends, before the stats are final (e.g. to add counters)."""
        return None

    # -- what a subclass uses -------------------------------------------------------------

    async def emit(self, message: dict[str, Any], ts: float | None, eid: str | None) -> bool:
        """Send ``message`` unless a crashed run delivered it already; True when sent."""
        if eid is not None and eid in self.skip:
            self.skip.discard(eid)
            self.stats.duplicates += 1
            return False
        await self.sink.send(message, ts)
        self.stats.events += 1
        return True

    async def dead_letter(
        self,
        raw: bytes | None,
        reason: str,
        detail: str,
        *,
        origin: str,
        where: str,
        offset: int = 0,
        stream: str | None = None,
    ) -> None:
        """Dead-letter what the source could not turn into an event, with a warning line.

        ``origin`` stands for the dead letter's source topic (``file:EventLog``, ``es:index``),
        ``offset`` for the place in it; ``where`` names the item in the warning.
        """
        self.stats.deadletters += 1
        self.warn(f"{where}: {reason}: {detail}; dead-lettered")
        if self.delivery.deadletters is None:
            return
        message = deadletter_message(
            raw, reason, detail, topic=origin, partition=0, offset=offset, stream=stream
        )
        key = stream.encode() if stream else None
        await self.delivery.deadletters.send_raw(dumps(message), key)

    def found_all_skipped(self) -> None:
        """The source is read past everything a crashed run can have sent: forget the rest."""
        self.skip.clear()

    async def maybe_commit(self) -> None:
        """Commit when the checkpoint interval has passed since the last one."""
        if time.monotonic() >= self._next_commit:
            await self.commit()

    async def commit(self) -> None:
        """Wait until the broker has everything sent so far, then save the checkpoint."""
        await self.sink.flush()
        if self.delivery.deadletters is not None:
            await self.delivery.deadletters.flush()
        self._next_commit = time.monotonic() + self.delivery.checkpoint_interval
        path = self.delivery.checkpoint_path
        if path is None:
            return
        ends = await self._topic.ends() if self._topic is not None else None
        if self.skip:
            ends = self._skip_from  # the crashed run's events still lie ahead: search there
        self.save_checkpoint(path, ends)
        self.stats.checkpoints += 1
        self.stats.checkpointed_at = time.time()

    # -- the run ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> ProducerStats:
        """Produce until done, ``stop`` is set or the task is cancelled; commit a last
        checkpoint on the way out unless delivery itself failed."""
        started = time.monotonic()
        first_heartbeats = self.sink.stats.heartbeats
        failed = False
        try:
            await self._start_topic_reader()
            # A checkpoint before the first send: even a crash before the first periodic one
            # leaves end offsets to find what was delivered.
            await self.commit()
            if self.follows:
                self.sink.clock = self.clock
            await self.produce(stop)
            if stop is not None and stop.is_set():
                self.stats.stopped = True
            elif not self.follows and self.sink.stats.max_ts is not None:
                final = final_heartbeat_time(self.sink.stats.max_ts, self.delivery.settings)
                self.stats.final_heartbeat_ts = final
                await self.sink.heartbeat(final)
        except asyncio.CancelledError:
            self.stats.stopped = True
            raise
        except Exception as err:
            from aiokafka.errors import KafkaError

            failed = isinstance(err, (*self.fatal, KafkaError))
            raise
        finally:
            self.sink.clock = None
            try:
                if not failed:
                    await self.commit()
            finally:
                if self._topic is not None:
                    await self._topic.stop()
                self.stats.seconds = time.monotonic() - started
                self.stats.heartbeats = self.sink.stats.heartbeats - first_heartbeats
                self.finish()
        return self.stats

    async def _start_topic_reader(self) -> None:
        """With checkpoints: the reader of the topic, and the ids a crashed run delivered
        after its last checkpoint, which are not sent again."""
        if self.delivery.checkpoint_path is None:
            return
        cfg = self.sink.config
        self._topic = TopicReader(cfg.bootstrap, cfg.topic, self.sink.partitions)
        await self._topic.start()
        since = self.delivery.resumed_ends
        if since is None:
            return
        self.skip = await self._topic.event_ids_since(since)
        if self.skip:
            self._skip_from = dict(since)

    async def wait(self, stop: asyncio.Event | None, seconds: float) -> bool:
        """Sleep ``seconds``, or less when ``stop`` is set; True when asked to stop."""
        if stop is None:
            await asyncio.sleep(seconds)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return stop.is_set()


__all__ = [
    "CheckpointedProducer",
    "Delivery",
    "ProducerStats",
    "TopicReader",
]
