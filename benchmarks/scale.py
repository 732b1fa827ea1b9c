"""Scale: a million streams in one worker at 1-minute windows, most of them silent.

A real ``gridalarm worker`` (default detector, 1-minute windows, default lateness and
partitions) gets ``--streams`` streams, each with one event in the first window; afterwards a
small share (``--active``) has one event in each window, and a heartbeat per window moves
event time on. Every window close closes one window for every known stream (DESIGN.md: silent
streams get all-zero windows), so each close publishes a window and a score per stream and
rewrites every stream's state record.

Measured, each against a baseline of the same run:
- per close, from the heartbeat that moves the watermark past the window's end (sent once the
  worker has applied everything before it) to the first and the last window of the close on
  the windows topic, and to the worker's commit of the heartbeat; beside the window length
  (the target: every close within one window) and beside a bare Faust app publishing the same
  number of messages of the same sizes (``benchmarks.faust_publish``);
- the worker's RSS after each close and its peak, beside its RSS with no stream;
- the state: the changelog topic read whole (latest record per key: bytes per stream; every
  record: bytes the changelog holds before compaction), against the 2 GB target;
- the restore: the worker is stopped, one more window's events and heartbeat are sent, and a
  fresh worker (same group, empty state dir) is started; from its start to its first commit
  (it has restored the state table from the changelog) and to the last window of that close,
  beside a bare aiokafka read of the whole changelog.

Run: ``python -m benchmarks.scale`` (``--streams``, ``--windows``, ``--active``; ``make bench``
runs 10,000 streams). ``--profile FILE`` records the worker with py-spy during the last
close before the restore (collapsed stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from benchmarks.broker import broker
from benchmarks.worker_throughput import (
    REPO,
    Offsets,
    env_of,
    rss_mib,
    start_worker,
)
from gridalarm.config import DEFAULT_FEATURES, Settings
from gridalarm.messages import event_message
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.topics import ensure_topics

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a window start
WINDOW = 60.0
GB = 1e9
TARGET_STATE_BYTES = 2 * GB
MiB = 1024 * 1024
LOGS = REPO / ".state" / "bench-scale"
DEADLINE = 7200.0  # seconds any one wait may take before the run gives up


@dataclass
class Close:
    """One window close as the benchmark saw it."""

    window: int  # the index of the window that closed (0: the registration window)
    first_window_s: float = 0.0
    last_window_s: float = 0.0
    committed_s: float = 0.0
    rss_mib: float = 0.0


@dataclass
class Run:
    """Everything measured in one run."""

    streams: int
    closes: list[Close] = field(default_factory=list)
    register_s: float = 0.0
    start_s: float = 0.0  # from the worker's start to its first commit, with no state
    idle_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0


def stream_name(i: int) -> str:
    return f"schedd:scale{i:07d}"


def sink_config(settings: Settings) -> SinkConfig:
    # No coalescing, no periodic heartbeats: the benchmark says when event time moves.
    return SinkConfig(
        bootstrap=str(settings.kafka),
        topic=settings.topic("events"),
        source="scale",
        heartbeat_interval=None,
        coalesce=None,
    )


async def send_events(settings: Settings, streams: list[int], window: int) -> None:
    """One event per stream in window ``window``, all within its first 20 s (before the
    lateness lets the watermark pass the previous window's end: no close before the
    heartbeat)."""
    kind = DEFAULT_FEATURES[0]
    start = T0 + window * WINDOW
    step = 20.0 / max(len(streams), 1)
    async with EventSink(sink_config(settings)) as sink:
        for j, i in enumerate(streams):
            ts = start + j * step
            await sink.send(event_message(ts, stream_name(i), kind), ts)
        await sink.flush()


async def send_heartbeat(settings: Settings, ts: float) -> None:
    async with EventSink(sink_config(settings)) as sink:
        await sink.heartbeat(ts)
        await sink.flush()


def wait(what: str, done, proc: subprocess.Popen, log: Path, poll: float = 0.05) -> float:
    """Poll ``done()`` until true; the monotonic time it was first seen true."""
    deadline = time.monotonic() + DEADLINE
    while not done():
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode} ({what}); see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}; see {log}")
        time.sleep(poll)
    return time.monotonic()


def caught_up(offsets: Offsets) -> bool:
    return offsets.committed() >= offsets.events_end()


def close_window(
    settings: Settings,
    offsets: Offsets,
    worker: subprocess.Popen,
    log: Path,
    window: int,
    known: int,
    profile: Path | None = None,
) -> Close:
    """Send the heartbeat that closes ``window`` and time the close."""
    expected = (window + 1) * known  # every known stream closes one window per close
    before = offsets.windows_total()
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.pid),
             "--format", "raw", "--output", str(profile), "--rate", "50", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
    sent = time.monotonic()
    asyncio.run(send_heartbeat(settings, T0 + (window + 1) * WINDOW + settings.lateness))
    first = wait("the first window", lambda: offsets.windows_total() > before, worker, log)
    last = wait("the last window", lambda: offsets.windows_total() >= expected, worker, log)
    committed = wait("the commit", lambda: caught_up(offsets), worker, log)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)
    return Close(
        window=window,
        first_window_s=first - sent,
        last_window_s=last - sent,
        committed_s=committed - sent,
        rss_mib=rss_mib(worker.pid),
    )


async def read_changelog(settings: Settings) -> dict:
    """Read the state table's changelog whole: its records, their bytes, the latest per key."""
    topic = f"{settings.worker_id}-state-changelog"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * MiB,
        fetch_max_bytes=64 * MiB,
    )
    await consumer.start()
    try:
        from aiokafka import TopicPartition as TP

        tps = [TP(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[bytes, int] = {}
        records = written = 0
        started = time.perf_counter()
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000, max_records=50_000)
            for messages in batch.values():
                for m in messages:
                    records += 1
                    size = len(m.value) if m.value is not None else 0
                    written += size + len(m.key or b"")
                    if m.value is None:
                        latest.pop(m.key, None)
                    else:
                        latest[m.key] = size
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    stream_bytes = [size for key, size in latest.items() if key.startswith(b"s:")]
    partition_bytes = [size for key, size in latest.items() if key.startswith(b"p:")]
    return {
        "records": records,
        "bytes_written": written,
        "read_seconds": seconds,
        "stream_records": len(stream_bytes),
        "stream_bytes": sum(stream_bytes),
        "stream_bytes_max": max(stream_bytes, default=0),
        "partition_bytes": sum(partition_bytes),
        "partition_bytes_max": max(partition_bytes, default=0),
    }


def sample_sizes(settings: Settings, kinds: tuple[str, ...], count: int = 2000) -> list[int]:
    """The average value size of the last ``count`` messages of each topic kind."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False)
    sizes = []
    try:
        for kind in kinds:
            tp = TopicPartition(settings.topic(kind), 0)
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            consumer.seek(tp, max(0, end - count))
            seen: list[int] = []
            while len(seen) < min(count, end):
                for messages in consumer.poll(timeout_ms=1000).values():
                    seen.extend(len(m.value) for m in messages)
            sizes.append(round(sum(seen) / max(len(seen), 1)))
    finally:
        consumer.close()
    return sizes


def faust_publish_seconds(settings: Settings, count: int, sizes: list[int], log: Path) -> float:
    """Seconds a bare Faust app takes to publish ``count`` messages to each of three topics of
    ``sizes`` bytes (a close's windows, scores and state records)."""
    names = [f"{settings.topic_prefix}.publish-baseline-{kind}" for kind in ("w", "s", "r")]
    # The broker creates no topic on its own (auto.create.topics.enable=false).
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
    try:
        admin.create_topics([NewTopic(name, settings.partitions, 1) for name in names])
    finally:
        admin.close()
    result = log.with_name("faust-publish.seconds")
    targets = [f"{name}:{size}" for name, size in zip(names, sizes, strict=True)]
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.faust_publish", str(result), str(settings.kafka),
             str(settings.partitions), str(count), *targets],
            env=env_of(settings), stdout=out, stderr=out, cwd=REPO, check=False,
        )  # fmt: skip
    if not result.exists():
        raise SystemExit(f"the Faust publishing baseline wrote no time; see {log}")
    return float(result.read_text())


def log_dir_bytes(settings: Settings, topic: str) -> int | None:
    """The changelog's bytes on the broker's disk (DescribeLogDirs), None if not answered."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
        try:
            response = admin.describe_log_dirs()
        finally:
            admin.close()
        return sum(
            part["partition_size"]
            for answer in response
            for log_dir in answer["log_dirs"]
            for entry in log_dir["topics"]
            if entry["name"] == topic
            for part in entry["partitions"]
        )
    except Exception:  # an older broker or client: the figure is left out
        return None


def measure(settings: Settings, args: argparse.Namespace, tmp: Path) -> dict:
    ensure_topics(settings, str(settings.kafka))
    log = tmp / "worker.log"
    n = args.streams
    offsets = Offsets(settings)
    run = Run(streams=n)
    rng = random.Random(1)
    worker = start_worker(settings, log, GRIDALARM_DETECTOR=settings.detector)
    try:
        # A heartbeat before any stream: the worker applies it (and commits) once it has
        # joined the group, so its RSS then is that of a worker with no stream.
        launched = time.monotonic()
        asyncio.run(send_heartbeat(settings, T0 - 3600))
        ready = wait("the worker to start", lambda: caught_up(offsets), worker, log, 0.1)
        run.start_s = ready - launched
        run.idle_rss_mib = rss_mib(worker.pid)
        started = time.monotonic()
        asyncio.run(send_events(settings, list(range(n)), 0))
        registered = wait("the registration", lambda: caught_up(offsets), worker, log, 0.2)
        run.register_s = registered - started
        print(f"registered {n:,} streams in {run.register_s:.1f} s", flush=True)
        active = max(1, round(n * args.active))
        for window in range(args.windows):
            if window > 0:
                asyncio.run(send_events(settings, rng.sample(range(n), active), window))
                wait("the active events", lambda: caught_up(offsets), worker, log, 0.2)
            last = window == args.windows - 1
            close = close_window(
                settings, offsets, worker, log, window, n, args.profile if last else None
            )
            run.closes.append(close)
            print(
                f"close of window {window}: first window {close.first_window_s:.1f} s, last "
                f"{close.last_window_s:.1f} s, committed {close.committed_s:.1f} s, RSS "
                f"{close.rss_mib:.0f} MiB",
                flush=True,
            )
        run.peak_rss_mib = rss_mib(worker.pid, "VmHWM")
    finally:
        worker.terminate()
        worker.wait(timeout=600)

    changelog = asyncio.run(read_changelog(settings))
    changelog_topic = f"{settings.worker_id}-state-changelog"
    on_disk = log_dir_bytes(settings, changelog_topic)
    closes = [c.last_window_s for c in run.closes]
    worst = max(closes)
    state_bytes = changelog["stream_bytes"] + changelog["partition_bytes"]
    result = {
        "streams": n,
        "partitions": settings.partitions,
        "detector": settings.detector,
        "register_seconds": round(run.register_s, 1),
        "register_messages_per_s": round(n / run.register_s),
        "close_last_window_seconds": [round(s, 1) for s in closes],
        "close_first_window_seconds": [round(c.first_window_s, 1) for c in run.closes],
        "close_committed_seconds": [round(c.committed_s, 1) for c in run.closes],
        "close_worst_to_window": round(worst / WINDOW, 2),
        "close_windows_per_s": round(n / worst),
        "idle_rss_mib": round(run.idle_rss_mib),
        "rss_after_closes_mib": [round(c.rss_mib) for c in run.closes],
        "peak_rss_mib": round(run.peak_rss_mib),
        "rss_bytes_per_stream": round((run.closes[-1].rss_mib - run.idle_rss_mib) * MiB / n),
        "state_bytes_per_stream": round(changelog["stream_bytes"] / n),
        "state_bytes_per_stream_max": changelog["stream_bytes_max"],
        "partition_record_bytes_max": changelog["partition_bytes_max"],
        "state_bytes": state_bytes,
        "state_to_2gb_target": round(state_bytes / TARGET_STATE_BYTES, 3),
        "changelog_records": changelog["records"],
        "changelog_bytes_written": changelog["bytes_written"],
        "changelog_bytes_on_disk": on_disk,
        "changelog_aiokafka_read_seconds": round(changelog["read_seconds"], 1),
    }
    show(result)

    # The restore: one more window's events and its heartbeat wait in the log while a fresh
    # worker (empty state dir, same group) restores the table and then applies them.
    window = args.windows
    asyncio.run(send_events(settings, rng.sample(range(n), active), window))
    committed_before = offsets.committed()
    fresh = settings.model_copy(update={"state_dir": settings.state_dir.with_name("state-new")})
    windows_before = offsets.windows_total()
    started = time.monotonic()
    worker = start_worker(fresh, log, GRIDALARM_DETECTOR=fresh.detector)
    try:
        restored = wait(
            "the new owner's first commit",
            lambda: offsets.committed() > committed_before, worker, log, 0.1,
        )  # fmt: skip
        restored_rss = rss_mib(worker.pid)  # the state restored, before its first close
        restore = close_window(fresh, offsets, worker, log, window, n)
        restore_s = restored - started
        new_owner_peak = rss_mib(worker.pid, "VmHWM")
    finally:
        worker.terminate()
        worker.wait(timeout=600)
    restored_figures = {
        "restore_to_first_commit_seconds": round(restore_s, 1),
        "empty_start_to_first_commit_seconds": round(run.start_s, 1),
        "restore_minus_empty_start_seconds": round(restore_s - run.start_s, 1),
        "restore_to_aiokafka_read": round(restore_s / changelog["read_seconds"], 1),
        "restore_close_last_window_seconds": round(restore.last_window_s, 1),
        "restore_close_windows": offsets.windows_total() - windows_before,  # n unless repeats
        "new_owner_rss_restored_mib": round(restored_rss),
        "new_owner_peak_rss_mib": round(new_owner_peak),
    }
    offsets.close()
    show(restored_figures)
    result.update(restored_figures)

    # Baseline of the closes: a bare Faust app publishes what one close publishes (a window
    # and a score per stream, the stream's state record) with the sizes this run measured.
    window_size, score_size = sample_sizes(settings, ("windows", "scores"))
    state_size = round(changelog["stream_bytes"] / max(changelog["stream_records"], 1))
    publish_s = faust_publish_seconds(settings, n, [window_size, score_size, state_size], log)
    baseline = {
        "message_sizes_window_score_state": [window_size, score_size, state_size],
        "bare_faust_publish_seconds": round(publish_s, 1),
        "close_worst_to_bare_faust_publish": round(worst / publish_s, 2),
    }
    show(baseline)
    result.update(baseline)
    return result


def show(figures: dict) -> None:
    for key, value in figures.items():
        print(f"{key:36} {value}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=3, help="windows closed before the restore")
    parser.add_argument(
        "--active", type=float, default=0.01, help="share of streams with an event per window"
    )
    parser.add_argument("--detector", default=None, help="the worker's detector (its default)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output of a close")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.windows < 1 or not 0 < args.active <= 1:
        parser.error("--streams and --windows must be >= 1, --active in (0, 1]")
    with broker() as bootstrap:
        prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
        # Kept after the run: the workers' log and the baseline's (LOGS/<prefix>).
        tmp = LOGS / prefix
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"topic prefix {prefix}; logs in {tmp}", flush=True)
        extra = {"detector": args.detector} if args.detector else {}
        settings = Settings(
            kafka=bootstrap, topic_prefix=prefix, window=WINDOW, worker_id=f"{prefix}-worker",
            state_dir=tmp / "state", **extra,
        )  # fmt: skip
        started = time.monotonic()
        result = measure(settings, args, tmp)
        result["benchmark_minutes"] = round((time.monotonic() - started) / 60, 1)
        result["load_average_at_end"] = os.getloadavg()[0]
    print("== summary ==")
    show(result)
    return result


if __name__ == "__main__":
    main()
