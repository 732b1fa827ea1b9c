"""Elasticsearch producer, Kafka side: send what the scans read, checkpoint once acknowledged.

Built like :class:`~gridalarm.producers.eventlog_producer.EventLogProducer`, and sharing its
parts: a checkpoint is saved only after :func:`delivered` (the broker acknowledged everything
sent before it), and it records the events topic's end offsets then; a restarted producer reads
the topic past those offsets (:class:`TopicReader`) and does not send again the events a crash
left delivered but not checkpointed (their ``attrs.eid``: ``es:<index>/<_id>`` or
``agg:<window>:<stream>:<type>``). Reading resumes from the delivered position
(:class:`~gridalarm.producers.elastic.Position`), so nothing is skipped either.

Backfill reads ``[since, until)`` (until: now minus the lag) once; ``--follow`` then repeats
the pass every poll over ``[position, now - lag)``: the lag leaves time for the index refresh
and for documents indexed late. ``--aggregate`` sends one pre-counted event per window, stream
and type, and only for windows that ended before ``now - lag``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from gridalarm.config import Settings
from gridalarm.messages import deadletter_message, dumps
from gridalarm.producers.elastic import (
    AggPosition,
    AggScan,
    Converted,
    DocScan,
    ElasticCheckpoint,
    ElasticError,
    FieldMap,
    Position,
    Retrying,
    convert,
    save_checkpoint,
    window_floor,
)
from gridalarm.producers.eventlog import Warn, no_warning
from gridalarm.producers.eventlog_producer import TopicReader, delivered
from gridalarm.producers.replay import final_heartbeat_time
from gridalarm.producers.sink import EventSink, SinkError


@dataclass(frozen=True, slots=True)
class ElasticConfig:
    """What to read and how to pace it. Times are epoch seconds; durations seconds."""

    settings: Settings
    index: str
    fields: FieldMap
    source: str
    since: float | None = None
    until: float | None = None
    follow: bool = False
    aggregate: bool = False
    window: float = 3600.0
    lag: float = 60.0
    poll_interval: float = 5.0
    checkpoint_interval: float = 1.0
    page_size: int = 1000

    def __post_init__(self) -> None:
        if not self.index:
            raise ElasticError("--index: give an index or pattern, e.g. fifebatch-logs-*")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ElasticError("--until must be after --since")
        if self.follow and self.until is not None:
            raise ElasticError("--follow reads without an end; leave out --until")
        if self.lag < 0 or not self.poll_interval > 0 or not self.checkpoint_interval > 0:
            raise ElasticError("--lag must be >= 0, --poll and --checkpoint-interval > 0")
        if not self.window > 0:
            raise ElasticError("--window must be > 0")

    @property
    def mode(self) -> str:
        return "aggregate" if self.aggregate else "docs"


@dataclass(slots=True)
class ElasticStats:
    """What a producer run did."""

    events: int = 0  # messages sent (pre-counted ones count once)
    documents: int = 0  # documents they stand for
    deadletters: int = 0
    unaggregated: int = 0  # --aggregate: documents without a stream or type, not counted
    duplicates: int = 0
    passes: int = 0
    pits: int = 0
    retries: int = 0
    checkpoints: int = 0
    heartbeats: int = 0
    resumed: bool = False
    stopped: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the operator."""
        extra = [
            f"{count} {what}"
            for count, what in (
                (self.deadletters, "dead-lettered"),
                (self.unaggregated, "documents without stream or type not counted"),
                (self.duplicates, "already delivered, not sent again"),
                (self.retries, "retries"),
            )
            if count
        ]
        how = "resumed from a checkpoint, " if self.resumed else ""
        more = f" ({', '.join(extra)})" if extra else ""
        rate = self.documents / self.seconds if self.seconds > 0 else 0.0
        end = "; stopped" if self.stopped else ""
        return (
            f"es: {how}sent {self.events} events for {self.documents} documents{more} in "
            f"{self.seconds:.2f}s, {rate:,.0f} documents/s; {self.heartbeats} heartbeats{end}"
        )


class ElasticProducer:
    """Reads the index pattern in time order and sends each document (or count) once."""

    def __init__(
        self,
        call: Retrying,
        config: ElasticConfig,
        sink: EventSink,
        deadletters: EventSink | None = None,
        checkpoint_path: Path | None = None,
        resumed_from: ElasticCheckpoint | None = None,
        warn: Warn = no_warning,
    ) -> None:
        self.call = call
        self.config = config
        self.sink = sink
        self.deadletters = deadletters
        self.checkpoint_path = checkpoint_path
        self.resumed_from = resumed_from
        self.warn = warn
        self.stats = ElasticStats(resumed=resumed_from is not None)
        previous = resumed_from
        self.position = Position(
            previous.ts_ms if previous else None, set(previous.seen) if previous else set()
        )
        self.agg = AggPosition(
            previous.agg_from if previous else None, previous.agg_after if previous else None
        )
        self._topic: TopicReader | None = None
        self._skip: set[str] = set()
        self._skip_from: dict[int, int] | None = None
        self._safe: float | None = None  # event time before which everything was read
        self._next_commit = 0.0

    @property
    def since_ms(self) -> int | None:
        since = self.config.since
        if since is None:
            return None
        if self.config.aggregate:
            return window_floor(int(since * 1000), self.config.window)
        return int(since * 1000)

    def _upper_ms(self) -> int:
        """The end of this pass: --until, else now minus the lag (aggregate: a window start)."""
        cfg = self.config
        upper = cfg.until if cfg.until is not None else time.time() - cfg.lag
        upper_ms = int(upper * 1000)
        return window_floor(upper_ms, cfg.window) if cfg.aggregate else upper_ms

    async def run(self, stop: asyncio.Event | None = None) -> ElasticStats:
        started = time.monotonic()
        first_heartbeats = self.sink.stats.heartbeats
        failed = False
        try:
            await self._start_topic_reader()
            await self.commit()
            if self.config.follow:
                self.sink.clock = lambda: self._safe
            self._next_commit = time.monotonic() + self.config.checkpoint_interval
            while True:
                upper = self._upper_ms()
                if self.config.aggregate:
                    await self._aggregate_pass(upper)
                else:
                    await self._doc_pass(upper)
                self.stats.passes += 1
                self._safe = upper / 1000.0
                # What a crashed run delivered lies before this pass's end: all found by now.
                self._skip.clear()
                if not self.config.follow:
                    break
                await self._maybe_commit()
                if await self._wait(stop):
                    self.stats.stopped = True
                    break
            if not self.config.follow and self.sink.stats.max_ts is not None:
                await self.sink.heartbeat(
                    final_heartbeat_time(self.sink.stats.max_ts, self.config.settings)
                )
        except asyncio.CancelledError:
            self.stats.stopped = True
            self.call.stopping.set()  # a page fetch still retrying in its thread gives up
            raise
        except (SinkError, ElasticError):
            failed = True
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
                self.stats.retries = self.call.retries
        return self.stats

    async def _wait(self, stop: asyncio.Event | None) -> bool:
        """Sleep a poll interval; True when asked to stop."""
        if stop is None:
            await asyncio.sleep(self.config.poll_interval)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.config.poll_interval)
        return stop.is_set()

    async def _start_topic_reader(self) -> None:
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

    async def _send(self, message: dict, ts: float | None, documents: int) -> None:
        eid = message["attrs"]["eid"]
        if self._skip and eid in self._skip:
            self._skip.discard(eid)
            self.stats.duplicates += 1
            return
        await self.sink.send(message, ts)
        self.stats.events += 1
        self.stats.documents += documents

    async def _doc_pass(self, upper_ms: int) -> None:
        cfg = self.config
        scan = DocScan(self.call, cfg.index, cfg.fields, upper_ms, cfg.page_size)
        try:
            while True:
                hits = await asyncio.to_thread(scan.next_page, self.position, self.since_ms)
                if not hits:
                    return
                for hit in hits:
                    item = convert(hit, cfg.fields, cfg.source)
                    if self.position.passed(item):
                        continue
                    if item.message is not None:
                        await self._send(item.message, item.ts, 1)
                    else:
                        await self._dead_letter(item)
                    self.position.advance(item)
                await self._maybe_commit()
        finally:
            self.stats.pits += scan.pits
            await asyncio.to_thread(scan.close)

    async def _aggregate_pass(self, upper_ms: int) -> None:
        cfg = self.config
        if self.agg.from_ms is None:
            self.agg.from_ms = self.since_ms
        if self.agg.from_ms is not None and self.agg.from_ms >= upper_ms:
            return
        scan = AggScan(self.call, cfg.index, cfg.fields, cfg.window, upper_ms, cfg.page_size)
        warned = self.stats.unaggregated
        while True:
            buckets, after = await asyncio.to_thread(scan.next_page, self.agg)
            if not buckets:
                break
            for bucket in buckets:
                message = scan.message(bucket, cfg.source)
                if message is None:
                    self.stats.unaggregated += int(bucket["doc_count"])
                    continue
                await self._send(message, bucket["key"]["w"] / 1000.0, int(bucket["doc_count"]))
            self.agg.after = after
            await self._maybe_commit()
        self.agg.from_ms = upper_ms
        self.agg.after = None
        if self.stats.unaggregated > warned:
            self.warn(
                f"{self.stats.unaggregated - warned} documents without a stream or type field "
                "were not counted (read them without --aggregate to dead-letter them)"
            )

    async def _dead_letter(self, item: Converted) -> None:
        self.stats.deadletters += 1
        self.warn(f"{item.key}: {item.reason}: {item.detail}; dead-lettered")
        if self.deadletters is None:
            return
        index, _, _ = item.key.partition("/")
        message = deadletter_message(
            item.raw,
            item.reason,
            item.detail,
            topic=f"es:{index}",
            partition=0,
            offset=0,
            stream=item.stream,
        )
        key = item.stream.encode() if item.stream else None
        await self.deadletters.send_raw(dumps(message), key)

    async def _maybe_commit(self) -> None:
        if time.monotonic() >= self._next_commit:
            await self.commit()
            self._next_commit = time.monotonic() + self.config.checkpoint_interval

    async def commit(self) -> None:
        """Wait until the broker has everything sent so far, then save the checkpoint."""
        await delivered(self.sink)
        if self.deadletters is not None:
            await delivered(self.deadletters)
        if self.checkpoint_path is None:
            return
        ends = await self._topic.ends() if self._topic is not None else None
        if self._skip:
            ends = self._skip_from  # the crashed run's events still lie ahead: search there
        save_checkpoint(
            self.checkpoint_path,
            ElasticCheckpoint(
                topic=self.sink.config.topic,
                mode=self.config.mode,
                ts_ms=self.position.ts_ms,
                seen=tuple(self.position.seen),
                agg_from=self.agg.from_ms,
                agg_after=self.agg.after,
                kafka_ends=ends,
                saved_at=time.time(),
            ),
        )
        self.stats.checkpoints += 1


__all__ = ["ElasticConfig", "ElasticProducer", "ElasticStats"]
