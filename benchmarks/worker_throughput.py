"""Worker throughput: events/s from the events topic into closed windows, beside a bare consumer.

All three read the same topic in the same run on the same broker:
- baseline: a bare aiokafka consumer loop (``getmany``) that only counts the messages;
- bare Faust: a Faust agent that takes the same batches as the worker and drops them (the
  ceiling of any Faust worker on this machine);
- worker: a real ``gridalarm worker`` process (parse, validate, window, score, alert, publish,
  keep state in changelogged tables).
The two Faust processes are timed from their first committed offset to their last. It prints
events/s for each, the ratios, and the worker's peak RSS (VmHWM).

Run: ``make bench`` (all benchmarks) or ``python -m benchmarks.worker_throughput --events 300000``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, TopicPartition

from benchmarks.broker import broker
from gridalarm.config import Settings
from gridalarm.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]


def _run(settings: Settings, *args: str) -> None:
    env = _env(settings)
    subprocess.run([sys.executable, "-m", "gridalarm", *args], env=env, check=True, cwd=REPO)


def _env(settings: Settings) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "GRIDALARM_KAFKA": str(settings.kafka),
        "GRIDALARM_TOPIC_PREFIX": settings.topic_prefix,
        "GRIDALARM_WINDOW": str(settings.window),
        "GRIDALARM_WORKER_ID": settings.worker_id,
        "GRIDALARM_STATE_DIR": str(settings.state_dir),
    }


def _total(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka)
    tps = [TopicPartition(settings.topic("events"), p) for p in range(settings.partitions)]
    total = sum(consumer.end_offsets(tps).values())
    consumer.close()
    return total


async def bare_consumer_rate(settings: Settings, total: int) -> float:
    """Messages/s of a bare aiokafka loop reading the whole events topic."""
    consumer = AIOKafkaConsumer(
        settings.topic("events"),
        bootstrap_servers=settings.kafka,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        return seen / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


def consumer_process_rate(
    settings: Settings, command: list[str], group: str, total: int, log: Path
) -> tuple[float, int]:
    """(events/s, peak RSS in KiB) of a consumer-group process consuming the whole topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False
    )
    tps = [TopicPartition(settings.topic("events"), p) for p in range(settings.partitions)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=_env(settings), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:
        first: tuple[float, int] | None = None
        done = 0
        deadline = time.monotonic() + 1800
        while done < total and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{command} exited with {proc.returncode}; see {log}")
            done = sum(consumer.committed(tp) or 0 for tp in tps)
            if first is None and done > 0:
                first = (time.perf_counter(), done)
            time.sleep(0.2)
        peak = _peak_rss_kib(proc.pid)
        assert first is not None
        seconds = time.perf_counter() - first[0]
        return (done - first[1]) / seconds, peak
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        consumer.close()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--days", type=float, default=0.5)
    args = parser.parse_args(argv)
    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            kafka=bootstrap, topic_prefix=prefix, window=60.0, worker_id=f"{prefix}-worker",
            state_dir=Path(tmp) / "state",
        )  # fmt: skip
        ensure_topics(settings, bootstrap)
        sim = Path(tmp) / "sim"
        _run(settings, "simulate", "--streams", str(args.streams), "--days", str(args.days),
             "--window", "1m", "--seed", "1", "--out", str(sim))  # fmt: skip
        _run(settings, "produce", "replay", str(sim / "events.jsonl"), "--quiet")
        total = _total(settings)
        bare = asyncio.run(bare_consumer_rate(settings, total))
        faust_group = f"{prefix}-bare-faust"
        bare_faust, _ = consumer_process_rate(
            settings,
            [sys.executable, "-m", "benchmarks.bare_faust", bootstrap,
             settings.topic("events"), str(settings.partitions), faust_group],
            faust_group, total, Path(tmp) / "bare-faust.log",
        )  # fmt: skip
        rate, peak = consumer_process_rate(
            settings,
            [sys.executable, "-m", "gridalarm", "worker"],
            settings.worker_id, total, Path(tmp) / "worker.log",
        )  # fmt: skip
        result = {
            "events": total,
            "bare_aiokafka_events_per_s": round(bare),
            "bare_faust_events_per_s": round(bare_faust),
            "worker_events_per_s": round(rate),
            "worker_to_bare_aiokafka": round(rate / bare, 3),
            "worker_to_bare_faust": round(rate / bare_faust, 3),
            "worker_peak_rss_mib": round(peak / 1024, 1),
        }
        for key, value in result.items():
            print(f"{key:28} {value}")
        return result


if __name__ == "__main__":
    main()
