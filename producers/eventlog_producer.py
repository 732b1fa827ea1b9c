"""The Kafka side of the EventLog producer: send what the tailers read, checkpoint when acked.

:class:`EventLogProducer` drives :class:`~gridalarm.producers.eventlog.Tailer` objects (the
pure reading side) through :class:`~gridalarm.producers.base.CheckpointedProducer`, which sends
each event once and writes the checkpoint (:mod:`gridalarm.producers.checkpoint`) only once the
broker has acknowledged every event before it. See docs/eventlog.md for the guarantee.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from gridalarm.config import Settings
from gridalarm.producers.base import CheckpointedProducer, Delivery, ProducerStats
from gridalarm.producers.checkpoint import Checkpoint, CheckpointError, save_checkpoint
from gridalarm.producers.eventlog import BadChunk, EventLogError, Tailer
from gridalarm.producers.sink import EventSink
from gridalarm.producers.warn import Warn, no_warning


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
class EventLogStats(ProducerStats):
    """What a producer run did."""

    skipped: int = 0  # ad-information events (028) not sent (--ad-info skip, the default)
    rotations: int = 0
    truncations: int = 0
    files: int = 0

    def summary(self) -> str:
        """One line for the operator."""
        extra = []
        for count, what in (
            (self.deadletters, "dead-lettered"),
            (self.duplicates, "already delivered, not sent again"),
            (self.skipped, "JobAdInformation events not sent"),
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


class EventLogProducer(CheckpointedProducer):
    """Sends what the tailers read, dead-letters what they cannot, checkpoints what is delivered.

    Nothing is read while a checkpoint flushes, so the saved positions never run ahead of the
    acknowledged events. After a crash the events delivered past the last checkpoint are found
    on the topic (the base class) and skipped here as the logs are read again.
    """

    stats: EventLogStats
    fatal = (*CheckpointedProducer.fatal, CheckpointError)

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
        super().__init__(delivery, EventLogStats())
        self.tailers = tailers
        self.config = config
        self._positions = {id(t): t.position for t in tailers}

    @property
    def follows(self) -> bool:
        return any(t.config.follow for t in self.tailers)

    def clock(self) -> float | None:
        """Heartbeat time: the earliest of the tailers' safe times (None while one has none)."""
        now = time.time()
        times = [t.safe_time(now) for t in self.tailers]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def finish(self) -> None:
        self.stats.rotations = sum(t.rotations for t in self.tailers)
        self.stats.truncations = sum(t.truncations for t in self.tailers)
        self.stats.files = sum(len(t.files) for t in self.tailers)

    def _caught_up(self) -> bool:
        """Every log read to its end, none between files: an id still to skip now belongs to
        content that is gone (a deleted or truncated file), so it can never come again."""
        return all(t.finished or t.caught_up() for t in self.tailers)

    async def produce(self, stop: asyncio.Event | None) -> None:
        cfg = self.config
        follow = self.follows
        send = self.sink.send
        skip = self.skip
        stats = self.stats
        while True:
            busy = False
            for tailer in self.tailers:
                if tailer.finished:
                    continue
                items = tailer.poll(cfg.batch_events)
                for item in items:
                    if item.message is not None:
                        # Inlined emit(): this loop is the producer's hot path.
                        if skip and item.eid in skip:
                            skip.discard(item.eid)
                            stats.duplicates += 1
                        else:
                            await send(item.message, item.ts)
                            stats.events += 1
                    elif item.bad is not None:
                        await self._dead_letter(tailer, item.bad)
                    elif item.skipped:
                        stats.skipped += 1
                    self._positions[id(tailer)] = (item.gen, item.end)
                busy = busy or bool(items)
            if skip and not busy and self._caught_up():
                self.found_all_skipped()
            await self.maybe_commit()
            if not follow and all(t.finished for t in self.tailers):
                return
            if stop is not None and stop.is_set():
                return
            if busy:
                await asyncio.sleep(0)  # let the sink's linger and heartbeat tasks run
            else:
                await self.wait(stop, cfg.poll_interval)

    async def _dead_letter(self, tailer: Tailer, bad: BadChunk) -> None:
        await self.dead_letter(
            bad.data,
            bad.reason,
            bad.detail,
            origin=f"file:{bad.gen.name}",
            where=f"{bad.gen.name} at byte {bad.start}",
            offset=bad.start,
            stream=f"schedd:{tailer.schedd}" if tailer.schedd else None,
        )

    def save_checkpoint(self, path: Path, kafka_ends: dict[int, int] | None) -> None:
        checkpoint = Checkpoint(
            topic=self.sink.config.topic,
            paths={str(t.path): t.state(self._positions[id(t)]) for t in self.tailers},
            kafka_ends=kafka_ends,
            saved_at=time.time(),
        )
        save_checkpoint(path, checkpoint)


__all__ = ["EventLogProducer", "EventLogStats", "ProduceConfig"]
