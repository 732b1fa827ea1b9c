"""Metrics without a server: the address parser and what the producer collector reports."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from gridalarm.metrics import MetricsBind, MetricsError, producer_registry


def test_bind_addresses() -> None:
    assert MetricsBind.parse("127.0.0.1:9464") == MetricsBind("127.0.0.1", 9464)
    assert MetricsBind.parse(":9464") == MetricsBind("0.0.0.0", 9464)
    assert MetricsBind.parse("[::1]:9464") == MetricsBind("::1", 9464)
    for bad in ("9464", "host:", "host:99999", "host:http"):
        with pytest.raises(MetricsError, match="HOST:PORT"):
            MetricsBind.parse(bad)


def test_producer_collector_reads_the_counters_at_scrape_time() -> None:
    registry, metrics = producer_registry("probe:test")
    assert b"gridalarm_producer" not in generate_latest(registry)  # nothing attached yet
    sink_stats = SimpleNamespace(
        by_type=Counter({"JobHeldEvent": 3, "gauge": 2}), heartbeats=8, bytes=500, max_ts=1.7e9
    )
    run = SimpleNamespace(deadletters=1, duplicates=0, checkpoints=4, checkpointed_at=100.0)
    metrics.sink = SimpleNamespace(stats=sink_stats)
    metrics.producer = SimpleNamespace(stats=run)
    metrics._clock = lambda: 112.5
    text = generate_latest(registry).decode()
    assert 'gridalarm_producer_events_total{source="probe:test",type="JobHeldEvent"} 3.0' in text
    assert 'gridalarm_producer_events_total{source="probe:test",type="gauge"} 2.0' in text
    assert 'gridalarm_producer_deadletters_total{source="probe:test"} 1.0' in text
    assert 'gridalarm_producer_checkpoint_age_seconds{source="probe:test"} 12.5' in text
    sink_stats.by_type["JobHeldEvent"] += 2  # read again at the next scrape
    assert 'type="JobHeldEvent"} 5.0' in generate_latest(registry).decode()
