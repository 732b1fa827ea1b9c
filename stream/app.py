"""The Faust worker: moves messages and state between topics, tables and the pure logic.

Topics (DESIGN.md): it consumes ``<prefix>.events`` and publishes ``.windows``, ``.scores``,
``.alerts`` and ``.deadletter``, all keyed by stream id. State lives in one Faust table backed
by a changelog topic, with two kinds of record: one per stream (open windows, detector and
alert state) and one per events partition (watermark, known streams). Both carry the offset of
the last message they applied, so a restarted or rebalanced worker that sees messages again
(Faust commits offsets at-least-once) skips what its state already holds.

Per batch, the worker publishes its outputs first and writes the state records after them, the
partition record last, and lets Faust ack the batch's messages (and so commit their offsets)
only once the broker has every one of those records. A crash can therefore repeat an output
(with identical content, because the logic is deterministic) but never lose one. No Faust
``exactly_once`` (see DESIGN.md).

Silences: every worker reads the whole ``<prefix>.silences`` topic (:mod:`.silence_feed`) and
processes no batch before it has read it to its end; alerts about windows inside a silence are
published with state ``suppressed``. A silence that changes while a crashed batch is re-done
can make the repeated alert differ from the first (suppressed or not): silences apply to the
windows a worker closes after it learned of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import faust

from gridalarm.config import Settings
from gridalarm.messages import dumps, heartbeat_message
from gridalarm.metrics import MetricsBind, serve
from gridalarm.stream.pipeline import Pipeline
from gridalarm.stream.processor import BatchResult, PartitionProcessor, RawMessage
from gridalarm.stream.silence_feed import SilenceFeed
from gridalarm.stream.telemetry import WorkerCollector, WorkerStats

log = logging.getLogger("gridalarm.worker")

BATCH_MAX = 2000  # messages per batch: big enough to amortise table writes
BATCH_WITHIN = 0.05  # seconds to wait for a batch to fill


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Process-level choices that are not pipeline settings."""

    bootstrap: str
    web_enabled: bool = False
    loglevel: str = "warning"
    metrics: MetricsBind | None = None  # where to serve Prometheus metrics, if anywhere


def build_worker(settings: Settings, options: WorkerOptions) -> faust.App:
    """Compose the Faust app for ``settings``: topics, tables, the agent and the idle clock."""
    datadir = settings.state_dir / "faust" / settings.worker_id
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{options.bootstrap}",
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        web_enabled=options.web_enabled,
        web_port=settings.web_port,
        datadir=str(datadir),
        producer_max_request_size=16 * 1024 * 1024,
        consumer_max_fetch_size=16 * 1024 * 1024,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        broker_max_poll_records=5000,
        table_standby_replicas=0,
        # Our topics are created by ensure_topics with their own configs; Faust declares only
        # its changelog and internal topics.
        autodiscover=False,
    )
    datadir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline.from_settings(settings)

    def topic(kind: str) -> faust.TopicT:
        return app.topic(
            settings.topic(kind),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    events = topic("events")
    outputs = {kind: topic(kind) for kind in ("windows", "scores", "alerts", "deadletter")}
    # One table for both kinds of record, so that they share one changelog topic: a worker
    # that takes a partition over restores a prefix of that partition's changelog, and a
    # partition record there implies every stream record written before it. (Two tables, two
    # changelog topics: the new owner could see a partition record whose stream records it has
    # not read, skip those offsets and lose their events.) Records are JSON bytes we encode;
    # bytes types make Faust pass them raw.
    state = app.Table(
        "state", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    processors: dict[int, PartitionProcessor] = {}
    owned: set[int] = set()  # events partitions this worker holds now
    stats = WorkerStats(lateness=settings.lateness)
    if options.metrics is not None:
        serve(_registry(app, events.get_topic_name(), stats), options.metrics)
    feed = SilenceFeed(options.bootstrap, settings.topic("silences"))

    @app.task
    async def follow_silences() -> None:
        await feed.run()

    def processor_for(partition: int) -> PartitionProcessor:
        proc = processors.get(partition)
        if proc is None:
            proc = pipeline.restore(
                partition,
                state.data.get(_partition_key(partition)),
                lambda name: state.data.get(_stream_key(name)),
            )
            processors[partition] = proc
        return proc

    @app.on_rebalance_complete.connect
    async def _hold_fetches_until_queues_are_cleared(app: faust.App, **kwargs: Any) -> None:
        # Faust (0.15) ends a recovery by resuming the stream partitions, seeking them to their
        # committed offsets, clearing every agent queue, and only then resuming the consumer's
        # flow. Whatever its fetcher delivered in between was lost: cleared from the queue
        # after the consumer had recorded it as read, so never processed, never acked, and
        # the partition's commit stuck there for good (the restart test's stall); or, from a
        # fetch position ahead of the committed offset, recorded as read after the seek, so
        # that the re-fetched messages before it were dropped (a stress run: 4,948 offsets).
        # With the consumer's flow stopped here (this signal starts both of Faust's ends of a
        # recovery), nothing is delivered until Faust resumes it, after the seek and clear.
        app.consumer.stop_flow()

    @app.on_partitions_assigned.connect
    async def _own(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        owned.update(tp.partition for tp in assigned if tp.topic == events.get_topic_name())

    @app.on_partitions_revoked.connect
    async def _forget(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        # Drop the live objects of revoked partitions: rebuilt from the table when a partition
        # comes back, they never run on state another worker has advanced meanwhile.
        for tp in revoked:
            if tp.topic == events.get_topic_name():
                owned.discard(tp.partition)
                processors.pop(tp.partition, None)
                stats.forget(tp.partition)

    def publish(partition: int, result: BatchResult) -> list[asyncio.Future]:
        """Queue a batch's outputs and state; the futures of their deliveries.

        Synchronous on purpose (send_soon, no await): a rebalance cannot interleave, so a
        partition's outputs and state are queued together or, once revoked, not at all.
        Outputs first, state after, the partition record last, in that order on the wire.
        """
        sent: list[asyncio.Future] = []
        for kind, messages in (
            ("deadletter", result.deadletters),
            ("windows", result.outputs.windows),
            ("scores", result.outputs.scores),
            ("alerts", result.outputs.alerts),
        ):
            target = outputs[kind]
            for message in messages:
                stream = message.get("stream")
                key = stream.encode() if stream else None
                sent.append(target.send_soon(key=key, value=dumps(message)))
        for name, record in result.stream_records.items():
            sent.append(write_state(partition, _stream_key(name), record))
        if result.partition_record is not None:
            sent.append(write_state(partition, _partition_key(partition), result.partition_record))
        return sent

    def write_state(partition: int, key: bytes, record: bytes) -> asyncio.Future:
        # Written straight to the store with the changelog partition named: Faust would take
        # it from the "current event", which a batch of several partitions does not have.
        state.data[key] = record
        return state.send_changelog(partition, key, record)

    @app.agent(events)
    async def process(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            if not feed.ready.is_set():
                # Not one alert before every existing silence is known (the feed retries on
                # its own when Kafka fails, so this wait ends when the broker answers).
                await feed.ready.wait()
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in batch:
                by_partition[event.message.partition].append(event)
            sent: list[asyncio.Future] = []
            for partition, events_of_partition in by_partition.items():
                if partition not in owned:
                    # Revoked while this batch waited: the next owner (maybe this worker
                    # again) reads them from the committed offset. take_events acks every
                    # event it yielded, and Faust's commit timer can still commit a partition
                    # that is being revoked, past messages nobody applied (a stress run lost
                    # 4 offsets of a partition this worker kept across the rebalance); marked
                    # acked here, Faust never counts them.
                    for event in events_of_partition:
                        event.message.acked = True
                    continue
                messages = sorted(
                    (RawMessage(e.message.topic, partition, e.message.offset, e.value)
                     for e in events_of_partition),
                    key=lambda raw: raw.offset,
                )  # fmt: skip
                proc = processor_for(partition)
                result = proc.process(messages, feed.silences)
                if result.skipped:
                    log.warning(
                        "partition %d: %d offsets before offset %d never reached the worker",
                        partition, result.skipped, messages[-1].offset,
                    )  # fmt: skip
                sent.extend(publish(partition, result))
                stats.record(partition, result, proc.state.offset, proc.state.max_time)
            if sent:
                # The batch's events are acked (and then committed) when this loop body
                # returns, so their outputs and state must be on the broker first. Faust's
                # commit flushes its send buffer only while messages keep leaving it: with
                # none sent for 0.1 s (a busy event loop) it commits anyway, and a worker
                # killed then has committed offsets whose state never reached the changelog:
                # the likely cause of a stress run, under CPU load, whose new owner found
                # the partition 72 offsets past its state (README, Known limits).
                await asyncio.gather(*sent)

    if settings.idle_timeout is not None:
        idle = settings.idle_timeout

        @app.timer(interval=min(1.0, idle))
        async def idle_clock() -> None:
            # Live mode: a partition that heard nothing for `idle` seconds gets a wall-clock
            # heartbeat through the events topic itself, so the watermark step is recorded in
            # the log and a replay of the topic reproduces it.
            now = time.monotonic()
            for tp in app.consumer.assignment():
                if tp.topic != events.get_topic_name():
                    continue
                proc = processors.get(tp.partition)
                last = proc.last_message_at if proc else 0.0
                if now - last >= idle:
                    if proc:
                        proc.last_message_at = now
                    beat = heartbeat_message(time.time(), f"worker-clock:{settings.worker_id}")
                    await events.send(value=dumps(beat), partition=tp.partition)

    return app


def _registry(app: faust.App, topic: str, stats: WorkerStats) -> Any:
    """The worker's Prometheus registry: its counters, and its consumer's end offsets."""
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    def highwater(partition: int) -> int | None:
        try:  # read from the metrics thread; the consumer may not exist yet
            return app.consumer.highwater(TP(topic, partition))
        except Exception:
            return None

    registry = CollectorRegistry()
    registry.register(WorkerCollector(stats, highwater))
    return registry


def _partition_key(partition: int) -> bytes:
    return f"p:{partition}".encode()


def _stream_key(stream: str) -> bytes:
    return f"s:{stream}".encode()
