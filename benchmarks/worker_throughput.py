"""Worker throughput: messages/s and events/s from the events topic into closed windows.

Two inputs, each on its own fresh topic, with the default settings (1-hour windows, 30 s
lateness, coalescing on with its 1 s linger):
- ``natural``: a simulated pool of 2,000 streams sent by ``gridalarm simulate --to-kafka`` as a
  user would (the producer coalesces what it can: events of one stream, type and hour that it
  sends within a second of each other);
- ``adversarial``: the same number of streams, every event in a (stream, type, hour) of its
  own, so that coalescing merges nothing and every message carries one event.

Read whole by four consumers in the same run, on the same topic:
- ``aiokafka + JSON + count``: a bare aiokafka ``getmany`` loop that decodes every value with
  orjson, reads its time and adds its ``n`` to its stream's window count (the hand-written
  ceiling of any worker);
- ``aiokafka``: the same loop without decoding (the client's own ceiling);
- ``bare Faust``: a Faust agent that consumes as the worker does (its consumer settings, its
  batches, raw bytes) and drops the batches;
- ``worker``: a real ``gridalarm worker`` process (parse, validate, window, score with the
  default detector, alert, publish, keep state in changelogged tables).
The two Faust processes are timed from their first committed offset to their last; their
events/s are their messages/s times the topic's events per message. Figures are printed with
the ratios of the worker to the others, and the worker's peak RSS (VmHWM).

Run: ``make bench`` (all benchmarks) or ``python -m benchmarks.worker_throughput``
(``--mix natural`` or ``adversarial`` for one; ``--streams``, ``--hours`` to scale).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, TopicPartition

from benchmarks.broker import broker
from gridalarm.config import DEFAULT_FEATURES, Settings
from gridalarm.messages import event_message
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.timeutil import parse_time
from gridalarm.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIXES = ("natural", "adversarial")


@dataclass
class Fill:
    """What went onto a topic: messages, the events they carry, how long the producer took."""

    messages: int = 0
    events: int = 0
    producer_seconds: float = 0.0


def env_of(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "GRIDALARM_KAFKA": str(settings.kafka),
        "GRIDALARM_TOPIC_PREFIX": settings.topic_prefix,
        "GRIDALARM_PARTITIONS": str(settings.partitions),
        "GRIDALARM_WINDOW": str(settings.window),
        "GRIDALARM_LATENESS": str(settings.lateness),
        "GRIDALARM_WORKER_ID": settings.worker_id,
        "GRIDALARM_STATE_DIR": str(settings.state_dir),
    }


def fill_natural(settings: Settings, streams: int, hours: float) -> float:
    """A simulated pool, sent by the simulator's own command; the producer's seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gridalarm", "simulate", "--streams", str(streams),
         "--days", str(hours / 24), "--window", "1h", "--seed", "1", "--to-kafka", "--quiet"],
        env=env_of(settings), check=True, cwd=REPO, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def fill_adversarial(settings: Settings, streams: int, events: int) -> float:
    """``events`` events, each alone in its (stream, type, window), in time order, sent
    through the producers' sink with coalescing on; the producer's seconds."""
    kinds = DEFAULT_FEATURES
    per_window = streams * len(kinds)
    step = settings.window / per_window

    async def send() -> None:
        config = SinkConfig.from_settings(settings, str(settings.kafka), source="adversarial")
        async with EventSink(config) as sink:
            for i in range(events):
                window, j = divmod(i, per_window)
                # Streams turn fastest, so that every partition moves at once.
                stream, kind = j % streams, j // streams
                ts = T0 + window * settings.window + j * step
                await sink.send(event_message(ts, f"schedd:adv{stream:05d}", kinds[kind]), ts)
            end = T0 + (events // per_window + 1) * settings.window + settings.lateness
            await sink.heartbeat(end)

    started = time.perf_counter()
    asyncio.run(send())
    return time.perf_counter() - started


def events_partitions(settings: Settings) -> list[TopicPartition]:
    return [TopicPartition(settings.topic("events"), p) for p in range(settings.partitions)]


def total_messages(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka)
    total = sum(consumer.end_offsets(events_partitions(settings)).values())
    consumer.close()
    return total


async def aiokafka_rate(settings: Settings, total: int, decode: bool) -> tuple[float, int]:
    """(messages/s, events) of an aiokafka loop reading the whole topic; with ``decode`` it
    also decodes each value and counts its ``n`` into its stream's window."""
    consumer = AIOKafkaConsumer(
        settings.topic("events"),
        bootstrap_servers=settings.kafka,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    window = settings.window
    counts: dict[tuple[str, float], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    events = 0
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                seen += len(records)
                if not decode:
                    continue
                for record in records:
                    data = orjson.loads(record.value)
                    if "stream" not in data:
                        continue  # a heartbeat
                    n = data.get("n", 1)
                    start = math.floor(parse_time(data["ts"]) / window) * window
                    counts[(data["stream"], start)][data.get("type", "gauge")] += n
                    events += n
        return seen / (time.perf_counter() - (started or time.perf_counter())), events
    finally:
        await consumer.stop()


def consumer_process_rate(
    settings: Settings, command: list[str], group: str, total: int, log: Path
) -> tuple[float, int]:
    """(messages/s, peak RSS in KiB) of a consumer-group process consuming the whole topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False
    )
    tps = events_partitions(settings)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env_of(settings), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:
        first: tuple[float, int] | None = None
        done = 0
        deadline = time.monotonic() + 3600
        while done < total and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{command} exited with {proc.returncode}; see {log}")
            done = sum(consumer.committed(tp) or 0 for tp in tps)
            if first is None and done > 0:
                first = (time.perf_counter(), done)
            time.sleep(0.2)
        peak = peak_rss_kib(proc.pid)
        if first is None or done < total:
            raise SystemExit(f"{command} did not consume the topic; see {log}")
        if first[1] >= total:
            raise SystemExit(f"{command} consumed the topic within one look: make it larger")
        seconds = time.perf_counter() - first[0]
        return (done - first[1]) / seconds, peak
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        consumer.close()


def status_kib(pid: int, field: str) -> int:
    """A memory figure of ``/proc/<pid>/status`` in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def peak_rss_kib(pid: int) -> int:
    return status_kib(pid, "VmHWM")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    return status_kib(pid, field) / 1024


def start_worker(settings: Settings, log: Path, **env: str) -> subprocess.Popen:
    """A ``gridalarm worker`` on ``settings`` (``env`` added), its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "worker"],
            env={**env_of(settings), **env}, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip


class Offsets:
    """End and committed offsets of the topics a benchmark watches (the worker's group)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka, group_id=settings.worker_id, enable_auto_commit=False
        )
        self.events = events_partitions(settings)
        self.windows = [
            TopicPartition(settings.topic("windows"), p) for p in range(settings.partitions)
        ]

    def windows_total(self) -> int:
        return sum(self.consumer.end_offsets(self.windows).values())

    def events_end(self) -> int:
        return sum(self.consumer.end_offsets(self.events).values())

    def committed(self) -> int:
        return sum(self.consumer.committed(tp) or 0 for tp in self.events)

    def close(self) -> None:
        self.consumer.close()


def measure(settings: Settings, mix: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Fill a topic with ``mix`` and time the four consumers on it."""
    ensure_topics(settings, str(settings.kafka))
    if mix == "natural":
        producer_seconds = fill_natural(settings, args.streams, args.hours)
    else:
        producer_seconds = fill_adversarial(settings, args.streams, args.events)
    total = total_messages(settings)
    ceiling, events = asyncio.run(aiokafka_rate(settings, total, decode=True))
    bare, _ = asyncio.run(aiokafka_rate(settings, total, decode=False))
    per_message = events / total
    faust_group = f"{settings.topic_prefix}-bare-faust"
    bare_faust, _ = consumer_process_rate(
        settings,
        [sys.executable, "-m", "benchmarks.bare_faust", str(settings.kafka),
         settings.topic("events"), str(settings.partitions), faust_group],
        faust_group, total, tmp / f"bare-faust-{mix}.log",
    )  # fmt: skip
    worker, peak = consumer_process_rate(
        settings,
        [sys.executable, "-m", "gridalarm", "worker"],
        settings.worker_id, total, tmp / f"worker-{mix}.log",
    )  # fmt: skip
    return {
        "mix": mix,
        "messages": total,
        "events": events,
        "events_per_message": round(per_message, 2),
        "producer_events_per_s": round(events / producer_seconds),
        "aiokafka_messages_per_s": round(bare),
        "aiokafka_json_count_messages_per_s": round(ceiling),
        "aiokafka_json_count_events_per_s": round(ceiling * per_message),
        "bare_faust_messages_per_s": round(bare_faust),
        "bare_faust_events_per_s": round(bare_faust * per_message),
        "worker_messages_per_s": round(worker),
        "worker_events_per_s": round(worker * per_message),
        "worker_to_bare_faust": round(worker / bare_faust, 3),
        "worker_to_aiokafka_json_count": round(worker / ceiling, 3),
        "worker_peak_rss_mib": round(peak / 1024, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", choices=(*MIXES, "both"), default="both")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=3.0, help="natural: simulated hours")
    parser.add_argument("--events", type=int, default=300_000, help="adversarial: events")
    args = parser.parse_args(argv)
    results = []
    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        for mix in MIXES if args.mix == "both" else (args.mix,):
            prefix = f"bench-{mix[:3]}-{uuid.uuid4().hex[:8]}"
            settings = Settings(
                kafka=bootstrap, topic_prefix=prefix, worker_id=f"{prefix}-worker",
                state_dir=Path(tmp) / prefix,
            )  # fmt: skip
            result = measure(settings, mix, args, Path(tmp))
            for key, value in result.items():
                print(f"{key:36} {value}")
            results.append(result)
    return results


if __name__ == "__main__":
    main()
