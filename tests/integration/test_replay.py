"""File replay and the simulator against the real broker; the producer commands' error lines."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
from pipeline_kit import wait_until
from shared_data import SHARED_DATA, require

from gridalarm.config import Settings
from gridalarm.producers.replay import ReplayOptions, ReplayStats, replay
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.timeutil import format_time, parse_time

STUDY_FILE = SHARED_DATA / "seed" / "fifebatch_hourly_sample.txt"
T0 = parse_time("2025-06-02T08:00:00Z")


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def consume_all(settings: Settings, timeout: float = 60.0) -> list[Record]:
    """Every record of the events topic, up to the end offsets as of now, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        topic = settings.topic("events")
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "the events topic did not yield all records"
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [Record(tp.partition, r.offset, r.key, r.value) for r in batch]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def heartbeat_ts(record: Record) -> float | None:
    """The time of a heartbeat record; None for anything else."""
    try:
        data = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("heartbeat") is True:
        return parse_time(data["ts"])
    return None


def closes_last_window(heartbeat: float | None, last_event: float, settings: Settings) -> bool:
    """Whether a heartbeat moves the watermark (heartbeat - lateness) to the end of the window
    holding ``last_event``, and not to the end of a later one (an empty window after the data
    would read as every stream falling silent)."""
    if heartbeat is None:
        return False
    end = (last_event // settings.window + 1) * settings.window
    return end <= heartbeat - settings.lateness < end + settings.window


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The fixture's settings for a `gridalarm` subprocess."""
    return {
        "GRIDALARM_KAFKA": settings.kafka or "",
        "GRIDALARM_TOPIC_PREFIX": settings.topic_prefix,
        "GRIDALARM_PARTITIONS": str(settings.partitions),
        "GRIDALARM_WINDOW": str(settings.window),
        "GRIDALARM_LATENESS": str(settings.lateness),
    }


def sample_jsonl(path: Path) -> list[bytes]:
    """Five streams, 3 hours of events, and lines the worker will dead-letter (one of 5 MB)."""
    lines = [
        orjson.dumps(
            {
                "v": 1,
                "ts": format_time(T0 + 37 * i),
                "stream": f"schedd:s{i % 5}",
                "type": ("ExecuteEvent", "JobHeldEvent", "SubmitEvent")[i % 3],
                "source": "test",
            }
        )
        for i in range(300)
    ]
    lines[100:100] = [
        b"{not json",
        b'{"v":1,"ts":"2025-06-02T08:30:00Z","type":"X"}',  # no stream: no key
        b'{"v":1,"ts":"2025-06-02T08:31:00Z","stream":"schedd:s1","type":"JobHeldEvent","n":"2"}',
        b'{"v":1,"ts":"2025-06-02T08:32:00Z","stream":"schedd:s2","pad":"'
        + b"x" * 5_000_000
        + b'"}',
        b'{"v":1,"ts":"3000-01-01T00:00:00Z","stream":"schedd:s3","type":"JobHeldEvent"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


@pytest.mark.integration
def test_jsonl_replay_delivers_each_line_once_keyed_and_closed(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    lines = sample_jsonl(path)
    last_event = T0 + 37 * 299

    async def run() -> ReplayStats:
        # Line by line (coalescing off): this test follows each line to the topic; merged
        # lines are test_coalesced_windows.py's subject.
        config = SinkConfig.from_settings(
            kafka_settings, kafka_settings.kafka or "", "test", coalesce=None
        )
        async with EventSink(config) as sink:
            return await replay(path, sink, ReplayOptions(settings=kafka_settings, progress=False))

    stats = asyncio.run(run())
    assert stats.messages == len(lines)
    assert stats.last_ts == last_event  # the year-3000 line moves nothing
    assert closes_last_window(stats.final_heartbeat_ts, last_event, kafka_settings)

    records = consume_all(kafka_settings)
    data = [r for r in records if heartbeat_ts(r) is None]
    # Every line exactly once, byte for byte (the 5 MB one too).
    assert Counter(r.value for r in data) == Counter(lines)
    # Keyed by stream; one partition per stream, the one murmur2 (Java's partitioner) gives.
    partitions = len({r.partition for r in records})
    by_key: dict[bytes, set[int]] = {}
    for r in data:
        if r.key is not None:
            by_key.setdefault(r.key, set()).add(r.partition)
    assert set(by_key) == {f"schedd:s{i}".encode() for i in range(5)}
    for key, parts in by_key.items():
        assert parts == {(murmur2(key) & 0x7FFFFFFF) % kafka_settings.partitions}, key
    assert partitions == kafka_settings.partitions  # heartbeats reach every partition
    # File order within a stream is kept.
    for key in by_key:
        stream_values = [r.value for r in data if r.key == key]
        assert stream_values == [line for line in lines if line in set(stream_values)]
    # Every partition ends with the final heartbeat, which closes the last window.
    for p in range(kafka_settings.partitions):
        last = [r for r in records if r.partition == p][-1]
        ts = heartbeat_ts(last)
        assert ts == stats.final_heartbeat_ts, p


@pytest.mark.integration
def test_many_batches_keep_stream_order_and_heartbeats_never_overtake_events(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    # Small batches and frequent heartbeats: many batches per partition are in flight while
    # the linger and heartbeat tasks send partly filled ones.
    path = tmp_path / "many.jsonl"
    lines = [
        orjson.dumps(
            {"v": 1, "ts": T0 + i * 0.5, "stream": f"schedd:m{i % 13}", "type": "ExecuteEvent"}
        )
        for i in range(60_000)
    ]
    path.write_bytes(b"\n".join(lines))
    config = SinkConfig.from_settings(
        kafka_settings,
        kafka_settings.kafka or "",
        "test",
        batch_size=16 * 1024,
        heartbeat_interval=0.02,
        linger=0.01,
        coalesce=None,  # the order of every single message is what this test follows
    )

    async def run() -> ReplayStats:
        async with EventSink(config) as sink:
            return await replay(path, sink, ReplayOptions(settings=kafka_settings, progress=False))

    stats = asyncio.run(run())
    assert stats.messages == len(lines)
    records = consume_all(kafka_settings)
    data = [r for r in records if heartbeat_ts(r) is None]
    assert len(data) == len(lines)
    for i in range(13):
        key = f"schedd:m{i}".encode()
        assert [r.value for r in data if r.key == key] == lines[i::13]
    for p in range(kafka_settings.partitions):
        watermark = -1.0
        for r in (r for r in records if r.partition == p):
            ts = heartbeat_ts(r)
            if ts is not None:
                assert ts >= watermark  # heartbeats only move forward
                watermark = ts
            else:
                assert orjson.loads(r.value)["ts"] >= watermark, "an event behind a heartbeat"
    assert stats.heartbeats > kafka_settings.partitions  # periodic ones, not just the final


@pytest.mark.integration
def test_concurrent_heartbeats_never_go_backwards_on_any_partition(
    kafka_settings: Settings,
) -> None:
    # Batches of about one record: every append meets a full batch and waits for the submit
    # lock, which is where a periodic heartbeat and the final one used to interleave.
    config = SinkConfig.from_settings(
        kafka_settings, kafka_settings.kafka or "", "test", batch_size=64, heartbeat_interval=None
    )

    async def run() -> list[bool]:
        async with EventSink(config) as sink:
            first = await sink.heartbeat(T0)  # fills every partition's open batch
            return [first, *await asyncio.gather(sink.heartbeat(T0 + 100), sink.heartbeat(T0 + 50))]

    sent = asyncio.run(run())
    assert sent == [True, True, False]  # the last call is behind the one before: dropped
    records = consume_all(kafka_settings)
    for p in range(kafka_settings.partitions):
        assert [heartbeat_ts(r) for r in records if r.partition == p] == [T0, T0 + 100], p


@pytest.mark.integration
def test_a_record_that_meets_a_full_batch_keeps_its_place_in_the_partition(
    kafka_settings: Settings,
) -> None:
    # Two tasks send to the same stream (one partition) through batches of a few records: a
    # record that found its batch full used to wait for the hand-over while the other task's
    # records went into the next batch ahead of it.
    config = SinkConfig.from_settings(
        kafka_settings, kafka_settings.kafka or "", "test", batch_size=256, heartbeat_interval=None
    )
    order: list[bytes] = []

    async def run() -> None:
        async with EventSink(config) as sink:

            async def send(tag: str) -> None:
                for i in range(200):
                    value = orjson.dumps({"tag": tag, "i": i})
                    order.append(value)  # the order of the calls, which the partition must keep
                    await sink.send_raw(value, b"schedd:one", T0)

            await asyncio.gather(send("a"), send("b"))

    asyncio.run(run())
    records = [r for r in consume_all(kafka_settings) if heartbeat_ts(r) is None]
    assert [r.value for r in records] == order


@pytest.mark.integration
def test_cli_replays_the_study_file(kafka_settings: Settings) -> None:
    require(STUDY_FILE)
    done = cli("produce", "replay", str(STUDY_FILE), "--quiet", env=settings_env(kafka_settings))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("replayed 158 messages from")
    assert len(done.stdout.splitlines()) == 1

    records = consume_all(kafka_settings)
    events = [orjson.loads(r.value) for r in records if heartbeat_ts(r) is None]
    assert len(events) == 158
    assert {r.partition for r in records if heartbeat_ts(r) is None and r.key} == {
        (murmur2(b"seed:fifebatch") & 0x7FFFFFFF) % kafka_settings.partitions
    }
    assert {e["stream"] for e in events} == {"seed:fifebatch"}
    last_hour = parse_time("2017-01-01T15:00:00Z")
    for p in range(kafka_settings.partitions):
        ts = heartbeat_ts([r for r in records if r.partition == p][-1])
        assert closes_last_window(ts, last_hour, kafka_settings), p


@pytest.mark.integration
def test_simulate_to_kafka_sends_the_run_and_closes_it(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    args = ["--streams", "3", "--days", "0.1", "--window", "1m", "--seed", "7", "--quiet"]
    written = cli("simulate", *args, "--out", str(tmp_path / "sim"))
    assert written.returncode == 0, written.stderr
    lines = (tmp_path / "sim" / "events.jsonl").read_bytes().splitlines()

    sent = cli("simulate", *args, "--to-kafka", env=settings_env(kafka_settings))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"sent {len(lines)} simulated events")
    assert " as " in sent.stdout  # coalesced: fewer messages than events

    records = consume_all(kafka_settings)
    data = [orjson.loads(r.value) for r in records if heartbeat_ts(r) is None]
    assert len(data) < len(lines)

    # The same seed gives the same events, whether written or sent: counted per stream, type
    # and window (a merged message's events share its window).
    def slots(messages: list[dict]) -> Counter[tuple]:
        counts: Counter[tuple] = Counter()
        for m in messages:
            slot = parse_time(m["ts"]) // kafka_settings.window
            counts[(m["stream"], m["type"], slot)] += m.get("n", 1)
        return counts

    assert slots(data) == slots([orjson.loads(line) for line in lines])
    last_event = max(parse_time(orjson.loads(line)["ts"]) for line in lines)
    for p in range(kafka_settings.partitions):
        ts = heartbeat_ts([r for r in records if r.partition == p][-1])
        assert closes_last_window(ts, last_event, kafka_settings), p


@pytest.mark.integration
def test_simulate_live_backfills_then_follows_the_wall_clock_until_stopped(
    kafka_settings: Settings,
) -> None:
    started = time.time()
    args = ["simulate", "--to-kafka", "--live", "--streams", "4", "--window", "1m"]
    args += ["--backfill", "10m", "--seed", "3", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **settings_env(kafka_settings)},
    )
    try:

        def following_the_clock() -> bool:
            assert proc.poll() is None, f"simulate exited early: {proc.communicate()[1]}"
            beats = (heartbeat_ts(r) for r in consume_all(kafka_settings))
            return any(ts is not None and ts >= started for ts in beats)

        wait_until(following_the_clock, 60, "a wall-clock heartbeat after the backfill", 0.5)
        proc.send_signal(signal.SIGTERM)  # how `gridalarm demo` stops it; Ctrl-C is the same
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("sent ") and " live in " in out, out

    records = consume_all(kafka_settings)
    event_times = [
        parse_time(orjson.loads(r.value)["ts"]) for r in records if heartbeat_ts(r) is None
    ]
    beats = [ts for r in records if (ts := heartbeat_ts(r)) is not None]
    assert event_times and min(event_times) < started - 300  # the backfill went out
    assert max(event_times) <= time.time() + 1  # nothing from the future
    assert beats and max(beats) >= started  # wall-clock heartbeats once caught up
    for p in range(kafka_settings.partitions):
        watermark = -1.0
        for r in (r for r in records if r.partition == p):
            ts = heartbeat_ts(r)
            if ts is not None:
                watermark = max(watermark, ts)
            else:
                assert parse_time(orjson.loads(r.value)["ts"]) >= watermark


# -- operator errors: one line on stderr, exit 2, before any broker is contacted -----------------

# Nothing listens here: a command that wrongly connected first would fail differently (slowly).
NO_BROKER = {"GRIDALARM_KAFKA": "127.0.0.1:9", "GRIDALARM_TOPIC_PREFIX": "never-used"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    good = root / "good.jsonl"
    good.write_text('{"v":1,"ts":"2025-06-02T08:00:00Z","stream":"s","type":"X"}\n')
    prose = root / "notes.txt"
    prose.write_text("Dear operator,\nthese are not events.\n")
    bad_csv = root / "bad.csv"
    bad_csv.write_text("when,ExecuteEvent\n2025-06-02T08:00:00Z,1\n")
    return {"good": good, "prose": prose, "bad_csv": bad_csv, "missing": root / "nope.jsonl"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["produce", "replay", "{missing}"], "no such file"),
        (["produce", "replay", "{prose}"], "not JSONL, CSV"),
        (["produce", "replay", "{bad_csv}"], "no time column"),
        (["produce", "replay", "{good}", "--speed", "abc"], "--speed 'abc'"),
        (["produce", "replay", "{good}", "--speed", "0"], "--speed '0'"),
        (["produce", "replay", "{good}", "--format", "xml"], "--format 'xml'"),
        (["produce", "replay", "{good}", "--start", "yesterday"], "--start 'yesterday'"),
        (["produce", "replay", "{good}", "--stream", "x"], "--stream applies"),
        (["simulate", "--out", "{out}", "--to-kafka"], "exclude each other"),
        (["simulate"], "--out DIR (files) or --to-kafka"),
        (["simulate", "--live", "--out", "{out}"], "--live"),
        (["simulate", "--to-kafka", "--speed", "abc"], "--speed 'abc'"),
        (["simulate", "--out", "{out}", "--incidents", "outage,meteor"], "--incidents"),
        (["simulate", "--out", "{out}", "--window", "0"], "--window '0'"),
        (["simulate", "--to-kafka", "--live", "--incidents", "outage"], "--incident-every"),
        (["simulate", "--to-kafka", "--backfill", "1h"], "--backfill applies to --live"),
    ],
)
def test_operator_errors_are_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    names = {key: str(path) for key, path in files.items()} | {"out": str(tmp_path / "out")}
    started = time.monotonic()
    done = cli(*(arg.format(**names) for arg in args), env=NO_BROKER, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gridalarm: ") and message in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 20  # refused at once, not after waiting for a broker
    assert not (tmp_path / "out").exists()
