"""Labelled data loaders (gridalarm.evaluation.datasets): exact windows on small hand-made
inputs, the simulator's output end to end, and the real NAB / MSL / study data when present."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from shared_data import SHARED_DATA, require

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.evaluation.datasets import (
    MSL_WINDOW,
    DatasetError,
    LabelledSet,
    LabelledStream,
    load_events,
    load_msl,
    load_nab,
    load_study,
    load_window_csv,
    nab_probation,
    read_labels,
    safe_stem,
)
from gridalarm.messages import event_message, heartbeat_message
from gridalarm.producers.replay import STUDY_START, STUDY_STREAM
from gridalarm.producers.simulate import Simulation, SimulationConfig, write_simulation
from gridalarm.timeutil import parse_time

DATA = SHARED_DATA
STUDY_FILE = DATA / "seed" / "fifebatch_hourly_sample.txt"
NAB_DEV = DATA / "nab-dev"
MSL = DATA / "msl"

T0 = parse_time("2024-03-04T10:00:00Z")  # a whole hour
FEATURES = ("ExecuteEvent", "JobHeldEvent", "load", "other")
EXE, HELD, LOAD, OTHER = range(4)


def ev(ts: float, stream: str = "a", kind: str = "ExecuteEvent", n: int = 1) -> bytes:
    return orjson.dumps(event_message(ts, stream, kind, n, source="test"))


def gauge(ts: float, stream: str = "a", **metrics: float) -> bytes:
    return orjson.dumps({"v": 1, "ts": ts, "stream": stream, "metrics": metrics})


def hb(ts: float) -> bytes:
    return orjson.dumps(heartbeat_message(ts, "test"))


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def events(tmp_path: Path, *lines: bytes, lateness: float = 0.0, labels: str | None = None):
    path = write_lines(tmp_path / "events.jsonl", *lines)
    labels_path = None
    if labels is not None:
        labels_path = tmp_path / "labels.csv"
        labels_path.write_text(labels)
    return load_events(path, labels_path, 60.0, FEATURES, lateness=lateness)


# -- events.jsonl ----------------------------------------------------------------------------


def test_event_at_the_end_of_the_first_minute_falls_in_the_first_window(tmp_path: Path) -> None:
    data = events(tmp_path, ev(T0), ev(T0 + 59.999), ev(T0 + 60.0))
    (stream,) = data.streams
    assert stream.name == "a"
    assert stream.starts.tolist() == [T0, T0 + 60]
    assert stream.values[:, EXE].tolist() == [2.0, 1.0]
    assert data.window == 60.0 and data.features == FEATURES
    assert stream.labels == () and stream.train_until is None


def test_a_stream_silent_for_three_minutes_gets_three_zero_rows(tmp_path: Path) -> None:
    data = events(
        tmp_path,
        ev(T0 + 5, "a"),
        ev(T0 + 10, "b"),
        ev(T0 + 70, "b"),
        ev(T0 + 130, "b"),
        ev(T0 + 190, "b"),
        ev(T0 + 250, "a"),
    )
    a, b = data.streams
    assert a.starts.tolist() == [T0 + 60 * i for i in range(5)]
    assert a.values[:, EXE].tolist() == [1, 0, 0, 0, 1]
    # b falls silent in the last minute: the closing watermark gives it a zero window too.
    assert b.starts.tolist() == a.starts.tolist()
    assert b.values[:, EXE].tolist() == [1, 1, 1, 1, 0]


def test_a_stream_begins_with_its_first_event(tmp_path: Path) -> None:
    data = events(tmp_path, ev(T0 + 1, "a"), ev(T0 + 130, "c"), ev(T0 + 200, "a"))
    assert data.stream("c").starts.tolist() == [T0 + 120, T0 + 180]
    assert data.stream("c").values[:, EXE].tolist() == [1, 0]
    assert len(data.stream("a")) == 4


def test_kinds_counts_gauges_and_unknown_types_are_windowed_as_the_worker_does(
    tmp_path: Path,
) -> None:
    data = events(
        tmp_path,
        ev(T0 + 1, kind="JobHeldEvent", n=4),
        ev(T0 + 2, kind="NoSuchEvent"),
        gauge(T0 + 3, load=2.0, unknown=9.0),
        gauge(T0 + 4, load=4.0),
    )
    (stream,) = data.streams
    assert stream.values.tolist() == [[0.0, 4.0, 3.0, 1.0]]


def test_heartbeats_move_time_and_the_end_closes_the_last_window(tmp_path: Path) -> None:
    # The replay's final heartbeat lands at the end of the window of the latest time in the
    # file (a heartbeat line included): the loader closes exactly as far.
    data = events(tmp_path, ev(T0 + 5), hb(T0 + 185))
    (stream,) = data.streams
    assert stream.starts.tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert stream.values[:, EXE].tolist() == [1, 0, 0, 0]


def test_late_events_are_dropped_as_in_the_worker_unless_lateness_allows(tmp_path: Path) -> None:
    lines = (ev(T0 + 130), ev(T0 + 10), ev(T0 + 140))
    strict = events(tmp_path, *lines).streams[0]
    assert strict.starts.tolist() == [T0 + 120]
    assert strict.values[:, EXE].tolist() == [2]
    lenient = events(tmp_path, *lines, lateness=150.0).streams[0]
    assert lenient.starts.tolist() == [T0, T0 + 60, T0 + 120]
    assert lenient.values[:, EXE].tolist() == [1, 0, 2]


def test_labels_parse_rfc3339_and_epoch_seconds(tmp_path: Path) -> None:
    labels = (
        "stream,start,end,kind\n"
        "a,2024-03-04T10:01:00Z,2024-03-04T10:03:00Z,outage\n"
        f"b,{T0 + 120:.0f},{T0 + 180.5},hold_storm\n"
    )
    data = events(tmp_path, ev(T0, "a"), ev(T0, "b"), ev(T0 + 200, "a"), labels=labels)
    a, b = data.streams
    assert a.labels == ((T0 + 60, T0 + 180),)
    assert b.labels == ((T0 + 120, T0 + 180.5),)
    assert a.label_mask().tolist() == [False, True, True, False]
    assert b.label_mask().tolist() == [False, False, True, True]  # 10:03 < 10:03:00.5


def test_read_labels_groups_by_stream_and_sorts(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("Stream,Start,End\nx,200,300\nx,100,150\n,5,6\n\n")
    assert read_labels(path) == {"x": ((100.0, 150.0), (200.0, 300.0)), "": ((5.0, 6.0),)}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("stream,start,end\nnosuch,1,2\n", "stream 'nosuch' has no windows"),
        ("stream,start\na,1\n", "lacks end"),
        ("stream,start,end\na,tomorrow,2\n", "start 'tomorrow' is neither RFC 3339"),
        ("stream,start,end\na,5,5\n", "is not after start"),
        ("stream,start,end\na,1\n", "2 cells, the header has 3"),
    ],
)
def test_bad_labels_raise_one_line_naming_the_file(
    tmp_path: Path, labels: str, message: str
) -> None:
    with pytest.raises(DatasetError, match=message) as err:
        events(tmp_path, ev(T0, "a"), labels=labels)
    assert "labels.csv" in str(err.value) and "\n" not in str(err.value)


def test_a_line_the_worker_would_dead_letter_raises_with_its_line_number(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"events\.jsonl:2: bad_json"):
        events(tmp_path, ev(T0), b"{not json", ev(T0 + 1))
    with pytest.raises(DatasetError, match=r"events\.jsonl:1: too_old"):
        events(tmp_path, ev(12.0))


def test_event_file_problems_raise_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_events(tmp_path / "missing.jsonl", None, 60, FEATURES)
    empty = write_lines(tmp_path / "empty.jsonl", b"", b"  ")
    with pytest.raises(DatasetError, match="no events"):
        load_events(empty, None, 60, FEATURES)
    with pytest.raises(DatasetError, match="window"):
        load_events(empty, None, "soon", FEATURES)
    with pytest.raises(DatasetError, match="lateness"):
        load_events(empty, None, "1m", FEATURES, lateness=-1)


def test_gzipped_events_and_durations_as_text(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    path.write_bytes(gzip.compress(ev(T0 + 1) + b"\n" + ev(T0 + 3601) + b"\n"))
    data = load_events(path, None, "1h", FEATURES, lateness="30s")
    assert data.name == "run" and data.window == 3600.0
    assert data.streams[0].starts.tolist() == [T0, T0 + 3600]


def test_simulator_output_gives_the_windows_of_its_events(tmp_path: Path) -> None:
    config = SimulationConfig(streams=3, duration=6 * 3600.0, incidents=("outage",), seed=1)
    sim = Simulation(config)
    written, incidents = write_simulation(sim, tmp_path)
    data = load_events(tmp_path / "events.jsonl", tmp_path / "labels.csv", 60, DEFAULT_FEATURES)

    assert data.name == tmp_path.name
    assert [s.name for s in data.streams] == sim.streams
    # Sorted events are never late: every event counts, in the minute its time says.
    expected = Counter((e.stream, math.floor(e.ts / 60) * 60) for e in sim.events())
    assert sum(s.values.sum() for s in data.streams) == written == sum(expected.values())
    for stream in data.streams:
        totals = dict(zip(stream.starts.tolist(), stream.values.sum(axis=1).tolist(), strict=True))
        assert {t: n for t, n in totals.items() if n} == {
            t: n for (name, t), n in expected.items() if name == stream.name
        }
        assert stream.starts[-1] + 60 <= config.start + config.duration
    (incident,) = sim.labels
    outage = data.stream(incident.stream)
    assert outage.labels == ((incident.start, incident.end),)
    inside = outage.label_mask()
    assert incidents == 1 and inside.sum() == (incident.end - incident.start) / 60
    assert not outage.values[inside].any()  # an outage is silence: all-zero windows


# -- CSV of per-window values ----------------------------------------------------------------


def write_csv(tmp_path: Path, text: str, name: str = "counts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_window_csv_counts_per_stream_with_a_missing_window(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "stream,Start,end,ExecuteEvent,JobHeldEvent\n"
        f"x,{T0:.0f},{T0 + 60:.0f},3,0\n"
        f"y,{T0 + 60:.0f},,1,1\n"
        f"x,{T0 + 180:.0f},,2,\n"
        f"x,{T0 + 60:.0f},,0,1\n",
    )
    data = load_window_csv(path)
    assert data.name == "counts" and data.window == 60.0
    assert data.features == ("ExecuteEvent", "JobHeldEvent")
    x, y = data.streams
    assert x.name == "x" and x.starts.tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert x.values.tolist() == [[3, 0], [0, 1], [0, 0], [2, 0]]
    # Every stream runs to the file's last window, as the replay's final heartbeat closes it.
    assert y.starts.tolist() == [T0 + 60, T0 + 120, T0 + 180]
    assert y.values.tolist() == [[1, 1], [0, 0], [0, 0]]


def test_window_csv_sums_counts_and_averages_gauges_into_larger_windows(tmp_path: Path) -> None:
    counts = write_csv(
        tmp_path,
        "time,n\n2024-03-04T10:00:00Z,1\n2024-03-04T10:01:00Z,2\n2024-03-04T10:02:00Z,4\n",
        "c.csv",
    )
    data = load_window_csv(counts, window="2m")
    (stream,) = data.streams
    assert stream.name == "csv:c" and data.window == 120.0
    assert stream.starts.tolist() == [T0, T0 + 120]
    assert stream.values[:, 0].tolist() == [3.0, 4.0]
    gauges = write_csv(tmp_path, f"timestamp,load,mem\n{T0},1.5,\n{T0 + 60},2.5,7\n", "g.csv")
    (stream,) = load_window_csv(gauges, window=120).streams
    assert stream.values.tolist() == [[2.0, 7.0]]


def test_window_csv_labels_with_an_empty_stream_apply_to_every_stream(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"start,stream,n\n{T0},x,1\n{T0 + 60},y,1\n")
    labels = write_csv(
        tmp_path, f"stream,start,end\n,{T0},{T0 + 60}\ny,{T0 + 60},{T0 + 120}\n", "labels.csv"
    )
    x, y = load_window_csv(path, labels).streams
    assert x.labels == ((T0, T0 + 60),)
    assert y.labels == ((T0, T0 + 60), (T0 + 60, T0 + 120))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("when,n\n1,2\n", "no time column"),
        ("start,stream,end\n1,a,2\n", "no feature columns"),
        ("start,n,n\n1,2,3\n", "'n' twice"),
        ("start,n\n", "no data rows"),
        (f"start,n\n{T0},1\n{T0 + 60},x\n", r"counts\.csv:3: n = 'x' is not a finite number"),
        (f"start,n\n{T0},1,2\n", r"counts\.csv:2: 3 cells, the header has 2"),
        ("start,n\nlater,1\n", "time 'later' is neither RFC 3339"),
        (f"start,n\n{T0},1\n", "one distinct time"),
    ],
)
def test_window_csv_problems_raise_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_window_csv(write_csv(tmp_path, text))


# -- the study's hourly counts ---------------------------------------------------------------


def test_study_sample_loads_as_the_replay_reads_it() -> None:
    data = load_study(require(STUDY_FILE))
    (stream,) = data.streams
    assert data.window == 3600.0 and data.features == DEFAULT_FEATURES
    assert stream.name == STUDY_STREAM and stream.labels == ()
    assert stream.starts.tolist() == [parse_time(STUDY_START) + 3600 * h for h in range(16)]
    assert stream.values[0].tolist() == [8866, 85, 0, 0, 1948, 48886, 2, 0, 1951, 6392, 53, 0, 9668]
    assert stream.values[-1, 0] == 3064
    # The artifact the data README describes: column 3 of hour t is column 7 of hour t-1.
    assert stream.values[1:, 2].tolist() == stream.values[:-1, 6].tolist()


def test_study_fills_missing_hours_and_rejects_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "study.txt"
    path.write_text("2 |" + " 1" * 13 + "\n\n4 | " + " 2" * 13 + "\n")
    (stream,) = load_study(path).streams
    start = parse_time(STUDY_START)
    assert stream.starts.tolist() == [start + 3600, start + 7200, start + 10800]
    assert stream.values.sum(axis=1).tolist() == [13, 0, 26]
    for text, message in [
        ("1 |" + " 1" * 12 + "\n", "12 counts, expected 13"),
        ("1 , 2\n", r"study\.txt:1: expected '<hour> \|<counts>'"),
        ("1 |" + " 1" * 12 + " -1\n", "count '-1' is not a non-negative integer"),
        ("0 |" + " 1" * 13 + "\n", "numbered from 1"),
        ("\n", r"no '<hour> \|<counts>' lines"),
    ]:
        path.write_text(text)
        with pytest.raises(DatasetError, match=message):
            load_study(path)


# -- NAB -------------------------------------------------------------------------------------


def make_nab(root: Path, windows: dict, labels_in_root: bool = False) -> Path:
    folder = root / "data" / "realKnownCause"
    folder.mkdir(parents=True)
    rows = ["timestamp,value"] + [f"2014-04-01 00:{5 * i:02d}:00,{10 + i}" for i in range(10)]
    (folder / "tiny.csv").write_text("\n".join(rows) + "\n")
    labels = root if labels_in_root else root / "labels"
    labels.mkdir(exist_ok=True)
    (labels / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_nab_rows_labels_and_probation(tmp_path: Path) -> None:
    window = ["2014-04-01 00:10:00.000000", "2014-04-01 00:20:00.000000"]
    root = make_nab(tmp_path / "nab", {"realKnownCause/tiny.csv": [window], "other.csv": []})
    data = load_nab(root)
    assert data.name == "nab" and data.window == 0.0 and data.features == ("value",)
    (stream,) = data.streams
    t0 = parse_time("2014-04-01T00:00:00Z")
    assert stream.name == "realKnownCause/tiny.csv" and stream.group == "realKnownCause"
    assert stream.starts.tolist() == [t0 + 300 * i for i in range(10)]
    assert stream.values[:, 0].tolist() == [10 + i for i in range(10)]
    assert stream.step == 300.0
    # NAB's windows include their end: rows 2, 3 and 4.
    assert stream.labels == ((t0 + 600, t0 + 1500),)
    assert np.flatnonzero(stream.label_mask()).tolist() == [2, 3, 4]
    assert stream.train_until == t0 + 300  # floor(0.15 * 10) = 1 probation row
    assert stream.train_mask().tolist() == [True] + [False] * 9


def test_nab_labels_beside_the_data_and_label_problems(tmp_path: Path) -> None:
    root = make_nab(tmp_path / "a", {"realKnownCause/tiny.csv": []}, labels_in_root=True)
    assert load_nab(root).streams[0].labels == ()
    root = make_nab(tmp_path / "b", {"realKnownCause/other.csv": []})
    with pytest.raises(DatasetError, match=r"no entry for realKnownCause/tiny\.csv"):
        load_nab(root)
    with pytest.raises(DatasetError, match="no data/ folder"):
        load_nab(tmp_path / "nowhere")
    bad = make_nab(tmp_path / "c", {"realKnownCause/tiny.csv": [["2014-04-01", "soon"]]})
    with pytest.raises(DatasetError, match="window end 'soon'"):
        load_nab(bad)


def test_nab_probation_follows_nab() -> None:
    assert [nab_probation(n) for n in (10, 100, 4032, 5000, 10320, 22695)] == [
        1,
        15,
        604,
        750,
        750,
        750,
    ]


def test_nab_dev_corpus() -> None:
    require(NAB_DEV / "data")
    data = load_nab(NAB_DEV)
    windows = json.loads((NAB_DEV / "combined_windows.json").read_text())
    assert len(data.streams) == 18 and data.window == 0.0
    assert Counter(s.group for s in data.streams) == {
        "artificialNoAnomaly": 5,
        "artificialWithAnomaly": 6,
        "realKnownCause": 7,
    }
    for stream in data.streams:
        assert stream.train_mask().sum() == nab_probation(len(stream))
        # Our half-open intervals cover exactly the rows NAB's inclusive windows cover.
        nab_rows = np.zeros(len(stream), dtype=bool)
        for start, end in windows[stream.name]:
            nab_rows |= (stream.starts >= parse_time(start)) & (stream.starts <= parse_time(end))
        assert (stream.label_mask() == nab_rows).all(), stream.name
    taxi = data.stream("realKnownCause/nyc_taxi.csv")
    assert len(taxi) == 10320 and taxi.step == 1800.0 and len(taxi.labels) == 5
    assert taxi.starts[0] == parse_time("2014-07-01T00:00:00Z") and taxi.values[0, 0] == 10844


# -- MSL -------------------------------------------------------------------------------------


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def make_msl(root: Path, test_rows: int = 4) -> Path:
    root.mkdir()
    with zipfile.ZipFile(root / "MSL_npy.zip", "w") as archive:
        for chan, base in (("M-1", 0.0), ("C-2", 100.0)):
            archive.writestr(f"train/{chan}.npy", npy(base + np.arange(15.0).reshape(5, 3)))
            archive.writestr(f"test/{chan}.npy", npy(base + np.ones((4, 3), dtype=np.float32)))
    with open(root / "labeled_anomalies_msl.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"])
        writer.writerow(["M-1", "MSL", "[[1, 2]]", "[point]", test_rows])
        writer.writerow(["C-2", "MSL", "[[0, 0], [3, 3]]", "[point, contextual]", test_rows])
        writer.writerow(["P-1", "SMAP", "[[0, 1]]", "[point]", 9])
    return root


def test_msl_channels_on_a_synthetic_clock(tmp_path: Path) -> None:
    data = load_msl(make_msl(tmp_path / "msl"))
    assert data.window == MSL_WINDOW == 60.0 and data.features == ("d0", "d1", "d2")
    c2, m1 = data.streams
    assert (c2.name, m1.name) == ("C-2", "M-1")
    assert m1.starts.tolist() == [60.0 * i for i in range(9)]
    assert m1.values.dtype == np.float64 and m1.values.shape == (9, 3)
    assert m1.values[:5].tolist() == np.arange(15.0).reshape(5, 3).tolist()
    assert m1.values[5:].tolist() == [[1.0] * 3] * 4
    assert m1.train_until == 300.0 and m1.train_mask().sum() == 5
    assert m1.labels == ((360.0, 480.0),)  # test rows 1..2 inclusive
    assert np.flatnonzero(m1.label_mask()).tolist() == [6, 7]
    assert c2.labels == ((300.0, 360.0), (480.0, 540.0))
    assert (m1.group, c2.group) == ("point", "contextual+point")


def test_msl_problems_raise_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"num_values 3, but test/C-2\.npy has 4 rows"):
        load_msl(make_msl(tmp_path / "a", test_rows=3))
    with pytest.raises(DatasetError, match=r"labeled_anomalies_msl\.csv: no such file"):
        load_msl(tmp_path / "nowhere")
    root = make_msl(tmp_path / "b")
    with zipfile.ZipFile(root / "MSL_npy.zip", "w") as archive:
        archive.writestr("train/M-1.npy", npy(np.zeros((2, 3))))
    with pytest.raises(DatasetError, match=r"no member train/C-2\.npy"):
        load_msl(root)


def test_msl_real_data_shapes_and_labels() -> None:
    require(MSL / "MSL_npy.zip")
    data = load_msl(MSL)
    assert len(data.streams) == 27 and len(data.features) == 55
    assert data.features[0] == "d0" and data.features[-1] == "d54"
    assert sum(len(s.labels) for s in data.streams) == 36
    with open(MSL / "labeled_anomalies_msl.csv", newline="") as fh:
        test_rows = {row["chan_id"]: int(row["num_values"]) for row in csv.DictReader(fh)}
    for stream in data.streams:
        train = int(stream.train_mask().sum())
        assert len(stream) - train == test_rows[stream.name]
        assert not stream.label_mask()[:train].any()


# -- the records themselves ------------------------------------------------------------------


def test_records_validate_and_freeze_their_arrays() -> None:
    starts = np.array([0.0, 60.0, 180.0])
    stream = LabelledStream("s", starts, np.zeros((3, 1)), ((120.0, 60.0 + 120),))
    with pytest.raises(ValueError, match="read-only"):
        stream.values[0, 0] = 1.0
    assert starts.flags.writeable  # the caller's array is untouched
    with pytest.raises(ValueError, match="not evenly spaced"):
        LabelledSet("set", 60.0, ("f",), (stream,))
    assert LabelledSet("nab-like", 0.0, ("f",), (stream,)).streams == (stream,)
    with pytest.raises(ValueError, match="has 1 features, the set names 2"):
        LabelledSet("set", 0.0, ("f", "g"), (stream,))
    with pytest.raises(ValueError, match="bad label interval"):
        LabelledStream("s", starts, np.zeros((3, 1)), ((5.0, 5.0),))
    with pytest.raises(ValueError, match="3 rows"):
        LabelledStream("s", starts, np.zeros((2, 1)), ())


def test_safe_stem_is_safe_and_tells_names_apart() -> None:
    names = ["schedd:fifebatch1", "schedd/fifebatch1", "schedd_fifebatch1", "../..", "", "é"]
    stems = [safe_stem(name) for name in names]
    assert len(set(stems)) == len(names)
    for stem in stems:
        assert stem and all(c.isascii() and (c.isalnum() or c in "._-") for c in stem)
        assert not stem.startswith(".")
    assert stems[0].startswith("schedd_fifebatch1-")
