"""Coalescing at the source (gridalarm.producers.coalesce), pure Python.

The property that matters: whatever the sequence and wherever the linger falls, the worker's
windowing of the coalesced messages gives exactly what one message per event gives (counts,
``events``, ``late``, late events by count, other dead letters). It is checked on random
sequences with late events, gauges, heartbeats, bad lines and counts > 1 mixed in.
"""

from __future__ import annotations

import doctest
import random
from collections import Counter
from dataclasses import dataclass

import orjson
import pytest

from gridalarm.messages import InvalidMessage, TimeBounds, parse_event
from gridalarm.producers import coalesce
from gridalarm.producers.coalesce import CoalesceConfig, Coalescer, Out
from gridalarm.stream.windows import PartitionState, WindowConfig, Windower
from gridalarm.timeutil import format_time

T0 = 1_699_999_200.0  # a whole hour
FEATURES = ("ExecuteEvent", "JobHeldEvent", "load", "other")


def dumps(message: dict) -> bytes:
    return orjson.dumps(message)


def event(ts: float | str, stream: str = "a", kind: str = "JobHeldEvent", **extra) -> bytes:
    return dumps({"v": 1, "ts": ts, "stream": stream, "type": kind, **extra})


@dataclass
class Outcome:
    """What the worker's windowing made of a partition's messages."""

    closed: list[tuple]
    late_by_stream: Counter
    deadletters: Counter
    messages: int


def windowing(values: list[bytes], size: float, lateness: float, chunk: int) -> Outcome:
    """The worker's steps (parse, dead-letter, window) over ``values``, in batches of ``chunk``."""
    windower = Windower(WindowConfig(size=size, lateness=lateness, features=FEATURES))
    partition, streams = PartitionState(), {}
    bounds = TimeBounds()
    closed: list[tuple] = []
    late: Counter = Counter()
    dead: Counter = Counter()
    for first in range(0, len(values), chunk):
        parsed = []
        for offset in range(first, min(first + chunk, len(values))):
            try:
                parsed.append((offset, parse_event(values[offset], bounds)))
            except InvalidMessage as err:
                dead[err.reason] += 1
        step = windower.apply(partition, streams, parsed)
        closed += [(w.stream, w.start, w.values, w.events, w.late) for w in step.closed]
        for item in step.late:
            late[item.stream] += item.n
    # Close what is still open: up to the last window that holds an event, not a step further.
    step = windower.advance(partition, streams, partition.max_time + size)
    closed += [(w.stream, w.start, w.values, w.events, w.late) for w in step.closed]
    return Outcome(closed, late, dead, len(values))


def random_sequence(rng: random.Random, count: int, size: float, lateness: float) -> list:
    """Items: ("msg", value) for a producer's message, ("hb", ts) for the sink's heartbeat,
    ("linger",) for a linger tick."""
    items: list = []
    now = T0 + rng.random() * size
    streams = [f"s{i}" for i in range(rng.randint(1, 6))]
    for _ in range(count):
        now += rng.expovariate(1.0) * size / rng.choice((2, 5, 20))
        roll = rng.random()
        stream = rng.choice(streams)
        if roll < 0.08:  # late, or nearly: well behind the watermark
            ts = now - rng.uniform(0, 3) * (size + lateness)
        elif roll < 0.2:  # ahead of the rest
            ts = now + rng.uniform(0, size)
        else:
            ts = now - rng.uniform(0, lateness + 1)
        stamp: float | str = round(ts, 3) if rng.random() < 0.5 else format_time(ts)
        roll = rng.random()
        if roll < 0.06:
            value = dumps(
                {"v": 1, "ts": stamp, "stream": stream, "metrics": {"load": rng.random()}}
            )
        elif roll < 0.08:
            value = rng.choice((b"{bad json", event(stamp, stream, n=0), event(T0 + 9e8, stream)))
        elif roll < 0.1:
            value = dumps({"v": 1, "ts": stamp, "heartbeat": True, "source": "file"})
        else:
            kind = rng.choice(("ExecuteEvent", "JobHeldEvent", "JobHeldEvent", "Odd"))
            extra = {"n": rng.randint(2, 5)} if rng.random() < 0.1 else {}
            if rng.random() < 0.5:
                extra["attrs"] = {"eid": f"e{len(items)}", "job": "1.0"}
            value = event(stamp, stream, kind, **extra)
        items.append(("msg", value))
        roll = rng.random()
        if roll < 0.05:
            items.append(("linger",))
        elif roll < 0.08:
            items.append(("hb", now - rng.uniform(0, lateness)))
    return items


def singles(items: list) -> list[bytes]:
    """One message per event: the sink without coalescing (heartbeats only move forward)."""
    out, last = [], None
    for item in items:
        if item[0] == "msg":
            out.append(item[1])
        elif item[0] == "hb" and (last is None or item[1] >= last):
            last = item[1]
            out.append(
                dumps({"v": 1, "ts": format_time(item[1]), "heartbeat": True, "source": "p"})
            )
    return out


def coalesced(
    items: list, config: CoalesceConfig, with_dicts: bool = False
) -> tuple[list[bytes], Coalescer]:
    """What the sink sends with coalescing, for one partition (0); ``with_dicts``: each
    message is also given as the dict it was made from, as ``EventSink.send`` does."""
    coalescer = Coalescer(config)
    out: list[Out] = []
    last = None
    for item in items:
        if item[0] == "msg":
            try:
                data = orjson.loads(item[1]) if with_dicts else None
            except orjson.JSONDecodeError:
                data = None
            out += coalescer.take(0, b"k", item[1], data if isinstance(data, dict) else None)
        elif item[0] == "linger":
            out += coalescer.drain(0)
        elif last is None or item[1] >= last:
            last = item[1]
            out += coalescer.drain(0)
            stamp = format_time(item[1])
            out.append(Out(None, dumps({"v": 1, "ts": stamp, "heartbeat": True, "source": "p"})))
            coalescer.heartbeat_sent((0,), parse_event(out[-1].value, TimeBounds()).ts, stamp)
    out += coalescer.drain(0)
    return [o.value for o in out], coalescer


@pytest.mark.parametrize("seed", range(60))
def test_windows_are_those_of_one_message_per_event(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice((1.0, 60.0, 3600.0))
    lateness = rng.choice((0.0, 30.0, size))
    items = random_sequence(rng, rng.randint(50, 800), size, lateness)
    config = CoalesceConfig(window=size, lateness=lateness, max_held=rng.choice((3, 50_000)))
    merged, _ = coalesced(items, config)
    assert coalesced(items, config, with_dicts=True)[0] == merged
    chunk = rng.choice((1, 7, 500))
    want = windowing(singles(items), size, lateness, chunk)
    got = windowing(merged, size, lateness, rng.choice((1, 13, 500)))
    assert got.closed == want.closed
    assert got.late_by_stream == want.late_by_stream
    assert got.deadletters == want.deadletters


def test_a_pool_in_time_order_goes_out_in_far_fewer_messages() -> None:
    rng = random.Random(1)
    items = [("msg", event(T0 + i * 0.5 + rng.random() * 0.4, f"s{i % 10}")) for i in range(7200)]
    merged, coalescer = coalesced(items, CoalesceConfig(window=60.0, lateness=30.0))
    want = windowing(singles(items), 60.0, 30.0, 500)
    assert windowing(merged, 60.0, 30.0, 500).closed == want.closed
    # 10 streams × 61 minutes, each cut in two where the boundary moves (minute + lateness)
    assert len(merged) < 7200 / 5
    assert coalescer.stats.merged > 5500


def test_a_merged_message_keeps_the_earliest_time_as_written_and_every_event_id() -> None:
    c = Coalescer(CoalesceConfig(window=60.0, lateness=0.0))
    c.take(0, b"a", event("2023-11-14T22:00:00Z", attrs={"eid": "first"}))
    c.take(0, b"a", event("2023-11-14T22:00:05.1234567Z", attrs={"eid": "x", "job": "7.0"}))
    c.take(0, b"a", event(1_699_999_201.0000001, attrs={"eid": "y"}, n=4))
    out = c.drain(0)
    merged = orjson.loads(out[0].value)
    assert merged == {
        "v": 1,
        "ts": 1_699_999_201.0000001,  # earliest, not re-formatted (that would round)
        "stream": "a",
        "type": "JobHeldEvent",
        "n": 5,
        "attrs": {"window": 60, "eids": ["x", "y"]},
    }
    # The first went out alone (it moved the boundary); the flush ends with the watermark
    # heartbeat at the latest time taken, as it was written.
    assert orjson.loads(out[1].value)["ts"] == "2023-11-14T22:00:05.1234567Z"
    assert out[1].heartbeat and out[1].key is None


def test_sources_and_event_types_are_never_merged_together() -> None:
    c = Coalescer(CoalesceConfig(window=60.0, lateness=0.0))
    c.take(0, b"a", event(T0))  # moves the boundary: out at once
    for kind, source in (("A", "p"), ("A", "q"), ("B", "p"), ("A", "p")):
        assert c.take(0, b"a", event(T0 + 1, kind=kind, source=source)) == []
    out = [orjson.loads(o.value) for o in c.drain(0)]
    assert [(m["type"], m["source"], m.get("n", 1)) for m in out] == [
        ("A", "p", 2),
        ("A", "q", 1),
        ("B", "p", 1),
    ]


def test_a_gauge_or_a_bad_line_goes_out_unchanged_in_its_place() -> None:
    c = Coalescer(CoalesceConfig(window=60.0, lateness=0.0))
    c.take(0, b"a", event(T0))
    gauge = dumps({"v": 1, "ts": T0 + 2, "stream": "a", "metrics": {"load": 0.5}})
    values = [event(T0 + 1), gauge, b"not json", event(T0 + 3)]
    for value in values:
        c.take(0, b"a", value)
    out = [o.value for o in c.drain(0)]
    assert out[1:3] == [gauge, b"not json"]
    assert orjson.loads(out[0])["n"] == 2


def test_counts_are_capped_by_the_schema_and_the_eid_budget() -> None:
    c = Coalescer(CoalesceConfig(window=60.0, lateness=0.0))
    c.take(0, b"a", event(T0))
    c.take(0, b"a", event(T0 + 1, n=coalesce.MAX_N - 1))
    out = c.take(0, b"a", event(T0 + 2, n=2))  # would pass the bound: the held one goes first
    assert [orjson.loads(o.value).get("n") for o in out] == [coalesce.MAX_N - 1]
    small = Coalescer(CoalesceConfig(window=60.0, lateness=0.0, max_bytes=4096))
    small.take(0, b"a", event(T0))
    sent = []
    for i in range(200):
        sent += small.take(0, b"a", event(T0 + 1, attrs={"eid": f"{i:020d}"}))
    sent += small.drain(0)
    events = [orjson.loads(o.value) for o in sent if not o.heartbeat]
    assert sum(m.get("n", 1) for m in events) == 200
    assert all(len(o.value) < 4096 for o in sent)


def test_config_from_settings_follows_the_workers_window_and_can_be_off() -> None:
    from gridalarm.config import Settings

    on = CoalesceConfig.from_settings(Settings(window="5m", lateness="10s"), "p")
    assert on is not None and (on.window, on.lateness, on.linger) == (300.0, 10.0, 1.0)
    assert CoalesceConfig.from_settings(Settings(coalesce="off"), "p") is None


def test_doc_examples_run() -> None:
    assert doctest.testmod(coalesce).failed == 0
