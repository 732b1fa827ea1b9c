"""Elasticsearch producer, Kafka side: send what the scans read, checkpoint once acknowledged.

A :class:`~gridalarm.producers.base.CheckpointedProducer`, like the EventLog producer: a
checkpoint is saved only after the broker acknowledged everything sent before it, with the
events topic's end offsets then; a restarted producer reads the topic past those offsets and
does not send again the events a crash left delivered but not checkpointed (their
``attrs.eid``: ``es:<index>/<_id>`` or ``agg:<window>:<stream>:<type>``). Reading resumes from
the delivered position (:class:`~gridalarm.producers.elastic.Position`), so nothing is skipped
either.

Backfill reads ``[since, until)`` (until: now minus the lag) once; ``--follow`` then repeats
the pass every poll over ``[position, now - lag)``: the lag leaves time for the index refresh
and for documents indexed late. ``--aggregate`` sends one pre-counted event per window, stream
and type, and only for windows that ended before ``now - lag``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gridalarm.config import Settings
from gridalarm.producers.base import CheckpointedProducer, Delivery, ProducerStats
from gridalarm.producers.elastic import (
    AggPosition,
    AggScan,
    Converted,
    DocScan,
    ElasticCheckpoint,
    ElasticError,
    FieldMap,
    Outage,
    Position,
    Retrying,
    convert,
    save_checkpoint,
    window_floor,
)
from gridalarm.producers.sink import EventSink
from gridalarm.producers.warn import Warn, no_warning

DOC_PAGE = 1000  # documents per search request (Elasticsearch allows up to 10,000)
# Composite buckets per request (search.max_buckets allows 65,536). Buckets are small (a key
# and a count) and every request re-runs the aggregation over each index of the pattern, so a
# bigger page saves most of the time: a month of 8 schedds, 1.5 s at 1,000, 0.45 s at 10,000.
AGG_PAGE = 10_000


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
    page_size: int | None = None  # None: DOC_PAGE documents, or AGG_PAGE buckets per request

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
        if self.page_size is not None and not 0 < self.page_size <= (
            65_536 if self.aggregate else 10_000
        ):
            raise ElasticError(
                "--page-size: 1 to 10000 documents, or 1 to 65536 buckets with --aggregate"
            )

    @property
    def page(self) -> int:
        """Documents (or, with --aggregate, buckets) per search request."""
        if self.page_size is not None:
            return self.page_size
        return AGG_PAGE if self.aggregate else DOC_PAGE

    @property
    def mode(self) -> str:
        return "aggregate" if self.aggregate else "docs"


@dataclass(slots=True)
class ElasticStats(ProducerStats):
    """What a producer run did (``events``: messages sent, a pre-counted one once)."""

    documents: int = 0  # documents they stand for
    unaggregated: int = 0  # --aggregate: documents without a stream or type, not counted
    passes: int = 0
    pits: int = 0
    retries: int = 0

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


def follow_upper(now: float, lag: float, outages: Iterable[Outage]) -> float:
    """How far a pass starting at ``now`` may read: ``now - lag``, but for ``lag`` after the
    cluster answers again, no further than ``lag`` before the outage began.

    The lag is the time a document may take to become visible after its time stamp. Documents
    stamped while the cluster was down are indexed only once it is back (Logstash holds and
    resends them), so they get the same lag counted from then; reading past them earlier would
    skip them for good, and the heartbeats would close their windows without them.

    >>> follow_upper(1000.0, 10.0, [])
    990.0
    >>> follow_upper(1000.0, 10.0, [Outage(began=900.0, answered=995.0)])
    890.0
    >>> follow_upper(1010.0, 10.0, [Outage(began=900.0, answered=995.0)])
    1000.0
    """
    upper = now - lag
    for outage in outages:
        if now < outage.answered + lag:
            upper = min(upper, outage.began - lag)
    return upper


class ElasticProducer(CheckpointedProducer):
    """Reads the index pattern in time order and sends each document (or count) once."""

    stats: ElasticStats
    fatal = (*CheckpointedProducer.fatal, ElasticError)

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
        delivery = Delivery(
            settings=config.settings,
            sink=sink,
            deadletters=deadletters,
            checkpoint_path=checkpoint_path,
            resumed_ends=resumed_from.kafka_ends if resumed_from is not None else None,
            resumed=resumed_from is not None,
            checkpoint_interval=config.checkpoint_interval,
            warn=warn,
        )
        super().__init__(delivery, ElasticStats())
        self.call = call
        self.config = config
        previous = resumed_from
        self.position = Position(
            previous.ts_ms if previous else None, set(previous.seen) if previous else set()
        )
        self.agg = AggPosition(
            previous.agg_from if previous else None, previous.agg_after if previous else None
        )
        self._safe: float | None = None  # event time before which everything was read

    @property
    def follows(self) -> bool:
        return self.config.follow

    def clock(self) -> float | None:
        return self._safe

    @property
    def since_ms(self) -> int | None:
        since = self.config.since
        if since is None:
            return None
        if self.config.aggregate:
            return window_floor(int(since * 1000), self.config.window)
        return int(since * 1000)

    def _upper_ms(self) -> int:
        """The end of this pass: --until, else now minus the lag, held after an outage
        (:func:`follow_upper`; aggregate: a window start)."""
        cfg = self.config
        if cfg.until is not None:
            upper = cfg.until
        else:
            now = time.time()
            outages = self.call.outages
            outages[:] = [o for o in outages if now < o.answered + cfg.lag]
            upper = follow_upper(now, cfg.lag, outages)
            if self._safe is not None:  # heartbeats never go back
                upper = max(upper, self._safe)
        upper_ms = int(upper * 1000)
        return window_floor(upper_ms, cfg.window) if cfg.aggregate else upper_ms

    async def produce(self, stop: asyncio.Event | None) -> None:
        try:
            while True:
                upper = self._upper_ms()
                if self.config.aggregate:
                    await self._aggregate_pass(upper)
                else:
                    await self._doc_pass(upper)
                self.stats.passes += 1
                self._safe = upper / 1000.0
                # What a crashed run delivered lies before this pass's end: all found by now.
                self.found_all_skipped()
                if not self.config.follow:
                    return
                await self.maybe_commit()
                if await self.wait(stop, self.config.poll_interval):
                    return
        except asyncio.CancelledError:
            self.call.stopping.set()  # a page fetch still retrying in its thread gives up
            raise

    def finish(self) -> None:
        self.stats.retries = self.call.retries

    async def _send(self, message: dict, ts: float | None, documents: int) -> None:
        if await self.emit(message, ts, message["attrs"]["eid"]):
            self.stats.documents += documents

    async def _doc_pass(self, upper_ms: int) -> None:
        cfg = self.config
        scan = DocScan(self.call, cfg.index, cfg.fields, upper_ms, cfg.page)

        def fetch() -> asyncio.Future[list[dict]]:
            # The position is only read when a point-in-time must be reopened; one a page
            # behind starts the search a little early, and what it finds again is skipped
            # below (Position.passed), so nothing is lost or repeated.
            return asyncio.ensure_future(
                asyncio.to_thread(scan.next_page, self.position, self.since_ms)
            )

        pending: asyncio.Future[list[dict]] | None = fetch()
        try:
            while True:
                hits = await pending
                pending = None
                if not hits:
                    return
                # Ask for the next page before converting this one: Elasticsearch finds it
                # while this process converts and sends.
                pending = fetch()
                for hit in hits:
                    item = convert(hit, cfg.fields, cfg.source)
                    if self.position.passed(item):
                        continue
                    if item.message is not None:
                        await self._send(item.message, item.ts, 1)
                    else:
                        await self._dead_letter(item)
                    self.position.advance(item)
                await self.maybe_commit()
        finally:
            if pending is not None:
                # Leaving mid-pass (stopped, or an error): a thread cannot be cancelled, so
                # tell a fetch still retrying in it to give up, and let it end before the
                # point-in-time it uses is closed (an error it ends with is moot now).
                if not pending.done():
                    self.call.stopping.set()
                await asyncio.wait({pending})
                if not pending.cancelled():
                    pending.exception()
            self.stats.pits += scan.pits
            await asyncio.to_thread(scan.close)

    async def _aggregate_pass(self, upper_ms: int) -> None:
        cfg = self.config
        if self.agg.from_ms is None:
            self.agg.from_ms = self.since_ms
        if self.agg.from_ms is not None and self.agg.from_ms >= upper_ms:
            return
        scan = AggScan(self.call, cfg.index, cfg.fields, cfg.window, upper_ms, cfg.page)
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
            await self.maybe_commit()
        self.agg.from_ms = upper_ms
        self.agg.after = None
        if self.stats.unaggregated > warned:
            self.warn(
                f"{self.stats.unaggregated - warned} documents without a stream or type field "
                "were not counted (read them without --aggregate to dead-letter them)"
            )

    async def _dead_letter(self, item: Converted) -> None:
        index, _, _ = item.key.partition("/")
        await self.dead_letter(
            item.raw,
            item.reason,
            item.detail,
            origin=f"es:{index}",
            where=item.key,
            stream=item.stream,
        )

    def save_checkpoint(self, path: Path, kafka_ends: dict[int, int] | None) -> None:
        save_checkpoint(
            path,
            ElasticCheckpoint(
                topic=self.sink.config.topic,
                mode=self.config.mode,
                ts_ms=self.position.ts_ms,
                seen=tuple(self.position.seen),
                agg_from=self.agg.from_ms,
                agg_after=self.agg.after,
                kafka_ends=kafka_ends,
                saved_at=time.time(),
            ),
        )


__all__ = ["AGG_PAGE", "DOC_PAGE", "ElasticConfig", "ElasticProducer", "ElasticStats"]
