"""What the worker did, as plain counters, and the Prometheus collector that reads them.

The worker adds each batch's :class:`~gridalarm.stream.processor.BatchResult` to a
:class:`WorkerStats` (a few dictionary updates per batch); :class:`WorkerCollector` reads the
counters when Prometheus scrapes. No Faust, no Kafka: unit-tested on their own.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from gridalarm.stream.processor import BatchResult

# Distinct (source, type) pairs kept apart; past that, new pairs count as ("other", "other"):
# event types and sources come from producers, and a buggy one must not make a label per event.
MAX_KINDS = 1000


# Upper bounds (seconds) of the detector step histogram: one step scores every window that
# closed in a batch, from a few streams (sub-millisecond) to tens of thousands (seconds).
STEP_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (the last one: above every bound) and the sum, like Prometheus's."""

    bounds: tuple[float, ...] = STEP_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(STEP_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus exposes them, ``+Inf`` last."""
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class PartitionView:
    """One events partition as the worker last saw it."""

    offset: int = -1  # last offset applied
    max_time: float = -math.inf  # latest event time seen
    updated: float = 0.0  # wall clock of the last batch


@dataclass(slots=True)
class WorkerStats:
    """Running totals of a worker process."""

    lateness: float = 0.0
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    heartbeats: int = 0
    windows_closed: int = 0
    late: int = 0
    skipped: int = 0
    refetches: int = 0  # seeks back to a partition's state after the consumer skipped ahead
    deadletters: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    scores: int = 0
    model: str | None = None  # name@version of the latest score
    partitions: dict[int, PartitionView] = field(default_factory=dict)
    step_seconds: Histogram = field(default_factory=Histogram)

    def record(self, partition: int, result: BatchResult, offset: int, max_time: float) -> None:
        """Add one processed batch of ``partition`` (its offset and event time after it)."""
        for key, count in result.kinds.items():
            if key not in self.events and len(self.events) >= MAX_KINDS:
                key = ("other", "other")
            self.events[key] += count
        self.heartbeats += result.heartbeats
        self.windows_closed += result.windows_closed
        self.late += result.late
        self.skipped += result.skipped
        for message in result.deadletters:
            self.deadletters[message["reason"]] += 1
        for alert in result.outputs.alerts:
            self.alerts[alert["state"]] += 1
        if result.outputs.scores:
            self.scores += len(result.outputs.scores)
            self.model = result.outputs.scores[-1]["model"]
        if result.score_seconds is not None:
            self.step_seconds.observe(result.score_seconds)
        view = self.partitions.setdefault(partition, PartitionView())
        view.offset, view.max_time, view.updated = offset, max_time, time.time()

    def forget(self, partition: int) -> None:
        """The partition went to another worker: its lag and delay are not ours to report."""
        self.partitions.pop(partition, None)

    def watermark_delay(self, partition: int, now: float) -> float | None:
        """Wall clock minus the partition's watermark (latest event time minus lateness)."""
        view = self.partitions.get(partition)
        if view is None or not math.isfinite(view.max_time):
            return None
        return max(0.0, now - (view.max_time - self.lateness))


class WorkerCollector(Collector):
    """The worker's metrics (README "Operating gridalarm" lists them) at scrape time.

    ``highwater(partition)`` is the events partition's end offset as the consumer last heard
    it (None when unknown): lag = highwater - (last applied offset + 1).
    """

    def __init__(
        self,
        stats: WorkerStats,
        highwater: Callable[[int], int | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stats = stats
        self.highwater = highwater
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        stats = self.stats
        events = CounterMetricFamily(
            "gridalarm_worker_events",
            "Events applied, by source and type (a message counts its n; gauge samples: gauge).",
            labels=["source", "type"],
        )
        for (source, kind), count in sorted(stats.events.items()):
            events.add_metric([source, kind], count)
        yield events
        yield CounterMetricFamily(
            "gridalarm_worker_heartbeats", "Producer heartbeats applied.", value=stats.heartbeats
        )
        yield CounterMetricFamily(
            "gridalarm_worker_windows_closed",
            "Stream windows closed (each is published and scored).",
            value=stats.windows_closed,
        )
        yield CounterMetricFamily(
            "gridalarm_worker_late_events",
            "Events older than their stream's closed windows (dead-lettered as late).",
            value=stats.late,
        )
        yield CounterMetricFamily(
            "gridalarm_worker_skipped_offsets",
            "Events-topic offsets the log turned out not to have, passed over "
            "(should stay 0: see README, Operating gridalarm).",
            value=stats.skipped,
        )
        yield CounterMetricFamily(
            "gridalarm_worker_refetches",
            "Seeks back to a partition's next unapplied offset after the consumer skipped "
            "or stalled past it (see README, Operating gridalarm).",
            value=stats.refetches,
        )
        yield _by(
            "gridalarm_worker_deadletters",
            "Messages dead-lettered, by reason.",
            "reason",
            stats.deadletters,
        )
        yield _by("gridalarm_worker_alerts", "Alert messages, by state.", "state", stats.alerts)
        yield CounterMetricFamily("gridalarm_worker_scores", "Windows scored.", value=stats.scores)
        step = HistogramMetricFamily(
            "gridalarm_worker_step_seconds",
            "Time of one batched detector step (all windows that closed in one batch).",
        )
        step.add_metric([], stats.step_seconds.cumulative(), stats.step_seconds.total)
        yield step
        if stats.model is not None:
            info = GaugeMetricFamily(
                "gridalarm_worker_model_info",
                "The model (name@version) of the latest score; value 1.",
                labels=["model"],
            )
            info.add_metric([stats.model], 1)
            yield info
        lag = GaugeMetricFamily(
            "gridalarm_worker_consumer_lag",
            "Messages of the events partition not yet applied by this worker.",
            labels=["partition"],
        )
        delay = GaugeMetricFamily(
            "gridalarm_worker_watermark_delay_seconds",
            "Wall clock minus the partition's watermark (latest event time - lateness).",
            labels=["partition"],
        )
        now = self.clock()
        for partition, view in sorted(stats.partitions.items()):
            high = self.highwater(partition)
            if high is not None:
                lag.add_metric([str(partition)], max(0, high - (view.offset + 1)))
            behind = stats.watermark_delay(partition, now)
            if behind is not None:
                delay.add_metric([str(partition)], behind)
        yield lag
        yield delay


def _by(name: str, doc: str, label: str, counts: Counter[str]) -> Any:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([key], count)
    return family


__all__ = [
    "MAX_KINDS",
    "STEP_BUCKETS",
    "Histogram",
    "PartitionView",
    "WorkerCollector",
    "WorkerStats",
]
