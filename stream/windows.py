"""Tumbling event-time windows with a per-partition watermark: plain Python, no Faust, no Kafka.

DESIGN.md "Windows": windows of ``size`` seconds aligned to the epoch; a partition's watermark is
the largest event (or heartbeat) time seen minus the allowed lateness; when it passes a window's
end, that window closes for *every* known stream of the partition, so a stream that went silent
gets all-zero windows. An event older than its stream's closed windows is late: counted into the
stream's next window and reported so that the caller can dead-letter it.

Recovery: every state object remembers the offset of the last message it applied, and
:meth:`Windower.apply` skips messages at or below it. The Faust worker stores the states in
tables whose changelog writes are not atomic with its offset commits; with the offsets a
re-delivered message changes nothing, so a restarted worker computes exactly what the first
one would have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gridalarm.messages import Event, Heartbeat


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """How events become windows."""

    size: float
    lateness: float
    features: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("window size must be > 0")
        if self.lateness < 0:
            raise ValueError("lateness must be >= 0")

    def start_of(self, ts: float) -> float:
        """Start of the window that holds event time ``ts``."""
        return math.floor(ts / self.size) * self.size


@dataclass(slots=True)
class Accumulator:
    """Sums of one open window of one stream."""

    counts: list[float]
    gauge_sum: list[float]
    gauge_n: list[int]
    events: int = 0

    @classmethod
    def empty(cls, width: int) -> Accumulator:
        return cls([0.0] * width, [0.0] * width, [0] * width)

    def values(self) -> list[float]:
        """Counter sums, plus the mean of any gauge samples (a feature is usually one or other)."""
        return [
            c + (s / n if n else 0.0)
            for c, s, n in zip(self.counts, self.gauge_sum, self.gauge_n, strict=True)
        ]

    def to_json(self) -> list[Any]:
        return [self.counts, self.gauge_sum, self.gauge_n, self.events]

    @classmethod
    def from_json(cls, data: list[Any]) -> Accumulator:
        counts, gauge_sum, gauge_n, events = data
        return cls(list(counts), list(gauge_sum), list(gauge_n), int(events))


@dataclass(slots=True)
class StreamState:
    """Everything the worker keeps for one stream; stored as one table record."""

    offset: int = -1  # last offset of this stream's partition applied here
    # Windows ending at or before this are closed; None until the stream's first window closes.
    closed_until: float | None = None
    open: dict[float, Accumulator] = field(default_factory=dict)
    late: int = 0  # late events (not messages) waiting to be reported with the next window
    detector: Any = None  # the detector's own state, opaque here
    alert: Any = None  # the alert state machine's state, opaque here

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "closed_until": self.closed_until,
            "open": [[start, acc.to_json()] for start, acc in self.open.items()],
            "late": self.late,
            "detector": self.detector,
            "alert": self.alert,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamState:
        return cls(
            offset=data["offset"],
            closed_until=data["closed_until"],
            open={start: Accumulator.from_json(acc) for start, acc in data["open"]},
            late=data["late"],
            detector=data.get("detector"),
            alert=data.get("alert"),
        )


@dataclass(slots=True)
class PartitionState:
    """The watermark and the known streams of one partition of the events topic."""

    offset: int = -1
    max_time: float = -math.inf
    closed_until: float | None = None  # the partition-wide close boundary
    streams: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "max_time": self.max_time if math.isfinite(self.max_time) else None,
            "closed_until": self.closed_until,
            "streams": sorted(self.streams),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionState:
        max_time = data.get("max_time")
        return cls(
            offset=data["offset"],
            max_time=-math.inf if max_time is None else max_time,
            closed_until=data.get("closed_until"),
            streams=set(data["streams"]),
        )


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window that will not change any more."""

    stream: str
    start: float
    end: float
    values: tuple[float, ...]
    events: int
    late: int


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event whose window had already closed; the caller dead-letters it."""

    offset: int
    stream: str
    ts: float
    closed_until: float
    n: int = 1  # events the message counts (a producer's coalesced message counts many)


@dataclass(slots=True)
class StepResult:
    """What applying a batch of messages of one partition produced."""

    closed: list[ClosedWindow] = field(default_factory=list)
    late: list[LateEvent] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # streams whose state changed
    partition_changed: bool = False


class Windower:
    """Applies messages of one partition to its states; pure and deterministic."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self._index = {name: i for i, name in enumerate(config.features)}
        self._other = self._index.get("other")

    def apply(
        self,
        partition: PartitionState,
        streams: dict[str, StreamState],
        messages: Iterable[tuple[int, Event | Heartbeat]],
    ) -> StepResult:
        """Apply ``(offset, message)`` pairs in offset order, then close what the watermark passed.

        ``streams`` must hold the state of every stream in ``partition.streams`` (it is updated
        in place, and new streams are added). Closing runs once, after the batch: the result is
        the same as closing after each message, because a window closes on the watermark alone
        and an event can only be late against windows closed *before* it arrived.
        """
        result = StepResult()
        size = self.config.size
        lateness = self.config.lateness
        for offset, message in messages:
            if offset <= partition.offset:
                continue  # applied before a restart: the partition record already has it
            partition.offset = offset
            result.partition_changed = True
            if message.ts > partition.max_time:
                partition.max_time = message.ts
            if isinstance(message, Heartbeat):
                # A heartbeat only moves time on; closing below sees it.
                self._close(partition, streams, result, message.ts - lateness)
                continue
            state = streams.get(message.stream)
            if state is None:
                state = self._new_stream(partition, streams, message)
            if offset <= state.offset:
                continue  # this stream's record already holds it
            state.offset = offset
            result.touched.add(message.stream)
            start = math.floor(message.ts / size) * size
            limit = state.closed_until if state.closed_until is not None else partition.closed_until
            if limit is not None and start < limit:
                # Late counts events, not messages: a coalesced message of n events is n late
                # events, as its n single messages would have been.
                n = message.n if message.metrics is None else 1
                state.late += n
                result.late.append(LateEvent(offset, message.stream, message.ts, limit, n))
                continue
            acc = state.open.get(start)
            if acc is None:
                acc = state.open[start] = Accumulator.empty(len(self.config.features))
            self._add(acc, message)
            # Close as time moves, not once per batch: a batch can span window boundaries, and
            # an event behind a boundary the watermark passed earlier in the batch is late.
            self._close(partition, streams, result, partition.max_time - lateness)
        return result

    def advance(
        self, partition: PartitionState, streams: dict[str, StreamState], watermark: float
    ) -> StepResult:
        """Close what a watermark of ``watermark`` passes (used by tests and the evaluator)."""
        result = StepResult()
        self._close(partition, streams, result, watermark)
        return result

    def _new_stream(
        self, partition: PartitionState, streams: dict[str, StreamState], event: Event
    ) -> StreamState:
        # Nothing of a new stream is closed yet: its windows begin with the earliest window it
        # has an event in when the watermark first passes (events before the partition's close
        # boundary are late all the same).
        state = StreamState()
        boundary = partition.closed_until
        if boundary is not None and self.config.start_of(event.ts) < boundary:
            state.closed_until = boundary  # its first event is late: begin at the boundary
        streams[event.stream] = state
        partition.streams.add(event.stream)
        return state

    def _add(self, acc: Accumulator, event: Event) -> None:
        if event.metrics is not None:
            for name, value in event.metrics.items():
                i = self._index.get(name)
                if i is not None:  # a gauge not in the feature list is not a feature
                    acc.gauge_sum[i] += value
                    acc.gauge_n[i] += 1
            acc.events += 1
            return
        i = self._index.get(event.kind or "", self._other)
        if i is not None:
            acc.counts[i] += event.n
        acc.events += event.n

    def _close(
        self,
        partition: PartitionState,
        streams: dict[str, StreamState],
        result: StepResult,
        watermark: float,
    ) -> None:
        boundary = math.floor(watermark / self.config.size) * self.config.size
        if partition.closed_until is not None and boundary <= partition.closed_until:
            return
        if partition.closed_until is None and not partition.streams:
            return  # nothing known yet; the first event sets where windows begin
        partition.closed_until = boundary
        result.partition_changed = True
        for name in sorted(partition.streams):
            state = streams[name]
            if state.closed_until is not None and state.closed_until >= boundary:
                continue
            result.touched.add(name)
            result.closed.extend(self._close_stream(name, state, boundary))

    def _close_stream(
        self, name: str, state: StreamState, boundary: float
    ) -> Iterator[ClosedWindow]:
        size = self.config.size
        zeros = tuple(0.0 for _ in self.config.features)
        start = state.closed_until
        if start is None:  # the stream's first close: begin at its earliest window
            if not state.open or min(state.open) + size > boundary:
                return
            start = min(state.open)
        while start + size <= boundary:
            acc = state.open.pop(start, None)
            late, state.late = state.late, 0
            if acc is None:
                yield ClosedWindow(name, start, start + size, zeros, 0, late)
            else:
                yield ClosedWindow(name, start, start + size, tuple(acc.values()), acc.events, late)
            start += size
        state.closed_until = start
