"""The Faust worker: moves messages and state between topics, tables and the pure logic.

Topics (DESIGN.md): it consumes ``<prefix>.events`` and publishes ``.windows``, ``.scores``,
``.alerts`` and ``.deadletter``, all keyed by stream id. State lives in one Faust table backed
by a changelog topic, with two kinds of record: one per stream (open windows, detector and
alert state) and one per events partition (watermark, known streams). Both carry the offset of
the last message they applied, so a restarted or rebalanced worker that sees messages again
(Faust commits offsets at-least-once) skips what its state already holds.

Per batch, the worker publishes its outputs first and writes the state records after them, the
partition record last, and commits a partition's offset itself (not through Faust's acks)
only once the broker has every one of those records: the offset its state applies next, which
is also where a worker taking the partition over resumes. A crash can therefore repeat an
output (with identical content, because the logic is deterministic) but never lose one. The
messages of a partition are applied strictly in offset order (:mod:`.sequencer`): a hole in
what the consumer hands over is mended by seeking back, never passed over. No Faust
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
from faust.types import TP

from gridalarm.config import Settings
from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.messages import dumps, heartbeat_message
from gridalarm.metrics import MetricsBind, serve
from gridalarm.stream.pipeline import Pipeline
from gridalarm.stream.processor import BatchResult, PartitionProcessor, RawMessage
from gridalarm.stream.sequencer import PartitionSequencer
from gridalarm.stream.silence_feed import SilenceFeed
from gridalarm.stream.telemetry import WorkerCollector, WorkerStats

log = logging.getLogger("gridalarm.worker")

# A batch writes one state record per stream it touched: with 2,000 streams, batches of 2,000
# messages wrote about one per message. 10,000 within 0.2 s took the worker from 2,230-2,892
# to 3,556-3,896 messages/s on the adversarial benchmark (bare Faust: 5,202-7,048 to 6,215);
# a stream buffer of 32,768 on top gave 2,924-3,745, and processing the next batches while
# earlier ones await their acks (up to 4 in flight) 2,912-3,394: neither kept (README).
BATCH_MAX = 10000  # messages per batch
BATCH_WITHIN = 0.2  # seconds to wait for a batch to fill
# A partition with unapplied messages in the log and no progress for this long is sought back
# to its state's next offset (see mend_stalls). Long enough that a partition merely queued
# behind others is never taken for a stalled one; a mistaken seek costs a re-read, no more.
STALL_AFTER = 30.0
STALL_CHECK = 5.0
COMMIT_INTERVAL = 1.0  # seconds between commits of the applied offsets
# How Faust consumes: shared with benchmarks/bare_faust.py, so that the bare agent it measures
# the worker against consumes exactly as the worker does.
CONSUMER_SETTINGS: dict[str, Any] = {
    "consumer_max_fetch_size": 16 * 1024 * 1024,
    "broker_max_poll_records": 5000,
    "stream_wait_empty": False,
    "broker_commit_interval": 1.0,
}
REFETCH_PAUSE = 1.5  # seconds the flow stays stopped before a seek (see refetch)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Process-level choices that are not pipeline settings."""

    bootstrap: KafkaTarget  # the broker and its security (a bare address: PLAINTEXT)
    web_enabled: bool = False
    loglevel: str = "warning"
    metrics: MetricsBind | None = None  # where to serve Prometheus metrics, if anywhere


def build_worker(settings: Settings, options: WorkerOptions) -> faust.App:
    """Compose the Faust app for ``settings``: topics, tables, the agent and the idle clock."""
    datadir = settings.state_dir / "faust" / settings.worker_id
    app = faust.App(
        settings.worker_id,
        **access_of(options.bootstrap).faust(),  # broker URL and credentials
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        web_enabled=options.web_enabled,
        web_port=settings.web_port,
        datadir=str(datadir),
        producer_max_request_size=16 * 1024 * 1024,
        # Faust's default, said here because the worker relies on it: an output counts as
        # published (and the offsets behind it may be committed) only once every in-sync
        # replica has it, so it survives the loss of a broker (min.insync.replicas >= 2).
        producer_acks=-1,
        table_standby_replicas=0,
        # Our topics are created by ensure_topics with their own configs; Faust declares only
        # its changelog and internal topics.
        autodiscover=False,
        **CONSUMER_SETTINGS,
    )
    datadir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline.from_settings(settings)

    def topic(kind: str, acks: bool = True) -> faust.TopicT:
        return app.topic(
            settings.topic(kind),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            acks=acks,
        )

    # Faust commits what its streams ack, and it acks messages it skips for its own reasons
    # (a stale rebalance generation), past messages no worker applied: a stress run lost 640
    # windows that way. The worker commits the events partitions itself (commit_applied),
    # with the offset its state says comes next.
    events = topic("events", acks=False)
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
    sequencers: dict[int, PartitionSequencer] = {}
    progress_at: dict[int, float] = {}  # partition -> monotonic time of its last applied batch
    log_start: dict[int, int] = {}  # partition without state -> the log's first offset
    applied: dict[int, int] = {}  # partition -> next offset, its state on the broker up to it
    committed: dict[int, int] = {}  # partition -> the offset this worker committed last
    owned: set[int] = set()  # events partitions this worker holds now
    seeking = asyncio.Lock()  # one refetch at a time: each stops and resumes the whole flow
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
    async def _on_recovered(app: faust.App, **kwargs: Any) -> None:
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
        now = time.monotonic()
        progress_at.update(dict.fromkeys(owned, now))  # the stall clock starts after recovery
        # A partition without state has applied nothing: it starts at the log's first offset,
        # whatever the group committed.
        topic_name = events.get_topic_name()
        blank = [TP(topic_name, p) for p in owned if state.data.get(_partition_key(p)) is None]
        if blank:
            starts = await app.consumer.earliest_offsets(*blank)
            log_start.update({tp.partition: offset for tp, offset in starts.items()})
        # Faust seeks the stream partitions to the group's committed offsets next: set them to
        # where the state resumes, so that the seek lands there (the group's commit can be
        # ahead: committed by an older version, or reset by hand).
        resume = {p: o for p in owned if (o := next_offset(p)) is not None}
        if resume and await commit({p: o for p, o in resume.items() if committed.get(p) != o}):
            log.info("resuming partitions at the offsets their state applies next: %s", resume)
            # aiokafka's seek to the committed offsets passes over a commit of 0.
            for partition, offset in resume.items():
                await seek(partition, offset)

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
                sequencers.pop(tp.partition, None)
                progress_at.pop(tp.partition, None)
                log_start.pop(tp.partition, None)
                applied.pop(tp.partition, None)
                committed.pop(tp.partition, None)
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
            applied_in_batch: list[int] = []
            seeks: dict[int, int] = {}
            for partition, events_of_partition in by_partition.items():
                if partition not in owned:
                    # Revoked while this batch waited: the next owner (maybe this worker
                    # again) reads them from the committed offset, which its state set.
                    continue
                proc = processor_for(partition)
                # In arrival order: a seek makes offsets go back, and the sequencer tells a
                # re-fetch from what was fetched before it by exactly that.
                offsets = [e.message.offset for e in events_of_partition]
                arrived = {
                    o: RawMessage(e.message.topic, partition, o, e.value)
                    for o, e in zip(offsets, events_of_partition, strict=True)
                }
                step = sequencer_for(partition).admit(next_offset(partition), offsets)
                if step.seek_to is not None:
                    seeks[partition] = step.seek_to
                if not step.admitted:
                    continue
                progress_at[partition] = time.monotonic()
                result = proc.process([arrived[o] for o in step.admitted], feed.silences)
                if result.skipped:
                    log.warning(
                        "partition %d: %d offsets before offset %d are not in the log",
                        partition, result.skipped, step.admitted[-1],
                    )  # fmt: skip
                sent.extend(publish(partition, result))
                applied_in_batch.append(partition)
                stats.record(partition, result, proc.state.offset, proc.state.max_time)
            if sent:
                # A partition's offset is committed once the broker has the outputs and state
                # of everything before it, never sooner: a worker killed in between leaves
                # its successor a state at or ahead of the committed offset, never behind.
                # asyncio.wait, not gather: a worker stopping cancels this wait, never the
                # delivery futures, which Faust resolves when the broker answers (cancelled,
                # each made it log an InvalidStateError traceback at a SIGTERM mid-batch).
                delivered, _ = await asyncio.wait(sent)
                for future in delivered:
                    future.result()  # a failed delivery stops the worker, as before
            for partition in applied_in_batch:
                done = processors.get(partition)
                if partition in owned and done is not None and done.next_offset is not None:
                    applied[partition] = done.next_offset
            if seeks:
                for partition, offset in seeks.items():
                    log.warning(
                        "partition %d: the consumer skipped past offset %d, seeking back to it",
                        partition, offset,
                    )  # fmt: skip
                await refetch(seeks)

    def next_offset(partition: int) -> int | None:
        """Where the partition resumes: after its state's offset, or at the log's start."""
        after_state = processor_for(partition).next_offset
        return after_state if after_state is not None else log_start.get(partition)

    def sequencer_for(partition: int) -> PartitionSequencer:
        return sequencers.setdefault(partition, PartitionSequencer())

    async def seek(partition: int, offset: int) -> None:
        """Seek an events partition, in the consumer's own thread.

        Faust's ``Consumer.seek`` calls aiokafka's from the worker's thread while aiokafka's
        fetcher runs in the consumer's: both deleted the partition's fetched records at once
        and the fetcher crashed with a KeyError in ``fetched_records``, taking the worker down
        (a stress run, at the seek that ends a recovery). Queued to the consumer's thread, the
        seek runs between its fetches; Faust's read offset is then set as its own seek sets it,
        so that the messages from ``offset`` on are delivered again.
        """
        tp = TP(events.get_topic_name(), partition)
        thread = app.consumer._thread  # private in Faust 0.15: its only way into that thread
        await thread.call_thread(thread.seek, tp, offset)
        app.consumer._read_offset[tp] = offset if offset else None

    async def refetch(targets: dict[int, int]) -> None:
        """Seek partitions back to offsets (partition -> offset) the consumer went past.

        Faust's fetcher overrules a seek made while it iterates a fetch (it records each
        message it passes on as read, and drops re-fetched ones below that) or while a fetch
        returns to a stopped flow (it seeks everything to the committed offsets). So: stop the
        flow, let the fetch in flight come back (its timeout is a second), seek, resume.
        """
        async with seeking:
            generation = app.consumer_generation_id
            app.consumer.stop_flow()
            try:
                await asyncio.sleep(REFETCH_PAUSE)
                for partition, offset in targets.items():
                    if app.rebalancing or app.consumer_generation_id != generation:
                        return  # the rebalance seeks; the sequencers see what remains
                    if partition not in owned:
                        continue
                    stats.refetches += 1
                    await seek(partition, offset)
            finally:
                # Never resume a flow a rebalance stopped: Faust resumes it after its seeks.
                if not app.rebalancing and app.consumer_generation_id == generation:
                    app.consumer.resume_flow()

    @app.timer(interval=COMMIT_INTERVAL)
    async def commit_applied() -> None:
        if app.rebalancing:
            return  # Faust seeks to the committed offsets at the end of a rebalance
        await commit({p: o for p, o in applied.items() if p in owned and committed.get(p) != o})

    async def commit(offsets: dict[int, int]) -> bool:
        """Commit events partitions' offsets (partition -> offset); False if not done."""
        if not offsets:
            return True
        topic_name = events.get_topic_name()
        # Faust's own commit call (no public one takes explicit offsets); it commits only
        # partitions still assigned, and returns False when a rebalance got there first.
        done = await app.consumer._commit({TP(topic_name, p): o for p, o in offsets.items()})
        if done:
            committed.update(offsets)
        return bool(done)

    @app.timer(interval=STALL_CHECK)
    async def mend_stalls() -> None:
        # A partition whose fetched messages Faust dropped without moving the fetch position
        # back gets no later message that would show the hole to the sequencer: it stalls
        # with the log ahead of its state (the restart test's 3,211 messages of one
        # partition, never delivered). Seen here as no progress for STALL_AFTER seconds
        # while the log holds messages the state has not applied; mended by a seek.
        if app.rebalancing or not feed.ready.is_set():
            return  # no progress expected: the agent waits for the silences
        now = time.monotonic()
        topic_name = events.get_topic_name()
        quiet = [p for p in owned if now - progress_at.get(p, now) > STALL_AFTER]
        if not quiet:
            return
        tps = [TP(topic_name, p) for p in quiet]
        ends = await app.consumer.highwaters(*tps)
        stalled: dict[int, int] = {}
        for tp in tps:
            want = next_offset(tp.partition)
            end = ends.get(tp)
            progress_at[tp.partition] = now  # one mend per STALL_AFTER, not one per check
            if want is not None and end is not None and end > want:
                log.warning(
                    "partition %d: no progress for %.0f s with offsets %d to %d unapplied, "
                    "seeking back to %d", tp.partition, STALL_AFTER, want, end - 1, want,
                )  # fmt: skip
                stalled[tp.partition] = want
        if stalled:
            await refetch(stalled)

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
