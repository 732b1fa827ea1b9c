"""PartitionProcessor: raw bytes in → dead letters, window/score/alert outputs, state records."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pytest

from gridalarm.messages import TimeBounds, heartbeat_message, validate
from gridalarm.models.baseline import BaselineConfig, RobustZBaseline
from gridalarm.models.compose import Thresholded
from gridalarm.models.detector import DetectorOutput
from gridalarm.models.thresholds import RatioThreshold
from gridalarm.stream.processor import BatchResult, PartitionProcessor, RawMessage
from gridalarm.stream.scoring import Outputs, Scorer, ScoringConfig
from gridalarm.stream.windows import WindowConfig, Windower
from gridalarm.timeutil import format_time

T0 = 1_699_999_200.0  # a whole hour
NOW = T0 + 10 * 86_400.0  # the processor's wall clock in these tests
SIZE = 60.0
LATENESS = 30.0
FEATURES = ("ExecuteEvent", "JobHeldEvent", "JobEvictedEvent", "other")
TOPIC = "gridalarm.events"
PARTITION = 3
MAX_BYTES = 1_000_000


class QuietDetector:
    """A do-nothing detector of our Detector interface, for tests about windows only."""

    name = "quiet"
    version = "0"

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        n, width = x.shape
        return DetectorOutput(
            raw=np.zeros(n),
            expected=np.zeros((n, width)),
            share=np.zeros((n, width)),
            states=[None] * n,
            ready=np.zeros(n, dtype=bool),
        )


def components(
    size: float = SIZE, lateness: float = LATENESS, detector: Any = None
) -> dict[str, Any]:
    return {
        "windower": Windower(WindowConfig(size=size, lateness=lateness, features=FEATURES)),
        "scorer": Scorer(
            Thresholded(
                detector or RobustZBaseline(BaselineConfig(min_history=3, history=20)),
                RatioThreshold(alarm=4.0),
            ),
            ScoringConfig(features=FEATURES),
        ),
        "bounds": TimeBounds(max_future=3600.0, clock=lambda: NOW),
        "max_bytes": MAX_BYTES,
    }


def new_processor(**kwargs: Any) -> PartitionProcessor:
    return PartitionProcessor(PARTITION, **components(**kwargs))


def event(ts: float | str, stream: str = "a", kind: str = "ExecuteEvent", n: int = 1) -> bytes:
    message: dict[str, Any] = {"v": 1, "ts": ts, "stream": stream, "type": kind}
    if n != 1:
        message["n"] = n
    return orjson.dumps(message)


def raws(values: list[bytes | None], first_offset: int = 0) -> list[RawMessage]:
    return [RawMessage(TOPIC, PARTITION, first_offset + i, v) for i, v in enumerate(values)]


def good_values(seed: int = 1, count: int = 400) -> list[bytes]:
    """In-order-ish events of three streams over ~20 windows, then a closing heartbeat."""
    rng = random.Random(seed)
    values = []
    for i in range(count):
        ts = T0 + i * 3.0 + rng.uniform(-20.0, 0.0)
        values.append(event(ts, rng.choice("abc"), rng.choice(FEATURES), rng.randint(1, 4)))
    values.append(orjson.dumps(heartbeat_message(T0 + count * 3.0 + 200.0, "test")))
    return values


class Store:
    """The worker's tables: records as the processor hands them over."""

    def __init__(self) -> None:
        self.partition: bytes | None = None
        self.streams: dict[str, bytes] = {}

    def save(self, result: BatchResult) -> None:
        self.streams.update(result.stream_records)
        if result.partition_record is not None:
            self.partition = result.partition_record

    def restore(self, **kwargs: Any) -> PartitionProcessor:
        return PartitionProcessor.restore(
            PARTITION, self.partition, self.streams.get, **components(**kwargs)
        )


def without_at(deadletters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "at"} for d in deadletters]


# --- bad input --------------------------------------------------------------------------------

GOOD_TS = T0 + 10.0
_DROP = object()


def msg(**fields: Any) -> bytes:
    """A counter event with ``fields`` changed; a field set to ``_DROP`` is left out."""
    message = {"v": 1, "ts": GOOD_TS, "stream": "a", "type": "X", **fields}
    return orjson.dumps({k: v for k, v in message.items() if v is not _DROP})


BIG = b'{"v":1,"ts":1.7e9,"stream":"a","type":"X","attrs":{"p":"' + b"x" * 5_000_000 + b'"}}'
BAD_INPUTS: list[tuple[str, bytes | None, str]] = [
    ("tombstone", None, "bad_json"),
    ("not json", b"{this is not json", "bad_json"),
    ("truncated json", event(GOOD_TS)[:-3], "bad_json"),
    ("invalid utf-8", b'{"v":1,"ts":1.7e9,"stream":"\xff\xfe","type":"X"}', "bad_json"),
    ("empty bytes", b"", "bad_json"),
    ("json array", b"[1, 2, 3]", "schema"),
    ("json string", b'"ExecuteEvent"', "schema"),
    ("stream is a number", msg(stream=7), "schema"),
    ("n is a string", msg(n="2"), "schema"),
    ("n is zero", msg(n=0), "schema"),
    ("ts is a bool", msg(ts=True), "schema"),
    ("ts is free text", msg(ts="yesterday noon"), "schema"),
    ("gauge is text", msg(type=_DROP, metrics={"x": "hi"}), "schema"),
    ("wrong version", msg(v=2), "schema"),
    ("missing v", msg(v=_DROP), "schema"),
    ("missing ts", msg(ts=_DROP), "schema"),
    ("missing stream", msg(stream=_DROP), "schema"),
    ("missing type and metrics", msg(type=_DROP), "schema"),
    ("heartbeat without source", msg(stream=_DROP, type=_DROP, heartbeat=True), "schema"),
    ("too large", BIG, "too_large"),
    ("epoch zero", event(0), "too_old"),
    ("negative epoch", event(-86_400), "too_old"),
    ("before 1990", event("1989-12-31T23:59:59Z"), "too_old"),
    ("far future", event(NOW + 7 * 86_400.0), "future"),
    ("milliseconds for seconds", event(T0 * 1000.0), "future"),
    ("year 2999", event("2999-01-01T00:00:00Z"), "future"),
    ("impossible date", event("2024-02-30T00:00:00Z"), "bad_time"),
]


@pytest.mark.parametrize(
    ("value", "reason"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_malformed_message_yields_a_dead_letter_with_reason_bytes_and_origin(
    value: bytes | None, reason: str
) -> None:
    proc = new_processor()
    result = proc.process([RawMessage(TOPIC, PARTITION, 41, value)])
    assert result.events == 0
    (dead,) = result.deadletters
    validate("deadletter", dead)
    assert dead["reason"] == reason
    assert (dead["topic"], dead["partition"], dead["offset"]) == (TOPIC, PARTITION, 41)
    assert base64.b64decode(dead["raw"]) == (value or b"")
    assert dead["raw_bytes"] == len(value or b"")
    assert dead["detail"]
    # The worker moves on: the offset is recorded so a restart does not dead-letter it again.
    assert proc.state.offset == 41
    assert result.partition_record is not None


def test_bad_messages_mixed_in_leave_the_good_events_windows_unchanged() -> None:
    good = good_values()
    clean = new_processor().process(raws(good))
    assert clean.outputs.windows and not clean.deadletters

    rng = random.Random(5)
    mixed: list[bytes | None] = list(good[:-1])
    bad = [b[1] for b in BAD_INPUTS] * 4
    for value in bad:
        mixed.insert(rng.randrange(len(mixed)), value)
    mixed.append(good[-1])
    proc = new_processor()
    result = BatchResult(outputs=Outputs())
    for i in range(0, len(mixed), 37):  # in batches, as the worker takes them
        step = proc.process(raws(mixed[i : i + 37], first_offset=i))
        result.deadletters += step.deadletters
        result.outputs.windows += step.outputs.windows
        result.outputs.scores += step.outputs.scores
        result.outputs.alerts += step.outputs.alerts
    assert result.outputs.windows == clean.outputs.windows
    assert result.outputs.scores == clean.outputs.scores
    assert result.outputs.alerts == clean.outputs.alerts
    assert len(result.deadletters) == len(bad)
    assert sorted(d["reason"] for d in result.deadletters) == sorted(b[2] for b in BAD_INPUTS * 4)
    good_set = set(good)
    bad_offsets = [i for i, v in enumerate(mixed) if v is None or v not in good_set]
    assert [d["offset"] for d in result.deadletters] == bad_offsets


def test_late_event_yields_a_late_dead_letter_and_is_counted() -> None:
    proc = new_processor()
    first = proc.process(raws([event(T0 + 1.0), event(T0 + 100.0)]))
    assert [w["start"] for w in first.outputs.windows] == [format_time(T0)]
    late_value = event(T0 + 20.0, kind="JobHeldEvent")
    result = proc.process(raws([late_value], first_offset=2))
    (dead,) = result.deadletters
    validate("deadletter", dead)
    assert dead["reason"] == "late"
    assert dead["stream"] == "a"
    assert dead["offset"] == 2
    assert base64.b64decode(dead["raw"]) == late_value
    later = proc.process(raws([orjson.dumps(heartbeat_message(T0 + 500.0, "t"))], 3))
    assert later.outputs.windows[0]["start"] == format_time(T0 + 60.0)
    assert later.outputs.windows[0]["late"] == 1
    assert later.outputs.windows[0]["features"]["JobHeldEvent"] == 0


def test_counts_events_and_heartbeats_of_a_batch() -> None:
    beat = orjson.dumps(heartbeat_message(T0 + 5.0, "p"))
    result = new_processor().process(raws([event(T0), beat, b"junk", event(T0 + 1.0), beat]))
    assert (result.events, result.heartbeats, len(result.deadletters)) == (2, 2, 1)


def test_offsets_passed_over_are_counted_and_re_deliveries_are_not() -> None:
    proc = new_processor()
    # A partition's first batch may start anywhere (retention deletes the oldest messages).
    assert proc.process(raws([event(T0)], first_offset=5)).skipped == 0
    # 6 and 7 never arrive, nor 10 inside the batch.
    batch = [RawMessage(TOPIC, PARTITION, offset, event(T0 + 1.0)) for offset in (8, 9, 11)]
    assert proc.process(batch).skipped == 2 + 1
    # Offsets already applied (a re-delivery after a restart) are not holes.
    again = [RawMessage(TOPIC, PARTITION, offset, event(T0 + 2.0)) for offset in (9, 11, 12)]
    assert proc.process(again).skipped == 0


# --- watermark: heartbeats and the idle clock ---------------------------------------------------


def test_idle_clock_heartbeat_closes_windows_of_a_partition_without_new_events() -> None:
    proc = new_processor()
    proc.process(raws([event(T0 + 1.0, "a"), event(T0 + 2.0, "b")]))
    before = proc.last_message_at
    # The worker's idle clock sends a wall-clock heartbeat through the events topic.
    beat = orjson.dumps(heartbeat_message(T0 + 3 * SIZE + LATENESS, "worker-clock:w1"))
    result = proc.process(raws([beat], first_offset=2))
    assert proc.last_message_at >= before
    assert sorted((w["stream"], w["start"]) for w in result.outputs.windows) == sorted(
        (s, format_time(T0 + k * SIZE)) for s in "ab" for k in range(3)
    )
    assert len(result.outputs.scores) == 6
    for w in result.outputs.windows:
        validate("window", w)


# --- restarts ---------------------------------------------------------------------------------


def test_processor_restored_from_its_records_re_processing_the_same_batch_emits_nothing() -> None:
    values = good_values(count=200)
    values.insert(50, b"not json")
    values.insert(120, event(T0 - 3600.0))  # late for stream a
    batch = raws(values)
    store = Store()
    proc = new_processor()
    first = proc.process(batch)
    assert first.outputs.windows and first.deadletters
    assert {d["reason"] for d in first.deadletters} == {"bad_json", "late"}
    store.save(first)

    restored = store.restore()
    again = restored.process(batch)
    assert again.deadletters == []
    assert again.outputs.windows == again.outputs.scores == again.outputs.alerts == []
    assert again.stream_records == {} and again.partition_record is None
    # The same object too: nothing is applied twice.
    assert proc.process(batch).outputs.windows == []


def test_restart_mid_stream_emits_what_the_original_emitted() -> None:
    values = good_values(seed=3, count=600)
    rng = random.Random(3)
    for _ in range(20):
        values.insert(rng.randrange(len(values) - 1), b"\x00garbage")
    batches = [raws(values[i : i + 64], first_offset=i) for i in range(0, len(values), 64)]

    store = Store()
    original = new_processor()
    after_cut: list[BatchResult] = []
    for k, batch in enumerate(batches):
        result = original.process(batch)
        if k < 4:
            store.save(result)
        else:
            after_cut.append(result)

    # The new worker resumes from the stored records; Kafka re-delivers from an older commit.
    restored = store.restore()
    redelivered = [m for b in batches[2:] for m in b]
    replay = [restored.process(redelivered[i : i + 50]) for i in range(0, len(redelivered), 50)]

    def flat(results: list[BatchResult], kind: str) -> list[dict[str, Any]]:
        return [m for r in results for m in getattr(r.outputs, kind)]

    for kind in ("windows", "scores", "alerts"):
        assert flat(replay, kind) == flat(after_cut, kind)
    assert without_at([d for r in replay for d in r.deadletters]) == without_at(
        [d for r in after_cut for d in r.deadletters]
    )
    assert restored.state == original.state
    assert restored.streams == original.streams


def test_restore_of_a_stream_whose_record_is_missing_does_not_emit_windows_from_the_epoch() -> None:
    # The partition record lists stream b but b's own record never landed (restore() says it
    # then "restarts from scratch"). Day windows keep the failure fast if windows from 1970
    # come out.
    day = 86_400.0
    start = T0 - T0 % day
    quiet = {"size": day, "lateness": 0.0, "detector": QuietDetector()}
    proc = new_processor(**quiet)
    first = proc.process(raws([event(start + 10.0, "a"), event(start + 20.0, "b")]))
    assert first.outputs.windows == []
    second = proc.process(raws([event(start + day + 5.0, "a")], first_offset=2))
    assert len(second.outputs.windows) == 2
    partition_record = second.partition_record
    records = {**first.stream_records, **second.stream_records}
    records.pop("b")

    restored = PartitionProcessor.restore(
        PARTITION, partition_record, records.get, **components(**quiet)
    )
    result = restored.process(raws([event(start + 2 * day + 5.0, "a")], first_offset=3))
    b_windows = [w["start"] for w in result.outputs.windows if w["stream"] == "b"]
    assert b_windows[0] == format_time(start + day)  # got 1970-01-01T00:00:00Z
    assert len(b_windows) == 1


def test_crash_between_stream_and_partition_records_repeats_nothing() -> None:
    # Batch 2's stream records landed, its partition record did not; batch 2 brings a new
    # stream and a late event. Re-delivered, batch 2 must not count or dead-letter them again.
    batch1 = raws([event(T0 + 1.0, "a"), event(T0 + 100.0, "a")])
    batch2 = raws(
        [event(T0 + 110.0, "new"), event(T0 + 5.0, "a"), event(T0 + 170.0, "a")], first_offset=2
    )
    batch3 = raws([event(T0 + 400.0, "a"), event(T0 + 401.0, "new")], first_offset=5)
    proc = new_processor()
    store = Store()
    store.save(proc.process(batch1))
    second = proc.process(batch2)
    assert [d["reason"] for d in second.deadletters] == ["late"]
    store.streams.update(second.stream_records)  # ... and the crash: no partition record
    third = proc.process(batch3)

    restored = store.restore()
    again = restored.process(batch2)
    assert again.deadletters == []
    assert again.outputs.windows == []
    replayed = restored.process(batch3)
    assert replayed.outputs.windows == third.outputs.windows
    assert replayed.outputs.scores == third.outputs.scores
    assert restored.streams == proc.streams


def test_a_message_coalesced_with_another_window_is_counted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc = new_processor()

    def merged(ts: float, window: float) -> bytes:
        return orjson.dumps(
            {"v": 1, "ts": ts, "stream": "a", "type": "ExecuteEvent", "n": 5,
             "source": "p", "attrs": {"window": window, "eids": ["x"]}}
        )  # fmt: skip

    with caplog.at_level("WARNING", logger="gridalarm.stream.processor"):
        result = proc.process(
            raws([merged(T0 + 1, SIZE), merged(T0 + 2, 3600), merged(T0 + 3, 3600)])
        )
    assert result.kinds[("p", "ExecuteEvent")] == 15  # events, not messages
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "3600s windows" in warnings[0] and "60s" in warnings[0]
