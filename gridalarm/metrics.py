"""Prometheus metrics: each process serves its own registry on ``--metrics HOST:PORT``.

The hot paths never touch a metric object. The worker, the producers and the dashboard already
keep plain counters of what they did (for their summaries and logs); the collectors here read
those counters when Prometheus scrapes, so a metric costs nothing per event. Each command builds
its :class:`~prometheus_client.CollectorRegistry` (the composition root owns it; there is no
module-level registry) and :func:`serve` exposes it.

Names follow Prometheus conventions: ``gridalarm_`` prefix, ``_total`` for counters, base
units (seconds, bytes). README "Operating gridalarm" lists them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class MetricsError(ValueError):
    """A bad ``--metrics`` address; one line for the operator."""


@dataclass(frozen=True, slots=True)
class MetricsBind:
    """Where a process serves ``/metrics``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> MetricsBind:
        """``HOST:PORT`` or ``:PORT`` (all interfaces)."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise MetricsError(
                f"--metrics {text!r}: write HOST:PORT, e.g. 127.0.0.1:9464 (or :9464 for all "
                "interfaces)"
            )
        return cls(host=host.strip("[]") or "0.0.0.0", port=int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def serve(registry: CollectorRegistry, bind: MetricsBind) -> Any:
    """Serve ``registry`` at ``http://HOST:PORT/metrics`` from a daemon thread; the server."""
    try:
        server, _thread = start_http_server(bind.port, addr=bind.host, registry=registry)
    except OSError as err:
        raise MetricsError(
            f"--metrics {bind}: cannot listen ({err.strerror or err}); pick a free port"
        ) from None
    return server


class ProducerMetrics(Collector):
    """A producer's counters at scrape time: its sink (every producer) and, for the
    checkpointed ones, its run statistics. ``sink`` and ``producer`` are set once they exist."""

    def __init__(self, source: str, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.sink: Any = None  # gridalarm.producers.sink.EventSink
        self.producer: Any = None  # gridalarm.producers.base.CheckpointedProducer
        self._clock = clock

    def collect(self) -> Iterator[Any]:
        labels = ["source"]
        source = [self.source]
        sink = self.sink
        if sink is not None:
            stats = sink.stats
            events = CounterMetricFamily(
                "gridalarm_producer_events",
                "Events sent to the events topic (before coalescing), by type (gauge: gauge "
                "samples).",
                labels=["source", "type"],
            )
            for kind, count in sorted(stats.by_type.items()):
                events.add_metric([self.source, kind], count)
            yield events
            yield _counter(
                "gridalarm_producer_heartbeats",
                "Heartbeat messages sent (one per partition per heartbeat).",
                labels,
                source,
                stats.heartbeats,
            )
            yield _counter(
                "gridalarm_producer_bytes", "Bytes of messages sent.", labels, source, stats.bytes
            )
            if stats.max_ts is not None:
                yield _gauge(
                    "gridalarm_producer_event_time_seconds",
                    "Event time of the latest event sent (epoch seconds).",
                    labels,
                    source,
                    stats.max_ts,
                )
        producer = self.producer
        if producer is not None:
            run = producer.stats
            yield _counter(
                "gridalarm_producer_deadletters",
                "Items of the source dead-lettered instead of sent.",
                labels,
                source,
                run.deadletters,
            )
            yield _counter(
                "gridalarm_producer_duplicates",
                "Events found already delivered after a crash, and not sent again.",
                labels,
                source,
                run.duplicates,
            )
            yield _counter(
                "gridalarm_producer_checkpoints",
                "Checkpoints written (each after the broker acknowledged what came before).",
                labels,
                source,
                run.checkpoints,
            )
            if run.checkpointed_at is not None:
                yield _gauge(
                    "gridalarm_producer_checkpoint_age_seconds",
                    "Seconds since the last checkpoint was written.",
                    labels,
                    source,
                    max(0.0, self._clock() - run.checkpointed_at),
                )


def _counter(name: str, doc: str, labels: list[str], values: list[str], value: float) -> Any:
    family = CounterMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


def _gauge(name: str, doc: str, labels: list[str], values: list[str], value: float) -> Any:
    family = GaugeMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


def producer_registry(source: str) -> tuple[CollectorRegistry, ProducerMetrics]:
    """A registry holding a producer's metrics (attach its sink and run once they exist)."""
    registry = CollectorRegistry()
    metrics = ProducerMetrics(source)
    registry.register(metrics)
    return registry, metrics


__all__ = [
    "MetricsBind",
    "MetricsError",
    "ProducerMetrics",
    "producer_registry",
    "serve",
]
