"""Bad input on a real broker: malformed lines mixed into a replay all reach the deadletter topic.

A simulated file gets 1,000 malformed lines at seeded random positions (bad JSON, wrong types,
missing fields, another version, one 5 MB line, times far in the future and before the epoch, a
JSON array, empty objects). The worker must dead-letter every one of them with a documented
reason and the original bytes, keep running, and window the good lines exactly as it windows
the same good lines replayed alone on a second set of topics.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from pipeline_kit import gridalarm, read_topic, second_prefix, wait_for_worker, worker_process

from gridalarm.config import Settings
from gridalarm.messages import schema, validate

pytestmark = pytest.mark.integration

WINDOW = 60.0
MALFORMED = 1_000
SEED = 11
REASONS = frozenset(schema("deadletter")["properties"]["reason"]["enum"])


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(update={"window": WINDOW})


@pytest.fixture
def clean_settings(settings: Settings) -> Iterator[Settings]:
    """The same settings on a second topic prefix (its own topics and worker group)."""
    with second_prefix(settings, "clean") as other:
        yield other


# -- the malformed lines -----------------------------------------------------------------------

# Each maker gets (rng, serial, a good neighbouring event) and returns the line and the reasons
# it may be dead-lettered with. Where the defect is not the time, the line keeps its neighbour's
# time, so it cannot move the replay's heartbeats; ``attrs.bad`` makes most lines unique.
Made = tuple[bytes, frozenset[str]]
Maker = Callable[[random.Random, int, dict[str, Any]], Made]


def _with(event: dict[str, Any], serial: int, **changes: Any) -> dict[str, Any]:
    out = {"attrs": {"bad": serial}, **event}
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


_DROP = object()


def _truncated(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
    whole = orjson.dumps(_with(event, serial))
    return whole[: -rng.randint(1, 25)], frozenset({"bad_json"})


def _garbage(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
    return f"garbage #{serial}: <html>not an event</html>".encode(), frozenset({"bad_json"})


def _bad_utf8(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
    line = b'{"v":1,"ts":"%s","stream":"\xff\xfe%d","type":"ExecuteEvent"}' % (
        event["ts"].encode(),
        serial,
    )
    return line, frozenset({"bad_json"})


def _field(**changes: Any) -> Maker:
    def make(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
        return orjson.dumps(_with(event, serial, **changes)), frozenset({"schema"})

    return make


def _timed(ts: Any, reasons: set[str]) -> Maker:
    def make(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
        return orjson.dumps(_with(event, serial, ts=ts)), frozenset(reasons)

    return make


def _array(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
    return orjson.dumps([_with(event, serial)]), frozenset({"schema"})


def _empty_object(rng: random.Random, serial: int, event: dict[str, Any]) -> Made:
    return b"{" + b" " * (serial % 40) + b"}", frozenset({"schema"})


MAKERS: dict[str, Maker] = {
    "truncated JSON": _truncated,
    "not JSON": _garbage,
    "invalid UTF-8": _bad_utf8,
    '"n": "3"': _field(n="3"),
    '"n": 0': _field(n=0),
    '"ts": true': _timed(True, {"schema", "bad_time"}),
    '"stream": 5': _field(stream=5),
    "no stream": _field(stream=_DROP),
    "no type": _field(type=_DROP),
    '"v": 2': _field(v=2),
    "no v": _field(v=_DROP),
    "year 2100": _timed("2100-01-01T00:00:00Z", {"future"}),
    "epoch 2100": _timed(4_102_444_800, {"future"}),
    "ts -5": _timed(-5, {"too_old"}),
    "1969": _timed("1969-12-31T00:00:00Z", {"too_old"}),
    "not a time": _timed("2026-13-45T99:99:99Z", {"schema", "bad_time"}),
    "JSON array": _array,
    "empty object": _empty_object,
}


def _huge(event: dict[str, Any]) -> bytes:
    """A valid-looking event with a 5 MB attribute: over the worker's 1 MB message limit."""
    return orjson.dumps({**event, "attrs": {"blob": "x" * 5_000_000}})


def mix_in_bad_lines(
    good: list[bytes], seed: int
) -> tuple[list[bytes], dict[bytes, frozenset[str]]]:
    """``good`` with MALFORMED bad lines at random positions; (all lines, bad line → reasons)."""
    rng = random.Random(seed)
    kinds = list(MAKERS)
    positions = sorted(rng.randrange(1, len(good) + 1) for _ in range(MALFORMED))
    huge_at = rng.randrange(MALFORMED)
    out: list[bytes] = []
    bad: dict[bytes, frozenset[str]] = {}
    cursor = 0
    for serial, position in enumerate(positions):
        out.extend(good[cursor:position])
        cursor = position
        neighbour = orjson.loads(good[position - 1])
        if serial == huge_at:
            line, reasons = _huge(neighbour), frozenset({"too_large"})
        else:
            line, reasons = MAKERS[kinds[serial % len(kinds)]](rng, serial, neighbour)
        assert line.strip() and b"\n" not in line and not line.endswith(b"\r")
        out.append(line)
        bad.setdefault(line, reasons)
    out.extend(good[cursor:])
    return out, bad


# -- reading back ------------------------------------------------------------------------------


def events_by_position(settings: Settings) -> dict[tuple[int, int], bytes]:
    """Every raw value of the events topic by (partition, offset)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        tps = [TopicPartition(settings.topic("events"), p) for p in range(settings.partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "could not read the whole events topic"
            for tp, records in consumer.poll(timeout_ms=500).items():
                out.update({(tp.partition, r.offset): r.value for r in records})
        return out
    finally:
        consumer.close()


def run_pipeline(settings: Settings, path: Path, log: Path) -> None:
    """Replay ``path`` at full speed, then run one worker until it committed every message."""
    gridalarm(settings, "produce", "replay", str(path), "--speed", "max", "--quiet")
    with worker_process(settings, log) as proc:
        wait_for_worker(settings, proc, timeout=300)
        assert proc.poll() is None, "the worker stopped on bad input"


def _window_key(window: dict[str, Any]) -> tuple[str, str]:
    return window["stream"], window["start"]


def test_malformed_lines_all_reach_the_deadletter_topic_and_good_windows_match_a_clean_run(
    settings: Settings, clean_settings: Settings, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    gridalarm(
        settings,
        "simulate", "--streams", "6", "--days", "0.25", "--window", "1m",
        "--incidents", "outage,hold_storm", "--seed", "5", "--out", str(sim),
    )  # fmt: skip
    good = [line for line in (sim / "events.jsonl").read_bytes().splitlines() if line]
    assert 5_000 < len(good) < 100_000
    lines, bad = mix_in_bad_lines(good, SEED)
    assert len(lines) == len(good) + MALFORMED
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_bytes(b"\n".join(lines) + b"\n")

    run_pipeline(settings, dirty, tmp_path / "worker-dirty.log")
    run_pipeline(clean_settings, sim / "events.jsonl", tmp_path / "worker-clean.log")

    # -- every malformed line, and only those, dead-lettered with a reason and its bytes -------
    letters = read_topic(settings, "deadletter")
    assert len(letters) == MALFORMED
    injected = Counter(line for line in lines if line in bad)
    assert sum(injected.values()) == MALFORMED
    raws = []
    wrong_reason = []
    events = events_by_position(settings)
    for letter in letters:
        validate("deadletter", letter)  # the contract, the reason enum included
        assert letter["reason"] in REASONS
        raw = base64.b64decode(letter["raw"], validate=True)
        raws.append(raw)
        assert letter["topic"] == settings.topic("events")
        assert events[(letter["partition"], letter["offset"])] == raw, "provenance is wrong"
        if raw in bad and letter["reason"] not in bad[raw]:
            wrong_reason.append((letter["reason"], sorted(bad[raw]), raw[:120]))
    assert Counter(raws) == injected, "dead letters are not exactly the injected lines"
    assert not wrong_reason, f"{len(wrong_reason)} unexpected reasons, e.g. {wrong_reason[:5]}"
    assert Counter(letter["reason"] for letter in letters)["too_large"] == 1

    # -- the good lines windowed exactly as in a clean run of them alone -----------------------
    assert read_topic(clean_settings, "deadletter") == []
    windows = sorted(read_topic(settings, "windows"), key=_window_key)
    reference = sorted(read_topic(clean_settings, "windows"), key=_window_key)
    assert reference, "the clean run closed no windows"
    assert len(windows) == len(reference)
    assert windows == reference
