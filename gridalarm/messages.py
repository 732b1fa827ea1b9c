"""Message contracts: parse, validate and build every message of DESIGN.md.

The JSON Schema files in ``gridalarm/schemas`` are the contract; this module compiles them
(fastjsonschema turns a schema into plain Python, fast enough for the worker's hot path) and
adds the checks a schema cannot express (time bounds). Producers and the worker both use it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import orjson

from gridalarm.timeutil import format_time, parse_time

VERSION = 1
SCHEMA_NAMES = ("event", "window", "score", "alert", "deadletter", "label", "silence")
# The earliest event time accepted: HTCondor is younger than this, and a ms/s or 0 mix-up
# lands before it.
MIN_EVENT_TIME = 631_152_000.0  # 1990-01-01T00:00:00Z


class InvalidMessage(ValueError):
    """A message that cannot be used. ``reason`` is one of the dead-letter reasons."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of message ``name`` as a dict."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = resources.files("gridalarm.schemas").joinpath(f"{name}.json").read_text("utf-8")
    return json.loads(text)


@cache
def validator(name: str):  # -> Callable[[Any], Any]
    """A compiled validator for message ``name``; raises ``fastjsonschema.JsonSchemaException``."""
    # fastjsonschema rewrites $refs in the dict it compiles: give it a copy of the cached one.
    return fastjsonschema.compile(copy.deepcopy(schema(name)), formats={"date-time": _is_rfc3339})


def _is_rfc3339(value: str) -> bool:
    try:
        parse_time(value)
    except ValueError:
        return False
    return "T" in value or " " in value


def validate(name: str, message: dict[str, Any]) -> None:
    """Raise :class:`InvalidMessage` (reason ``schema``) unless ``message`` fits schema ``name``."""
    try:
        validator(name)(message)
    except fastjsonschema.JsonSchemaException as err:
        raise InvalidMessage("schema", _schema_detail(err)) from None


@cache
def _ts_pattern() -> re.Pattern[str]:
    return re.compile(schema("event")["properties"]["ts"]["pattern"])


def is_plain_counter(data: dict[str, Any]) -> bool:
    """True for a counter event whose every field is plainly what the event schema asks.

    The schema check costs about 5 µs of fastjsonschema per message, most of a producer's
    coalescing and a share of the worker's parsing; nearly every message is a plain counter
    event, for which this check decides the same in a fraction of that. False means "ask the
    schema", never "invalid" (a unit test holds it to the schema's verdict).
    """
    if type(data.get("v")) is not int or data["v"] != 1 or "metrics" in data or "heartbeat" in data:
        return False
    ts = data.get("ts")
    kind, stream = data.get("type"), data.get("stream")
    if type(ts) is str:
        # No line break at all: the pattern's "$" would let one through at the end, and
        # fastjsonschema refuses it.
        if not 10 <= len(ts) <= 40 or "\n" in ts or _ts_pattern().search(ts) is None:
            return False
    elif type(ts) is not float and type(ts) is not int:
        return False
    if type(stream) is not str or not 1 <= len(stream) <= 256:
        return False
    if type(kind) is not str or not 1 <= len(kind) <= 128:
        return False
    n = data.get("n", 1)
    if type(n) is not int or not 1 <= n <= 1_000_000_000:
        return False
    source = data.get("source", "")
    attrs = data.get("attrs", {})
    return type(source) is str and len(source) <= 256 and type(attrs) is dict


def _schema_detail(err: fastjsonschema.JsonSchemaException) -> str:
    text = str(err.message).replace("data.", "", 1).replace("data ", "message ", 1)
    if getattr(err, "rule", None) == "anyOf":
        # "cannot be validated by any definition" says nothing to an operator: name the forms.
        text += " (event: stream+type; gauge: stream+metrics; heartbeat: heartbeat+source)"
    return text[:300]


@dataclass(frozen=True, slots=True)
class Event:
    """A counter event (``kind`` = event type, ``n``) or a gauge sample (``metrics``)."""

    ts: float
    stream: str
    kind: str | None = None
    n: int = 1
    metrics: dict[str, float] | None = None
    source: str = ""
    # The window a producer coalesced with (``attrs.window`` of a message with n > 1): the
    # worker warns when it is not its own, since the message's events may span its windows.
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Producer heartbeat: carries no data, advances its partition's watermark to ``ts``."""

    ts: float
    source: str


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Event times outside [MIN_EVENT_TIME, now + max_future] are rejected."""

    max_future: float = 86_400.0
    clock: Any = field(default=time.time, compare=False)


def parse_event(
    raw: bytes | None, bounds: TimeBounds, max_bytes: int = 1_000_000
) -> Event | Heartbeat:
    """Parse one value from the events topic, or raise :class:`InvalidMessage`."""
    return event_of(decode_object(raw, max_bytes), bounds)


def decode_object(raw: bytes | None, max_bytes: int = 1_000_000) -> dict[str, Any]:
    """The JSON object of one value from the events topic, or raise :class:`InvalidMessage`."""
    if raw is None:
        raise InvalidMessage("bad_json", "empty message (tombstone)")
    if len(raw) > max_bytes:
        raise InvalidMessage("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise InvalidMessage("bad_json", str(err)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidMessage("schema", f"expected a JSON object, got {type(data).__name__}")
    return data


def event_of(data: dict[str, Any], bounds: TimeBounds, plain: bool = False) -> Event | Heartbeat:
    """The event or heartbeat a decoded events-topic object stands for, or raise
    :class:`InvalidMessage` (schema, time). The producers' coalescing judges with it too, so
    that it merges only what the worker would take. ``plain``: the caller found
    :func:`is_plain_counter` true already."""
    if not plain and not is_plain_counter(data):
        validate("event", data)
    try:
        ts = parse_time(data["ts"])
    except (ValueError, OverflowError) as err:
        raise InvalidMessage("bad_time", str(err)[:200]) from None
    if ts != ts or ts < MIN_EVENT_TIME:  # NaN, or before 1990 (the epoch and earlier too)
        raise InvalidMessage("too_old", f"ts {data['ts']!r} is before 1990-01-01")
    if ts > bounds.clock() + bounds.max_future:
        raise InvalidMessage(
            "future", f"ts {data['ts']!r} is more than {bounds.max_future:g}s ahead of now"
        )
    if data.get("heartbeat"):
        return Heartbeat(ts=ts, source=data["source"])
    metrics = data.get("metrics")
    n = int(data.get("n", 1))
    window = None
    if n > 1:
        attrs = data.get("attrs")
        if isinstance(attrs, dict):
            window = attrs.get("window")
            window = float(window) if isinstance(window, int | float) else None
    return Event(
        ts=ts,
        stream=data["stream"],
        kind=data.get("type"),
        n=n,
        metrics={k: float(v) for k, v in metrics.items()} if metrics else None,
        source=data.get("source", ""),
        window=window,
    )


def event_message(
    ts: float, stream: str, kind: str, n: int = 1, source: str = "", **attrs: Any
) -> dict[str, Any]:
    """A counter event as it goes on the wire."""
    message: dict[str, Any] = {"v": VERSION, "ts": format_time(ts), "stream": stream, "type": kind}
    if n != 1:
        message["n"] = n
    if source:
        message["source"] = source
    if attrs:
        message["attrs"] = attrs
    return message


def heartbeat_message(ts: float, source: str) -> dict[str, Any]:
    """A heartbeat as it goes on the wire."""
    return {"v": VERSION, "ts": format_time(ts), "heartbeat": True, "source": source}


def alert_id(stream: str, since: float, model: str) -> str:
    """Deterministic id of one incident: the same stream, start and model give the same id."""
    digest = hashlib.sha256(f"{stream}\x00{format_time(since)}\x00{model}".encode())
    return digest.hexdigest()[:24]


def deadletter_message(
    raw: bytes | None,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    stream: str | None = None,
) -> dict[str, Any]:
    """A dead letter keeps the whole raw value (base64) with where it came from and why."""
    value = raw or b""
    message: dict[str, Any] = {
        "v": VERSION,
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "raw": base64.b64encode(value).decode("ascii"),
        "raw_bytes": len(value),
        "at": format_time(time.time()),
    }
    if stream is not None:
        message["stream"] = stream
    return message


def dumps(message: dict[str, Any]) -> bytes:
    """Serialise a message for Kafka."""
    return orjson.dumps(message)
