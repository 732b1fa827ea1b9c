"""One partition's raw messages → dead letters, windows, scores and alerts. No Faust, no Kafka.

:class:`PartitionProcessor` owns the live state objects of one partition of the events topic
(its watermark and its streams) and turns a batch of raw messages into the messages to publish
and the state records that changed. The Faust worker feeds it from the events topic and stores
its records in tables; tests and the evaluator feed it directly.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gridalarm.messages import (
    Event,
    Heartbeat,
    InvalidMessage,
    TimeBounds,
    deadletter_message,
    parse_event,
)
from gridalarm.stream.scoring import Outputs, Scorer
from gridalarm.stream.silences import Silences
from gridalarm.stream.windows import PartitionState, StreamState, Windower

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message as consumed: where it came from and its value bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    """Everything one batch produced, in publishing order: outputs first, then state."""

    outputs: Outputs
    deadletters: list[dict[str, Any]] = field(default_factory=list)
    stream_records: dict[str, bytes] = field(default_factory=dict)  # stream -> state JSON
    partition_record: bytes | None = None  # the partition state JSON when it changed
    events: int = 0  # valid event messages applied (a coalesced one counts once)
    heartbeats: int = 0
    # Events applied by (source, type), each message counting its n (a producer's coalesced
    # message carries many); gauge samples count as type "gauge".
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    windows_closed: int = 0
    late: int = 0  # late events (each late message counts its n)
    score_seconds: float | None = None  # the detector step of this batch, when windows closed
    # Offsets passed over without a message: between the last one applied and the next one
    # seen, and between the batch's own messages. The worker's sequencer hands over a hole
    # only once a re-fetch showed that the log has nothing there (Kafka's retention deleted
    # messages the worker had not read yet, or a transactional producer's markers).
    skipped: int = 0


class PartitionProcessor:
    """Live state of one partition plus the pure steps that advance it."""

    def __init__(
        self,
        partition: int,
        windower: Windower,
        scorer: Scorer,
        bounds: TimeBounds,
        max_bytes: int,
        state: PartitionState | None = None,
        streams: dict[str, StreamState] | None = None,
        load_stream: Callable[[str], bytes | None] | None = None,
    ) -> None:
        self.partition = partition
        self.windower = windower
        self.scorer = scorer
        self.bounds = bounds
        self.max_bytes = max_bytes
        self.state = state or PartitionState()
        self.streams = streams if streams is not None else {}
        # Reads a stream's stored record: a stream can have a record that the (older) stored
        # partition record does not list yet, when a crash fell between the two writes.
        self.load_stream = load_stream or (lambda name: None)
        self.last_message_at = time.monotonic()
        self._window_warned: set[str] = set()  # sources told their coalescing window is wrong

    @property
    def next_offset(self) -> int | None:
        """The offset this partition applies next; ``None`` before its first message."""
        return self.state.offset + 1 if self.state.offset >= 0 else None

    @classmethod
    def restore(
        cls,
        partition: int,
        partition_record: bytes | None,
        load_stream: Callable[[str], bytes | None],
        **kwargs: Any,
    ) -> PartitionProcessor:
        """Rebuild from stored records (after a restart or a rebalance)."""
        if partition_record is None:
            return cls(partition, load_stream=load_stream, **kwargs)
        state = PartitionState.from_json(orjson.loads(partition_record))
        streams: dict[str, StreamState] = {}
        for name in state.streams:
            record = load_stream(name)
            # A stream the partition knows but whose record never landed restarts at the
            # partition's close boundary; re-delivered messages after the committed offset
            # rebuild what they can.
            streams[name] = (
                StreamState.from_json(orjson.loads(record))
                if record
                else StreamState(closed_until=state.closed_until)
            )
        return cls(partition, state=state, streams=streams, load_stream=load_stream, **kwargs)

    def process(
        self, messages: Sequence[RawMessage], silences: Silences | None = None
    ) -> BatchResult:
        """Apply a batch of this partition's messages in offset order; alerts about windows
        in one of ``silences`` are published suppressed."""
        self.last_message_at = time.monotonic()
        parsed: list[tuple[int, Event | Heartbeat]] = []
        result = BatchResult(outputs=Outputs())
        previous = self.state.offset
        for raw in messages:
            if raw.offset <= self.state.offset:
                continue  # applied before a restart
            if previous >= 0 and raw.offset > previous + 1:
                result.skipped += raw.offset - previous - 1
            previous = raw.offset
            try:
                message = parse_event(raw.value, self.bounds, self.max_bytes)
            except InvalidMessage as err:
                result.deadletters.append(
                    deadletter_message(
                        raw.value, err.reason, err.detail, raw.topic, raw.partition, raw.offset
                    )
                )
                continue
            parsed.append((raw.offset, message))
            if isinstance(message, Heartbeat):
                result.heartbeats += 1
                continue
            result.events += 1
            result.kinds[(message.source, message.kind or "gauge")] += (
                message.n if message.metrics is None else 1
            )
            if message.window is not None and message.window != self.windower.config.size:
                self._warn_window(message)
            if message.stream not in self.streams:
                self._adopt(message.stream)
        last_offset = max((raw.offset for raw in messages), default=-1)
        step = self.windower.apply(self.state, self.streams, parsed)
        by_offset = {raw.offset: raw for raw in messages} if step.late else {}
        for late in step.late:
            raw = by_offset[late.offset]
            result.deadletters.append(
                deadletter_message(
                    raw.value,
                    "late",
                    f"event time is before the stream's closed windows "
                    f"(closed until {late.closed_until:.0f})",
                    raw.topic,
                    raw.partition,
                    raw.offset,
                    stream=late.stream,
                )
            )
        result.late = sum(late.n for late in step.late)
        result.windows_closed = len(step.closed)
        started = time.perf_counter()
        result.outputs = self.scorer.score(step.closed, self.streams, silences)
        if step.closed:
            result.score_seconds = time.perf_counter() - started
        # Dead letters and heartbeats move the partition offset too, so a restart never
        # dead-letters a message twice.
        if last_offset > self.state.offset:
            self.state.offset = last_offset
            step.partition_changed = True
        for name in step.touched:
            result.stream_records[name] = orjson.dumps(self.streams[name].to_json())
        if step.partition_changed:
            result.partition_record = orjson.dumps(self.state.to_json())
        return result

    def _warn_window(self, message: Event) -> None:
        if message.source in self._window_warned:
            return
        self._window_warned.add(message.source)
        log.warning(
            "producer %r coalesces events by %gs windows but this worker's window is %gs: "
            "its merged messages count in the window of their earliest event; give the "
            "producer the worker's GRIDALARM_WINDOW (and GRIDALARM_LATENESS)",
            message.source or "(no source)",
            message.window,
            self.windower.config.size,
        )

    def _adopt(self, name: str) -> None:
        record = self.load_stream(name)
        if record:
            self.streams[name] = StreamState.from_json(orjson.loads(record))
            self.state.streams.add(name)
