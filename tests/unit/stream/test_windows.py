"""Tumbling windows and the per-partition watermark (gridalarm.stream.windows), pure Python."""

from __future__ import annotations

import random
from collections import defaultdict

import orjson
import pytest

from gridalarm.messages import Event, Heartbeat
from gridalarm.stream.windows import (
    ClosedWindow,
    LateEvent,
    PartitionState,
    StreamState,
    WindowConfig,
    Windower,
)

T0 = 1_699_999_200.0  # 2023-11-14T22:00:00Z, a whole hour (and minute)
SIZE = 60.0
LATENESS = 30.0
FEATURES = ("ExecuteEvent", "JobHeldEvent", "load", "other")
EXE, HELD, LOAD, OTHER = range(4)


def make_windower(size: float = SIZE, lateness: float = LATENESS) -> Windower:
    return Windower(WindowConfig(size=size, lateness=lateness, features=FEATURES))


def ev(ts: float, stream: str = "a", kind: str = "ExecuteEvent", n: int = 1) -> Event:
    return Event(ts=ts, stream=stream, kind=kind, n=n)


def gauge(ts: float, stream: str = "a", **metrics: float) -> Event:
    return Event(ts=ts, stream=stream, metrics=dict(metrics))


def hb(ts: float) -> Heartbeat:
    return Heartbeat(ts=ts, source="test")


class Run:
    """One partition's live state plus a running offset, fed message by message or in batches."""

    def __init__(self, windower: Windower | None = None) -> None:
        self.windower = windower or make_windower()
        self.partition = PartitionState()
        self.streams: dict[str, StreamState] = {}
        self.next_offset = 0
        self.closed: list[ClosedWindow] = []
        self.late: list[LateEvent] = []

    def feed(self, *messages: Event | Heartbeat) -> list[ClosedWindow]:
        batch = []
        for message in messages:
            batch.append((self.next_offset, message))
            self.next_offset += 1
        result = self.windower.apply(self.partition, self.streams, batch)
        self.closed.extend(result.closed)
        self.late.extend(result.late)
        return result.closed

    def of(self, stream: str) -> list[ClosedWindow]:
        return [w for w in self.closed if w.stream == stream]

    def window(self, stream: str, start: float) -> ClosedWindow:
        (found,) = [w for w in self.closed if w.stream == stream and w.start == start]
        return found


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "lateness"), [(0.0, 0.0), (-60.0, 0.0), (60.0, -1.0)])
def test_window_config_rejects_bad_size_or_lateness(size: float, lateness: float) -> None:
    with pytest.raises(ValueError):
        WindowConfig(size=size, lateness=lateness, features=FEATURES)


@pytest.mark.parametrize(
    ("ts", "start"),
    [(T0, T0), (T0 + 59.999, T0), (T0 + 60.0, T0 + 60.0), (T0 - 0.001, T0 - 60.0)],
)
def test_start_of_aligns_to_the_epoch(ts: float, start: float) -> None:
    assert WindowConfig(size=60.0, lateness=0.0, features=FEATURES).start_of(ts) == start


# --- assignment at boundaries -----------------------------------------------------------------


def test_event_exactly_at_boundary_belongs_to_window_starting_there() -> None:
    run = Run()
    run.feed(ev(T0 + 60.0), ev(T0 + 500.0))
    first = run.of("a")[0]
    assert (first.start, first.end) == (T0 + 60.0, T0 + 120.0)
    assert first.values[EXE] == 1
    assert first.events == 1


def test_window_end_is_exclusive() -> None:
    run = Run()
    run.feed(ev(T0), ev(T0 + 59.999), ev(T0 + 60.0), ev(T0 + 500.0))
    assert run.window("a", T0).values[EXE] == 2
    assert run.window("a", T0 + 60.0).values[EXE] == 1
    assert all(w.end - w.start == SIZE for w in run.closed)


# --- watermark --------------------------------------------------------------------------------


def test_window_closes_only_when_max_time_reaches_end_plus_lateness() -> None:
    run = Run()
    run.feed(ev(T0 + 10.0))
    end = T0 + SIZE
    assert run.feed(ev(end + LATENESS - 0.001, stream="a", kind="JobHeldEvent")) == []
    closed = run.feed(ev(end + LATENESS, stream="a", kind="JobHeldEvent"))
    assert [(w.stream, w.start, w.end) for w in closed] == [("a", T0, end)]
    assert run.partition.closed_until == end


def test_watermark_follows_max_time_not_the_latest_message() -> None:
    run = Run()
    run.feed(ev(T0 + 10.0), ev(T0 + 95.0))  # watermark T0 + 65: [T0, T0+60) closed
    assert [w.start for w in run.closed] == [T0]
    # An older (but not late) event does not move the watermark back, nor close anything.
    assert run.feed(ev(T0 + 61.0)) == []
    assert run.partition.max_time == T0 + 95.0


def test_zero_lateness_closes_at_the_window_end() -> None:
    run = Run(make_windower(lateness=0.0))
    run.feed(ev(T0 + 1.0))
    assert run.feed(ev(T0 + 59.0)) == []
    assert [w.start for w in run.feed(ev(T0 + 60.0))] == [T0]


def test_heartbeat_advances_watermark_and_closes_windows_without_events() -> None:
    run = Run()
    run.feed(ev(T0 + 5.0, stream="a"), ev(T0 + 7.0, stream="b"))
    assert run.closed == []
    closed = run.feed(hb(T0 + 3 * SIZE + LATENESS))
    # Three windows closed for each known stream; nothing but the heartbeat arrived.
    assert sorted((w.stream, w.start) for w in closed) == sorted(
        (s, T0 + k * SIZE) for s in "ab" for k in range(3)
    )
    assert run.window("a", T0).values[EXE] == 1
    assert run.window("a", T0 + SIZE).values == (0.0,) * len(FEATURES)
    assert run.partition.max_time == T0 + 3 * SIZE + LATENESS


def test_heartbeat_older_than_max_time_changes_nothing() -> None:
    run = Run()
    run.feed(ev(T0 + 5.0), ev(T0 + 70.0))
    before = run.partition.to_json()
    assert run.feed(hb(T0 + 1.0)) == []
    after = run.partition.to_json()
    assert {k: v for k, v in after.items() if k != "offset"} == {
        k: v for k, v in before.items() if k != "offset"
    }


def test_heartbeat_before_any_event_closes_nothing_and_windows_start_at_first_event() -> None:
    run = Run()
    assert run.feed(hb(T0 + 1000.0)) == []
    run.feed(ev(T0 + 2000.0))
    run.feed(hb(T0 + 2000.0 + SIZE + LATENESS))
    starts = [w.start for w in run.of("a")]
    assert starts[0] == WindowConfig(SIZE, 0.0, FEATURES).start_of(T0 + 2000.0)
    assert run.of("a")[0].values[EXE] == 1


def test_advance_closes_what_the_given_watermark_passes() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0, stream="a"), ev(T0 + 2.0, stream="b"))
    result = run.windower.advance(run.partition, run.streams, T0 + 2 * SIZE)
    assert sorted((w.stream, w.start) for w in result.closed) == [
        ("a", T0),
        ("a", T0 + SIZE),
        ("b", T0),
        ("b", T0 + SIZE),
    ]
    assert result.touched == {"a", "b"}
    # The same watermark again closes nothing more.
    assert run.windower.advance(run.partition, run.streams, T0 + 2 * SIZE).closed == []


# --- out of order and late --------------------------------------------------------------------


def test_out_of_order_events_within_lateness_land_in_their_own_window() -> None:
    run = Run()
    run.feed(ev(T0 + 10.0))
    # Max time moves into the next window; [T0, T0+60) stays open until max >= T0 + 90.
    run.feed(ev(T0 + 80.0), ev(T0 + 20.0, kind="JobHeldEvent"), ev(T0 + 59.0))
    assert run.late == []
    run.feed(ev(T0 + 300.0))
    first = run.window("a", T0)
    assert (first.values[EXE], first.values[HELD], first.events, first.late) == (2, 1, 3, 0)
    assert run.window("a", T0 + 60.0).values[EXE] == 1


def test_first_events_of_a_stream_out_of_order_within_lateness_are_not_late() -> None:
    # The very first event of a stream arrives after one from an earlier window that the
    # watermark has not passed yet (lateness 2 windows): that earlier event is in time.
    run = Run(make_windower(size=60.0, lateness=120.0))
    # [T0+120, T0+180) closes only when max time reaches T0 + 300; the watermark is T0 + 80.
    run.feed(ev(T0 + 200.0), ev(T0 + 130.0))
    assert run.late == []
    run.feed(hb(T0 + 600.0))
    assert run.window("a", T0 + 120.0).values[EXE] == 1
    assert run.window("a", T0 + 180.0).values[EXE] == 1


def test_event_older_than_a_closed_window_is_late_counted_and_reported() -> None:
    run = Run()
    run.feed(ev(T0 + 10.0), ev(T0 + 100.0))  # closes [T0, T0+60)
    assert [w.start for w in run.closed] == [T0]
    closed = run.feed(ev(T0 + 30.0, kind="JobHeldEvent"))
    assert closed == []
    assert run.late == [LateEvent(offset=2, stream="a", ts=T0 + 30.0, closed_until=T0 + 60.0)]
    # Not added to any window...
    assert run.window("a", T0).values[HELD] == 0
    # ... but counted in the stream's next closed window.
    run.feed(hb(T0 + 2 * SIZE + LATENESS))
    nxt = run.window("a", T0 + 60.0)
    assert (nxt.late, nxt.values[HELD], nxt.values[EXE], nxt.events) == (1, 0, 1, 1)
    assert run.window("a", T0).late == 0


def test_late_events_of_one_stream_do_not_count_for_another() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0, stream="a"), ev(T0 + 2.0, stream="b"), ev(T0 + 100.0, stream="b"))
    run.feed(ev(T0 + 5.0, stream="a"), ev(T0 + 6.0, stream="a"))
    assert [(x.stream, x.offset) for x in run.late] == [("a", 3), ("a", 4)]
    run.feed(hb(T0 + 2 * SIZE + LATENESS))
    assert run.window("a", T0 + 60.0).late == 2
    assert run.window("b", T0 + 60.0).late == 0


def test_late_events_spread_over_several_closes_each_window_reports_its_own() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0), ev(T0 + 100.0))
    run.feed(ev(T0 + 2.0))  # late: counted in [T0+60, T0+120)
    run.feed(ev(T0 + 170.0))  # closes [T0+60, T0+120)
    run.feed(ev(T0 + 3.0), ev(T0 + 4.0))  # late: counted in [T0+120, T0+180)
    run.feed(hb(T0 + 1000.0))
    lates = [w.late for w in run.of("a")]
    assert lates[:3] == [0, 1, 2]
    assert sum(lates) == len(run.late) == 3


def test_no_event_is_dropped_silently() -> None:
    rng = random.Random(7)
    run = Run()
    n_at: dict[int, int] = {}
    for i in range(400):
        ts = T0 + i * 2.0 + rng.uniform(-200.0, 20.0)  # many out of order, some late
        n_at[run.next_offset] = n = rng.randint(1, 3)
        run.feed(ev(ts, stream=rng.choice("xyz"), n=n))
    run.feed(hb(T0 + 10_000.0))
    assert run.late, "the feed was meant to have late events"
    # Every late message is reported once, and its n events are counted once in a later
    # window of its stream (late counts events, as for n messages of one event each) ...
    assert len({x.offset for x in run.late}) == len(run.late)
    assert all(x.n == n_at[x.offset] for x in run.late)
    late_n = sum(n_at[x.offset] for x in run.late)
    assert sum(w.late for w in run.closed) == late_n > len(run.late)
    # ... and every other event is in exactly one window, with its n.
    assert sum(w.events for w in run.closed) == sum(n_at.values()) - late_n


# --- silent and several streams ---------------------------------------------------------------


def test_silent_known_stream_gets_all_zero_windows_while_others_continue() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0, stream="quiet", n=5), ev(T0 + 2.0, stream="busy"))
    for k in range(1, 10):
        run.feed(ev(T0 + k * SIZE + 1.0, stream="busy", n=k))
    quiet = run.of("quiet")
    busy = run.of("busy")
    assert [w.start for w in quiet] == [w.start for w in busy]
    assert len(quiet) == 8  # watermark T0 + 541 - 30: [T0, T0 + 8*60) closed
    assert quiet[0].values[EXE] == 5
    for w in quiet[1:]:
        assert w.values == (0.0,) * len(FEATURES)
        assert (w.events, w.late) == (0, 0)
    assert [w.values[EXE] for w in busy] == [1, *range(1, 8)]


def test_several_streams_each_get_every_window_exactly_once_and_in_order() -> None:
    rng = random.Random(42)
    messages: list[Event | Heartbeat] = []
    streams = [f"schedd:{i}" for i in range(6)]
    for i in range(3000):
        ts = T0 + i * 0.7 + rng.uniform(-LATENESS * 0.9, 0.0)  # out of order, never late
        messages.append(ev(ts, stream=rng.choice(streams), kind=rng.choice(FEATURES)))
    messages.append(hb(T0 + 3000 * 0.7 + SIZE + LATENESS))
    run = Run()
    pos = 0
    while pos < len(messages):  # uneven batches
        step = rng.randint(1, 200)
        run.feed(*messages[pos : pos + step])
        pos += step
    assert run.late == []
    last_end = run.partition.closed_until
    expected_counts: dict[tuple[str, float], int] = defaultdict(int)
    for m in messages:
        if isinstance(m, Event):
            expected_counts[(m.stream, WindowConfig(SIZE, 0.0, FEATURES).start_of(m.ts))] += 1
    for name in streams:
        windows = run.of(name)
        starts = [w.start for w in windows]
        first = min(s for (st, s) in expected_counts if st == name)
        assert starts == [first + k * SIZE for k in range(len(starts))]  # once, in order
        assert starts[-1] + SIZE == last_end
        for w in windows:
            assert w.events == expected_counts.get((name, w.start), 0)
    assert sum(w.events for w in run.closed) == 3000


def test_stream_first_seen_after_partition_closed_windows_starts_at_its_own_first_window() -> None:
    run = Run()
    for k in range(5):
        run.feed(ev(T0 + k * SIZE + 1.0, stream="old"))
    boundary = run.partition.closed_until
    assert boundary is not None and boundary > T0
    run.feed(ev(T0 + 4 * SIZE + 10.0, stream="new"))
    run.feed(hb(T0 + 8 * SIZE + LATENESS))
    new = run.of("new")
    assert [w.start for w in new] == [T0 + k * SIZE for k in range(4, 8)]
    assert new[0].values[EXE] == 1
    assert [w.start for w in run.of("old")] == [T0 + k * SIZE for k in range(8)]


def test_stream_first_seen_with_an_event_in_a_closed_window_is_late() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0, stream="old"), ev(T0 + 200.0, stream="old"))
    run.feed(ev(T0 + 5.0, stream="new"))
    assert [(x.stream, x.ts) for x in run.late] == [("new", T0 + 5.0)]
    run.feed(hb(T0 + 1000.0))
    new = run.of("new")
    assert new[0].start == run.of("old")[0].start + 2 * SIZE  # the partition's boundary
    assert new[0].late == 1
    assert sum(w.events for w in new) == 0


# --- what is counted --------------------------------------------------------------------------


def test_unknown_event_types_count_under_other() -> None:
    run = Run()
    run.feed(
        ev(T0 + 1.0, kind="JobWeirdEvent"),
        ev(T0 + 2.0, kind="AnotherNewEvent", n=3),
        ev(T0 + 3.0, kind="JobHeldEvent"),
        hb(T0 + 100.0),
    )
    w = run.window("a", T0)
    assert w.values[OTHER] == 4
    assert w.values[HELD] == 1
    assert w.events == 5


def test_unknown_types_are_still_counted_as_events_without_an_other_feature() -> None:
    windower = Windower(WindowConfig(size=SIZE, lateness=0.0, features=("ExecuteEvent",)))
    run = Run(windower)
    run.feed(ev(T0 + 1.0, kind="Nope", n=2), ev(T0 + 2.0), hb(T0 + SIZE))
    (w,) = run.closed
    assert (w.values, w.events) == ((1.0,), 3)


def test_n_greater_than_one_counts_n() -> None:
    run = Run()
    run.feed(ev(T0 + 1.0, n=7), ev(T0 + 2.0, n=1), ev(T0 + 3.0, kind="JobHeldEvent", n=250))
    run.feed(hb(T0 + 100.0))
    w = run.window("a", T0)
    assert (w.values[EXE], w.values[HELD], w.events) == (8, 250, 258)


def test_gauge_metrics_average_within_a_window() -> None:
    run = Run()
    run.feed(
        gauge(T0 + 1.0, load=2.0),
        gauge(T0 + 2.0, load=4.0, unknown_metric=99.0),
        gauge(T0 + 3.0, load=9.0),
        gauge(T0 + 61.0, load=1.5),
        hb(T0 + 3 * SIZE + LATENESS),
    )
    first, second = run.of("a")[:2]
    assert first.values[LOAD] == pytest.approx(5.0)
    assert first.events == 3  # one per sample
    assert first.values[EXE] == first.values[OTHER] == 0
    assert second.values[LOAD] == pytest.approx(1.5)
    assert run.of("a")[2].values[LOAD] == 0.0  # no sample: zero, not NaN


# --- recovery ---------------------------------------------------------------------------------


def _snapshot(run: Run) -> tuple[bytes, dict[str, bytes]]:
    return (
        orjson.dumps(run.partition.to_json()),
        {name: orjson.dumps(state.to_json()) for name, state in run.streams.items()},
    )


def _restore(snapshot: tuple[bytes, dict[str, bytes]]) -> tuple[PartitionState, dict]:
    partition_json, streams_json = snapshot
    partition = PartitionState.from_json(orjson.loads(partition_json))
    streams = {n: StreamState.from_json(orjson.loads(s)) for n, s in streams_json.items()}
    return partition, streams


def _mixed_messages(seed: int, count: int) -> list[Event | Heartbeat]:
    rng = random.Random(seed)
    out: list[Event | Heartbeat] = []
    for i in range(count):
        r = rng.random()
        ts = T0 + i * 1.3 + rng.uniform(-40.0, 0.0)  # some late (lateness is 30 s)
        if r < 0.05:
            out.append(hb(T0 + i * 1.3))
        elif r < 0.15:
            out.append(gauge(ts, stream=rng.choice("abc"), load=rng.uniform(0, 10)))
        else:
            out.append(ev(ts, stream=rng.choice("abcd"), kind=rng.choice(FEATURES), n=2))
    return out


def test_state_json_round_trip_is_lossless() -> None:
    run = Run()
    run.feed(*_mixed_messages(1, 300))
    run.streams["a"].detector = {"n": 3, "loc": [1.0, 2.0]}
    run.streams["a"].alert = {"since": T0, "model": "baseline@1", "normal": 0, "peak": 60.0}
    partition, streams = _restore(_snapshot(run))
    assert partition == run.partition
    assert streams == run.streams


def test_partition_state_round_trip_before_any_message() -> None:
    state = PartitionState()
    assert PartitionState.from_json(orjson.loads(orjson.dumps(state.to_json()))) == state


def test_reapplying_applied_offsets_changes_nothing_and_emits_nothing() -> None:
    windower = make_windower()
    messages = list(enumerate(_mixed_messages(3, 500)))
    partition, streams = PartitionState(), {}
    windower.apply(partition, streams, messages)
    snapshot = (orjson.dumps(partition.to_json()), {n: s.to_json() for n, s in streams.items()})
    again = windower.apply(partition, streams, messages)
    assert again.closed == [] and again.late == []
    assert not again.partition_changed and again.touched == set()
    assert orjson.dumps(partition.to_json()) == snapshot[0]
    assert {n: s.to_json() for n, s in streams.items()} == snapshot[1]


@pytest.mark.parametrize("cut", [1, 57, 200, 333])
def test_restart_from_a_snapshot_re_emits_exactly_the_original_windows(cut: int) -> None:
    windower = make_windower()
    messages = list(enumerate(_mixed_messages(11, 600)))
    # Original worker: first batch, snapshot (the table records), then the rest.
    partition, streams = PartitionState(), {}
    windower.apply(partition, streams, messages[:cut])
    snapshot_p = orjson.dumps(partition.to_json())
    snapshot_s = {n: orjson.dumps(s.to_json()) for n, s in streams.items()}
    original = windower.apply(partition, streams, messages[cut:])
    original_end = orjson.dumps(partition.to_json())
    # Restarted worker: restored from the snapshot, re-delivered from some committed offset
    # before the cut (the overlap is skipped by offset), in different batch sizes.
    restored_p, restored_s = _restore((snapshot_p, snapshot_s))
    closed, late = [], []
    redelivered = messages[max(0, cut - 40) :]
    for i in range(0, len(redelivered), 97):
        step = windower.apply(restored_p, restored_s, redelivered[i : i + 97])
        closed.extend(step.closed)
        late.extend(step.late)
    assert closed == original.closed
    assert late == original.late
    assert orjson.dumps(restored_p.to_json()) == original_end
    assert restored_s == streams


def test_stream_record_newer_than_partition_record_emits_no_window_twice() -> None:
    # A crash after the stream records were written but before the partition record: the
    # partition resumes from an older offset, streams from newer ones.
    windower = make_windower()
    messages = list(enumerate(_mixed_messages(5, 400)))
    partition, streams = PartitionState(), {}
    windower.apply(partition, streams, messages[:150])
    old_partition = orjson.dumps(partition.to_json())
    rest = windower.apply(partition, streams, messages[150:250])
    new_streams = {n: orjson.dumps(s.to_json()) for n, s in streams.items()}
    tail = windower.apply(partition, streams, messages[250:])
    assert rest.closed, "the crash should fall after some windows closed"

    restored_p = PartitionState.from_json(orjson.loads(old_partition))
    restored_s = {n: StreamState.from_json(orjson.loads(s)) for n, s in new_streams.items()}
    restored_p.streams |= set(restored_s)  # the processor adopts streams found in the table
    replay = windower.apply(restored_p, restored_s, messages[150:])
    # The streams' records already hold messages 150..249: nothing of theirs comes out again.
    assert replay.closed == tail.closed
    assert replay.late == tail.late
    assert restored_p == partition
    assert restored_s == streams


def test_batching_does_not_change_the_result() -> None:
    messages = list(enumerate(_mixed_messages(9, 500)))
    windower = make_windower()
    one_p, one_s = PartitionState(), {}
    whole = windower.apply(one_p, one_s, messages)
    many_p, many_s = PartitionState(), {}
    closed, late = [], []
    for item in messages:
        step = windower.apply(many_p, many_s, [item])
        closed.extend(step.closed)
        late.extend(step.late)
    key = lambda w: (w.start, w.stream)  # noqa: E731
    assert sorted(closed, key=key) == sorted(whole.closed, key=key)
    assert late == whole.late
    assert one_s == many_s
