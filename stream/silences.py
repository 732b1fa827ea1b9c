"""Silences (maintenance windows): which windows' alerts are recorded as ``suppressed``.

A silence names a glob over stream ids (``fnmatch``, case-sensitive) and a span of event time
``[from, until)``; an alert message about a window of a matching stream whose *start* lies in
that span is still published, with state ``suppressed`` and the silence's id, and is never
routed (see :mod:`gridalarm.stream.alerting` for incidents that outlive a silence).

Silences live on the compacted ``<prefix>.silences`` topic keyed by id, so the topic's latest
message per key is the current set; removing a silence writes a tombstone. This module is the
pure part: messages, parsing and matching. The worker's reader is
:mod:`gridalarm.stream.silence_feed`; the CLI is ``gridalarm silence``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gridalarm.messages import VERSION, InvalidMessage, validate
from gridalarm.timeutil import format_time, parse_time


class SilenceError(ValueError):
    """A silence that cannot be built or read; one line for the operator."""


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence; ``start`` is the message's ``from`` (a Python keyword)."""

    id: str
    stream: str  # glob over stream ids
    start: float
    until: float
    reason: str
    created: float
    by: str

    def covers(self, stream: str, window_start: float) -> bool:
        """Whether the window of ``stream`` starting at ``window_start`` lies in this silence."""
        return self.start <= window_start < self.until and fnmatch.fnmatchcase(stream, self.stream)

    def to_message(self) -> dict[str, Any]:
        """The silence as it goes on the wire."""
        return {
            "v": VERSION,
            "id": self.id,
            "stream": self.stream,
            "from": format_time(self.start),
            "until": format_time(self.until),
            "reason": self.reason,
            "created": format_time(self.created),
            "by": self.by,
        }


def new_silence(
    silence_id: str, stream: str, start: float, until: float, reason: str, by: str, created: float
) -> Silence:
    """A checked silence; raises :class:`SilenceError` naming what is wrong."""
    if not until > start:
        raise SilenceError(
            f"until {format_time(until)} is not after from {format_time(start)}: "
            "a silence needs a span of time"
        )
    silence = Silence(silence_id, stream, start, until, reason, created, by)
    try:
        validate("silence", silence.to_message())
    except InvalidMessage as err:
        raise SilenceError(f"silence {silence_id!r}: {err.detail}") from None
    return silence


def parse_silence(value: bytes) -> Silence:
    """A silence from its message bytes; raises :class:`SilenceError` for a bad one."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise SilenceError(f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise SilenceError("not a JSON object")
    try:
        validate("silence", data)
    except InvalidMessage as err:
        raise SilenceError(err.detail) from None
    return Silence(
        id=data["id"],
        stream=data["stream"],
        start=parse_time(data["from"]),
        until=parse_time(data["until"]),
        reason=data["reason"],
        created=parse_time(data["created"]),
        by=data["by"],
    )


class Silences:
    """The current silences by id: the latest message per key of the silences topic."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {s.id: s for s in silences}
        self._ordered: tuple[Silence, ...] = ()
        self._reorder()

    def apply(self, key: bytes | None, value: bytes | None) -> Silence | None:
        """Apply one message of the topic: a silence is added or replaced, a tombstone removes
        its key. Returns the silence added (None for a tombstone); raises :class:`SilenceError`
        for a message that is not a silence or whose id is not its key (it changes nothing)."""
        if key is None:
            raise SilenceError("a message without a key (silences are keyed by id)")
        name = key.decode("utf-8", "replace")
        if value is None:
            self._by_id.pop(name, None)
            self._reorder()
            return None
        silence = parse_silence(value)
        if silence.id != name:
            raise SilenceError(f"message id {silence.id!r} under key {name!r}")
        self._by_id[name] = silence
        self._reorder()
        return silence

    def _reorder(self) -> None:
        # Earliest start first, then id: when silences overlap, the same one is named for a
        # window in every run, whatever order their messages came in.
        self._ordered = tuple(sorted(self._by_id.values(), key=lambda s: (s.start, s.id)))

    def matching(self, stream: str, window_start: float) -> Silence | None:
        """The silence that covers this window of ``stream``, if any."""
        for silence in self._ordered:
            if silence.start > window_start:
                break  # sorted by start: none later can cover it
            if silence.covers(stream, window_start):
                return silence
        return None

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def current(self, now: float) -> list[Silence]:
        """The silences that have not ended at ``now`` (active or still to come)."""
        return [s for s in self._ordered if s.until > now]

    def __iter__(self) -> Iterator[Silence]:
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)
