"""The Kafka side of the EventLog producer: send what the tailers read, checkpoint when acked.

:class:`EventLogProducer` drives :class:`~gridalarm.producers.eventlog.Tailer` objects (the
pure reading side) into :class:`~gridalarm.producers.sink.EventSink`, and writes a checkpoint
(:mod:`gridalarm.producers.checkpoint`) only once the broker has acknowledged every event
before it; after a crash :class:`TopicReader` reads the events topic back from the offsets the
checkpoint saved and skips the events already there (their ``attrs.eid``), so a restarted
producer neither loses nor repeats an event. See docs/eventlog.md for the guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gridalarm.config import Settings
from gridalarm.messages import deadletter_message, dumps
from gridalarm.producers.checkpoint import Checkpoint, CheckpointError, save_checkpoint
from gridalarm.producers.eventlog import (
    BadChunk,
    EventLogError,
    Tailer,
    Warn,
    no_warning,
)
from gridalarm.producers.replay import final_heartbeat_time
from gridalarm.producers.sink import EventSink, SinkError


@dataclass(frozen=True, slots=True)
class ProduceConfig:
    """How the producer paces itself: polls when idle, commits checkpoints, batches reads."""

    settings: Settings
    poll_interval: float = 0.5
    checkpoint_interval: float = 1.0
    batch_events: int = 2000

    def __post_init__(self) -> None:
        if not self.poll_interval > 0 or not self.checkpoint_interval > 0:
            raise EventLogError("--poll and --checkpoint-interval must be > 0")


@dataclass(slots=True)
class EventLogStats:
    """What a producer run did."""

    events: int = 0
    deadletters: int = 0
    duplicates: int = 0  # delivered before a crash, found on the topic, not sent again
    skipped: int = 0  # ad-information events with --ad-info skip
    rotations: int = 0
    truncations: int = 0
    heartbeats: int = 0
    checkpoints: int = 0
    files: int = 0
    resumed: bool = False
    stopped: bool = False
    final_heartbeat_ts: float | None = None
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the operator."""
        extra = []
        for count, what in (
            (self.deadletters, "dead-lettered"),
            (self.duplicates, "already delivered, not sent again"),
            (self.skipped, "ad-information events skipped"),
            (self.rotations, "rotation" if self.rotations == 1 else "rotations"),
            (self.truncations, "truncation" if self.truncations == 1 else "truncations"),
        ):
            if count:
                extra.append(f"{count} {what}")
        how = "resumed from a checkpoint, " if self.resumed else ""
        more = f" ({', '.join(extra)})" if extra else ""
        end = "; stopped" if self.stopped else ""
        return (
            f"eventlog: {how}sent {self.events} events from {self.files} file(s){more} in "
            f"{self.seconds:.2f}s, {self.rate:,.0f} events/s; {self.heartbeats} heartbeats{end}"
        )


class TopicReader:
    """Reads the events topic back: end offsets, and the event ids written past some offsets.

    How a restarted producer keeps a crash from duplicating events (see docs/eventlog.md).
    """

    def __init__(self, bootstrap: str, topic: str, partitions: Iterable[int]) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        self.topic = topic
        self._tps = [TopicPartition(topic, p) for p in partitions]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
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
        """``attrs.eid`` of every event written at or after ``since`` (per partition)."""
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
                        eid = orjson.loads(record.value).get("attrs", {}).get("eid")
                        if isinstance(eid, str):
                            found.add(eid)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp.partition]:
                    todo.discard(tp)
        consumer.unsubscribe()
        return found


class EventLogProducer:
    """Sends what the tailers read, dead-letters what they cannot, checkpoints what is delivered.

    A checkpoint is written only right after :meth:`EventSink.flush` returned, i.e. once the
    broker acknowledged (acks=all, idempotent producer) every event before the checkpointed
    positions; nothing is read while it flushes. On a restart, the events delivered after the
    last checkpoint (a crash between a send and the next checkpoint) are found on the topic
    past the end offsets the checkpoint recorded and are not sent again.
    """

    def __init__(
        self,
        tailers: list[Tailer],
        config: ProduceConfig,
        sink: EventSink,
        deadletters: EventSink | None = None,
        checkpoint_path: Path | None = None,
        resumed_from: Checkpoint | None = None,
        warn: Warn = no_warning,
    ) -> None:
        self.tailers = tailers
        self.config = config
        self.sink = sink
        self.deadletters = deadletters
        self.checkpoint_path = checkpoint_path
        self.resumed_from = resumed_from
        self.warn = warn
        self.stats = EventLogStats(resumed=resumed_from is not None)
        self._positions = {id(t): t.position for t in tailers}
        self._topic: TopicReader | None = None
        # Ids delivered before a crash and not read again yet, and where they were searched
        # from: until the logs are read past them, checkpoints keep that search start.
        self._skip: set[str] = set()
        self._skip_from: dict[int, int] | None = None

    def clock(self) -> float | None:
        """Heartbeat time: the earliest of the tailers' safe times (None while one has none)."""
        now = time.time()
        times = [t.safe_time(now) for t in self.tailers]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    async def run(self, stop: asyncio.Event | None = None) -> EventLogStats:
        """Read and send until every log is read (one-shot) or ``stop`` is set / the task is
        cancelled (follow); commit a last checkpoint on the way out unless delivery failed."""
        started = time.monotonic()
        first_heartbeats = self.sink.stats.heartbeats
        follow = any(t.config.follow for t in self.tailers)
        failed = False
        try:
            await self._start_topic_reader()
            # A checkpoint before the first send: even a crash before the first periodic one
            # leaves end offsets to find what was delivered.
            await self.commit()
            if follow:
                self.sink.clock = self.clock
            await self._loop(follow, stop)
            if not follow and self.sink.stats.max_ts is not None:
                final = final_heartbeat_time(self.sink.stats.max_ts, self.config.settings)
                self.stats.final_heartbeat_ts = final
                await self.sink.heartbeat(final)
        except asyncio.CancelledError:
            self.stats.stopped = True
            raise
        except (SinkError, CheckpointError):
            failed = True
            raise
        except Exception as err:
            from aiokafka.errors import KafkaError

            failed = isinstance(err, KafkaError)
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
                self.stats.rotations = sum(t.rotations for t in self.tailers)
                self.stats.truncations = sum(t.truncations for t in self.tailers)
                self.stats.files = sum(len(t.files) for t in self.tailers)
        return self.stats

    async def _start_topic_reader(self) -> None:
        """With checkpoints: the reader of the topic, and the ids delivered after the last
        checkpoint (by a producer that crashed), which are not sent again."""
        if self.checkpoint_path is None:
            return
        cfg = self.sink.config
        self._topic = TopicReader(cfg.bootstrap, cfg.topic, self.sink.partitions)
        await self._topic.start()
        previous = self.resumed_from
        if previous is None or previous.kafka_ends is None:
            return
        self._skip = await self._topic.event_ids_since(previous.kafka_ends)
        if self._skip:
            self._skip_from = dict(previous.kafka_ends)

    def _caught_up(self) -> bool:
        """Every log read to its end, none between files: an id still to skip now belongs to
        content that is gone (a deleted or truncated file), so it can never come again."""
        return all(t.finished or t.caught_up() for t in self.tailers)

    async def _loop(self, follow: bool, stop: asyncio.Event | None) -> None:
        cfg = self.config
        next_commit = time.monotonic() + cfg.checkpoint_interval
        send = self.sink.send
        skip = self._skip
        while True:
            busy = False
            for tailer in self.tailers:
                if tailer.finished:
                    continue
                items = tailer.poll(cfg.batch_events)
                for item in items:
                    if item.message is not None:
                        if skip and item.eid in skip:
                            skip.discard(item.eid)
                            self.stats.duplicates += 1
                        else:
                            await send(item.message, item.ts)
                            self.stats.events += 1
                    elif item.bad is not None:
                        await self._dead_letter(tailer, item.bad)
                    elif item.skipped:
                        self.stats.skipped += 1
                    self._positions[id(tailer)] = (item.gen, item.end)
                busy = busy or bool(items)
            if skip and not busy and self._caught_up():
                skip.clear()
            if time.monotonic() >= next_commit:
                await self.commit()
                next_commit = time.monotonic() + cfg.checkpoint_interval
            if not follow and all(t.finished for t in self.tailers):
                return
            if stop is not None and stop.is_set():
                self.stats.stopped = True
                return
            if busy:
                await asyncio.sleep(0)  # let the sink's linger and heartbeat tasks run
            elif stop is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), cfg.poll_interval)
            else:
                await asyncio.sleep(cfg.poll_interval)

    async def _dead_letter(self, tailer: Tailer, bad: BadChunk) -> None:
        self.stats.deadletters += 1
        self.warn(f"{bad.gen.name} at byte {bad.start}: {bad.reason}: {bad.detail}; dead-lettered")
        if self.deadletters is None:
            return
        stream = f"schedd:{tailer.schedd}" if tailer.schedd else None
        message = deadletter_message(
            bad.data,
            bad.reason,
            bad.detail,
            topic=f"file:{bad.gen.name}",
            partition=0,
            offset=bad.start,
            stream=stream,
        )
        await self.deadletters.send_raw(dumps(message), stream.encode() if stream else None)

    async def commit(self) -> None:
        """Wait until the broker has everything sent so far, then save the checkpoint."""
        await delivered(self.sink)
        if self.deadletters is not None:
            await delivered(self.deadletters)
        if self.checkpoint_path is None:
            return
        ends = await self._topic.ends() if self._topic is not None else None
        if self._skip:
            # Events delivered before the crash still lie ahead of the positions: a restart
            # from this checkpoint must search for them where this run did.
            ends = self._skip_from
        checkpoint = Checkpoint(
            topic=self.sink.config.topic,
            paths={str(t.path): t.state(self._positions[id(t)]) for t in self.tailers},
            kafka_ends=ends,
            saved_at=time.time(),
        )
        save_checkpoint(self.checkpoint_path, checkpoint)
        self.stats.checkpoints += 1


async def delivered(sink: EventSink) -> None:
    """Return once the broker has acknowledged every message queued on ``sink`` so far.

    ``EventSink.flush`` alone does not promise that: while the sink's linger task hands a
    batch to aiokafka (``send_batch`` waits there while an older batch of the partition is
    still queued), that batch is neither among the builders ``flush`` sends nor among the
    futures it awaits, so ``flush`` can return before it is acknowledged. A checkpoint written
    then could claim events that are never delivered. So: wait out any hand-over in progress
    (the sink's submit lock), flush, and repeat until no hand-over is running and no delivery
    is outstanding.
    """
    lock: asyncio.Lock | None = getattr(sink, "_submit_lock", None)
    while True:
        if lock is not None:
            async with lock:
                pass
        await sink.flush()
        if (lock is None or not lock.locked()) and not getattr(sink, "_pending", None):
            return


def warn_to_stderr(message: str) -> None:
    """One warning line on stderr."""
    print(f"gridalarm: warning: {message}", file=sys.stderr, flush=True)


__all__ = [
    "EventLogProducer",
    "EventLogStats",
    "ProduceConfig",
    "TopicReader",
    "delivered",
    "warn_to_stderr",
]
