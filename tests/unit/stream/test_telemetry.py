"""The worker's counters and what its collector reports, without a worker."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest

from gridalarm.stream.processor import BatchResult
from gridalarm.stream.scoring import Outputs
from gridalarm.stream.telemetry import MAX_KINDS, Histogram, WorkerCollector, WorkerStats


def batch(**fields) -> BatchResult:
    return BatchResult(outputs=fields.pop("outputs", Outputs()), **fields)


def scrape(stats: WorkerStats, highwater=lambda p: None, now: float = 0.0) -> str:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(stats, highwater, clock=lambda: now))
    return generate_latest(registry).decode()


def test_batches_add_up() -> None:
    stats = WorkerStats(lateness=30.0)
    outputs = Outputs(
        scores=[{"model": "baseline@2"}, {"model": "lstm-forecast@7"}],
        alerts=[{"state": "open"}, {"state": "suppressed"}],
    )
    stats.record(
        0,
        batch(
            kinds=Counter({("sim", "JobHeldEvent"): 5, ("probe:q", "gauge"): 2}),
            heartbeats=1,
            windows_closed=2,
            late=1,
            skipped=3,
            deadletters=[{"reason": "late"}, {"reason": "bad_json"}],
            outputs=outputs,
            score_seconds=0.003,
        ),
        offset=41,
        max_time=1000.0,
    )
    stats.record(0, batch(kinds=Counter({("sim", "JobHeldEvent"): 1})), offset=42, max_time=1010.0)
    stats.refetches += 2
    text = scrape(stats, highwater=lambda p: 50, now=1100.0)
    assert 'gridalarm_worker_events_total{source="sim",type="JobHeldEvent"} 6.0' in text
    assert 'gridalarm_worker_events_total{source="probe:q",type="gauge"} 2.0' in text
    assert "gridalarm_worker_windows_closed_total 2.0" in text
    assert "gridalarm_worker_late_events_total 1.0" in text
    assert "gridalarm_worker_skipped_offsets_total 3.0" in text
    assert "gridalarm_worker_refetches_total 2.0" in text
    assert 'gridalarm_worker_deadletters_total{reason="bad_json"} 1.0' in text
    assert 'gridalarm_worker_alerts_total{state="suppressed"} 1.0' in text
    assert 'gridalarm_worker_model_info{model="lstm-forecast@7"} 1.0' in text
    # 50 messages in the partition, offsets 0..42 applied: 7 to go.
    assert 'gridalarm_worker_consumer_lag{partition="0"} 7.0' in text
    # Watermark = 1010 - 30 lateness; 1100 - 980 behind.
    assert 'gridalarm_worker_watermark_delay_seconds{partition="0"} 120.0' in text
    assert 'gridalarm_worker_step_seconds_bucket{le="0.005"} 1.0' in text
    assert 'gridalarm_worker_step_seconds_bucket{le="0.0025"} 0.0' in text


def test_revoked_partition_is_not_reported() -> None:
    stats = WorkerStats()
    stats.record(3, batch(), offset=9, max_time=5.0)
    stats.forget(3)
    assert 'partition="3"' not in scrape(stats, highwater=lambda p: 10)


def test_kinds_are_bounded() -> None:
    stats = WorkerStats()
    kinds = Counter({("src", f"type{i}"): 1 for i in range(MAX_KINDS + 5)})
    stats.record(0, batch(kinds=kinds), offset=0, max_time=0.0)
    assert len(stats.events) == MAX_KINDS + 1
    assert stats.events[("other", "other")] == 5


def test_histogram_buckets_are_cumulative() -> None:
    hist = Histogram()
    for value in (0.0001, 0.002, 0.002, 20.0):
        hist.observe(value)
    pairs = dict(hist.cumulative())
    assert pairs["0.0005"] == 1 and pairs["0.0025"] == 3 and pairs["10.0"] == 3
    assert pairs["+Inf"] == 4
    assert abs(hist.total - 20.0041) < 1e-9
