"""Message contracts: the JSON Schema files, validation, event parsing and message builders.

Each schema is checked against the Draft-07 metaschema, and every example below is run through
both the fastjsonschema validator the worker uses (gridalarm.messages.validate) and the reference
implementation (jsonschema), which must agree with each other and with the expected verdict.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest

from gridalarm.messages import (
    MIN_EVENT_TIME,
    SCHEMA_NAMES,
    Event,
    Heartbeat,
    InvalidMessage,
    TimeBounds,
    alert_id,
    deadletter_message,
    event_message,
    heartbeat_message,
    is_plain_counter,
    parse_event,
    schema,
    validate,
)

NOON = 1_709_294_400.0  # 2024-03-01T12:00:00Z
BOUNDS = TimeBounds(max_future=3600.0, clock=lambda: NOON + 60.0)

# A strict RFC 3339 date-time (what "format": "date-time" means), for jsonschema, which ships
# no date-time checker of its own without an extra package.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


def _schema_files() -> dict[str, dict[str, Any]]:
    """The schema documents as the package ships them, read afresh."""
    folder = resources.files("gridalarm.schemas")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


SCHEMA_FILES = _schema_files()


def reference(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(SCHEMA_FILES[name], format_checker=FORMATS)


def reference_ok(name: str, message: Any) -> bool:
    return reference(name).is_valid(message)


def ours_ok(name: str, message: Any) -> bool:
    try:
        validate(name, message)
    except InvalidMessage as err:
        assert err.reason == "schema"
        assert err.detail
        return False
    return True


def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``base`` with ``fields`` set; a field set to ``DROP`` is removed."""
    message = copy.deepcopy(base)
    for key, value in fields.items():
        if value is DROP:
            message.pop(key, None)
        else:
            message[key] = value
    return message


DROP = object()

# --- examples ---------------------------------------------------------------------------------

COUNTER = {
    "v": 1,
    "ts": "2024-03-01T12:00:00Z",
    "stream": "schedd:fifebatch1",
    "type": "JobHeldEvent",
    "n": 1,
    "source": "eventlog:fifebatch1",
    "attrs": {"cluster": 123, "proc": 0},
}
GAUGE = {"v": 1, "ts": NOON, "stream": "site:fnal", "metrics": {"running": 1200, "idle": 35.5}}
HEARTBEAT = {"v": 1, "ts": "2024-03-01T12:00:00Z", "heartbeat": True, "source": "replay:file"}
WINDOW = {
    "v": 1,
    "stream": "schedd:fifebatch1",
    "start": "2024-03-01T12:00:00Z",
    "end": "2024-03-01T13:00:00Z",
    "features": {"ExecuteEvent": 210, "JobHeldEvent": 4, "load": 0.75},
    "events": 214,
    "late": 1,
}
EXPLAIN = [{"feature": "JobHeldEvent", "observed": 80, "expected": 4.1, "share": 0.93}]
SCORE = {
    "v": 1,
    "stream": "schedd:fifebatch1",
    "start": "2024-03-01T12:00:00Z",
    "end": "2024-03-01T13:00:00Z",
    "score": 72.5,
    "anomalous": True,
    "model": "baseline@2",
    "explain": EXPLAIN,
}
ALERT = {
    "v": 1,
    "alert_id": alert_id("schedd:fifebatch1", NOON, "baseline@2"),
    "state": "open",
    "stream": "schedd:fifebatch1",
    "since": "2024-03-01T12:00:00Z",
    "start": "2024-03-01T12:00:00Z",
    "end": "2024-03-01T13:00:00Z",
    "score": 72.5,
    "severity": "warning",
    "explain": EXPLAIN,
    "model": "baseline@2",
}
DEADLETTER = {
    "v": 1,
    "reason": "bad_json",
    "detail": "unexpected character",
    "topic": "gridalarm.events",
    "partition": 3,
    "offset": 1234,
    "raw": base64.b64encode(b"{oops").decode(),
    "raw_bytes": 5,
    "stream": "schedd:fifebatch1",
    "at": "2024-03-01T12:00:01.500Z",
}
SILENCE = {
    "v": 1,
    "id": "fifebatch-upgrade",
    "stream": "schedd:fifebatch*",
    "from": "2024-03-01T12:00:00Z",
    "until": "2024-03-01T16:00:00Z",
    "reason": "schedd upgrade",
    "created": "2024-03-01T11:00:00Z",
    "by": "cli:alice",
}
LABEL = {
    "v": 1,
    "alert_id": ALERT["alert_id"],
    "label": "confirmed",
    "stream": "schedd:fifebatch1",
    "since": "2024-03-01T12:00:00Z",
    "end": "2024-03-01T14:00:00Z",
    "model": "baseline@2",
    "at": "2024-03-01T15:00:00Z",
    "by": "dashboard",
    "note": "the schedd's disk was full",
}

VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("event", "counter", COUNTER),
    ("event", "counter, minimal", {"v": 1, "ts": NOON, "stream": "s", "type": "ExecuteEvent"}),
    ("event", "counter, offset and fraction", changed(COUNTER, ts="2024-03-01T13:00:00.25+01:00")),
    ("event", "counter, epoch float", changed(COUNTER, ts=NOON + 0.5, n=1000)),
    ("event", "gauge", GAUGE),
    ("event", "heartbeat", HEARTBEAT),
    ("event", "heartbeat, epoch", changed(HEARTBEAT, ts=int(NOON))),
    ("window", "window", WINDOW),
    ("window", "silent window", changed(WINDOW, features={"ExecuteEvent": 0}, events=0, late=0)),
    ("score", "anomalous", SCORE),
    ("score", "normal", changed(SCORE, score=0, anomalous=False, explain=[])),
    ("alert", "open", ALERT),
    ("alert", "update", changed(ALERT, state="update", severity="critical", score=100)),
    ("alert", "resolved", changed(ALERT, state="resolved", explain=[], score=3.2)),
    ("alert", "suppressed", changed(ALERT, state="suppressed", silence="fifebatch-upgrade")),
    ("deadletter", "full", DEADLETTER),
    ("deadletter", "minimal", changed(DEADLETTER, raw_bytes=DROP, stream=DROP, at=DROP)),
    ("deadletter", "late", changed(DEADLETTER, reason="late", offset=0, partition=0)),
    ("silence", "full", SILENCE),
    ("silence", "glob with brackets", changed(SILENCE, stream="schedd:fifebatch[12]")),
    ("label", "full", LABEL),
    ("label", "minimal", changed(LABEL, stream=DROP, since=DROP, end=DROP, model=DROP, note=DROP)),
    ("label", "false positive", changed(LABEL, label="false-positive")),
]

INVALID: list[tuple[str, str, Any]] = [
    # event: missing fields
    ("event", "missing v", changed(COUNTER, v=DROP)),
    ("event", "missing ts", changed(COUNTER, ts=DROP)),
    ("event", "missing stream", changed(COUNTER, stream=DROP)),
    ("event", "stream without type or metrics", changed(COUNTER, type=DROP)),
    ("event", "heartbeat without source", changed(HEARTBEAT, source=DROP)),
    # event: wrong types and values
    ("event", "wrong v", changed(COUNTER, v=2)),
    ("event", "v as string", changed(COUNTER, v="1")),
    ("event", "ts boolean", changed(COUNTER, ts=True)),
    ("event", "ts free text", changed(COUNTER, ts="noon on Friday")),
    ("event", "ts date only", changed(COUNTER, ts="2024-03-01")),
    ("event", "ts object", changed(COUNTER, ts={"s": NOON})),
    ("event", "stream number", changed(COUNTER, stream=17)),
    ("event", "stream empty", changed(COUNTER, stream="")),
    ("event", "type empty", changed(COUNTER, type="")),
    ("event", "n zero", changed(COUNTER, n=0)),
    ("event", "n fraction", changed(COUNTER, n=1.5)),
    ("event", "n string", changed(COUNTER, n="3")),
    ("event", "attrs not an object", changed(COUNTER, attrs="cluster=1")),
    ("event", "gauge value text", changed(GAUGE, metrics={"running": "many"})),
    ("event", "gauge without metrics", changed(GAUGE, metrics={})),
    ("event", "heartbeat false", changed(HEARTBEAT, heartbeat=False)),
    # event: forbidden combinations
    ("event", "type and metrics", changed(COUNTER, metrics={"x": 1})),
    ("event", "heartbeat with stream", changed(HEARTBEAT, stream="s", type="X")),
    ("event", "heartbeat with type", changed(HEARTBEAT, type="X")),
    ("event", "not an object", [COUNTER]),
    # window
    ("window", "missing late", changed(WINDOW, late=DROP)),
    ("window", "missing features", changed(WINDOW, features=DROP)),
    ("window", "wrong v", changed(WINDOW, v=2)),
    ("window", "events negative", changed(WINDOW, events=-1)),
    ("window", "events fraction", changed(WINDOW, events=2.5)),
    ("window", "feature value text", changed(WINDOW, features={"ExecuteEvent": "3"})),
    ("window", "start not a time", changed(WINDOW, start="yesterday")),
    ("window", "start epoch", changed(WINDOW, start=NOON)),
    ("window", "extra property", changed(WINDOW, score=3)),
    ("window", "empty stream", changed(WINDOW, stream="")),
    # score
    ("score", "missing model", changed(SCORE, model=DROP)),
    ("score", "missing explain", changed(SCORE, explain=DROP)),
    ("score", "wrong v", changed(SCORE, v=0)),
    ("score", "score above 100", changed(SCORE, score=100.5)),
    ("score", "score negative", changed(SCORE, score=-1)),
    ("score", "anomalous as text", changed(SCORE, anomalous="yes")),
    ("score", "model without version", changed(SCORE, model="baseline")),
    ("score", "explain share above 1", changed(SCORE, explain=[{**EXPLAIN[0], "share": 1.5}])),
    ("score", "explain item missing share", changed(SCORE, explain=[{"feature": "x"}])),
    ("score", "explain item extra key", changed(SCORE, explain=[{**EXPLAIN[0], "why": "x"}])),
    ("score", "extra property", changed(SCORE, severity="warning")),
    ("score", "end not a time", changed(SCORE, end="13:00")),
    # alert
    ("alert", "missing since", changed(ALERT, since=DROP)),
    ("alert", "missing alert_id", changed(ALERT, alert_id=DROP)),
    ("alert", "wrong v", changed(ALERT, v=2)),
    ("alert", "unknown state", changed(ALERT, state="closed")),
    ("alert", "unknown severity", changed(ALERT, severity="info")),
    ("alert", "alert_id not hex", changed(ALERT, alert_id="INCIDENT-1")),
    ("alert", "score as text", changed(ALERT, score="high")),
    ("alert", "explain not a list", changed(ALERT, explain={"feature": "x"})),
    ("alert", "extra property", changed(ALERT, anomalous=True)),
    # deadletter
    ("deadletter", "missing raw", changed(DEADLETTER, raw=DROP)),
    ("deadletter", "missing reason", changed(DEADLETTER, reason=DROP)),
    ("deadletter", "wrong v", changed(DEADLETTER, v=2)),
    ("deadletter", "unknown reason", changed(DEADLETTER, reason="oops")),
    ("deadletter", "negative offset", changed(DEADLETTER, offset=-1)),
    ("deadletter", "partition as text", changed(DEADLETTER, partition="3")),
    ("deadletter", "raw as bytes list", changed(DEADLETTER, raw=[123, 111])),
    ("deadletter", "extra property", changed(DEADLETTER, key="schedd:1")),
    ("alert", "empty silence id", changed(ALERT, state="suppressed", silence="")),
    # silence
    ("silence", "missing until", changed(SILENCE, until=DROP)),
    ("silence", "missing reason", changed(SILENCE, reason=DROP)),
    ("silence", "id with a space", changed(SILENCE, id="fifebatch upgrade")),
    ("silence", "empty glob", changed(SILENCE, stream="")),
    ("silence", "from not a time", changed(SILENCE, **{"from": "tonight"})),
    ("silence", "extra property", changed(SILENCE, active=True)),
    # label
    ("label", "unknown verdict", changed(LABEL, label="maybe")),
    ("label", "missing by", changed(LABEL, by=DROP)),
    ("label", "alert_id not hex", changed(LABEL, alert_id="INCIDENT-1")),
    ("label", "model without version", changed(LABEL, model="baseline")),
    ("label", "since not a time", changed(LABEL, since="last week")),
    ("label", "extra property", changed(LABEL, score=80)),
]


# --- the schema files -------------------------------------------------------------------------


def test_there_is_one_schema_file_per_message() -> None:
    assert set(SCHEMA_FILES) == set(SCHEMA_NAMES)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_file_is_a_valid_draft_07_schema(name: str) -> None:
    document = SCHEMA_FILES[name]
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(document)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_accessor_returns_the_file_content_even_after_validating(name: str) -> None:
    for kind, _, message in VALID:
        validate(kind, message)  # compiles every validator
    assert schema(name) == SCHEMA_FILES[name]


def test_unknown_schema_name_is_refused() -> None:
    with pytest.raises(KeyError):
        schema("heartbeat")


def test_every_message_kind_has_valid_and_invalid_examples() -> None:
    assert {name for name, _, _ in VALID} == set(SCHEMA_NAMES)
    assert {name for name, _, _ in INVALID} == set(SCHEMA_NAMES)
    for name in SCHEMA_NAMES:
        assert sum(1 for n, _, _ in INVALID if n == name) >= 5


@pytest.mark.parametrize(
    ("name", "message"), [(v[0], v[2]) for v in VALID], ids=[v[1] for v in VALID]
)
def test_valid_example_passes_both_validators(name: str, message: dict[str, Any]) -> None:
    assert reference_ok(name, message), list(reference(name).iter_errors(message))
    assert ours_ok(name, message)


@pytest.mark.parametrize(
    ("name", "message"), [(v[0], v[2]) for v in INVALID], ids=[f"{v[0]}: {v[1]}" for v in INVALID]
)
def test_invalid_example_fails_both_validators(name: str, message: Any) -> None:
    assert not reference_ok(name, message)
    assert not ours_ok(name, message)


def test_validation_error_names_the_field() -> None:
    with pytest.raises(InvalidMessage) as err:
        validate("event", changed(COUNTER, n=0))
    assert err.value.reason == "schema"
    assert err.value.detail.startswith("n ")
    with pytest.raises(InvalidMessage) as err:
        validate("event", changed(COUNTER, stream=DROP))
    assert "heartbeat" in err.value.detail  # the accepted forms are spelled out


# --- parsing events ---------------------------------------------------------------------------


def _parse(message: Any) -> Event | Heartbeat:
    return parse_event(orjson.dumps(message), BOUNDS)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-03-01T12:00:00Z", NOON),
        ("2024-03-01T12:00:00.250Z", NOON + 0.25),
        ("2024-03-01T13:00:00+01:00", NOON),
        ("2024-03-01T07:00:00-05:00", NOON),
        ("2024-03-01T13:00:00+0100", NOON),
        ("2024-03-01T12:00:00", NOON),  # no offset: UTC
        ("2024-03-01 12:00:00Z", NOON),
        ("2024-03-01T12:00Z", NOON),
        (int(NOON), NOON),
        (NOON + 0.25, NOON + 0.25),
    ],
)
def test_rfc3339_and_epoch_ts_both_parse(ts: str | float, expected: float) -> None:
    parsed = _parse(changed(COUNTER, ts=ts))
    assert isinstance(parsed, Event)
    assert parsed.ts == pytest.approx(expected, abs=1e-6)
    assert isinstance(parsed.ts, float)


def test_counter_event_parses_to_event() -> None:
    parsed = _parse(changed(COUNTER, n=7))
    assert parsed == Event(
        ts=NOON, stream="schedd:fifebatch1", kind="JobHeldEvent", n=7, source="eventlog:fifebatch1"
    )
    minimal = _parse({"v": 1, "ts": NOON, "stream": "s", "type": "X"})
    assert (minimal.n, minimal.source, minimal.metrics) == (1, "", None)


def test_gauge_event_parses_metrics_as_floats() -> None:
    parsed = _parse(GAUGE)
    assert isinstance(parsed, Event)
    assert parsed.kind is None
    assert parsed.metrics == {"running": 1200.0, "idle": 35.5}
    assert all(isinstance(v, float) for v in parsed.metrics.values())


def test_heartbeat_parses_to_heartbeat() -> None:
    assert _parse(HEARTBEAT) == Heartbeat(ts=NOON, source="replay:file")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "bad_json"),
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (b'{"v":1,"ts":1e400,"stream":"s","type":"X"}', "bad_json"),
        (b"[]", "schema"),
        (b"42", "schema"),
        (b"null", "schema"),
        (orjson.dumps(changed(COUNTER, n=0)), "schema"),
        (orjson.dumps(changed(COUNTER, ts="2024-02-30T12:00:00Z")), "bad_time"),
        (orjson.dumps(changed(COUNTER, ts="2024-03-01T25:00:00Z")), "bad_time"),
        (orjson.dumps(changed(COUNTER, ts=0)), "too_old"),
        (orjson.dumps(changed(COUNTER, ts=-1)), "too_old"),
        (orjson.dumps(changed(COUNTER, ts="1970-01-01T00:00:00Z")), "too_old"),
        (orjson.dumps(changed(COUNTER, ts="0001-01-01T00:00:00+01:00")), "too_old"),
        (orjson.dumps(changed(COUNTER, ts=NOON * 1000)), "future"),
        (orjson.dumps(changed(COUNTER, ts="9999-12-31T23:59:59Z")), "future"),
        (orjson.dumps(changed(HEARTBEAT, ts=NOON + 86_400)), "future"),
    ],
)
def test_parse_event_rejects_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        parse_event(raw, BOUNDS)
    assert err.value.reason == reason


def test_parse_event_size_limit_is_checked_on_the_raw_bytes() -> None:
    message = orjson.dumps(changed(COUNTER, attrs={"pad": "x" * 500}))
    assert isinstance(parse_event(message, BOUNDS, max_bytes=len(message)), Event)
    with pytest.raises(InvalidMessage) as err:
        parse_event(message, BOUNDS, max_bytes=len(message) - 1)
    assert err.value.reason == "too_large"


def test_time_bounds_are_inclusive() -> None:
    limit = BOUNDS.clock() + BOUNDS.max_future
    assert _parse(changed(COUNTER, ts=MIN_EVENT_TIME)).ts == MIN_EVENT_TIME
    assert _parse(changed(COUNTER, ts=limit)).ts == limit
    with pytest.raises(InvalidMessage, match="too_old"):
        _parse(changed(COUNTER, ts=MIN_EVENT_TIME - 0.5))
    with pytest.raises(InvalidMessage, match="future"):
        _parse(changed(COUNTER, ts=limit + 0.5))
    assert datetime.fromisoformat("1990-01-01T00:00:00+00:00").timestamp() == MIN_EVENT_TIME


# --- builders ---------------------------------------------------------------------------------


def test_event_and_heartbeat_builders_make_valid_messages_that_parse_back() -> None:
    counter = event_message(NOON + 1.5, "schedd:x", "JobEvictedEvent", n=3, source="sim", slot=2)
    validate("event", counter)
    assert counter["attrs"] == {"slot": 2}
    assert _parse(counter) == Event(
        ts=NOON + 1.5, stream="schedd:x", kind="JobEvictedEvent", n=3, source="sim"
    )
    single = event_message(NOON, "schedd:x", "ExecuteEvent")
    assert "n" not in single and "attrs" not in single
    beat = heartbeat_message(NOON, "replay")
    validate("event", beat)
    assert _parse(beat) == Heartbeat(ts=NOON, source="replay")


def test_alert_id_is_deterministic_hex_matching_the_schema() -> None:
    first = alert_id("schedd:a", NOON, "baseline@2")
    assert first == alert_id("schedd:a", NOON, "baseline@2")
    assert re.fullmatch(schema("alert")["properties"]["alert_id"]["pattern"], first)
    assert first != alert_id("schedd:a", NOON + 60, "baseline@2")
    assert first != alert_id("schedd:b", NOON, "baseline@2")
    assert first != alert_id("schedd:a", NOON, "baseline@3")


@pytest.mark.parametrize("raw", [b"{bad json", b"\x00\xff\xfe binary", b"x" * 70_000])
def test_deadletter_message_keeps_the_raw_bytes_in_base64(raw: bytes) -> None:
    message = deadletter_message(raw, "bad_json", "detail", "gridalarm.events", 5, 77)
    validate("deadletter", message)
    assert base64.b64decode(message["raw"]) == raw
    assert message["raw_bytes"] == len(raw)
    assert (message["topic"], message["partition"], message["offset"]) == (
        "gridalarm.events",
        5,
        77,
    )
    assert "stream" not in message
    assert reference_ok("deadletter", message)


def test_deadletter_message_of_a_tombstone_and_with_a_stream() -> None:
    message = deadletter_message(None, "late", "old", "t", 0, 0, stream="schedd:a")
    validate("deadletter", message)
    assert (message["raw"], message["raw_bytes"], message["stream"]) == ("", 0, "schedd:a")


# -- the fast path for plain counter events --------------------------------------------------

_FIELD_CHOICES: dict[str, tuple] = {
    "v": (1, 2, True, 1.0, "1", None),
    "ts": (
        "2025-06-02T08:00:00Z",
        "2025-06-02 08:00:00.123+02:00",
        "2025-06-02T08:00:00Z\n",
        "2025-06-02",
        "06/02/2025 08:00",
        "x" * 41,
        1_750_000_000,
        1.75e9,
        float("nan"),
        True,
        None,
        [],
    ),
    "stream": ("schedd:a", "", "s" * 256, "s" * 257, 7, None, True),
    "type": ("JobHeldEvent", "", "t" * 128, "t" * 129, 3, None),
    "n": (1, 5, 0, -1, 1_000_000_000, 1_000_000_001, 2.0, True, "2", None),
    "source": ("p", "s" * 256, "s" * 257, 1, None),
    "attrs": ({}, {"eid": "x"}, [], "a", None),
    "metrics": ({"load": 1.0}, None),
    "heartbeat": (True, None),
    "extra": ("anything", None),
}


def test_the_plain_counter_fast_path_never_passes_what_the_schema_refuses() -> None:
    rng = random.Random(3)
    plain = refused_by_schema = 0
    for _ in range(20_000):
        data = {}
        for field, choices in _FIELD_CHOICES.items():
            # Mostly the usual field, so that the fast path says yes often enough.
            value = choices[0] if rng.random() < 0.75 else rng.choice(choices)
            if value is not None and not (field in ("metrics", "heartbeat") and rng.random() < 0.9):
                data[field] = value
        try:
            validate("event", data)
        except InvalidMessage:
            refused_by_schema += 1
            assert not is_plain_counter(data), data
            continue
        plain += is_plain_counter(data)
    assert plain > 2_000 and refused_by_schema > 2_000


def test_producers_counter_events_take_the_fast_path() -> None:
    assert is_plain_counter(event_message(1.7e9, "schedd:a", "JobHeldEvent", source="p", eid="e"))
    assert is_plain_counter({"v": 1, "ts": 1.7e9, "stream": "a", "type": "X", "n": 3})
    assert not is_plain_counter({"v": 1, "ts": 1.7e9, "stream": "a", "metrics": {"x": 1.0}})
