"""Labelled data for offline evaluation, in one shape whatever the source.

``evaluate`` scores the same windows the worker would score (DESIGN.md "Evaluation"), so every
loader ends in a :class:`LabelledSet`: per stream, the window starts, a (windows x features)
matrix and the anomaly intervals. What each source needs to get there differs:

* simulator output (``events.jsonl`` + ``labels.csv``): the events go through the worker's own
  :class:`~gridalarm.stream.windows.Windower`, so windows, silent streams and late events come
  out exactly as the worker makes them;
* a CSV of per-window values, the layout the replay producer accepts;
* the 2017 study's ``<hour> |<13 counts>`` lines, read as the replay producer reads them;
* NAB (``data/<category>/<file>.csv`` + ``combined_windows.json``): one row is one window, kept
  as the file has it (NAB scores rows, not a regular clock);
* NASA MSL telemetry (``MSL_npy.zip`` + ``labeled_anomalies_msl.csv``) on a synthetic clock.

Every problem with an input raises :class:`DatasetError` with one line naming the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.messages import Event, Heartbeat, InvalidMessage, TimeBounds, parse_event
from gridalarm.producers.replay import STUDY_START, STUDY_STREAM, CsvLayout, ReplayError
from gridalarm.stream.windows import (
    ClosedWindow,
    PartitionState,
    StreamState,
    WindowConfig,
    Windower,
)
from gridalarm.timeutil import parse_duration, parse_time

__all__ = [
    "MSL_WINDOW",
    "NAB_PROBATION_CAP",
    "NAB_PROBATION_SHARE",
    "STUDY_WIDTH",
    "DatasetError",
    "LabelledSet",
    "LabelledStream",
    "load_events",
    "load_msl",
    "load_nab",
    "load_study",
    "load_window_csv",
    "nab_probation",
    "read_labels",
    "safe_stem",
]

Interval = tuple[float, float]

STUDY_WIDTH = 13  # counts per line of the study's sample
STUDY_WINDOW = 3600.0
# NAB's probationary period (nab/util.py getProbationPeriod): the first 15 % of a file's rows,
# at most 15 % of 5000 rows; detections there are not scored.
NAB_PROBATION_SHARE = 0.15
NAB_PROBATION_CAP = 5000
# MSL rows carry no time: one row is one window of this many seconds from the epoch.
MSL_WINDOW = 60.0
MSL_ZIP = "MSL_npy.zip"
MSL_LABELS = "labeled_anomalies_msl.csv"

_COUNT = re.compile(r"^\+?\d+$")  # what the replay producer takes for a count
_STUDY_LINE = re.compile(r"^\s*(\d+)\s*\|(.*)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BOM = "\ufeff"


class DatasetError(ValueError):
    """An input that cannot be loaded; the message is one line naming the file and the problem."""


@dataclass(frozen=True, slots=True, eq=False)
class LabelledStream:
    """One stream's windows and its anomaly intervals.

    ``starts`` are window starts in epoch seconds, one per row of ``values`` (windows x features).
    In a set with a window size they ascend by exactly that size; in a NAB set (window 0) they
    are the file's timestamps as they stand, usually but not always ascending (see
    :func:`load_nab`), and :attr:`step` is the typical spacing. ``labels`` are half-open
    [start, end) intervals in epoch seconds, sorted. Rows with ``starts < train_until`` are
    training (MSL) or probation (NAB) data; None means no split.

    The arrays are read-only views (a frozen record should not change under its users); equality
    is identity, because element-wise array comparison has no single truth value.
    """

    name: str
    starts: np.ndarray
    values: np.ndarray
    labels: tuple[Interval, ...]
    train_until: float | None = None
    group: str = ""

    def __post_init__(self) -> None:
        starts = _frozen(np.asarray(self.starts, dtype=np.float64))
        values = _frozen(np.asarray(self.values, dtype=np.float64))
        if starts.ndim != 1:
            raise ValueError(f"stream {self.name!r}: starts must be 1-D, got shape {starts.shape}")
        if values.ndim != 2 or values.shape[0] != starts.shape[0]:
            raise ValueError(
                f"stream {self.name!r}: values must be (windows, features) with "
                f"{starts.shape[0]} rows, got shape {values.shape}"
            )
        if not np.isfinite(starts).all():
            raise ValueError(f"stream {self.name!r}: starts must be finite")
        labels = []
        for start, end in self.labels:
            start, end = float(start), float(end)
            if not (math.isfinite(start) and math.isfinite(end) and end > start):
                raise ValueError(f"stream {self.name!r}: bad label interval [{start}, {end})")
            labels.append((start, end))
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "labels", tuple(sorted(labels)))
        if self.train_until is not None:
            object.__setattr__(self, "train_until", float(self.train_until))

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def step(self) -> float:
        """The typical distance between window starts (their median difference); NaN below two
        rows. Equals the set's window for evenly spaced sets; NAB files each have their own."""
        if self.starts.shape[0] < 2:
            return math.nan
        return float(np.median(np.diff(self.starts)))

    def label_mask(self) -> np.ndarray:
        """True for each row whose start lies in a label interval.

        Compared row by row rather than by binary search: NAB rows need not ascend.
        """
        mask = np.zeros(self.starts.shape[0], dtype=bool)
        for start, end in self.labels:
            mask |= (self.starts >= start) & (self.starts < end)
        return mask

    def train_mask(self) -> np.ndarray:
        """True for each training / probation row (none when ``train_until`` is None)."""
        if self.train_until is None:
            return np.zeros(self.starts.shape[0], dtype=bool)
        return self.starts < self.train_until


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """Streams with the same features. ``window`` is the window size in seconds, or 0 when the
    streams keep their own row spacing (NAB: use :attr:`LabelledStream.step`)."""

    name: str
    window: float
    features: tuple[str, ...]
    streams: tuple[LabelledStream, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "streams", tuple(self.streams))
        if not self.window >= 0:
            raise ValueError(f"set {self.name!r}: window must be >= 0, got {self.window}")
        names = [stream.name for stream in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"set {self.name!r}: stream names repeat")
        for stream in self.streams:
            if stream.values.shape[1] != len(self.features):
                raise ValueError(
                    f"set {self.name!r}: stream {stream.name!r} has {stream.values.shape[1]} "
                    f"features, the set names {len(self.features)}"
                )
            if self.window > 0 and len(stream) > 1:
                gaps = np.diff(stream.starts)
                if np.abs(gaps - self.window).max() > 1e-6:
                    raise ValueError(
                        f"set {self.name!r}: stream {stream.name!r} is not evenly spaced by "
                        f"{self.window:g} s"
                    )

    def stream(self, name: str) -> LabelledStream:
        """The stream called ``name``; KeyError if there is none."""
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)


def _frozen(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def safe_stem(name: str) -> str:
    """A file-name stem for a stream name: letters, digits, ``._-`` and a short hash of the
    name, so that names differing only in replaced characters (``a:b``, ``a/b``, ``a_b``)
    still get different files. ``schedd:fifebatch1`` becomes ``schedd_fifebatch1-<8 hex>``.
    """
    slug = _UNSAFE.sub("_", name).strip("._")[:80] or "stream"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug}-{digest}"


# -- labels ----------------------------------------------------------------------------------


def read_labels(path: Path | str) -> dict[str, tuple[Interval, ...]]:
    """Anomaly intervals per stream from a ``stream,start,end[,kind]`` CSV (the simulator's
    ``labels.csv``).

    ``start`` and ``end`` are RFC 3339 or epoch seconds; the interval is [start, end). Other
    columns (``kind``) are ignored. An empty ``stream`` cell labels every stream of the data
    (key ``""``): a CSV of one unnamed stream can be labelled without knowing its default name.
    """
    path = Path(path)
    text = _read_text(path)
    rows = csv.reader(io.StringIO(text.removeprefix(_BOM)))
    header = next(rows, None)
    if header is None:
        raise DatasetError(f"{path}: the file is empty; expected a header stream,start,end")
    lower = [cell.strip().lower() for cell in header]
    missing = [name for name in ("stream", "start", "end") if name not in lower]
    if missing:
        raise DatasetError(
            f"{path}: the header lacks {', '.join(missing)}; expected stream,start,end[,kind]"
        )
    i_stream, i_start, i_end = (lower.index(name) for name in ("stream", "start", "end"))
    labels: dict[str, list[Interval]] = defaultdict(list)
    for line_no, cells in enumerate(rows, 2):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{path}:{line_no}"
        if len(cells) != len(header):
            raise DatasetError(f"{where}: {len(cells)} cells, the header has {len(header)}")
        start = _time_cell(cells[i_start], where, "start")
        end = _time_cell(cells[i_end], where, "end")
        if not end > start:
            raise DatasetError(f"{where}: end {cells[i_end]!r} is not after start")
        labels[cells[i_stream].strip()].append((start, end))
    return {name: tuple(sorted(intervals)) for name, intervals in labels.items()}


def _time_cell(text: str, where: str, what: str) -> float:
    try:
        value = parse_time(text)
    except (ValueError, OverflowError):
        raise DatasetError(
            f"{where}: {what} {text.strip()!r} is neither RFC 3339 nor epoch seconds"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}: {what} {text.strip()!r} is not a finite time")
    return value


def _labels_for(
    names: Iterable[str], labels_path: Path | str | None, data_path: Path
) -> dict[str, tuple[Interval, ...]]:
    """Each stream's intervals; a label naming a stream the data lacks is an error (a typo
    would otherwise silently leave an incident unlabelled)."""
    names = list(names)
    if labels_path is None:
        return {name: () for name in names}
    labels = read_labels(labels_path)
    unknown = sorted(set(labels) - set(names) - {""})
    if unknown:
        raise DatasetError(
            f"{labels_path}: stream {unknown[0]!r} has no windows in {data_path}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    common = labels.get("", ())
    return {name: tuple(sorted(labels.get(name, ()) + common)) for name in names}


# -- simulator output / event messages -------------------------------------------------------


def load_events(
    events_path: Path | str,
    labels_path: Path | str | None,
    window: float | str,
    features: Sequence[str],
    lateness: float | str = 0.0,
) -> LabelledSet:
    """Windows of an ``events.jsonl`` (one event message per line), as the worker makes them.

    The lines go through :func:`~gridalarm.messages.parse_event` and the worker's
    :class:`~gridalarm.stream.windows.Windower` in file order, as one partition, so the
    windows are the worker's: aligned to the epoch, unknown types counted under ``other``,
    gauges averaged, a stream silent for a while given all-zero windows, a stream's windows
    beginning with its first event. An event more than ``lateness`` behind the latest one is
    late and, as in the worker, not counted. At the end the watermark moves to the end of the
    last event's window (what the final heartbeat of a replay does), so every window closes.

    Event times are not checked against the clock (the worker's ``max_future``): history can be
    recorded in any year after 1990. A line the worker would dead-letter raises
    :class:`DatasetError`: a labelled evaluation file should be clean. ``labels_path`` is a
    ``stream,start,end[,kind]`` CSV (see :func:`read_labels`), or None for no labels.
    """
    path = Path(events_path)
    size = _duration(window, "window", path)
    late = _duration(lateness, "lateness", path)
    features = tuple(features)
    try:
        windower = Windower(WindowConfig(size=size, lateness=late, features=features))
    except ValueError as err:
        raise DatasetError(f"{path}: {err}") from None
    partition = PartitionState()
    states: dict[str, StreamState] = {}
    step = windower.apply(partition, states, _read_events(path))
    if not partition.streams:
        raise DatasetError(f"{path}: no events; nothing to evaluate")
    end = windower.config.start_of(partition.max_time) + size
    closed = step.closed + windower.advance(partition, states, end).closed
    by_stream = _stack_windows(closed, len(features))
    labels = _labels_for(by_stream, labels_path, path)
    streams = tuple(
        LabelledStream(name, starts, values, labels[name])
        for name, (starts, values) in sorted(by_stream.items())
    )
    return LabelledSet(_set_name(path), size, features, streams)


def _read_events(path: Path) -> Iterator[tuple[int, Event | Heartbeat]]:
    """(line number, parsed message) for each non-blank line; the line number is the offset."""
    bounds = TimeBounds(max_future=math.inf)
    with _open_binary(path) as lines:
        try:
            for line_no, raw in enumerate(lines, 1):
                value = raw.rstrip(b"\r\n")
                if line_no == 1:
                    value = value.removeprefix(_BOM.encode())
                if not value.strip():
                    continue
                try:
                    message = parse_event(value, bounds, max_bytes=len(value) + 1)
                except InvalidMessage as err:
                    raise DatasetError(f"{path}:{line_no}: {err}") from None
                yield line_no, message
        except (OSError, EOFError) as err:  # a truncated .gz shows up mid-read
            raise DatasetError(f"{path}: cannot read: {err}") from None


def _stack_windows(
    closed: Iterable[ClosedWindow], width: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    by_stream: dict[str, list[ClosedWindow]] = defaultdict(list)
    for window in closed:
        by_stream[window.stream].append(window)
    stacked = {}
    for name, windows in by_stream.items():
        windows.sort(key=lambda w: w.start)
        starts = np.fromiter((w.start for w in windows), np.float64, len(windows))
        values = np.array([w.values for w in windows], dtype=np.float64).reshape(-1, width)
        stacked[name] = (starts, values)
    return stacked


# -- CSV of per-window values ----------------------------------------------------------------


def load_window_csv(
    path: Path | str, labels_path: Path | str | None = None, window: float | str | None = None
) -> LabelledSet:
    """Per-window values from a CSV in the replay producer's layout.

    The header names a time column (the first of ``timestamp``, ``start``, ``time``,
    ``window_start`` present, case-insensitive; RFC 3339 or epoch seconds), optionally a
    ``stream`` column (else the stream is ``csv:<file stem>``, the replay's default), and
    features: every other column but ``end`` / ``window_end``. As in the replay, a file whose
    every value is a non-negative integer holds counts, any other holds gauges.

    Rows are put on the worker's grid: window ``window`` (None: the most common step between
    the file's distinct times), starts aligned to the epoch. Rows falling in one window add up
    (counts) or average (gauges, over non-empty cells) as the worker would; a window with no row
    is all zeros. Each stream runs from its first row to the file's last window: the final
    heartbeat of a replay closes every stream at the same point. Unlike a replay, rows may come
    in any order (a per-window table has no arrival order, so nothing is late).
    """
    path = Path(path)
    text = _read_text(path).removeprefix(_BOM)
    rows = [(n, cells) for n, cells in enumerate(csv.reader(io.StringIO(text)), 1) if cells]
    rows = [(n, cells) for n, cells in rows if any(cell.strip() for cell in cells)]
    if not rows:
        raise DatasetError(f"{path}: the file is empty; expected a CSV header row")
    if len(rows) == 1:
        raise DatasetError(f"{path}: no data rows after the header")
    default_stream = f"csv:{Path(_base_name(path)).stem}"
    try:
        layout = CsvLayout.from_header(rows[0][1], path)
        parsed = [layout.row(cells, line_no, default_stream) for line_no, cells in rows[1:]]
    except ReplayError as err:  # the same layout errors, as the evaluation's own
        raise DatasetError(str(err)) from None
    columns = layout.features
    times = np.array([row.ts for row in parsed])
    names = [row.stream for row in parsed]
    values = np.zeros((len(parsed), len(columns)))
    present = np.zeros((len(parsed), len(columns)), dtype=bool)
    counts = all(row.all_counts for row in parsed)
    for i, row in enumerate(parsed):
        for j, (_, cell) in enumerate(row.values):
            if cell:
                values[i, j] = float(cell)  # CsvLayout.row checked it is a finite number
                present[i, j] = True
    size = _csv_window(times, window, path)
    slots = np.floor(times / size)
    last = slots.max()
    streams = []
    labels = _labels_for(sorted(set(names)), labels_path, path)
    name_array = np.asarray(names, dtype=object)
    for name in sorted(set(names)):
        rows_of = np.flatnonzero(name_array == name)
        first = slots[rows_of].min()
        index = (slots[rows_of] - first).astype(np.int64)
        length = int(last - first) + 1
        total = np.zeros((length, len(columns)))
        np.add.at(total, index, values[rows_of])
        if not counts:
            seen = np.zeros((length, len(columns)))
            np.add.at(seen, index, present[rows_of])
            total = np.divide(total, seen, out=np.zeros_like(total), where=seen > 0)
        starts = (first + np.arange(length)) * size
        streams.append(LabelledStream(name, starts, total, labels[name]))
    features = tuple(feature for _, feature in columns)
    return LabelledSet(Path(_base_name(path)).stem, size, features, tuple(streams))


def _csv_window(times: np.ndarray, window: float | str | None, path: Path) -> float:
    if window is not None:
        return _duration(window, "window", path)
    distinct = np.unique(times)
    if distinct.size < 2:
        raise DatasetError(f"{path}: one distinct time cannot tell the window size; pass window")
    # The most common step (the smallest of equally common ones): a missing window makes one
    # step of two windows, which a median over few rows would take for the window size.
    steps, counts = np.unique(np.diff(distinct), return_counts=True)
    return float(steps[np.argmax(counts)])


# -- the 2017 study's hourly counts ----------------------------------------------------------


def load_study(path: Path | str) -> LabelledSet:
    """The study's ``<hour> |<13 counts>`` lines as hourly windows, without labels.

    Read as the replay producer reads them, so that a replayed study file and this loader agree:
    hour ``h`` starts at 2017-01-01T00:00:00Z + (h - 1) hours, column ``i`` is feature ``i`` of
    the default feature list (the study never published its column order: an assumption), and
    the stream is the replay's ``seed:fifebatch``. A missing hour is a zero window and a repeated
    hour adds up, as in the worker.
    """
    path = Path(path)
    features = (
        DEFAULT_FEATURES
        if len(DEFAULT_FEATURES) == STUDY_WIDTH
        else tuple(f"f{i}" for i in range(STUDY_WIDTH))
    )
    hours: list[int] = []
    rows: list[list[int]] = []
    for line_no, line in enumerate(_read_text(path).removeprefix(_BOM).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        match = _STUDY_LINE.match(line)
        if not match:
            raise DatasetError(f"{where}: expected '<hour> |<counts>', got {line.strip()[:60]!r}")
        cells = match.group(2).split()
        if len(cells) != STUDY_WIDTH:
            raise DatasetError(f"{where}: {len(cells)} counts, expected {STUDY_WIDTH}")
        bad = next((cell for cell in cells if not _COUNT.match(cell)), None)
        if bad is not None:
            raise DatasetError(f"{where}: count {bad!r} is not a non-negative integer")
        hour = int(match.group(1))
        if hour < 1:
            raise DatasetError(f"{where}: hours are numbered from 1, got {hour}")
        hours.append(hour)
        rows.append([int(cell) for cell in cells])
    if not rows:
        raise DatasetError(f"{path}: no '<hour> |<counts>' lines")
    first = min(hours)
    values = np.zeros((max(hours) - first + 1, STUDY_WIDTH))
    np.add.at(values, np.asarray(hours) - first, np.asarray(rows, dtype=np.float64))
    anchor = parse_time(STUDY_START)
    starts = anchor + (first - 1 + np.arange(values.shape[0])) * STUDY_WINDOW
    stream = LabelledStream(STUDY_STREAM, starts, values, ())
    return LabelledSet(Path(_base_name(path)).stem, STUDY_WINDOW, features, (stream,))


# -- NAB -------------------------------------------------------------------------------------


def nab_probation(rows: int) -> int:
    """Rows in NAB's probationary period of a file of ``rows`` rows (getProbationPeriod)."""
    return int(min(math.floor(NAB_PROBATION_SHARE * rows), NAB_PROBATION_SHARE * NAB_PROBATION_CAP))


def load_nab(root: Path | str) -> LabelledSet:
    """A NAB corpus: ``root/data/<category>/<file>.csv`` and ``combined_windows.json`` (in
    ``root/labels`` or ``root``).

    One stream per file, named ``<category>/<file>.csv`` as NAB names it, group ``category``,
    one feature ``value``. Rows stay as the file has them, one row one window, with no
    resampling: NAB scores rows, and some real files are irregular (gaps, a repeated hour in
    machine_temperature_system_failure, eleven rows sharing one timestamp in
    ec2_request_latency_system_failure). The set's window is therefore 0; a stream's step is
    :attr:`LabelledStream.step`. Timestamps without a zone are UTC.

    NAB's windows include both ends; each becomes [start, end + step), cut at the first row
    after ``end``, so the half-open interval covers exactly NAB's rows. ``train_until`` is the
    timestamp of the first row after NAB's probationary period (:func:`nab_probation`).
    """
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        raise DatasetError(f"{root}: no data/ folder; expected NAB's data/<category>/<file>.csv")
    windows_path = next(
        (
            p
            for p in (root / "labels" / "combined_windows.json", root / "combined_windows.json")
            if p.is_file()
        ),
        None,
    )
    if windows_path is None:
        raise DatasetError(f"{root}: no labels/combined_windows.json or combined_windows.json")
    try:
        windows = json.loads(_read_text(windows_path))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{windows_path}: not JSON ({err})") from None
    if not isinstance(windows, dict):
        raise DatasetError(f"{windows_path}: expected an object of file name -> windows")
    files = sorted(p for p in data.glob("*/*.csv") if p.is_file())
    if not files:
        raise DatasetError(f"{data}: no <category>/<file>.csv files")
    streams = []
    for file in files:
        name = f"{file.parent.name}/{file.name}"
        if name not in windows:
            raise DatasetError(f"{windows_path}: no entry for {name}")
        starts, values = _read_nab_file(file)
        labels = _nab_windows(windows[name], starts, windows_path, name)
        probation = nab_probation(starts.shape[0])
        streams.append(
            LabelledStream(
                name,
                starts,
                values.reshape(-1, 1),
                labels,
                train_until=float(starts[probation]),
                group=file.parent.name,
            )
        )
    return LabelledSet(root.name, 0.0, ("value",), tuple(streams))


def _read_nab_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.reader(io.StringIO(_read_text(path).removeprefix(_BOM))))
    while rows and not rows[-1]:
        rows.pop()
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["timestamp", "value"]:
        raise DatasetError(f"{path}: expected the header timestamp,value")
    body = rows[1:]
    if not body:
        raise DatasetError(f"{path}: no rows after the header")
    bad = next((i for i, cells in enumerate(body) if len(cells) != 2), None)
    if bad is not None:
        raise DatasetError(f"{path}:{bad + 2}: {len(body[bad])} cells, expected timestamp,value")
    stamps = [cells[0].strip() for cells in body]
    try:
        # numpy parses the whole column at C speed; any odd row falls back to parse_time below.
        starts = np.array(stamps, dtype="datetime64[us]").astype(np.int64) / 1e6
    except ValueError:
        starts = np.array(
            [_time_cell(stamp, f"{path}:{i + 2}", "timestamp") for i, stamp in enumerate(stamps)]
        )
    try:
        values = np.array([cells[1] for cells in body], dtype=np.float64)
    except ValueError:
        values = np.array([_number_cell(c[1], f"{path}:{i + 2}") for i, c in enumerate(body)])
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DatasetError(f"{path}:{i + 2}: value {body[i][1]!r} is not a finite number")
    return starts, values


def _number_cell(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{where}: value {text!r} is not a number") from None


def _nab_windows(entry: object, starts: np.ndarray, path: Path, name: str) -> tuple[Interval, ...]:
    if not isinstance(entry, list):
        raise DatasetError(f"{path}: {name}: expected a list of [start, end] windows")
    step = float(np.median(np.diff(starts))) if starts.shape[0] > 1 else 0.0
    intervals = []
    for window in entry:
        if not (isinstance(window, list) and len(window) == 2):
            raise DatasetError(f"{path}: {name}: window {window!r} is not [start, end]")
        start = _time_cell(str(window[0]), f"{path}: {name}", "window start")
        end = _time_cell(str(window[1]), f"{path}: {name}", "window end")
        if end < start:
            raise DatasetError(f"{path}: {name}: window {window!r} ends before it starts")
        after = starts[starts > end]
        stop = end + step if step > 0 else math.inf
        if after.size:
            stop = min(stop, float(after.min()))
        if not math.isfinite(stop):  # one row, or the window runs past the last row
            stop = end + 1.0
        intervals.append((start, stop))
    return tuple(intervals)


# -- NASA MSL --------------------------------------------------------------------------------


def load_msl(root: Path | str) -> LabelledSet:
    """NASA MSL telemetry as Telemanom published it (``root/MSL_npy.zip`` with
    ``train/<chan>.npy`` and ``test/<chan>.npy``, ``root/labeled_anomalies_msl.csv``).

    One stream per channel: its training rows then its test rows, on a synthetic clock (the
    rows carry no time): row ``i`` is the window starting at ``i * 60`` epoch seconds, so
    1970-01-01. ``train_until`` is the start of the first test row. ``anomaly_sequences`` are
    inclusive test-row ranges and become half-open intervals over those rows. ``group`` is the
    channel's anomaly classes (``point``, ``contextual`` or both as ``contextual+point``).
    Features are ``d0`` .. ``d54``. The zip is read in memory, never extracted.
    """
    root = Path(root)
    zip_path, labels_path = root / MSL_ZIP, root / MSL_LABELS
    channels = _msl_labels(labels_path)
    try:
        archive = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise DatasetError(f"{zip_path}: no such file") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{zip_path}: cannot read as a zip ({err})") from None
    streams = []
    width: int | None = None
    with archive:
        members = set(archive.namelist())
        for chan, (sequences, group, test_rows) in sorted(channels.items()):
            parts = [
                _msl_array(archive, members, f"{part}/{chan}.npy", zip_path)
                for part in ("train", "test")
            ]
            train, test = parts
            if width is None:
                width = train.shape[1]
            if train.shape[1] != width or test.shape[1] != width:
                raise DatasetError(
                    f"{zip_path}: channel {chan} has {train.shape[1]}/{test.shape[1]} dims "
                    f"(train/test), other channels {width}"
                )
            if test.shape[0] != test_rows:
                raise DatasetError(
                    f"{labels_path}: {chan}: num_values {test_rows}, but test/{chan}.npy has "
                    f"{test.shape[0]} rows"
                )
            offset = train.shape[0]
            labels = []
            for first, last in sequences:
                if not 0 <= first <= last < test_rows:
                    raise DatasetError(
                        f"{labels_path}: {chan}: range [{first}, {last}] is outside the "
                        f"{test_rows} test rows"
                    )
                labels.append(((offset + first) * MSL_WINDOW, (offset + last + 1) * MSL_WINDOW))
            values = np.concatenate([train, test]).astype(np.float64, copy=False)
            starts = np.arange(values.shape[0], dtype=np.float64) * MSL_WINDOW
            streams.append(
                LabelledStream(chan, starts, values, tuple(labels), offset * MSL_WINDOW, group)
            )
    features = tuple(f"d{i}" for i in range(width or 0))
    return LabelledSet(root.name, MSL_WINDOW, features, tuple(streams))


def _msl_labels(path: Path) -> dict[str, tuple[list[tuple[int, int]], str, int]]:
    """chan_id -> (inclusive test ranges, anomaly classes, test rows) for MSL rows only."""
    text = _read_text(path).removeprefix(_BOM)
    reader = csv.DictReader(io.StringIO(text))
    needed = {"chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise DatasetError(f"{path}: expected the header {','.join(sorted(needed))}")
    channels = {}
    for line_no, row in enumerate(reader, 2):
        if row["spacecraft"].strip() != "MSL":
            continue  # Telemanom's file for both missions lists SMAP channels too
        where = f"{path}:{line_no}"
        try:
            sequences = [(int(a), int(b)) for a, b in json.loads(row["anomaly_sequences"])]
        except (ValueError, TypeError):
            raise DatasetError(
                f"{where}: anomaly_sequences {row['anomaly_sequences']!r} is not "
                "[[first, last], ...]"
            ) from None
        try:
            rows = int(row["num_values"])
        except ValueError:
            raise DatasetError(
                f"{where}: num_values {row['num_values']!r} is not an integer"
            ) from None
        classes = sorted({c.strip() for c in row["class"].strip("[] ").split(",") if c.strip()})
        chan = row["chan_id"].strip()
        if chan in channels:
            raise DatasetError(f"{where}: channel {chan} is listed twice")
        channels[chan] = (sequences, "+".join(classes), rows)
    if not channels:
        raise DatasetError(f"{path}: no MSL channels")
    return channels


def _msl_array(archive: zipfile.ZipFile, members: set[str], name: str, path: Path) -> np.ndarray:
    if name not in members:
        raise DatasetError(f"{path}: no member {name}")
    try:
        array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{path}: {name} is not a readable .npy ({err})") from None
    if array.ndim != 2:
        raise DatasetError(f"{path}: {name} has shape {array.shape}, expected (rows, dims)")
    return array


# -- files -----------------------------------------------------------------------------------


def _base_name(path: Path) -> str:
    """The file name without a ``.gz`` suffix."""
    name = path.name
    return name[:-3] if name.lower().endswith(".gz") else name


def _set_name(path: Path) -> str:
    """A set's name: the file stem, or the folder's name for the simulator's ``events.jsonl``."""
    stem = Path(_base_name(path)).stem
    return path.resolve().parent.name if stem == "events" else stem


def _open_binary(path: Path) -> IO[bytes]:
    try:
        if path.is_dir():
            raise DatasetError(f"{path}: is a directory, not a file")
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror or err})") from None


def _read_text(path: Path) -> str:
    with _open_binary(path) as stream:
        try:
            data = stream.read()
        except (OSError, EOFError) as err:
            raise DatasetError(f"{path}: cannot read ({err})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None


def _duration(value: float | str, what: str, path: Path) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise DatasetError(f"{path}: {what}: {err}") from None
    least = "> 0" if what == "window" else ">= 0"
    if not math.isfinite(seconds) or seconds < 0 or (what == "window" and seconds == 0):
        raise DatasetError(f"{path}: {what} must be a duration {least}, got {value!r}")
    return seconds
