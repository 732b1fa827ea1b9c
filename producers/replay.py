"""File replay: JSONL events, CSV of per-window counts, and the 2017 study's hourly format.

A *reader* turns a file into :class:`Item` s in file order; :func:`replay` sends them through an
:class:`~gridalarm.producers.sink.EventSink`, paced (``speed``) or as fast as the broker takes
them, and ends with one heartbeat to every partition past the last window, so the worker closes
it. Formats (``auto`` picks one by extension, else by the first non-blank line):

* ``jsonl`` (``.jsonl``, ``.ndjson``, ``.json``; a line starting with ``{``): one event message
  per line, passed through byte for byte (the worker validates and dead-letters bad ones).
* ``csv`` (``.csv``; a header line with commas): per-window counts or gauge samples.
* ``study`` (lines ``<hour> |<counts>``): the Fermilab study's hourly counts.

Any of them may be gzip-compressed (``name.jsonl.gz``). Problems with the file raise
:class:`ReplayError` with one line for an operator.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from tqdm import tqdm

from gridalarm.config import Settings
from gridalarm.messages import MIN_EVENT_TIME, VERSION, event_message
from gridalarm.producers.sink import EventSink, MessageTooLarge
from gridalarm.timeutil import format_time, parse_time

FORMATS: tuple[str, ...] = ("auto", "jsonl", "csv", "study")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
# Time column names a CSV may use, in order of preference; matched case-insensitively.
CSV_TIME_COLUMNS: tuple[str, ...] = ("timestamp", "start", "time", "window_start")
# Columns that describe the window rather than count anything.
CSV_IGNORED_COLUMNS = frozenset({"end", "window_end"})
STUDY_START = "2017-01-01T00:00:00Z"
STUDY_STREAM = "seed:fifebatch"

_STUDY_LINE = re.compile(rb"^\s*(\d+)\s*\|(.*)$")
_COUNT = re.compile(r"^\+?\d+$")
_SNIFF_BYTES = 65_536
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
_PROGRESS_EVERY = 4096  # items between progress-bar updates (tqdm costs ~1 µs a call)


class ReplayError(ValueError):
    """The file cannot be replayed; the message is one line naming the file and the problem."""


class Item(NamedTuple):
    """One message to send: a wire dict, or raw bytes passed through as they are.

    ``ts`` is the event time when the reader could tell (it paces the replay and feeds the
    heartbeats); ``key`` is the stream id as bytes for raw items (dicts are keyed by the sink).
    """

    ts: float | None
    payload: dict[str, Any] | bytes
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to read and pace a replay.

    ``speed`` None replays as fast as the broker takes it; N > 0 plays event time N times as
    fast as the wall clock. ``start`` (epoch seconds) skips JSONL and CSV events before it; for
    the study format, whose lines carry only an hour number, it is the time of hour 1.
    ``stream`` names the stream of a CSV without a ``stream`` column or of a study file.
    """

    settings: Settings
    format: str = "auto"
    speed: float | None = None
    start: float | None = None
    stream: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ReplayError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        if self.speed is not None and not (self.speed > 0 and math.isfinite(self.speed)):
            raise ReplayError(f"speed must be 'max' or a number > 0, not {self.speed!r}")


@dataclass(slots=True)
class ReplayStats:
    """What a replay sent."""

    path: str
    format: str
    messages: int = 0  # events and passed-through lines
    sent: int | None = None  # messages on the topic after coalescing (None: not counted)
    heartbeats: int = 0  # heartbeat messages, one per partition each time
    skipped: int = 0  # blank lines, events before ``start``
    too_large: int = 0  # lines over the producer's max request size, not sent
    last_ts: float | None = None
    final_heartbeat_ts: float | None = None
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per wall-clock second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def coalesced(self) -> str:
        """``" as N messages"`` when coalescing sent fewer messages than it took, else ``""``."""
        if self.sent is None or self.sent == self.messages:
            return ""
        return f" as {self.sent} messages"

    def summary(self) -> str:
        """One line for the operator."""
        extra = f", {self.skipped} skipped" if self.skipped else ""
        if self.too_large:
            extra += f", {self.too_large} over the size limit not sent"
        return (
            f"replayed {self.messages} messages from {self.path} ({self.format}){self.coalesced()} "
            f"in {self.seconds:.2f}s, {self.rate:,.0f} msg/s; {self.heartbeats} heartbeats{extra}"
        )


# -- opening files and choosing the format ---------------------------------------------------


class _Lines:
    """Binary lines of a (possibly gzipped) file, counting bytes for the progress bar."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes_read = 0
        self.line_no = 0
        self._file: IO[bytes] = _open_binary(path)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for line in self._file:
                self.bytes_read += len(line)
                self.line_no += 1
                if self.line_no == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]  # encoding marker of the file, not data
                yield line
        except (OSError, EOFError) as err:  # a truncated or corrupt .gz shows up mid-read
            raise ReplayError(f"{self.path}: cannot read line {self.line_no + 1}: {err}") from None

    def close(self) -> None:
        self._file.close()


def _open_binary(path: Path) -> IO[bytes]:
    try:
        if path.is_dir():
            raise ReplayError(f"{path}: is a directory, not a file")
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file") from None
    except OSError as err:
        raise ReplayError(f"{path}: cannot read ({err.strerror or err})") from None


def _base_name(path: Path) -> str:
    """The file name without a ``.gz`` suffix (a compressed file is read by its inner name)."""
    name = path.name
    return name[:-3] if name.lower().endswith(".gz") else name


def detect_format(path: Path, requested: str = "auto") -> str:
    """The format of ``path``: ``requested`` unless it is ``auto``, else by extension, else by
    the first non-blank line (``{`` → jsonl, ``<int> |`` → study, commas and a time column →
    csv). Raises :class:`ReplayError` for a file of none of these."""
    if requested != "auto":
        if requested not in FORMATS:
            raise ReplayError(f"unknown format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    name = _base_name(path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    first = _first_line(path)
    if first is None:
        raise ReplayError(f"{path}: the file is empty; nothing to replay")
    if first.startswith(b"{"):
        return "jsonl"
    if _STUDY_LINE.match(first):
        return "study"
    if b"," in first:
        header = {cell.strip().lower() for cell in first.decode("utf-8", "replace").split(",")}
        if header & set(CSV_TIME_COLUMNS):
            return "csv"
    raise ReplayError(
        f"{path}: not JSONL, CSV with a header naming a time column, or the study's "
        "'<hour> |<counts>' lines; name the format with --format"
    )


def _first_line(path: Path) -> bytes | None:
    """The first non-blank line (its first 64 KB), or None for an empty file."""
    stream = _open_binary(path)
    try:
        head = stream.read(_SNIFF_BYTES)
    except (OSError, EOFError) as err:
        raise ReplayError(f"{path}: cannot read ({err})") from None
    finally:
        stream.close()
    for line in head.splitlines():
        if line.strip():
            return line.strip().removeprefix(_BOM)
    return None


class Reader:
    """A replay file opened for reading: its format, its items in file order, its progress."""

    def __init__(self, path: Path | str, options: ReplayOptions) -> None:
        self.path = Path(path)
        self.options = options
        _open_binary(self.path).close()  # a missing or unreadable file fails first
        self.format = detect_format(self.path, options.format)
        if self.format == "jsonl" and options.stream:
            raise ReplayError("--stream applies to CSV and study files; JSONL lines name theirs")
        self.skipped = 0
        self._lines: _Lines | None = None
        self._gauges: bool | None = None  # CSV and study files: None until checked
        # Progress is bytes read of the file size; a gzip file's size says nothing about that.
        gzipped = self.path.name.lower().endswith(".gz")
        self.size: int | None = None if gzipped else self.path.stat().st_size

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (uncompressed)."""
        return self._lines.bytes_read if self._lines else 0

    @property
    def source(self) -> str:
        """The ``source`` of the messages this reader builds and of the replay's heartbeats."""
        return f"replay:{self.path.name}"[:256]

    def check(self) -> None:
        """Read a CSV or study file in full once, raising :class:`ReplayError` on the first
        bad line, so that a replay fails before it sends anything. (JSONL lines are passed
        through unchecked: the worker judges them.) Iterating checks first if not done yet."""
        if self.format == "csv" and self._gauges is None:
            # Also decides counts or gauges, which depends on every value in the file.
            self._gauges = self._scan(self._csv_rows)
        elif self.format == "study" and self._gauges is None:
            self._gauges = self._scan(self._study_rows)

    def __iter__(self) -> Iterator[Item]:
        self.check()
        if self.format == "jsonl":
            return self._run(self._jsonl)
        if self.format == "csv":
            gauges = bool(self._gauges)
            return self._run(lambda lines: self._csv(lines, gauges))
        return self._run(self._study)

    # Each pass opens the file anew; the generator closes it when done or abandoned.
    def _run(self, body: Any) -> Iterator[Item]:
        self._lines = lines = _Lines(self.path)
        try:
            yield from body(lines)
        finally:
            lines.close()

    def _scan(self, rows: Any) -> bool:
        """Parse the whole file once (raising on the first bad line); True if any value is
        not a non-negative integer, i.e. the file holds gauge samples."""
        lines = _Lines(self.path)
        gauges = False
        try:
            for row in rows(lines):  # every row, not just up to the first gauge: all are checked
                gauges = gauges or not row.all_counts
        finally:
            lines.close()
        return gauges

    # -- JSONL -------------------------------------------------------------------------------

    def _jsonl(self, lines: _Lines) -> Iterator[Item]:
        """Every non-blank line, verbatim (without its line ending), in file order.

        The key is the line's ``stream`` when the line is a JSON object with a string
        ``stream``, else there is none. The event time is its ``ts`` when readable and
        plausible (see :func:`plausible_time`); lines without one are sent but neither pace the
        replay nor move the heartbeats. With ``start``, lines whose time is before it are
        skipped. Blank lines are skipped: they are no message.
        """
        start = self.options.start
        latest = time.time() + self.options.settings.max_future
        for line in lines:
            # Only the line ending goes; every other byte is the message.
            value = line[:-1] if line[-1:] == b"\n" else line
            if value[-1:] == b"\r":
                value = value[:-1]
            if not value or value.isspace():
                self.skipped += 1
                continue
            key, ts = _key_and_time(value, latest)
            if start is not None and ts is not None and ts < start:
                self.skipped += 1
                continue
            yield Item(ts, value, key)

    # -- CSV ---------------------------------------------------------------------------------

    def _csv_rows(self, lines: _Lines) -> Iterator[CsvRow]:
        """Parsed data rows of a CSV with a header (see :meth:`_csv`)."""
        reader = csv.reader(_decoded(lines, self.path))
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise ReplayError(f"{self.path}: the file is empty; expected a CSV header row")
        layout = CsvLayout.from_header(header, self.path)
        default_stream = self.options.stream or f"csv:{Path(_base_name(self.path)).stem}"
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            yield layout.row(cells, lines.line_no, default_stream)

    def _csv(self, lines: _Lines, gauges: bool) -> Iterator[Item]:
        """Per-window counts (or gauge samples) from a CSV with a header row.

        The header names a time column (``timestamp``, ``start``, ``time`` or
        ``window_start``: the window start, RFC 3339 or epoch seconds), optionally a
        ``stream`` column (else ``--stream``, default ``csv:<file stem>``); ``end`` and
        ``window_end`` are ignored; every other column is a feature. The rule: if every
        feature value in the file is a non-negative integer (written as one: ``3``, not
        ``3.0``), each row becomes counter events at the window start, one per non-zero
        column (``type`` = column name, ``n`` = value; zero and empty cells emit nothing).
        Otherwise the file holds gauges and each row becomes one gauge sample whose
        ``metrics`` are the row's non-empty cells.
        """
        start = self.options.start
        source = self.source
        for row in self._csv_rows(lines):
            if start is not None and row.ts < start:
                self.skipped += 1
                continue
            if gauges:
                metrics = {name: float(text) for name, text in row.values if text}
                if metrics:
                    message = {
                        "v": VERSION,
                        "ts": format_time(row.ts),
                        "stream": row.stream,
                        "metrics": metrics,
                        "source": source,
                    }
                    yield Item(row.ts, message)
                continue
            for name, text in row.values:
                if text and (n := int(text)) > 0:
                    yield Item(row.ts, event_message(row.ts, row.stream, name, n, source))

    # -- the study's format ------------------------------------------------------------------

    def _study_rows(self, lines: _Lines) -> Iterator[CsvRow]:
        """Parsed lines ``<hour> |<counts>`` (see :meth:`_study`)."""
        features = self.options.settings.features
        window = self.options.settings.window
        anchor = self.options.start if self.options.start is not None else parse_time(STUDY_START)
        stream = self.options.stream or STUDY_STREAM
        for raw in lines:
            if not raw.strip():
                continue
            match = _STUDY_LINE.match(raw.rstrip(b"\r\n"))
            where = f"{self.path}:{lines.line_no}"
            if not match:
                raise ReplayError(f"{where}: expected '<hour> |<counts>', got {_shown(raw)}")
            counts = match.group(2).split()
            if len(counts) != len(features):
                raise ReplayError(
                    f"{where}: {len(counts)} counts, expected {len(features)} "
                    "(one per configured feature, GRIDALARM_FEATURES)"
                )
            texts = [c.decode("ascii", "replace") for c in counts]
            bad = next((t for t in texts if not _COUNT.match(t)), None)
            if bad is not None:
                raise ReplayError(f"{where}: count {bad!r} is not a non-negative integer")
            hour = int(match.group(1))
            if hour < 1:
                raise ReplayError(f"{where}: hours are numbered from 1, got {hour}")
            ts = anchor + (hour - 1) * window
            yield CsvRow(ts, stream, list(zip(features, texts, strict=True)), True)

    def _study(self, lines: _Lines) -> Iterator[Item]:
        """Counter events from the 2017 study's ``<hour> |<13 counts>`` lines.

        The study never published the order of its 13 columns, so column ``i`` is taken to be
        ``settings.features[i]`` (by default the study's event kinds first, in the order it
        listed them): an assumption, not a fact; a different feature list maps differently.
        Hour ``h`` starts at ``start + (h - 1) * window`` (default
        start 2017-01-01T00:00:00Z); each non-zero count becomes one event with ``n`` = count
        on stream ``--stream`` (default ``seed:fifebatch``).
        """
        source = self.source
        for row in self._study_rows(lines):
            for name, text in row.values:
                if (n := int(text)) > 0:
                    yield Item(row.ts, event_message(row.ts, row.stream, name, n, source))


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One parsed CSV row or study line: window start, stream, (feature, cell text) pairs;
    ``all_counts`` when every non-empty cell is a non-negative integer."""

    ts: float
    stream: str
    values: list[tuple[str, str]]
    all_counts: bool


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """Which CSV column is the time, which the stream, which are features.

    The one reading of the per-window CSV layout: the replay producer sends its rows and
    ``gridalarm.evaluation.datasets`` evaluates on them, so both see the same windows.
    """

    path: Path
    width: int
    time_index: int
    stream_index: int | None
    features: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def from_header(cls, header: list[str], path: Path) -> CsvLayout:
        names = [cell.strip() for cell in header]
        lower = [name.lower() for name in names]
        time_name = next((name for name in CSV_TIME_COLUMNS if name in lower), None)
        if time_name is None:
            raise ReplayError(
                f"{path}: the CSV header has no time column "
                f"({', '.join(CSV_TIME_COLUMNS)}); got {', '.join(names)[:200]}"
            )
        time_index = lower.index(time_name)
        stream_index = lower.index("stream") if "stream" in lower else None
        features = [
            (i, name)
            for i, name in enumerate(names)
            if i not in (time_index, stream_index) and lower[i] not in CSV_IGNORED_COLUMNS
        ]
        if not features:
            raise ReplayError(f"{path}: the CSV header names no feature columns")
        seen = [name for _, name in features]
        duplicate = next((name for name in seen if seen.count(name) > 1), None)
        if duplicate is not None or any(not name for name in seen):
            what = f"{duplicate!r} twice" if duplicate else "an empty column name"
            raise ReplayError(f"{path}: the CSV header has {what}")
        return cls(path, len(names), time_index, stream_index, features)

    def row(self, cells: list[str], line_no: int, default_stream: str) -> CsvRow:
        where = f"{self.path}:{line_no}"
        if len(cells) != self.width:
            raise ReplayError(f"{where}: {len(cells)} cells, the header has {self.width}")
        try:
            ts = parse_time(cells[self.time_index])
        except (ValueError, OverflowError):
            raise ReplayError(
                f"{where}: time {cells[self.time_index].strip()!r} is neither RFC 3339 nor "
                "epoch seconds"
            ) from None
        if not math.isfinite(ts):
            raise ReplayError(f"{where}: time {cells[self.time_index].strip()!r} is not finite")
        stream = default_stream
        if self.stream_index is not None:
            stream = cells[self.stream_index].strip() or default_stream
        values = []
        all_counts = True
        for i, name in self.features:
            text = cells[i].strip()
            if text and not _COUNT.match(text):
                all_counts = False
                try:
                    number = float(text)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    raise ReplayError(f"{where}: {name} = {text!r} is not a finite number")
            values.append((name, text))
        return CsvRow(ts, stream, values, all_counts)


def _decoded(lines: Iterable[bytes], path: Path) -> Iterator[str]:
    """UTF-8 text lines for the csv module."""
    for raw in lines:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ReplayError(f"{path}: not UTF-8 text") from None


def _shown(raw: bytes) -> str:
    return repr(raw.strip()[:60].decode("utf-8", "replace"))


def plausible_time(value: Any, latest: float) -> float | None:
    """Epoch seconds of a ``ts`` value if it is readable and between 1990 and ``latest``.

    The worker rejects other times anyway; a replay must not let one such line (a bad-input
    test has some in the year 3000) stall the pacing or push the heartbeats past every event.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            # The common case, RFC 3339, without parse_time's epoch-string attempt first (an
            # exception per line would cost more than the rest of the line's handling).
            try:
                stamp = datetime.fromisoformat(value)
            except ValueError:
                ts = parse_time(value)
            else:
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=UTC)
                ts = stamp.timestamp()
        else:
            ts = parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return ts if MIN_EVENT_TIME <= ts <= latest else None


def _key_and_time(value: bytes, latest: float) -> tuple[bytes | None, float | None]:
    """Partition key and event time of a JSONL line; (None, None) for anything unusable."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    stream = data.get("stream")
    key = stream.encode("utf-8", "surrogatepass") if isinstance(stream, str) else None
    return key, plausible_time(data.get("ts"), latest)


def read_items(path: Path | str, options: ReplayOptions) -> Iterator[Item]:
    """The items of ``path`` in file order (convenience for tests and tools)."""
    return iter(Reader(path, options))


# -- pacing ----------------------------------------------------------------------------------


class Pacer:
    """Holds items back so that event time runs ``speed`` times as fast as the wall clock.

    The first timed item anchors event time to the wall clock, unless ``anchor`` (an epoch
    time) anchors it to real time from the start: live mode, where an event is due when the
    wall clock reaches its timestamp, so past events (a backfill) go out at once.
    :meth:`clock` tells the sink's heartbeat how far event time has safely advanced.
    """

    def __init__(self, speed: float | None, anchor: float | None = None) -> None:
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (event time, monotonic time)
        if anchor is not None:
            self._origin = (anchor, time.monotonic())
        self._waiting_for: float | None = None

    def now(self) -> float | None:
        """The event time the wall clock has reached, or None before the anchor."""
        if self._origin is None or self.speed is None:
            return None
        ts0, mono0 = self._origin
        return ts0 + (time.monotonic() - mono0) * self.speed

    async def wait(self, ts: float | None) -> None:
        """Return when the item of event time ``ts`` is due."""
        if self.speed is None or ts is None:
            return
        if self._origin is None:
            self._origin = (ts, time.monotonic())
            return
        ts0, mono0 = self._origin
        delay = mono0 + (ts - ts0) / self.speed - time.monotonic()
        if delay > 0.001:  # below a millisecond the sleep would cost more than it paces
            self._waiting_for = ts
            try:
                await asyncio.sleep(delay)
            finally:
                self._waiting_for = None

    def clock(self) -> float | None:
        """While waiting for the next item, everything before it has been sent, so event time
        has safely reached min(now, next item); otherwise None (the sink then uses the latest
        event time sent)."""
        waiting_for = self._waiting_for
        now = self.now()
        if waiting_for is None or now is None:
            return None
        return min(now, waiting_for)


# -- the replay ------------------------------------------------------------------------------


async def send_items(
    items: Iterable[Item], sink: EventSink, pacer: Pacer, bar: tqdm | None = None
) -> tuple[int, int]:
    """Send ``items`` through ``sink`` as ``pacer`` allows; (sent, too large to send).

    A message over the producer's size limit is reported on stderr and skipped: one odd line
    must not end a replay of millions.
    """
    sent = too_large = 0
    send, send_raw, wait = sink.send, sink.send_raw, pacer.wait
    paced = pacer.speed is not None
    for item in items:
        if paced and item.ts is not None:
            await wait(item.ts)
        try:
            if isinstance(item.payload, bytes):
                await send_raw(item.payload, item.key, item.ts)
            else:
                await send(item.payload, item.ts)
        except MessageTooLarge as err:
            too_large += 1
            _warn(f"message {sent + too_large} not sent: {err}", bar)
            continue
        sent += 1
    return sent, too_large


def final_heartbeat_time(last_ts: float, settings: Settings) -> float:
    """A heartbeat time that closes the window holding ``last_ts`` and no later one: its end
    plus the allowed lateness (a heartbeat further on would close an empty window after the
    data, which reads as every stream falling silent), capped at what the worker accepts."""
    end = math.floor(last_ts / settings.window) * settings.window + settings.window
    return min(end + settings.lateness, time.time() + settings.max_future)


async def replay(path: Path | str | Reader, sink: EventSink, options: ReplayOptions) -> ReplayStats:
    """Send the file's items to the events topic, then one heartbeat past the last window.

    ``path`` may be a :class:`Reader` already opened (and checked) with the same options.
    The sink must be started; its periodic heartbeats follow the replay's event time. Raises
    :class:`ReplayError` for a file that cannot be read (before anything is sent).
    """
    reader = path if isinstance(path, Reader) else Reader(path, options)
    stats = ReplayStats(path=str(reader.path), format=reader.format)
    bar = _progress_bar(reader, options.progress)
    try:
        await play(_tracked(reader, bar), sink, Pacer(options.speed), options.settings, stats, bar)
    finally:
        stats.skipped = reader.skipped
        if bar is not None:
            bar.close()
    return stats


async def play(
    items: Iterable[Item],
    sink: EventSink,
    pacer: Pacer,
    settings: Settings,
    stats: ReplayStats,
    bar: tqdm | None = None,
) -> ReplayStats:
    """Send ``items`` as ``pacer`` allows, then the final heartbeat (see
    :func:`final_heartbeat_time`) to every partition, and wait until the broker has all.

    Shared by file replay and the simulator; fills in and returns ``stats``.
    """
    sink.clock = pacer.clock
    started = time.monotonic()
    first_heartbeats = sink.stats.heartbeats
    first_sent = sink.stats.messages
    try:
        stats.messages, stats.too_large = await send_items(items, sink, pacer, bar)
        stats.last_ts = sink.stats.max_ts
        if stats.last_ts is not None:
            stats.final_heartbeat_ts = final_heartbeat_time(stats.last_ts, settings)
            await sink.heartbeat(stats.final_heartbeat_ts)
        await sink.flush()
    finally:
        sink.clock = None
        stats.seconds = time.monotonic() - started
        stats.heartbeats = sink.stats.heartbeats - first_heartbeats
        stats.sent = sink.stats.messages - first_sent
    return stats


def _tracked(reader: Reader, bar: tqdm | None) -> Iterator[Item]:
    """The reader's items, moving the progress bar every few thousand."""
    if bar is None:
        yield from reader
        return
    shown = 0
    for count, item in enumerate(reader, 1):
        if count % _PROGRESS_EVERY == 0:
            done = reader.bytes_read
            bar.update(done - shown)
            shown = done
        yield item
    bar.update(reader.bytes_read - shown)


def _progress_bar(reader: Reader, wanted: bool) -> tqdm | None:
    if not wanted or not sys.stderr.isatty():
        return None
    return tqdm(
        total=reader.size,
        unit="B",
        unit_scale=True,
        desc=reader.path.name,
        file=sys.stderr,
        leave=False,
    )


def _warn(message: str, bar: tqdm | None) -> None:
    if bar is not None:
        bar.write(f"gridalarm: warning: {message}", file=sys.stderr)
    else:
        print(f"gridalarm: warning: {message}", file=sys.stderr)


__all__ = [
    "CSV_IGNORED_COLUMNS",
    "CSV_TIME_COLUMNS",
    "FORMATS",
    "CsvLayout",
    "CsvRow",
    "Item",
    "Pacer",
    "Reader",
    "ReplayError",
    "ReplayOptions",
    "ReplayStats",
    "detect_format",
    "final_heartbeat_time",
    "plausible_time",
    "play",
    "read_items",
    "replay",
    "send_items",
]
