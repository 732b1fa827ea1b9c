"""The Kafka side of every producer: batched, idempotent sends to ``<prefix>.events`` + heartbeats.

Every producer (file replay, simulator, Elasticsearch and EventLog probes) writes through one
:class:`EventSink`. It keys each event by its stream id, so that Kafka's default murmur2
partitioner puts every message of a stream on one partition (the worker keeps a stream's windows
and model state in the partition's task). Heartbeats carry no data: they go to every partition and
advance that partition's watermark, so windows close even on partitions no stream wrote to.

Throughput: ``AIOKafkaProducer.send()`` costs ~20 µs of Python per message (a future, a partition
lookup through pure-Python murmur2, the accumulator), which caps a replay near 50,000 messages/s
on a small machine. The sink instead fills one :class:`~aiokafka.producer.BatchBuilder` per
partition (C code, ~1 µs per record), caches the murmur2 partition per key, and hands whole
batches to ``send_batch``; delivery futures are per batch and awaited in chunks. Ordering per
partition is kept: batches of a partition are submitted one at a time in the order they were
filled, and the idempotent producer keeps them in order on the broker.

Coalescing (``SinkConfig.coalesce``, on by default): counter events of one stream, type and
window slot are held up to a linger and go out as one message with ``n``
(:mod:`gridalarm.producers.coalesce` says how, and why the worker's windows stay exactly those of
one message per event). Every producer sends through here, so replay, simulator, EventLog,
Elasticsearch and plug-in probes all coalesce the same way.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from gridalarm.config import Settings
from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.messages import dumps, heartbeat_message
from gridalarm.producers.coalesce import CoalesceConfig, Coalescer, Out
from gridalarm.timeutil import parse_time

MiB = 1024 * 1024
# Batch header (61 bytes) and record framing around key and value: a generous bound, so that a
# message that passes the check also fits the events topic's max.message.bytes (8 MiB).
_RECORD_OVERHEAD = 128
# Streams are few (hundreds to thousands); the bound only stops a key-per-message file from
# growing the partition cache without limit.
_PARTITION_CACHE_MAX = 100_000

Clock = Callable[[], float | None]


class SinkError(RuntimeError):
    """The broker did not take the messages; the message is one line for an operator."""


class MessageTooLarge(SinkError):
    """One message is larger than the producer's maximum request size."""


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """How a producer talks to Kafka.

    ``heartbeat_interval`` (seconds; None or 0 turns periodic heartbeats off) and ``linger``
    (seconds a partly filled batch may wait before it is sent) are wall-clock times.
    ``max_request_size`` bounds one message; it is 8 MiB so that a 5 MB message reaches the
    worker (which dead-letters it as too large) instead of failing the producer. The events
    topic's ``max.message.bytes`` must allow it too. ``coalesce`` None sends one message per
    event.
    """

    bootstrap: KafkaTarget  # the broker and its security (a bare address: PLAINTEXT)
    topic: str
    source: str
    heartbeat_interval: float | None = 1.0
    linger: float = 0.05
    max_request_size: int = 8 * MiB
    batch_size: int = 512 * 1024
    # Batches whose delivery is not yet confirmed before the sink waits for the oldest one.
    max_pending_batches: int = 64
    request_timeout: float = 40.0
    coalesce: CoalesceConfig | None = None

    def __post_init__(self) -> None:
        if self.max_request_size < self.batch_size:
            raise ValueError("max_request_size must be >= batch_size")
        if self.linger <= 0:
            raise ValueError("linger must be > 0")

    @classmethod
    def from_settings(
        cls, settings: Settings, bootstrap: KafkaTarget, source: str, **overrides: Any
    ) -> SinkConfig:
        """The sink of the configured events topic, coalescing as the settings say."""
        overrides.setdefault("coalesce", CoalesceConfig.from_settings(settings, source))
        return cls(bootstrap=bootstrap, topic=settings.topic("events"), source=source, **overrides)

    @classmethod
    def deadletters_of(cls, settings: Settings, bootstrap: KafkaTarget, source: str) -> SinkConfig:
        """The sink of the configured deadletter topic, for a producer's bad input: no
        heartbeats (they belong on the events topic only)."""
        return cls(
            bootstrap=bootstrap,
            topic=settings.topic("deadletter"),
            source=source,
            heartbeat_interval=None,
        )


@dataclass(slots=True)
class SinkStats:
    """What a sink has queued (all of it delivered once :meth:`EventSink.flush` returned)."""

    events: int = 0  # messages taken from the producer (before coalescing)
    messages: int = 0  # messages queued for the topic, heartbeats apart (after coalescing)
    heartbeats: int = 0  # heartbeat messages: one per partition per heartbeat
    bytes: int = 0
    max_ts: float | None = None  # the latest event time taken
    last_heartbeat_ts: float | None = None
    # Events taken, by type, each message counting its n ("gauge" for gauge samples, "raw" for
    # bytes passed through).
    by_type: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the sink started."""
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Messages taken (events and pass-through, not heartbeats) per wall-clock second."""
        return self.events / max(self.seconds, 1e-9)


class EventSink:
    """Async context manager that sends producer messages to the events topic.

    ``clock`` (optional, may be set later) says how far event time has safely advanced, for
    the periodic heartbeats: a paced replay or a live simulator knows that nothing earlier
    than its current time is still to come. It may return None; without it (or when it
    returns None) heartbeats carry the latest event time sent so far.
    """

    def __init__(self, config: SinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.stats = SinkStats()
        self.clock = clock
        self._producer: AIOKafkaProducer | None = None
        self._partitions: tuple[int, ...] = ()
        self._partition_of: dict[bytes, int] = {}
        self._partitioner = DefaultPartitioner()
        self._builders: dict[int, BatchBuilder] = {}
        # Full batches sealed but not yet handed to aiokafka, per partition, oldest first: a
        # record that finds its batch full starts the next one at once, so no record appended
        # while the full one waits for the submit lock can overtake it.
        self._sealed: dict[int, deque[BatchBuilder]] = defaultdict(deque)
        self._pending: deque[tuple[int, asyncio.Future[Any]]] = deque()
        # Submitting is serialised so that a partition's batches reach the accumulator in the
        # order they were filled (asyncio.Lock wakes waiters first-in, first-out).
        self._submit_lock = asyncio.Lock()
        self._coalescer = Coalescer(config.coalesce) if config.coalesce is not None else None
        self._tasks: list[asyncio.Task[None]] = []
        # Background tasks are asked to stop, never cancelled: a task cancelled inside
        # send_batch would drop the batch it had taken.
        self._closing = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: object
    ) -> None:
        # Stopped (Ctrl-C, SIGTERM): still deliver what was queued. Failed: just close, so
        # that a flush failure cannot hide the original error.
        stopped = exc_type is not None and issubclass(
            exc_type, asyncio.CancelledError | KeyboardInterrupt
        )
        await self.close(flush=exc_type is None or stopped)

    async def start(self) -> None:
        """Connect, learn the partitions of the events topic, start the background tasks."""
        cfg = self.config
        producer = AIOKafkaProducer(
            **access_of(cfg.bootstrap).aiokafka(),
            client_id=f"gridalarm-{cfg.source}"[:200],
            enable_idempotence=True,
            acks="all",
            max_batch_size=cfg.batch_size,
            max_request_size=cfg.max_request_size,
            linger_ms=int(cfg.linger * 1000),
            request_timeout_ms=int(cfg.request_timeout * 1000),
        )
        try:
            await producer.start()
            partitions = await producer.partitions_for(cfg.topic)
        except KafkaError as err:
            await producer.stop()
            raise SinkError(f"cannot produce to {cfg.topic} at {cfg.bootstrap}: {err}") from None
        if not partitions:
            await producer.stop()
            raise SinkError(f"topic {cfg.topic} has no partitions at {cfg.bootstrap}")
        self._producer = producer
        self._partitions = tuple(sorted(partitions))
        self.stats = SinkStats()
        self._closing.clear()
        self._tasks = [asyncio.create_task(self._linger_loop(), name="sink-linger")]
        if self._coalescer is not None:
            self._tasks.append(asyncio.create_task(self._coalesce_loop(), name="sink-coalesce"))
        if cfg.heartbeat_interval:
            self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="sink-heartbeat"))

    async def close(self, flush: bool = True) -> None:
        """Stop the background tasks, deliver everything queued (if ``flush``), disconnect."""
        failure = await self._stop_tasks()
        if self._producer is None:
            return
        try:
            if flush and failure is None:
                await self.flush()
        finally:
            producer, self._producer = self._producer, None
            await producer.stop()
        if failure is not None:
            raise failure

    async def _stop_tasks(self) -> BaseException | None:
        """Stop the background tasks; return the error one of them died of, if any."""
        self._closing.set()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                return result
        return None

    def _check_tasks(self) -> None:
        """Raise the error a background task died of, so the caller stops early."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    @property
    def partitions(self) -> tuple[int, ...]:
        """Partition numbers of the events topic, as the producer's metadata had them at start."""
        return self._partitions

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: dict[str, Any], ts: float | None = None) -> None:
        """Queue one wire message, keyed by its ``stream``; ``ts`` defaults to its ``ts``."""
        if ts is None:
            ts = _event_time(message.get("ts"))
        stream = message.get("stream")
        key = stream.encode() if isinstance(stream, str) else None
        kind = message.get("type")
        if not isinstance(kind, str):
            kind = "gauge" if "metrics" in message else "other"
        n = message.get("n", 1)
        await self._send(dumps(message), key, ts, kind, n if type(n) is int else 1, message)

    async def send_raw(
        self,
        value: bytes,
        key: bytes | None = None,
        ts: float | None = None,
        kind: str = "raw",
        n: int = 1,
    ) -> None:
        """Queue bytes as they are (pass-through). Without a key the partition is random.

        ``ts`` is the message's event time if the caller knows it; it only feeds the heartbeats.
        ``kind`` is what its ``n`` events are counted as in :attr:`SinkStats.by_type` (metrics).
        Raises :class:`MessageTooLarge` for a message over ``max_request_size`` (nothing is sent).
        With coalescing the bytes are judged as the worker would judge them: a valid counter
        event may be merged, anything else goes out as it is, in its place.
        """
        await self._send(value, key, ts, kind, n, None)

    async def _send(
        self,
        value: bytes,
        key: bytes | None,
        ts: float | None,
        kind: str,
        n: int,
        data: dict[str, Any] | None,
    ) -> None:
        size = len(value) + (len(key) if key else 0) + _RECORD_OVERHEAD
        if size > self.config.max_request_size:
            raise MessageTooLarge(
                f"message of {len(value)} bytes exceeds the producer's max request size "
                f"({self.config.max_request_size} bytes)"
            )
        stats = self.stats
        stats.events += 1
        stats.by_type[kind] += n
        if ts is not None and (stats.max_ts is None or ts > stats.max_ts):
            stats.max_ts = ts
        partition = self._partition(key)
        if self._coalescer is None:
            stats.messages += 1
            stats.bytes += len(value)
            await self._append(partition, key, value)
            return
        out = self._coalescer.take(partition, key, value, data)
        if out:
            await self._append_all(partition, out)

    async def heartbeat(self, ts: float) -> bool:
        """Queue a heartbeat at event time ``ts`` to every partition of the events topic.

        Heartbeats only move forward: one behind the last sent is dropped (False), since the
        worker's watermark would not move and a partition must never see event time go back.
        """
        return await self._heartbeat(ts, advancing=False)

    async def _heartbeat(self, ts: float, advancing: bool) -> bool:
        """Send the heartbeat unless it is behind the last (or, with ``advancing``, not ahead).

        Placing is synchronous (no await between the check and the last partition's record),
        so the periodic heartbeat and a caller's cannot interleave: a partition never sees
        event time go backwards. What coalescing holds goes out first, as it came before.
        """
        last = self.stats.last_heartbeat_ts
        if last is not None and (ts < last or (advancing and ts == last)):
            return False
        sealed = self._place_held()
        message = heartbeat_message(ts, self.config.source)
        value = dumps(message)
        for partition in self._partitions:
            if self._place(partition, None, value):
                sealed.add(partition)
        self.stats.heartbeats += len(self._partitions)
        self.stats.last_heartbeat_ts = ts
        if self._coalescer is not None:
            # The worker reads the wire value: tell the coalescer that, not ``ts``.
            wire = parse_time(message["ts"])
            self._coalescer.heartbeat_sent(self._partitions, wire, message["ts"])
        for partition in sealed:
            await self._submit(partition, current=False)
        return True

    async def flush(self) -> None:
        """Send every partly filled batch and wait until the broker has acknowledged all.

        When it returns, every message queued before the call is acknowledged (acks=all), so a
        producer may checkpoint its read position right after it. A batch the linger task is
        handing to aiokafka at that moment (``send_batch`` waits while an older batch of its
        partition is queued) is neither among the builders nor among the pending futures: so
        wait for any hand-over to finish (the submit lock) and reap again, until none runs.
        """
        self._check_tasks()
        self._place_held()
        for partition in {*self._builders, *self._sealed}:
            await self._submit(partition)
        while True:
            async with self._submit_lock:
                pass
            await self._reap(wait_all=True)
            if not self._submit_lock.locked() and not self._pending:
                return

    # -- internals -------------------------------------------------------------------------

    def _partition(self, key: bytes | None) -> int:
        if key is None:
            return self._partitioner(None, self._partitions, self._partitions)
        partition = self._partition_of.get(key)
        if partition is None:
            if len(self._partition_of) >= _PARTITION_CACHE_MAX:
                self._partition_of.clear()
            # The same murmur2 partitioner as the Java client and AIOKafkaProducer.send().
            partition = self._partitioner(key, self._partitions, self._partitions)
            self._partition_of[key] = partition
        return partition

    async def _append(self, partition: int, key: bytes | None, value: bytes) -> None:
        if self._place(partition, key, value):
            await self._submit(partition, current=False)

    async def _append_all(self, partition: int, out: list[Out]) -> None:
        """Place all of ``out`` (no await in between, so nothing else can come between two of
        them and a cancel cannot lose the tail), then hand over the batches they filled."""
        if self._place_all(partition, out):
            await self._submit(partition, current=False)

    def _place_held(self) -> set[int]:
        """Place everything the coalescer holds; the partitions whose batches filled."""
        sealed: set[int] = set()
        if self._coalescer is None:
            return sealed
        for partition, out in self._coalescer.drain_all():
            if self._place_all(partition, out):
                sealed.add(partition)
        return sealed

    def _place_all(self, partition: int, out: list[Out]) -> bool:
        """Count and place what the coalescer gave out for ``partition``; True when a full
        batch was sealed."""
        sealed = False
        for item in out:
            if item.heartbeat:
                self.stats.heartbeats += 1
            else:
                self.stats.messages += 1
                self.stats.bytes += len(item.value)
            sealed = self._place(partition, item.key, item.value) or sealed
        return sealed

    def _place(self, partition: int, key: bytes | None, value: bytes) -> bool:
        """Append one record to the partition's open batch; True when a full batch was sealed
        (the caller hands it over)."""
        producer = self._producer
        if producer is None:
            raise SinkError("the sink is not started (use it as 'async with EventSink(...)')")
        # timestamp None: the broker-side record time is the wall clock. Event times from a
        # replayed year would make time-based retention delete the segments at once.
        builder = self._builders.get(partition)
        if builder is None:
            builder = self._builders[partition] = producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is not None:
            return False
        # Full: seal it and start the next batch with this record, both before any await, so
        # the partition's records stay in call order; an empty builder takes any one record.
        builder.close()
        self._sealed[partition].append(builder)
        builder = self._builders[partition] = producer.create_batch()
        builder.append(timestamp=None, key=key, value=value)
        return True

    async def _submit(self, partition: int, reap: bool = True, current: bool = True) -> None:
        """Queue the partition's sealed batches, then (``current``) its open one, for sending."""
        async with self._submit_lock:
            # Taken under the lock, so the batches of a partition queue in the order they
            # were filled, and records keep joining the open one while it waits its turn.
            sealed = self._sealed.get(partition)
            while sealed:
                await self._hand_over(partition, sealed.popleft())
            self._sealed.pop(partition, None)
            if current:
                builder = self._builders.pop(partition, None)
                if builder is not None:
                    builder.close()  # no record may join a batch once it is queued
                    await self._hand_over(partition, builder)
        if reap:
            await self._reap()

    async def _hand_over(self, partition: int, builder: BatchBuilder) -> None:
        """Give a closed batch to aiokafka (which may wait for room); track its delivery."""
        if self._producer is None:
            return
        handover = asyncio.ensure_future(
            self._producer.send_batch(builder, self.config.topic, partition=partition)
        )
        try:
            future = await asyncio.shield(handover)
        except asyncio.CancelledError:
            # Stopped (Ctrl-C, SIGTERM) while aiokafka waited for room: the batch left the
            # builders already, so finish the hand-over or its records are lost; the closing
            # flush then waits for its delivery.
            self._pending.append((partition, await handover))
            raise
        self._pending.append((partition, future))

    async def _reap(self, wait_all: bool = False) -> None:
        """Collect delivery results, oldest first; wait only when too many are outstanding."""
        self._check_tasks()
        pending = self._pending
        while pending and (
            wait_all or len(pending) > self.config.max_pending_batches or pending[0][1].done()
        ):
            partition, future = pending.popleft()
            try:
                await future
            except KafkaError as err:
                raise SinkError(
                    f"delivery to {self.config.topic}[{partition}] failed: "
                    f"{type(err).__name__}: {err}"
                ) from None

    async def _linger_loop(self) -> None:
        # Full batches go out as soon as they fill; this sends the partly filled ones, so a slow
        # producer (live mode) is not held back behind a batch that never fills.
        while await self._pause(self.config.linger):
            for partition in list(self._builders):
                await self._submit(partition, reap=False)

    async def _coalesce_loop(self) -> None:
        # Held events wait at most the linger (plus the Kafka linger) before they go out.
        assert self.config.coalesce is not None
        while await self._pause(self.config.coalesce.linger):
            for partition in self._place_held():
                await self._submit(partition, current=False)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; False (at once) when the sink is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _heartbeat_loop(self) -> None:
        interval = float(self.config.heartbeat_interval or 1.0)
        while await self._pause(interval):
            ts = self.clock() if self.clock is not None else None
            if ts is None:
                ts = self.stats.max_ts
            # Only an advancing heartbeat tells the worker anything.
            if ts is not None:
                await self._heartbeat(ts, advancing=True)


def _event_time(value: Any) -> float | None:
    """Event time of a ``ts`` field, or None when it is missing or unreadable."""
    if value is None:
        return None
    try:
        ts = parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return ts if math.isfinite(ts) else None
