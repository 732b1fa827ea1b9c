"""EventLog producer: HTCondor job event logs (text, JSON, XML) to the events topic.

Reading (pure; no Kafka): :class:`LogFile` reads one file, :class:`Tailer` follows one path
through rotations and truncations, :class:`StreamRule` names streams. Producing (the thin Kafka
shell at the end): :class:`EventLogProducer` sends what the tailers read through
:class:`~gridalarm.producers.sink.EventSink` and commits a checkpoint
(:mod:`gridalarm.producers.checkpoint`) once the broker has acknowledged everything before it.

Why the events are framed here and parsed by htcondor2, found by experiment with htcondor 25:
``htcondor2.JobEventLog`` parses all three formats and names every event as HTCondor does
(``MyType``, its attributes), so it decides what an event *is*. It cannot be the reader of a
followed log on its own, though: after a truncation it returns nothing, ever; text that is not
an event (a file that is not a log, garbage between events) stops it silently for good; a
damaged event costs a one-second sleep inside the library and an exception; its read offset
is reachable only through pickling; it dates ``MM/DD`` stamps in the current year (a future
date for a December event read in November) and reads ``Z`` (UTC) stamps as local time.

So the producer owns the file: it reads through its own descriptor with ``pread`` and cuts
*complete* events at their end markers (text: a ``...`` line; JSON: a ``}`` line; XML: a
``</c>`` line). A half-written event stays in the buffer until its marker arrives; htcondor2
never sees it. Each complete event is then read by htcondor2 on the same inode
(``/proc/self/fd/N``, so a rename cannot swap the file under it) at the same offset, and the
library must stop exactly where the frame ends: every event is cross-checked. What it rejects
or reads differently is dead-lettered with its bytes, and the library is re-seated after it.
Positions are byte offsets of event boundaries, so a checkpoint resumes exactly; event times
come from the event's own bytes (:mod:`gridalarm.producers.eventlog_time`).

Rotation and truncation (follow mode): when the path names another inode, the file read so
far was rotated (renamed to ``.old`` or ``.N``) or deleted; it is read to its end through the
descriptor still open on it, and once it has been quiet for ``rotate_grace`` the next file is
the oldest of the path and its rotated siblings written since, not finished before. A file
that shrinks below what was read, or whose first event's bytes change (truncated and
rewritten, or an inode reused), is read again from its start.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import re
import socket
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import htcondor2

from gridalarm.messages import event_message
from gridalarm.producers.checkpoint import (
    FINGERPRINT_BYTES,
    FileRef,
    PathState,
    fingerprint,
)
from gridalarm.producers.eventlog_time import LOCAL, EventTimes, StampError, parse_stamp
from gridalarm.producers.warn import Warn, no_warning

FORMATS: tuple[str, ...] = ("text", "json", "xml")
# What a JobAdInformation event (028) sends (ReadConfig.ad_info); the default comes first.
AD_INFO_MODES: tuple[str, ...] = ("skip", "trigger", "event")
READ_BYTES = 1 << 20  # one pread
MAX_EVENT_BYTES = 1 << 20  # an "event" this long without its end marker is garbage
LOOKAHEAD_EVENTS = 5000  # events scanned for a SubmitHost to name the schedd
IDLE_LAG = 2.0  # s: a caught-up log's next event is stamped no earlier than now - this
MAX_JOBS = 50_000  # per-job attributes remembered for --stream-by (least recently used go)
SAVED_JOBS = 10_000  # ... of which the checkpoint keeps the most recent
_DONE_KEPT = 32  # finished files remembered per path

# HTCondor's name (MyType) of each event number, as htcondor2 25 gives it (checked against the
# library in the tests). Numbers it retired or does not know read as FutureEvent.
EVENT_TYPE_NAMES: dict[int, str] = {
    0: "SubmitEvent",
    1: "ExecuteEvent",
    2: "ExecutableErrorEvent",
    3: "CheckpointedEvent",
    4: "JobEvictedEvent",
    5: "JobTerminatedEvent",
    6: "JobImageSizeEvent",
    7: "ShadowExceptionEvent",
    8: "GenericEvent",
    9: "JobAbortedEvent",
    10: "JobSuspendedEvent",
    11: "JobUnsuspendedEvent",
    12: "JobHeldEvent",
    13: "JobReleaseEvent",
    14: "NodeExecuteEvent",
    15: "NodeTerminatedEvent",
    16: "PostScriptTerminatedEvent",
    21: "RemoteErrorEvent",
    22: "JobDisconnectedEvent",
    23: "JobReconnectedEvent",
    24: "JobReconnectFailedEvent",
    25: "GridResourceUpEvent",
    26: "GridResourceDownEvent",
    27: "GridSubmitEvent",
    28: "JobAdInformationEvent",
    33: "AttributeUpdateEvent",
    34: "PreSkipEvent",
    35: "ClusterSubmitEvent",
    36: "ClusterRemoveEvent",
    37: "FactoryPausedEvent",
    38: "FactoryResumedEvent",
    40: "FileTransferEvent",
    41: "ReserveSpaceEvent",
    42: "ReleaseSpaceEvent",
    43: "FileCompleteEvent",
    44: "FileUsedEvent",
    45: "FileRemovedEvent",
    46: "DataflowJobSkippedEvent",
    47: "CommonFilesEvent",
    # Execution-point events (the startd's own log), 100 and up.
    100: "EPStartupEvent",
    101: "EPReadyEvent",
    102: "EPReconfigEvent",
    103: "EPShutdownEvent",
    104: "RequestClaimEvent",
    105: "ReleaseClaimEvent",
    106: "ActivateClaimEvent",
    107: "DeactivateClaimEvent",
    108: "VacateClaimEvent",
    109: "DrainEvent",
    110: "ResourceBreakEvent",
    111: "ResourceMendEvent",
    112: "EPFutureEvent",
}
JOB_AD_INFORMATION = 28
# Where a site name may be, in order: OSG/FIFE glidein matches, then CMS, then the plain ones.
SITE_ATTRS: tuple[str, ...] = (
    "MATCH_EXP_JOB_GLIDEIN_Site",
    "MATCH_EXP_JOBGLIDEIN_Site",
    "MATCH_EXP_JOBGLIDEIN_CMSSite",
    "MATCH_GLIDEIN_Site",
    "JOB_GLIDEIN_Site",
    "JOBGLIDEIN_CMSSite",
    "GLIDEIN_Site",
)
UNKNOWN = "unknown"

_TEXT_HEADER = re.compile(
    rb"\s*(\d{3}) \((-?\d+)\.(-?\d+)\.(-?\d+)\) "
    rb"(\S+ \d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)(?=\s|$)"
)
_JSON_TIME = re.compile(rb'"EventTime"\s*:\s*"([^"]*)"')
_XML_TIME = re.compile(rb'<a n="EventTime">\s*<s>([^<]*)</s>')
_LEADING_SPACE = re.compile(rb"\s*")
_GLOBAL_HEADER = re.compile(rb"Global JobLog:\s*ctime=(\d+)\s+id=([^\s\"<]+)")
_FORMAT_BY_FIRST_BYTE = {b"{": "json", b"<": "xml", **{str(d).encode(): "text" for d in range(10)}}
# Rotated siblings of a log: HTCondor's EventLog.old (one rotation) or EventLog.1 .. .N.
_ROTATED_SUFFIX = re.compile(r"^\.(old|\d+)$")
_IGNORABLE_TAIL = (b"", b"</classads>")


class EventLogError(ValueError):
    """A log cannot be read (missing, unreadable, not an event log); the message is one line."""


def type_name(number: int) -> str:
    """HTCondor's ``MyType`` for an event number (FutureEvent when retired or unknown)."""
    return EVENT_TYPE_NAMES.get(number, "FutureEvent")


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRule:
    """How an event's stream id is chosen: ``schedd``, ``site``, ``owner`` or ``attr:NAME``.

    ``schedd`` gives ``schedd:<name>``, one stream per log (see :meth:`Tailer.schedd`). The
    others look the attribute up in the event's ad, then in what earlier events of the same job
    said (an ad-information event carries ``Owner`` or the site, the execute event after it does
    not), and give ``<prefix>:<value>`` or ``<prefix>:unknown``.
    """

    kind: str
    attr: str | None = None

    @classmethod
    def parse(cls, text: str) -> StreamRule:
        value = text.strip()
        if value in ("schedd", "site", "owner"):
            return cls(value)
        if value.startswith("attr:") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", value[5:]):
            return cls("attr", value[5:])
        raise EventLogError(
            f"--stream-by {text!r}: use schedd, site, owner or attr:NAME (a ClassAd attribute)"
        )

    @property
    def prefix(self) -> str:
        """The stream id's prefix."""
        return self.attr if self.kind == "attr" and self.attr else self.kind

    @property
    def attrs(self) -> tuple[str, ...]:
        """The ad attributes to look up, in order."""
        if self.kind == "site":
            return SITE_ATTRS
        if self.kind == "owner":
            return ("Owner",)
        if self.kind == "attr" and self.attr:
            return (self.attr,)
        return ()

    def __str__(self) -> str:
        return f"attr:{self.attr}" if self.kind == "attr" else self.kind


@dataclass(frozen=True, slots=True)
class ReadConfig:
    """How logs are read and their events named.

    ``schedd`` names the schedd stream (else the log's first submit host). ``timezone`` is the
    zone of stamps without ``Z``: ``local`` (the machine's), ``UTC`` or an IANA name.
    ``ad_info`` is what a JobAdInformation event (028) sends. ``skip`` (the default): nothing,
    so each job event is counted once; its ad attributes still name the job's streams.
    ``trigger``: a message of its trigger event's type, so that event is counted twice (the
    Fermilab pipeline's count). ``event``: a message of its own, ``JobAdInformationEvent``.
    """

    follow: bool = False
    stream_by: StreamRule = field(default_factory=lambda: StreamRule("schedd"))
    schedd: str | None = None
    timezone: str = LOCAL
    ad_info: str = "skip"
    source: str = ""
    rotate_grace: float = 1.0

    def __post_init__(self) -> None:
        if self.ad_info not in AD_INFO_MODES:
            raise EventLogError(
                f"--ad-info {self.ad_info!r}: use one of {', '.join(AD_INFO_MODES)}"
            )
        if self.rotate_grace < 0:
            raise EventLogError("rotate_grace must be >= 0")
        if self.schedd is not None and not self.schedd.strip():
            raise EventLogError("--schedd needs a name")
        if not self.source:
            object.__setattr__(self, "source", default_source())
        try:
            EventTimes(self.timezone)
        except StampError as err:
            raise EventLogError(f"--timezone: {err}") from None


def default_source() -> str:
    """``eventlog:<host>``: the ``source`` of this producer's messages and heartbeats."""
    return f"eventlog:{socket.gethostname() or 'localhost'}"[:256]


# -- one file --------------------------------------------------------------------------------


def content_fingerprint(first: bytes) -> str:
    """What identifies a file's content: its first event's bytes, or, when that event is the
    header of a schedd's global event log (``Global JobLog: ctime=... id=...``), the header's
    creation time and unique id. The schedd rewrites that header in place (size and event
    counts, same length) when it rotates the file, so its bytes are not the file's identity."""
    header = _GLOBAL_HEADER.search(first)
    if header is not None:
        return fingerprint(b"global-header:" + header[1] + b":" + header[2])
    return fingerprint(first)


@dataclass(slots=True)
class Generation:
    """One content generation of one file: an inode, and (once read) its first event's bytes.

    A truncated file starts a new generation on the same inode. ``key`` (set with the
    fingerprint) prefixes the ids of the generation's events.
    """

    name: str
    ino: int
    dev: int
    fingerprint: str | None = None
    fp_len: int = 0
    mtime_ns: int = 0
    key: str = ""

    def set_fingerprint(self, first: bytes) -> None:
        """Identify the generation by its first event's bytes (see content_fingerprint)."""
        fp_len = min(len(first), FINGERPRINT_BYTES)
        self.adopt(content_fingerprint(first[:fp_len]), fp_len)

    def adopt(self, fingerprint: str, fp_len: int) -> None:
        """Take a fingerprint known already (from a checkpoint)."""
        self.fingerprint = fingerprint
        self.fp_len = fp_len
        self.key = hashlib.sha256(f"{self.ino}:{fingerprint}".encode()).hexdigest()[:16]

    @property
    def identity(self) -> tuple[int, str | None, int]:
        return (self.ino, self.fingerprint, self.fp_len)

    def ref(self, offset: int) -> FileRef:
        """This generation at ``offset``, for a checkpoint."""
        return FileRef(
            name=self.name,
            ino=self.ino,
            dev=self.dev,
            fingerprint=self.fingerprint,
            fp_len=self.fp_len,
            offset=offset,
            mtime_ns=self.mtime_ns,
        )


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event read: where it is, what htcondor2 says it is, and its time."""

    gen: Generation
    start: int
    end: int
    number: int
    type: str
    ts: float
    cluster: int
    proc: int
    ad: Mapping[str, Any]  # the htcondor2.JobEvent


@dataclass(frozen=True, slots=True)
class BadChunk:
    """Bytes between event boundaries that are no usable event: dead-lettered, then skipped.

    ``reason`` is a dead-letter reason: ``schema`` (not an event, or htcondor2 rejects it),
    ``bad_time`` (a stamp that names no real time) or ``too_large`` (no end marker in 1 MiB).
    """

    gen: Generation
    start: int
    end: int
    data: bytes
    reason: str
    detail: str


class _Rejected(Exception):
    """htcondor2 did not read a framed event as one event ending where the frame ends."""


class _Library:
    """htcondor2's reader on one inode, kept positioned at the frame the producer reads next."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._log: htcondor2.JobEventLog | None = None
        self._at = -1

    def read(self, start: int, end: int, data: bytes) -> Mapping[str, Any]:
        if self._log is None or self._at != start:
            self._seat(start)
        log = self._log
        assert log is not None
        try:
            event = next(log.events(0))
        except StopIteration:
            self.close()
            raise _Rejected("htcondor2 reads no event here") from None
        except Exception as err:  # HTCondorException (its type lives in a private module)
            self.close()
            first = str(err).splitlines()[0] if str(err) else repr(err)
            raise _Rejected(f"htcondor2: {first}") from None
        offset = log.__getstate__()[1]
        if not start < offset <= end or data[offset - start :].strip():
            self.close()
            raise _Rejected(f"htcondor2 read {offset - start} of the event's {end - start} bytes")
        self._at = end  # the bytes between offset and end are blank: the library skips them
        return event

    def _seat(self, offset: int) -> None:
        """A fresh reader at ``offset``: the pickle protocol is htcondor2's documented way to
        resume a JobEventLog at a position."""
        self.close()
        try:
            log = htcondor2.JobEventLog(self._name)
            if offset:
                state = log.__getstate__()[0]
                log.close()
                log = htcondor2.JobEventLog.__new__(htcondor2.JobEventLog)
                log.__setstate__((state, offset))
        except Exception as err:
            raise _Rejected(f"htcondor2 cannot open the log: {str(err).splitlines()[0]}") from None
        self._log = log
        self._at = offset

    def close(self) -> None:
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.close()
        self._log = None
        self._at = -1


def _open_fd(path: Path) -> int:
    """A read-only descriptor on a regular file, or :class:`EventLogError` with one line."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise EventLogError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EventLogError(f"{path}: is a directory, not an event log") from None
    except OSError as err:
        raise EventLogError(f"{path}: cannot read ({err.strerror or err})") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise EventLogError(f"{path}: is a directory, not an event log")
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise EventLogError(f"{path}: not a regular file")
    try:
        os.pread(fd, 1, 0)
    except OSError as err:
        os.close(fd)
        raise EventLogError(f"{path}: cannot read ({err.strerror or err})") from None
    return fd


def _fd_name(fd: int, path: Path) -> str:
    """A name that opens the very inode behind ``fd`` (Linux), else the path itself."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else str(path)


class LogFile:
    """One event-log file read through the producer's own descriptor, event by event.

    ``offset`` is the start of the next event to read: everything before it has been returned.
    Bytes read past it that do not yet form a complete event wait in a buffer.
    """

    def __init__(
        self,
        path: Path,
        offset: int = 0,
        fingerprint: str | None = None,
        fp_len: int = 0,
        fd: int | None = None,
    ) -> None:
        self.path = path
        self.fd = _open_fd(path) if fd is None else fd
        info = os.fstat(self.fd)
        self.gen = Generation(str(path), info.st_ino, info.st_dev, mtime_ns=info.st_mtime_ns)
        if fingerprint is not None:
            self.gen.adopt(fingerprint, fp_len)
        self.format: str | None = None
        self.events = 0  # events read from the current generation
        self.replaced = False  # the first event's bytes changed under us: see Tailer
        self._base = offset  # file offset of _buf[0]
        self._buf = b""
        self._pos = 0
        self._reference = time.time()
        self._stamps: dict[str, float] = {}  # stamp text → epoch, for this reference
        self._lib = _Library(_fd_name(self.fd, path))
        try:
            self._sniff()
        except BaseException:
            os.close(self.fd)
            raise

    @classmethod
    def same_file(cls, other: LogFile) -> LogFile:
        """A second reader on ``other``'s inode at its offset (for a look ahead)."""
        gen = other.gen
        return cls(other.path, other.offset, gen.fingerprint, gen.fp_len, fd=os.dup(other.fd))

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def read_end(self) -> int:
        """Bytes of the file read so far."""
        return self._base + len(self._buf)

    @property
    def pending(self) -> bytes:
        """Bytes read after the last complete event (a half-written one), stripped."""
        return self._buf[self._pos :].strip()

    def unread(self) -> bytes:
        """The bytes read after the last complete event, as they are."""
        return self._buf[self._pos :]

    def close(self) -> None:
        self._lib.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def restart(self) -> None:
        """Read the file again from its start, as a new generation (after a truncation)."""
        self._lib.close()
        info = os.fstat(self.fd)
        self.gen = Generation(self.gen.name, info.st_ino, info.st_dev, mtime_ns=info.st_mtime_ns)
        self._base, self._buf, self._pos = 0, b"", 0
        self.format = None
        self.events = 0
        self.replaced = False
        self._lib = _Library(_fd_name(self.fd, self.path))
        self._sniff()

    def shrunk(self) -> bool:
        """Whether the file is now shorter than what was read of it (truncated)."""
        return os.fstat(self.fd).st_size < self.read_end

    def fingerprint_changed(self) -> bool:
        """Whether the first event's bytes are no longer what they were (rewritten)."""
        gen = self.gen
        if gen.fingerprint is None or gen.fp_len == 0:
            return False
        head = os.pread(self.fd, gen.fp_len, 0)
        return len(head) < gen.fp_len or content_fingerprint(head) != gen.fingerprint

    def read(self, limit: int, times: EventTimes) -> list[LogEvent | BadChunk]:
        """Up to ``limit`` complete events (or bad chunks) after ``offset``, in file order."""
        out: list[LogEvent | BadChunk] = []
        while len(out) < limit:
            frame = self._next_frame()
            if frame is None:
                if not self._fill():
                    break
                continue
            out.append(self._parse(frame, times))
        return out

    # -- internals ---------------------------------------------------------------------------

    def _sniff(self) -> None:
        """The format, from the file's first non-blank byte (as htcondor2 decides it)."""
        if self.format is not None:
            return
        head = os.pread(self.fd, 4096, 0).lstrip()
        if not head:
            return  # empty so far: decided when data arrives
        fmt = _FORMAT_BY_FIRST_BYTE.get(head[:1])
        if fmt is None:
            raise EventLogError(
                f"{self.path}: not an HTCondor event log (it starts with {_shown(head)})"
            )
        newline = head.find(b"\n")
        if fmt == "text" and newline >= 0 and _TEXT_HEADER.match(head[: newline + 1]) is None:
            raise EventLogError(
                f"{self.path}: not an HTCondor event log (its first line is {_shown(head)})"
            )
        self.format = fmt

    def _fill(self) -> bool:
        """Read more of the file into the buffer; False when there is nothing new."""
        if self.format is None:
            self._sniff()
            if self.format is None:
                return False
        try:
            data = os.pread(self.fd, READ_BYTES, self.read_end)
        except OSError as err:
            raise EventLogError(f"{self.path}: cannot read ({err.strerror or err})") from None
        if not data:
            return False
        if self.read_end > 0 and self.fingerprint_changed():
            self.replaced = True
            return False
        info = os.fstat(self.fd)
        self.gen.mtime_ns = info.st_mtime_ns
        # Everything read was written by the file's last write: the year-inference reference.
        self._reference = min(time.time(), info.st_mtime)
        self._stamps.clear()
        self._buf = self._buf[self._pos :] + data
        self._base += self._pos
        self._pos = 0
        return True

    def _next_frame(self) -> tuple[int, int, bytes, bool] | None:
        """(start, end, bytes, oversized) of the next complete event, or None."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf) or self.format is None:
            return None
        end = frame_end(buf, pos, self.format)
        if (end if end is not None else len(buf)) - pos > MAX_EVENT_BYTES:
            # No event is this long: cut the runaway bytes off at a line end, and go on.
            cut = buf.rfind(b"\n", pos, pos + MAX_EVENT_BYTES) + 1 or pos + MAX_EVENT_BYTES
            self._pos = cut
            return (self._base + pos, self._base + cut, buf[pos:cut], True)
        if end is None:
            return None
        self._pos = end
        return (self._base + pos, self._base + end, buf[pos:end], False)

    def _parse(self, frame: tuple[int, int, bytes, bool], times: EventTimes) -> LogEvent | BadChunk:
        start, end, data, oversized = frame
        gen = self.gen
        if start == 0:
            gen.set_fingerprint(data)
        if oversized:
            return BadChunk(gen, start, end, data, "too_large", "no end of event in 1 MiB")
        if self.format == "text":
            header = _TEXT_HEADER.match(data)
            if header is None:
                return self._bad(start, end, data, "schema", "not an HTCondor event")
            number = int(header[1])
            cluster, proc = int(header[2]), int(header[3])
            stamp_text: str | None = header[5].decode("ascii")
        else:
            found = (_JSON_TIME if self.format == "json" else _XML_TIME).search(data)
            stamp_text = found[1].decode("utf-8", "replace") if found else None
        try:
            ad = self._lib.read(start, end, data)
        except _Rejected as err:
            return self._bad(start, end, data, "schema", str(err))
        library_number = ad.get("EventTypeNumber")
        if self.format == "text":
            if library_number != number:
                detail = f"htcondor2 reads event {library_number}, not {number}"
                return self._bad(start, end, data, "schema", detail)
        else:
            number = int(library_number) if isinstance(library_number, int) else -1
            cluster = _int(ad.get("Cluster"), -1)
            proc = _int(ad.get("Proc"), -1)
            if stamp_text is None:
                value = ad.get("EventTime")
                stamp_text = value if isinstance(value, str) else None
        if stamp_text is None:
            return self._bad(start, end, data, "bad_time", "the event has no EventTime")
        ts = self._stamps.get(stamp_text)
        if ts is None:
            try:
                ts = times.epoch(parse_stamp(stamp_text), self._reference)
            except StampError as err:
                return self._bad(start, end, data, "bad_time", str(err))
            if len(self._stamps) > 4096:
                self._stamps.clear()
            self._stamps[stamp_text] = ts
        self.events += 1
        mytype = ad.get("MyType")
        return LogEvent(
            gen,
            start,
            end,
            number,
            mytype if isinstance(mytype, str) and mytype else type_name(number),
            ts,
            cluster,
            proc,
            ad,
        )

    def _bad(self, start: int, end: int, data: bytes, reason: str, detail: str) -> BadChunk:
        if start == 0 and reason == "schema" and self.events == 0:
            # The very first "event" is none: this is not an event log at all.
            raise EventLogError(
                f"{self.path}: not an HTCondor event log ({detail}: {_shown(data)})"
            )
        return BadChunk(self.gen, start, end, data, reason, detail)


def frame_end(buf: bytes, pos: int, fmt: str) -> int | None:
    """Where the complete event that starts at ``buf[pos]`` ends (exclusive), or None while
    its end marker has not been written yet.

    text: the line ``...``; json: a line ``}`` (the top-level brace; nested ones are indented)
    or a one-line object; xml: a line ``</c>``.
    """
    if fmt == "text":
        if buf.startswith(b"...\n", pos):
            return pos + 4
        found = buf.find(b"\n...\n", pos)
        return None if found < 0 else found + 5
    if fmt == "json":
        first = _LEADING_SPACE.match(buf, pos).end()  # type: ignore[union-attr]
        newline = buf.find(b"\n", first)
        if newline < 0:
            return None
        line = buf[first:newline].rstrip()
        if line.startswith(b"{") and line.endswith(b"}"):
            return newline + 1
        found = buf.find(b"\n}\n", first)
        return None if found < 0 else found + 3
    found = buf.find(b"\n</c>\n", pos)
    return None if found < 0 else found + 6


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _shown(data: bytes) -> str:
    line = data.strip().split(b"\n", 1)[0][:60]
    return repr(line.decode("utf-8", "replace"))


# -- naming: streams, schedds, ad-information events -----------------------------------------


def schedd_name(submit_host: str) -> str | None:
    """The schedd in a sinful string: its ``alias`` when it has one, else its host.

    >>> schedd_name("<128.105.68.62:9618?addrs=128.105.68.62-9618&alias=ap40.uw.osg-htc.org>")
    'ap40.uw.osg-htc.org'
    >>> schedd_name("<169.228.38.38:9615?sock=18627_6227_3>")
    '169.228.38.38'
    """
    text = submit_host.strip().strip("<>")
    if not text:
        return None
    host, _, query = text.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "alias" and value:
            return value
    if host.startswith("["):  # [ipv6]:port
        return host[1 : host.find("]")] or None
    return host.rsplit(":", 1)[0] or None


def trigger_type(ad: Mapping[str, Any]) -> str:
    """The ``MyType`` of the event a JobAdInformation event (028) was written for."""
    number = ad.get("TriggerEventTypeNumber")
    if isinstance(number, int) and not isinstance(number, bool):
        return type_name(number)
    name = ad.get("TriggerEventTypeName")
    if isinstance(name, str):
        member = htcondor2.JobEventType.__members__.get(name.removeprefix("ULOG_"))
        if member is not None:
            return type_name(int(member))
    return type_name(JOB_AD_INFORMATION)


def _attr_value(ad: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """The first of ``names`` the ad has as a plain value (not an unexpanded ``$$()``)."""
    for name in names:
        value = ad.get(name)
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float | str):
            text = str(value).strip()
            if text and not text.startswith("$$("):
                return text[:200]
    return None


class JobAttrs:
    """What earlier events said about each job, for --stream-by (least recently used go)."""

    def __init__(self, saved: Mapping[str, Mapping[str, str]] | None, key: str) -> None:
        self.key = key
        self._jobs: collections.OrderedDict[str, str] = collections.OrderedDict()
        for job, attrs in (saved or {}).items():
            if key in attrs:
                self._jobs[job] = attrs[key]

    def get(self, job: str) -> str | None:
        value = self._jobs.get(job)
        if value is not None:
            self._jobs.move_to_end(job)
        return value

    def put(self, job: str, value: str) -> None:
        self._jobs[job] = value
        self._jobs.move_to_end(job)
        if len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)

    def saved(self) -> dict[str, dict[str, str]]:
        """The most recent jobs, for the checkpoint."""
        recent = list(self._jobs.items())[-SAVED_JOBS:]
        return {job: {self.key: value} for job, value in recent}


# -- one followed path -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One step of a path: send ``message``, dead-letter ``bad``, or (neither) just move the
    path's position to ``end`` of ``gen`` (a new file, a skipped ad-information event)."""

    gen: Generation
    end: int
    message: dict[str, Any] | None = None
    ts: float | None = None
    eid: str | None = None
    bad: BadChunk | None = None
    skipped: bool = False


class Tailer:
    """Reads one path: its file, then (following) each file that replaces it, exactly once.

    Pure: it turns files into :class:`Item` s and never talks to Kafka. ``state`` is what a
    checkpoint said about the path; :meth:`state` makes the next one.
    """

    def __init__(
        self,
        path: Path | str,
        config: ReadConfig,
        state: PathState | None = None,
        warn: Warn = no_warning,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.config = config
        self.warn = warn
        self.times = EventTimes(config.timezone)
        self.rotations = 0
        self.truncations = 0
        self.last_ts: float | None = None
        self.finished = False  # one-shot: read to the end
        self.idle = False  # the last poll found nothing new
        self.files: list[str] = []
        state = state or PathState()
        self.events = state.events
        self.done: collections.deque[tuple[int, str | None, int]] = collections.deque(
            state.done, maxlen=_DONE_KEPT
        )
        self.jobs = JobAttrs(state.jobs, config.stream_by.prefix)
        self._rotated_at: float | None = None
        self.resumed = state.file is not None
        self.file = self._open(state.file)
        try:
            self._schedd = config.schedd or state.schedd or self._look_for_schedd()
        except BaseException:
            self.file.close()
            raise

    @property
    def schedd(self) -> str:
        """The schedd this path's events belong to: ``--schedd``, else the first submit host
        named in the log (looked for ahead of the first event sent, then kept for the path's
        life and in the checkpoint), else this machine's name."""
        return self._schedd

    @property
    def position(self) -> tuple[Generation, int]:
        return (self.file.gen, self.file.offset)

    def close(self) -> None:
        self.file.close()

    def state(self, position: tuple[Generation, int] | None = None) -> PathState:
        """The path's checkpoint entry with the given (delivered) position."""
        gen, offset = position or self.position
        return PathState(
            file=gen.ref(offset),
            done=tuple(self.done),
            schedd=self._schedd,
            jobs=self.jobs.saved() if self.config.stream_by.kind != "schedd" else {},
            events=self.events,
        )

    def safe_time(self, now: float) -> float | None:
        """How far event time has surely advanced for this path: near ``now`` when the log is
        read to its end with no event half-written, else the last event's time."""
        if self.config.follow and self.idle and not self.file.pending:
            return now - IDLE_LAG
        return self.last_ts

    def caught_up(self) -> bool:
        """Read to the end of the file the path names now, with nothing half-written."""
        if not self.idle or self._rotated_at is not None or self.file.pending:
            return False
        try:
            info = os.stat(self.path)
        except OSError:
            return False
        return (info.st_ino, info.st_dev) == (self.file.gen.ino, self.file.gen.dev)

    def poll(self, limit: int = 2000) -> list[Item]:
        """The next items: events read, dead letters, and position moves at file switches."""
        parsed = self.file.read(limit, self.times)
        items = [self._item(p) for p in parsed]
        if items:
            self.idle = False
            return items
        self.idle = True
        items = self._switch_files()
        if not items and not self.config.follow:
            tail = self.file.pending
            if tail not in _IGNORABLE_TAIL:
                self.warn(
                    f"{self.file.path}: an incomplete event ({len(tail)} bytes) at offset "
                    f"{self.file.offset} is not sent; it is read when complete"
                )
            self.finished = True
        return items

    # -- files -------------------------------------------------------------------------------

    def _open(self, ref: FileRef | None) -> LogFile:
        """The file to read first: the checkpointed one where it is now, else the path's."""
        if ref is None:
            return self._start(LogFile(self.path))
        found = self._locate(ref)
        if found is not None:
            return self._start(found)
        self.warn(
            f"{self.path}: the file read last ({ref.name}, inode {ref.ino}) is gone; whatever "
            "it got after the checkpoint is lost"
        )
        after = Generation(ref.name, ref.ino, ref.dev, ref.fingerprint, ref.fp_len, ref.mtime_ns)
        successor = self._successor(after)
        return self._start(LogFile(successor or self.path))

    def _start(self, file: LogFile) -> LogFile:
        self.files.append(file.gen.name)
        return file

    def _candidates(self) -> list[Path]:
        """The path and its rotated siblings (``.old``, ``.1`` ...), oldest name first."""
        folder, base = self.path.parent, self.path.name
        siblings: list[tuple[int, Path]] = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                suffix = entry.name[len(base) :]
                if entry.name.startswith(base) and _ROTATED_SUFFIX.match(suffix):
                    rank = -1 if suffix == ".old" else int(suffix[1:])
                    siblings.append((rank, Path(entry.path)))
        ordered = [p for _, p in sorted(siblings, key=lambda s: -s[0])]
        return [*ordered, self.path]

    def _locate(self, ref: FileRef) -> LogFile | None:
        """The checkpointed file under its current name (same inode and first bytes)."""
        for candidate in self._candidates():
            try:
                info = os.stat(candidate)
            except OSError:
                continue
            if info.st_ino != ref.ino:
                continue
            try:
                file = LogFile(candidate, ref.offset, ref.fingerprint, ref.fp_len)
            except EventLogError:
                continue
            if file.fingerprint_changed() or os.fstat(file.fd).st_size < ref.offset:
                file.close()
                continue
            return file
        return None

    def _is_done(self, path: Path, info: os.stat_result) -> bool:
        for ino, fp, fp_len in self.done:
            if ino != info.st_ino:
                continue
            if fp is None:
                return True
            try:
                with open(path, "rb") as stream:
                    head = stream.read(fp_len)
            except OSError:
                continue
            if content_fingerprint(head) == fp:
                return True
        return False

    def _successor(self, after: Generation) -> Path | None:
        """The oldest file among the path and its siblings written since ``after`` last was,
        that is neither ``after`` itself nor finished before."""
        best: tuple[int, int, Path] | None = None
        for rank, candidate in enumerate(self._candidates()):
            try:
                info = os.stat(candidate)
            except OSError:
                continue
            if info.st_ino == after.ino and info.st_dev == after.dev:
                continue
            if info.st_mtime_ns < after.mtime_ns or self._is_done(candidate, info):
                continue
            key = (info.st_mtime_ns, rank, candidate)
            if best is None or key[:2] < best[:2]:
                best = key
        return None if best is None else best[2]

    def _switch_files(self) -> list[Item]:
        """At the end of the current file: a truncation, or a rotation to finish."""
        file = self.file
        if file.replaced or file.shrunk() or file.fingerprint_changed():
            self.warn(
                f"{file.path}: truncated or rewritten after {file.read_end} bytes; "
                "reading it again from the start"
            )
            self.truncations += 1
            file.restart()
            return [Item(file.gen, 0)]
        try:
            info = os.stat(self.path)
        except OSError:
            info = None  # between a rename and the new file: wait
        if info is None or (info.st_ino, info.st_dev) == (file.gen.ino, file.gen.dev):
            self._rotated_at = None
            return []
        now = time.monotonic()
        if self.config.follow:
            if self._rotated_at is None:
                self._rotated_at = now
            if now - self._rotated_at < self.config.rotate_grace:
                return []  # the writer may still finish an event in the old file
        successor = self._successor(file.gen)
        if successor is None:
            return []
        following = LogFile(successor)  # may fail (not a log): then nothing has changed yet
        items: list[Item] = []
        if file.pending not in _IGNORABLE_TAIL:
            bad = BadChunk(
                file.gen,
                file.offset,
                file.read_end,
                file.unread(),
                "schema",
                "an incomplete event at the end of a rotated file",
            )
            items.append(Item(file.gen, file.read_end, bad=bad))
        self.done.append(file.gen.identity)
        self.warn(
            f"{self.path}: rotated; finished the file first seen as {file.gen.name} (inode "
            f"{file.gen.ino}, {file.events} events), now reading {successor}"
        )
        file.close()
        self.rotations += 1
        self._rotated_at = None
        self.file = self._start(following)
        items.append(Item(following.gen, 0))
        return items

    # -- naming ------------------------------------------------------------------------------

    def _look_for_schedd(self) -> str:
        if self.config.stream_by.kind != "schedd":
            return ""
        scout = LogFile.same_file(self.file)
        try:
            for _ in range(LOOKAHEAD_EVENTS):
                batch = scout.read(1, self.times)  # one by one: stop at the first submit host
                if not batch:
                    break
                for event in batch:
                    if isinstance(event, LogEvent) and event.number in (0, JOB_AD_INFORMATION):
                        host = event.ad.get("SubmitHost")
                        name = schedd_name(host) if isinstance(host, str) else None
                        if name:
                            return name
        finally:
            scout.close()
        host = socket.getfqdn() or socket.gethostname() or UNKNOWN
        self.warn(
            f"{self.path}: no submit host in the log yet; its stream is schedd:{host} "
            "(name it with --schedd)"
        )
        return host

    def _stream(self, event: LogEvent, job: str | None) -> str:
        rule = self.config.stream_by
        if rule.kind == "schedd":
            return f"schedd:{self._schedd}"
        value = _attr_value(event.ad, rule.attrs)
        if job is not None:
            if value is not None:
                self.jobs.put(job, value)
            else:
                value = self.jobs.get(job)
        return f"{rule.prefix}:{value or UNKNOWN}"[:256]

    def _item(self, parsed: LogEvent | BadChunk) -> Item:
        if isinstance(parsed, BadChunk):
            return Item(parsed.gen, parsed.end, bad=parsed)
        event = parsed
        job = f"{event.cluster}.{event.proc}" if event.cluster >= 0 else None
        kind = event.type
        adinfo = event.number == JOB_AD_INFORMATION
        # Before the skip: a 028 that is not sent still names its job's later events.
        stream = self._stream(event, job)
        if adinfo:
            mode = self.config.ad_info
            if mode == "skip":
                return Item(event.gen, event.end, skipped=True)
            if mode == "trigger":
                kind = trigger_type(event.ad)
        eid = f"{event.gen.key}/{event.start}"
        attrs: dict[str, Any] = {"eid": eid}
        if job is not None:
            attrs["job"] = job
        if adinfo:
            attrs["adinfo"] = True
        message = event_message(event.ts, stream, kind, source=self.config.source, **attrs)
        self.events += 1
        self.last_ts = event.ts
        return Item(event.gen, event.end, message, event.ts, eid)


def read_events(paths: Iterable[Path | str], config: ReadConfig) -> Iterable[Item]:
    """Every item of the given logs, read once to their ends (for tests and tools)."""
    for path in paths:
        tailer = Tailer(path, config)
        try:
            while not tailer.finished:
                yield from tailer.poll()
        finally:
            tailer.close()


# -- producing: the Kafka shell --------------------------------------------------------------
