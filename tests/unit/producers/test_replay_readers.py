"""Replay readers (gridalarm.producers.replay): pure, on small files and the study's sample."""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import orjson
import pytest
from shared_data import SHARED_DATA, require

from gridalarm.config import DEFAULT_FEATURES, Settings
from gridalarm.messages import TimeBounds, parse_event
from gridalarm.producers.replay import (
    Item,
    Pacer,
    Reader,
    ReplayError,
    ReplayOptions,
    detect_format,
    final_heartbeat_time,
    read_items,
)
from gridalarm.timeutil import parse_time

STUDY_FILE = SHARED_DATA / "seed" / "fifebatch_hourly_sample.txt"
T0 = parse_time("2024-03-04T10:00:00Z")


@pytest.fixture
def settings() -> Settings:
    # Explicit values: the tests must not depend on GRIDALARM_* variables of the shell.
    return Settings(window=3600.0, lateness=30.0, features=DEFAULT_FEATURES, max_future=86_400.0)


def options(settings: Settings, **kw: object) -> ReplayOptions:
    return ReplayOptions(settings=settings, progress=False, **kw)  # type: ignore[arg-type]


def items(path: Path, settings: Settings, **kw: object) -> list[Item]:
    return list(read_items(path, options(settings, **kw)))


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# -- the study's format ----------------------------------------------------------------------


def test_study_file_gives_16_hours_of_13_features(settings: Settings) -> None:
    got = items(require(STUDY_FILE), settings)
    assert detect_format(STUDY_FILE) == "study"
    hours = sorted({item.ts for item in got})
    start = parse_time("2017-01-01T00:00:00Z")
    assert hours == [start + h * 3600 for h in range(16)]
    assert {item.payload["type"] for item in got} <= set(DEFAULT_FEATURES)  # type: ignore[index]
    # Line 1: "1 |8866 85 0 0 1948 48886 2 0 1951 6392 53 0 9668" (no space after the bar).
    first_line = STUDY_FILE.read_text().splitlines()[0]
    counts = [int(c) for c in first_line.split("|")[1].split()]
    assert len(counts) == 13
    expected = [(DEFAULT_FEATURES[i], n) for i, n in enumerate(counts) if n > 0]
    hour1 = [item for item in got if item.ts == start]
    assert [(i.payload["type"], i.payload.get("n", 1)) for i in hour1] == expected  # type: ignore[union-attr]
    for item in hour1:
        assert item.payload["stream"] == "seed:fifebatch"  # type: ignore[index]
        assert item.payload["ts"] == "2017-01-01T00:00:00Z"  # type: ignore[index]
        assert item.payload["v"] == 1  # type: ignore[index]
        assert item.key is None  # dicts are keyed by the sink, from their stream
    # Every line of the file is used (16 hours), zero counts emit nothing.
    total_nonzero = sum(
        1
        for line in STUDY_FILE.read_text().splitlines()
        for c in line.split("|")[1].split()
        if int(c) > 0
    )
    assert len(got) == total_nonzero


def test_study_start_window_and_stream(tmp_path: Path) -> None:
    path = write(
        tmp_path / "seed.txt", "1 |1 0 0 0 0 0 0 0 0 0 0 0 2\n\n3 | 0 0 0 0 0 0 0 0 0 0 0 0 5\n"
    )
    settings = Settings(window=60.0, features=DEFAULT_FEATURES)
    got = items(path, settings, start=T0, stream="seed:other")
    assert [(i.ts, i.payload["type"], i.payload.get("n")) for i in got] == [  # type: ignore[union-attr]
        (T0, "ExecuteEvent", None),  # n = 1 is the default and left out
        (T0, "other", 2),
        (T0 + 120, "other", 5),  # hour 3 with 60 s windows: start + 2 windows
    ]
    assert {i.payload["stream"] for i in got} == {"seed:other"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1 |1 2 3\n", "3 counts, expected 13"),
        ("1 |1 2 3 4 5 6 7 8 9 10 11 12 x\n", "'x' is not a non-negative integer"),
        ("1 |1 2 3 4 5 6 7 8 9 10 11 12 -1\n", "'-1' is not a non-negative integer"),
        ("0 |1 2 3 4 5 6 7 8 9 10 11 12 13\n", "hours are numbered from 1"),
    ],
)
def test_study_bad_lines_fail_before_anything_is_read(
    tmp_path: Path, settings: Settings, line: str, problem: str
) -> None:
    path = write(tmp_path / "seed.txt", "1 |1 2 3 4 5 6 7 8 9 10 11 12 13\n" + line)
    with pytest.raises(ReplayError, match=problem) as err:
        iter(Reader(path, options(settings, format="study"))).__next__()
    assert f"{path}:2" in str(err.value)
    assert "\n" not in str(err.value)


# -- CSV -------------------------------------------------------------------------------------


def test_csv_counts_become_counter_events(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path / "counts.csv",
        "timestamp,stream,ExecuteEvent,JobHeldEvent\n"
        "2024-03-04T10:00:00Z,schedd:a,3,0\n"
        "2024-03-04T10:00:00Z,schedd:b,0,0\n"
        f"{T0 + 3600:.0f},,1,7\n",
    )
    got = items(path, settings)
    assert [(i.ts, i.payload) for i in got] == [
        (
            T0,
            {
                "v": 1,
                "ts": "2024-03-04T10:00:00Z",
                "stream": "schedd:a",
                "type": "ExecuteEvent",
                "n": 3,
                "source": "replay:counts.csv",
            },
        ),
        (
            T0 + 3600,
            {
                "v": 1,
                "ts": "2024-03-04T11:00:00Z",
                "stream": "csv:counts",  # empty stream cell: the default
                "type": "ExecuteEvent",
                "source": "replay:counts.csv",
            },
        ),
        (
            T0 + 3600,
            {
                "v": 1,
                "ts": "2024-03-04T11:00:00Z",
                "stream": "csv:counts",
                "type": "JobHeldEvent",
                "n": 7,
                "source": "replay:counts.csv",
            },
        ),
    ]


def test_csv_without_stream_column_uses_the_option_and_ignores_end(
    tmp_path: Path, settings: Settings
) -> None:
    path = write(
        tmp_path / "w.csv",
        "Window_Start,window_end,JobEvictedEvent\n2024-03-04T10:00:00Z,2024-03-04T11:00:00Z,2\n",
    )
    got = items(path, settings, stream="site:x")
    assert [(i.payload["stream"], i.payload["type"], i.payload["n"]) for i in got] == [  # type: ignore[index]
        ("site:x", "JobEvictedEvent", 2)
    ]


@pytest.mark.parametrize("odd", ["0.5", "-1", "2.0"])
def test_csv_with_any_non_integral_value_is_gauges(
    tmp_path: Path, settings: Settings, odd: str
) -> None:
    path = write(
        tmp_path / "load.csv",
        f"time,stream,cpu,jobs\n2024-03-04T10:00:00Z,s1,3,4\n2024-03-04T10:01:00Z,s1,{odd},\n",
    )
    got = items(path, settings)
    assert [i.payload for i in got] == [
        {
            "v": 1,
            "ts": "2024-03-04T10:00:00Z",
            "stream": "s1",
            "metrics": {"cpu": 3.0, "jobs": 4.0},
            "source": "replay:load.csv",
        },
        {
            "v": 1,
            "ts": "2024-03-04T10:01:00Z",
            "stream": "s1",
            "metrics": {"cpu": float(odd)},  # the empty cell is left out
            "source": "replay:load.csv",
        },
    ]


def test_csv_start_skips_earlier_windows(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path / "c.csv", f"start,JobHeldEvent\n{T0:.0f},1\n{T0 + 60:.0f},2\n")
    reader = Reader(path, options(settings, start=T0 + 1))
    assert [i.payload["n"] for i in reader] == [2]  # type: ignore[index]
    assert reader.skipped == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stream,ExecuteEvent\ns,1\n", "no time column"),
        ("timestamp,stream\n2024-03-04T10:00:00Z,s\n", "no feature columns"),
        ("timestamp,a,a\n2024-03-04T10:00:00Z,1,2\n", "'a' twice"),
        ("timestamp,a\nyesterday,1\n", "neither RFC 3339 nor epoch"),
        ("timestamp,a\n2024-03-04T10:00:00Z,1,2\n", "3 cells, the header has 2"),
        ("timestamp,a\n2024-03-04T10:00:00Z,lots\n", "'lots' is not a finite number"),
        ("timestamp,a\n2024-03-04T10:00:00Z,nan\n", "'nan' is not a finite number"),
        ("", "empty"),
    ],
)
def test_csv_errors_are_one_line(
    tmp_path: Path, settings: Settings, text: str, problem: str
) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ReplayError, match=problem) as err:
        list(read_items(path, options(settings)))
    assert "\n" not in str(err.value)


def test_csv_bad_row_fails_before_the_first_item(tmp_path: Path, settings: Settings) -> None:
    rows = "".join(f"{T0 + 60 * i:.0f},1\n" for i in range(100))
    path = write(tmp_path / "late-error.csv", f"timestamp,a\n{rows}oops,1\n")
    with pytest.raises(ReplayError, match=":102:"):
        next(iter(Reader(path, options(settings))))


# -- JSONL -----------------------------------------------------------------------------------


def test_jsonl_passes_every_line_through_verbatim(tmp_path: Path, settings: Settings) -> None:
    good = b'{"v":1, "ts":"2024-03-04T10:00:00Z", "stream":"schedd:a", "type":"JobHeldEvent"}'
    lines = [
        good,
        b'{"v":1,"ts":"2024-03-04T10:00:01Z","stream":"schedd:b","type":"X","n":"3"}',  # wrong n
        b'{"v":1,"ts":"2024-03-04T10:00:02Z","stream":42,"type":"X"}',  # stream not a string
        b"{not json",
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"v":1,"ts":"3000-01-01T00:00:00Z","stream":"schedd:a","type":"X"}',  # far future
        b'{"v":1,"ts":-5,"stream":"schedd:a","type":"X"}',  # before the epoch
        b'{"v":1,"ts":"2024-03-04T10:00:03Z","stream":"schedd:a","pad":"'
        + b"x" * 5_000_000
        + b'"}',
        b"\xff\xfe not utf-8",
        b'  {"v":1,"ts":"2024-03-04T10:00:04Z","stream":"schedd:c","type":"X"}  ',
    ]
    path = write(tmp_path / "mixed.jsonl", b"\n".join(lines) + b"\n")
    got = items(path, settings)
    assert [i.payload for i in got] == lines  # byte for byte, in file order
    assert [i.key for i in got] == [
        b"schedd:a",
        b"schedd:b",
        None,
        None,
        None,
        None,
        b"schedd:a",
        b"schedd:a",
        b"schedd:a",
        None,
        b"schedd:c",
    ]
    assert [i.ts for i in got] == [
        T0,
        T0 + 1,
        T0 + 2,
        None,
        None,
        None,
        None,
        None,
        T0 + 3,
        None,
        T0 + 4,
    ]
    # (the two lines whose time the worker rejects carry no time: they must not pace the
    # replay or push the heartbeats)


def test_jsonl_skips_blank_lines_and_strips_only_line_endings(
    tmp_path: Path, settings: Settings
) -> None:
    path = write(tmp_path / "crlf.jsonl", b'{"a": 1}\r\n\r\n   \n{"b": 2}\t\n{"c": 3}')
    reader = Reader(path, options(settings))
    assert [i.payload for i in reader] == [b'{"a": 1}', b'{"b": 2}\t', b'{"c": 3}']
    assert reader.skipped == 2


def test_jsonl_start_skips_earlier_events_only(tmp_path: Path, settings: Settings) -> None:
    lines = [
        orjson.dumps({"v": 1, "ts": T0, "stream": "s", "type": "X"}),
        b"garbage",
        orjson.dumps({"v": 1, "ts": T0 + 10, "stream": "s", "type": "X"}),
    ]
    path = write(tmp_path / "e.jsonl", b"\n".join(lines))
    assert [i.payload for i in items(path, settings, start=T0 + 5)] == lines[1:]


def test_jsonl_refuses_stream_option(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path / "e.jsonl", b"{}\n")
    with pytest.raises(ReplayError, match="--stream applies to CSV and study"):
        Reader(path, options(settings, stream="x"))


# -- choosing the format, bad files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.jsonl", "whatever", "jsonl"),
        ("a.json", "whatever", "jsonl"),
        ("a.ndjson", "whatever", "jsonl"),
        ("A.CSV", "whatever", "csv"),
        ("a.txt", '\n\n{"v":1}\n', "jsonl"),
        ("a.txt", "1 |1 2 3\n", "study"),
        ("hourly", "  12 | 1 2 3\n", "study"),
        ("a.dat", "window_start,stream,JobHeldEvent\n", "csv"),
        ("a.log", "\ufefftimestamp,ExecuteEvent\n", "csv"),
    ],
)
def test_format_by_extension_then_content(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    assert detect_format(write(tmp_path / name, text)) == expected


def test_format_option_wins_over_extension(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path / "counts.jsonl", "timestamp,a\n2024-03-04T10:00:00Z,4\n")
    assert detect_format(path, "csv") == "csv"
    assert [i.payload["n"] for i in items(path, settings, format="csv")] == [4]  # type: ignore[index]


def test_gzip_files_are_read_by_their_inner_extension(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"v":1,"stream":"s"}\n'))
    reader = Reader(path, options(settings))
    assert reader.format == "jsonl"
    assert reader.size is None  # a compressed size says nothing about progress
    assert [(i.payload, i.key) for i in reader] == [(b'{"v":1,"stream":"s"}', b"s")]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.jsonl", None, "no such file"),
        ("prose.txt", "Dear operator,\nhello\n", "not JSONL, CSV"),
        ("empty.txt", "", "empty"),
        ("blank.txt", "\n \n", "empty"),
        ("bad.jsonl.gz", "not gzip at all", "cannot read"),
    ],
)
def test_bad_files_raise_one_line_errors(
    tmp_path: Path, settings: Settings, name: str, content: str | None, problem: str
) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(ReplayError, match=problem) as err:
        list(read_items(path, options(settings)))
    assert "\n" not in str(err.value)


def test_directory_and_unknown_format_are_errors(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(ReplayError, match="is a directory"):
        Reader(tmp_path, options(settings, format="jsonl"))
    with pytest.raises(ReplayError, match="unknown format 'xml'"):
        options(settings, format="xml")
    with pytest.raises(ReplayError, match="speed"):
        options(settings, speed=0.0)


# -- pacing and the final heartbeat ------------------------------------------------------------


def test_final_heartbeat_closes_the_last_window_and_no_later_one(settings: Settings) -> None:
    # T0 is a window start: the heartbeat lands exactly on that window's end plus lateness,
    # so the watermark (heartbeat - lateness) closes it and not the empty one after it.
    assert final_heartbeat_time(T0, settings) == T0 + 3600 + 30
    assert final_heartbeat_time(T0 + 3599.5, settings) == T0 + 3600 + 30
    # ...but never further ahead of now than the worker accepts.
    now = time.time()
    assert final_heartbeat_time(now, settings) <= time.time() + settings.max_future


def test_pacer_max_speed_never_waits() -> None:
    pacer = Pacer(None)

    async def run() -> float:
        started = time.monotonic()
        for ts in (T0, T0 + 3600, T0 + 86_400):
            await pacer.wait(ts)
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.3
    assert pacer.clock() is None


def test_pacer_plays_event_time_at_speed() -> None:
    pacer = Pacer(20.0)  # 10 s of event time → 0.5 s
    seen: list[float | None] = []

    async def run() -> float:
        started = time.monotonic()
        await pacer.wait(T0)
        task = asyncio.create_task(pacer.wait(T0 + 10))
        await asyncio.sleep(0.1)
        seen.append(pacer.clock())  # a fifth of the way: event time has reached about T0 + 2
        await task
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    assert 0.45 <= elapsed < 3.0
    assert seen[0] is not None and T0 + 1.5 <= seen[0] < T0 + 10
    assert pacer.clock() is None  # not waiting: the sink uses the latest event time sent


def test_live_pacer_sends_the_past_at_once() -> None:
    now = time.time()
    pacer = Pacer(1.0, anchor=now)

    async def run() -> float:
        started = time.monotonic()
        for ts in (now - 7200, now - 60, now - 1):
            await pacer.wait(ts)
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.3
    assert abs((pacer.now() or 0) - time.time()) < 1


# -- what the readers build is what the worker accepts -----------------------------------------


def test_built_messages_fit_the_event_schema(tmp_path: Path, settings: Settings) -> None:
    counts = write(tmp_path / "c.csv", "timestamp,stream,JobHeldEvent,other\n1709546400,s,2,1\n")
    gauges = write(tmp_path / "g.csv", "timestamp,load\n1709546400,0.25\n")
    study = write(tmp_path / "s.txt", "1 |" + " ".join(["3"] * 13) + "\n")
    built = [i.payload for path in (counts, gauges, study) for i in items(path, settings)]
    assert len(built) == 2 + 1 + 13
    bounds = TimeBounds()
    for message in built:
        assert isinstance(message, dict)
        parsed = parse_event(orjson.dumps(message), bounds)
        assert parsed.ts in (T0, parse_time("2017-01-01T00:00:00Z"))


def test_gzipped_csv_default_stream_is_the_inner_stem(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "pool.2024.csv.gz"
    path.write_bytes(gzip.compress(b"timestamp,JobHeldEvent\n1709546400,1\n"))
    assert [i.payload["stream"] for i in items(path, settings)] == ["csv:pool.2024"]  # type: ignore[index]


def test_a_byte_order_mark_is_not_data(tmp_path: Path, settings: Settings) -> None:
    bom = b"\xef\xbb\xbf"
    jsonl = write(tmp_path / "bom.jsonl", bom + b'{"v":1,"stream":"s"}\n')
    study = write(tmp_path / "bom.txt", bom + b"1 |" + b"1 " * 13 + b"\n")
    assert [i.payload for i in items(jsonl, settings)] == [b'{"v":1,"stream":"s"}']
    assert len(items(study, settings)) == 13
