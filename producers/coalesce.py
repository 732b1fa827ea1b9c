"""Coalescing at the source: counter events of one stream, type and window slot become one message.

Why: the worker pays per message (Faust's machinery, about 11,000 messages/s on a small
machine), not per event, and the event contract carries a count ``n``. So the producers' sink
holds counter events for a linger interval and sends each (stream, type, slot) as one message
with ``n`` = their count and the earliest ``ts`` (DESIGN.md, "Messages").

What must not change is what the worker makes of them: every window's counts, its ``events`` and
``late`` counts, and which events are dead-lettered as late, exactly as one message per event
would give. Counts are sums, so merging is free as long as each event meets the same close
boundary as it would have alone. The worker's boundary is per partition: the largest event time
seen minus the lateness, floored to the window. So per partition :class:`Coalescer` keeps the
largest valid event time it has *taken* (what the worker would have seen one message per event)
and holds messages only while the boundary that time gives stays where it is:

1. A message that moves the boundary is held like any other, then the partition is flushed:
   everything held goes out in the order of each group's first event, so every held event meets
   the boundary in force before that message, as it would have alone.
2. A flush whose messages carry less than the largest time taken (a merged message has the
   earliest ``ts`` of its events) ends with a heartbeat to that partition at that time: the
   worker's watermark then stands exactly where one message per event would have left it, and
   it closes the same windows at the same point of the sequence.
3. Streams are first seen in the same order; gauge samples (never merged) and heartbeats keep
   their place; what the worker would reject (judged by the worker's own parser) passes through
   in its place, byte for byte, and never moves the boundary.

A flush at any other moment (the linger, the sink's heartbeats and checkpoints, a cap) is always
safe, so the linger only bounds how long an event waits.

Assumed: one producer writes a partition's events. Where several do, windows already depend on
how their messages interleave, and coalescing moves each by at most the linger, as Kafka's own
linger does. The producer must be given the worker's window and lateness (the same
``GRIDALARM_WINDOW`` and ``GRIDALARM_LATENESS``): a merged message carries its window in
``attrs.window`` and a worker with another one logs a warning. A merged message keeps the
earliest member's ``source`` and, in ``attrs.eids``, every member's ``attrs.eid`` (a restarted
producer reads them back so as not to send an event twice); other ``attrs`` of the members are
not kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gridalarm.config import Settings
from gridalarm.messages import (
    VERSION,
    Event,
    Heartbeat,
    InvalidMessage,
    TimeBounds,
    decode_object,
    dumps,
    event_of,
    is_plain_counter,
)
from gridalarm.stream.windows import WindowConfig


class Out(NamedTuple):
    """One message to send: its key and value; ``heartbeat`` for a partition heartbeat."""

    key: bytes | None
    value: bytes
    heartbeat: bool = False


MAX_N = 1_000_000_000  # the event schema's bound on n


@dataclass(frozen=True, slots=True)
class CoalesceConfig:
    """How the sink coalesces: ``linger`` seconds of wall time at most between flushes; the
    worker's ``window``, ``lateness``, ``max_future`` and ``max_bytes`` (they decide what it
    takes and how it closes windows); ``source`` names the partition heartbeats it sends.
    ``max_held`` messages held in one partition flush it early (a bound on memory)."""

    linger: float = 1.0
    window: float = 3600.0
    lateness: float = 30.0
    max_future: float = 86_400.0
    max_bytes: int = 1_000_000
    source: str = "gridalarm"
    max_held: int = 50_000

    def __post_init__(self) -> None:
        if not (self.linger > 0 and math.isfinite(self.linger)):
            raise ValueError("coalesce linger must be > 0 (or coalescing off)")
        if self.max_held < 1:
            raise ValueError("max_held must be >= 1")

    @classmethod
    def from_settings(cls, settings: Settings, source: str) -> CoalesceConfig | None:
        """The coalescing of ``settings`` (None when ``coalesce`` is off)."""
        if not settings.coalesce:
            return None
        return cls(
            linger=settings.coalesce,
            window=settings.window,
            lateness=settings.lateness,
            max_future=settings.max_future,
            max_bytes=settings.max_message_bytes,
            source=source or "gridalarm",
        )


@dataclass(slots=True)
class _Group:
    """Counter events held as one message. ``value`` is the first event's bytes, sent as they
    are while the group has one member."""

    key: bytes | None
    value: bytes
    data: dict[str, Any]
    ts: float  # earliest event time
    ts_raw: Any  # its ``ts`` as it came (a string re-formatted could round)
    n: int
    members: int = 1
    eids: list[str] = field(default_factory=list)
    eid_bytes: int = 0

    def message(self, window: float) -> bytes:
        if self.members == 1:
            return self.value
        data = self.data
        merged: dict[str, Any] = {
            "v": VERSION,
            "ts": self.ts_raw,
            "stream": data["stream"],
            "type": data["type"],
            "n": self.n,
        }
        if "source" in data:
            merged["source"] = data["source"]
        # The window it was coalesced with: a worker with another window says so.
        attrs: dict[str, Any] = {"window": window}
        if self.eids:
            attrs["eids"] = self.eids
        merged["attrs"] = attrs
        return dumps(merged)


@dataclass(slots=True)
class _Single:
    """A message held in its place and sent unchanged: a gauge sample, a heartbeat, or one the
    worker will reject. ``ts`` is its event time when valid (None when the worker rejects it)."""

    key: bytes | None
    value: bytes
    ts: float | None


@dataclass(slots=True)
class _Partition:
    held: dict[Any, _Group | _Single] = field(default_factory=dict)  # in order of arrival
    singles: int = 0  # a unique key for each single held
    taken: float = -math.inf  # largest valid event time taken
    taken_raw: Any = None
    boundary: float = -math.inf  # the worker's close boundary that ``taken`` gives
    sent: float = -math.inf  # largest valid event time sent


@dataclass(slots=True)
class CoalesceStats:
    taken: int = 0  # messages taken
    sent: int = 0  # messages given back to send (not counting partition heartbeats)
    merged: int = 0  # messages that joined a group held before them
    heartbeats: int = 0  # partition heartbeats that restored a watermark
    flushes: int = 0  # partitions flushed because their close boundary moved


class Coalescer:
    """Holds and merges the messages of each partition; pure, no Kafka, no clock of its own.

    :meth:`take` a message (its partition, key and value bytes) and send what it returns, in
    order; :meth:`drain` a partition (or :meth:`drain_all`) at the linger and before anything
    else goes to the partition (the sink's heartbeats); tell :meth:`heartbeat_sent` about
    those heartbeats.

    >>> from gridalarm.messages import dumps
    >>> c = Coalescer(CoalesceConfig(window=60, lateness=0))
    >>> def ev(ts): return dumps({"v": 1, "ts": ts, "stream": "s", "type": "JobHeldEvent"})
    >>> for out in c.take(0, b"s", ev(1_700_000_000)): print(out.value.decode())  # moves it
    {"v":1,"ts":1700000000,"stream":"s","type":"JobHeldEvent"}
    >>> c.take(0, b"s", ev(1_700_000_001)), c.take(0, b"s", ev(1_700_000_002))
    ([], [])
    >>> for out in c.drain(0): print(out.value.decode())
    {"v":1,"ts":1700000001,"stream":"s","type":"JobHeldEvent","n":2,"attrs":{"window":60}}
    {"v":1,"ts":1700000002,"heartbeat":true,"source":"gridalarm"}
    """

    def __init__(self, config: CoalesceConfig) -> None:
        self.config = config
        self.stats = CoalesceStats()
        self._bounds = TimeBounds(max_future=config.max_future)
        self._partitions: dict[int, _Partition] = {}
        # Group members carry eids at most this many bytes: a merged message stays well inside
        # the worker's size limit.
        self._eid_budget = config.max_bytes // 4
        # The worker's own window arithmetic (slots, close boundary), not a copy of it.
        self._windows = WindowConfig(size=config.window, lateness=config.lateness, features=())
        # As the wire has it: a whole number of seconds prints as an integer.
        window = config.window
        self._window: float | int = int(window) if window == int(window) else window

    def take(
        self,
        partition: int,
        key: bytes | None,
        value: bytes,
        data: dict[str, Any] | None = None,
    ) -> list[Out]:
        """Hold ``value`` (keyed ``key``) for ``partition``; return what must go out now.

        ``data`` may be the dict ``value`` was serialised from: a plain counter event is then
        judged on it, without decoding ``value`` again (its fields are JSON's own types, so the
        worker decodes the same values).
        """
        self.stats.taken += 1
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        try:
            plain = (
                data is not None and len(value) <= self.config.max_bytes and is_plain_counter(data)
            )
            if not plain:
                data = decode_object(value, self.config.max_bytes)
            assert data is not None
            message = event_of(data, self._bounds, plain=plain)
        except InvalidMessage:
            # The worker dead-letters it: it moves nothing, so it only needs its place.
            self._hold_single(part, _Single(key, value, None))
            return self._drain(part) if len(part.held) >= self.config.max_held else []
        out: list[Out] = []
        if isinstance(message, Heartbeat) or message.metrics is not None:
            self._hold_single(part, _Single(key, value, message.ts))
        else:
            out = self._hold_event(part, key, value, data, message)
        if self._advance(part, message.ts, data["ts"]):
            self.stats.flushes += 1
            return out + self._drain(part)
        if len(part.held) >= self.config.max_held:
            return out + self._drain(part)
        return out

    def drain(self, partition: int) -> list[Out]:
        """Everything held for ``partition``, in order, with the heartbeat that restores its
        watermark when needed."""
        part = self._partitions.get(partition)
        return self._drain(part) if part is not None else []

    def drain_all(self) -> list[tuple[int, list[Out]]]:
        """:meth:`drain` of every partition that holds something."""
        return [
            (partition, self._drain(part))
            for partition, part in self._partitions.items()
            if part.held
        ]

    def heartbeat_sent(self, partitions: tuple[int, ...], ts: float, ts_raw: Any) -> None:
        """The sink sent a heartbeat at ``ts`` (wire value ``ts_raw``) to ``partitions``, after
        draining them: the worker has seen that time there."""
        for partition in partitions:
            part = self._partitions.get(partition)
            if part is None:
                part = self._partitions[partition] = _Partition()
            part.sent = max(part.sent, ts)
            self._advance(part, ts, ts_raw)

    # -- internals -------------------------------------------------------------------------

    def _advance(self, part: _Partition, ts: float, ts_raw: Any) -> bool:
        """Take event time ``ts`` (wire value ``ts_raw``) into the largest time taken; True
        when the worker's close boundary for the partition moved with it."""
        if ts <= part.taken:
            return False
        part.taken, part.taken_raw = ts, ts_raw
        boundary = self._windows.start_of(ts - self._windows.lateness)
        if boundary <= part.boundary:
            return False
        part.boundary = boundary
        return True

    def _hold_single(self, part: _Partition, single: _Single) -> None:
        part.singles += 1
        part.held[part.singles] = single

    def _hold_event(
        self,
        part: _Partition,
        key: bytes | None,
        value: bytes,
        data: dict[str, Any],
        event: Event,
    ) -> list[Out]:
        slot = self._windows.start_of(event.ts)
        # Source too: the worker counts events by (source, type) in its metrics.
        group_key = (event.stream, event.kind, slot, event.source)
        eids = _eids(data)
        eid_bytes = sum(len(eid) + 3 for eid in eids)  # quoted, with a comma
        out: list[Out] = []
        group = part.held.get(group_key)
        if isinstance(group, _Group):
            if (
                group.n + event.n <= MAX_N
                and group.eid_bytes + eid_bytes <= self._eid_budget
                and key == group.key
            ):
                group.n += event.n
                group.members += 1
                group.eids.extend(eids)
                group.eid_bytes += eid_bytes
                if event.ts < group.ts:
                    group.ts, group.ts_raw = event.ts, data["ts"]
                self.stats.merged += 1
                return out
            # Full: send all held (so order holds), then start the group afresh.
            out = self._drain(part)
        part.held[group_key] = _Group(
            key=key,
            value=value,
            data=data,
            ts=event.ts,
            ts_raw=data["ts"],
            n=event.n,
            eids=eids,
            eid_bytes=eid_bytes,
        )
        return out

    def _drain(self, part: _Partition) -> list[Out]:
        out: list[Out] = []
        sent = part.sent
        for item in part.held.values():
            if isinstance(item, _Group):
                out.append(Out(item.key, item.message(self._window)))
                sent = max(sent, item.ts)
            else:
                out.append(Out(item.key, item.value))
                if item.ts is not None:
                    sent = max(sent, item.ts)
        self.stats.sent += len(out)
        part.held.clear()
        if sent < part.taken:
            # The merged messages carry their earliest times: bring the watermark to where
            # one message per event would have left it (its wire value, not a re-formatted one).
            heartbeat = {
                "v": VERSION,
                "ts": part.taken_raw,
                "heartbeat": True,
                "source": self.config.source,
            }
            out.append(Out(None, dumps(heartbeat), heartbeat=True))
            self.stats.heartbeats += 1
            sent = part.taken
        part.sent = sent
        return out


def _eids(data: dict[str, Any]) -> list[str]:
    """The event ids a message carries: ``attrs.eid``, or a merged message's ``attrs.eids``."""
    attrs = data.get("attrs")
    if not isinstance(attrs, dict):
        return []
    eid = attrs.get("eid")
    if isinstance(eid, str):
        return [eid]
    eids = attrs.get("eids")
    if isinstance(eids, list):
        return [eid for eid in eids if isinstance(eid, str)]
    return []


__all__ = ["MAX_N", "CoalesceConfig", "CoalesceStats", "Coalescer", "Out"]
