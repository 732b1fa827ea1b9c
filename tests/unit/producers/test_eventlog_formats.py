"""Every real log in ../shared/data/htcondor-eventlogs, in text, JSON and XML: the EventLog reader
gives exactly the events htcondor2.JobEventLog reads (count per type per stream, and in order).

The JSON and XML copies are made here the way HTCondor writes those formats (ClassAdJsonUnParser:
one pretty-printed object per event; ClassAdXMLUnParser: ``<c>`` blocks after the XML prolog),
from what htcondor2 reads of the text log, with EventTime set to the reader's time of the text
event (htcondor2 gives ``MM/DD`` stamps the current year, which would be a future date here).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import htcondor2
import pytest
from shared_data import SHARED_DATA, event_logs, require

from gridalarm.messages import Event, TimeBounds, dumps, parse_event
from gridalarm.producers.eventlog import (
    Item,
    ReadConfig,
    StreamRule,
    read_events,
    schedd_name,
)
from gridalarm.timeutil import format_time, parse_time

DATA = SHARED_DATA / "htcondor-eventlogs"
LOGS = event_logs()  # fails the collection when the logs are missing
UTC = ReadConfig(timezone="UTC", source="eventlog:test")
EVERY = ReadConfig(timezone="UTC", source="eventlog:test", ad_info="event")  # a message per event
TRIGGER = ReadConfig(timezone="UTC", source="eventlog:test", ad_info="trigger")
# An event header of the text format, at the start of a line; the legacy log's events of no job
# are (-01.-01.-01).
_HEADER = re.compile(rb"^(\d{3}) \(-?\d+\.-?\d+\.-?\d+\) ", re.MULTILINE)


def library_events(path: Path) -> list[htcondor2.JobEvent]:
    return list(htcondor2.JobEventLog(str(path)).events(0))


def job_events(events: list[htcondor2.JobEvent]) -> list[htcondor2.JobEvent]:
    """What the producer sends by default: every event but the ad-information (028) copies."""
    return [e for e in events if e["EventTypeNumber"] != 28]


def expected_counts(events: list[htcondor2.JobEvent]) -> Counter[tuple[str, str]]:
    """(stream, type) counts the producer must give by default: the log's first submit host
    (a 028 event's too) names the schedd stream, and each job event counts once."""
    host = next(schedd_name(e["SubmitHost"]) for e in events if "SubmitHost" in e)
    return Counter((f"schedd:{host}", e["MyType"]) for e in job_events(events))


def header_counts(log: Path) -> Counter[int]:
    """Events per event number, read off the text log's headers (neither htcondor2 nor the
    producer's reader): the independent count of what the log holds."""
    return Counter(int(m[1]) for m in _HEADER.finditer(log.read_bytes()))


def messages(items: list[Item]) -> list[dict[str, Any]]:
    assert [i.bad for i in items if i.bad is not None] == []
    return [i.message for i in items if i.message is not None]


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return f'<b v="{"t" if value else "f"}"/>'
    if isinstance(value, int):
        return f"<i>{value}</i>"
    if isinstance(value, float):
        return f"<r>{value!r}</r>"
    if isinstance(value, str):
        if value.startswith("/Expr(") and value.endswith(")/"):
            return f"<e>{escape(value[6:-2])}</e>"
        return f"<s>{escape(value)}</s>"
    if isinstance(value, dict):
        inner = "".join(f"<a n={quoteattr(k)}>{_xml_value(v)}</a>" for k, v in value.items())
        return f"<c>{inner}</c>"
    if isinstance(value, list):
        return "<l>" + "".join(_xml_value(v) for v in value) + "</l>"
    return "<un/>"


def convert(events: list[htcondor2.JobEvent], times: list[float], fmt: str) -> bytes:
    """The events as HTCondor's JSON or XML event log would hold them."""
    out = []
    if fmt == "xml":
        out.append('<?xml version="1.0"?>\n<!DOCTYPE classads SYSTEM "classads.dtd">\n<classads>\n')
    for event, ts in zip(events, times, strict=True):
        ad = json.loads(event._data.printJson())
        ad["EventTime"] = format_time(ts).removesuffix("Z")  # naive: the zone applies
        if fmt == "json":
            out.append(json.dumps(ad, indent=2) + "\n")
        else:
            body = "".join(f"    <a n={quoteattr(k)}>{_xml_value(v)}</a>\n" for k, v in ad.items())
            out.append(f"<c>\n{body}</c>\n")
    return "".join(out).encode()


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_text_logs_give_what_htcondor2_reads(log: Path) -> None:
    events = library_events(log)
    got = messages(list(read_events([log], UTC)))
    assert Counter((m["stream"], m["type"]) for m in got) == expected_counts(events)
    # In order, one message per job event, each job as the library says.
    assert [m["attrs"].get("job") for m in got] == [
        f"{e.cluster}.{e.proc}" if e.cluster >= 0 else None for e in job_events(events)
    ]
    # Stamps with a year are read as the library reads them (UTC here, so no zone shift).
    if not re.search(rb"^\d{3} \(\S+\) \d\d/\d\d ", log.read_bytes(), re.MULTILINE):
        for message, event in zip(got, job_events(events), strict=True):
            assert parse_time(message["ts"]) == parse_time(event["EventTime"] + "Z")
    # Every event has its own id; ids are byte offsets in the log.
    assert len({m["attrs"]["eid"] for m in got}) == len(got)
    # Each is an event message the worker takes.
    for message in got:
        parsed = parse_event(dumps(message), TimeBounds())
        assert isinstance(parsed, Event) and parsed.kind == message["type"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_json_and_xml_logs_give_what_htcondor2_reads(log: Path, fmt: str, tmp_path: Path) -> None:
    events = library_events(log)
    text = messages(list(read_events([log], UTC)))
    stamps = [parse_time(m["ts"]) for m in messages(list(read_events([log], EVERY)))]
    converted = tmp_path / f"{log.name}.{fmt}"
    converted.write_bytes(convert(events, stamps, fmt))
    # The copy is a log htcondor2 reads as the same events...
    again = library_events(converted)
    assert [(e.type, e.cluster, e.proc) for e in again] == [
        (e.type, e.cluster, e.proc) for e in events
    ]
    # ... and the producer reads it as htcondor2 does, and as it read the text.
    got = messages(list(read_events([converted], UTC)))
    assert Counter((m["stream"], m["type"]) for m in got) == expected_counts(again)
    strip = [{k: v for k, v in m.items() if k != "attrs"} for m in got]
    assert strip == [{k: v for k, v in m.items() if k != "attrs"} for m in text]
    assert [m["attrs"].get("job") for m in got] == [m["attrs"].get("job") for m in text]


def test_the_legacy_log_is_dated_in_the_past() -> None:
    log = require(DATA / "htcondor_condor_utils_test_condor.log")
    reference = min(log.stat().st_mtime, parse_time("2100-01-01T00:00:00Z"))
    got = messages(list(read_events([log], UTC)))
    assert all(parse_time(m["ts"]) <= reference for m in got)
    # The library dates the 12/29 events ahead of the file's own last write.
    assert any(e.timestamp > reference for e in library_events(log))


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_each_job_event_counts_once_by_default(log: Path) -> None:
    headers = header_counts(log)
    ad_info, jobs = headers[28], sum(headers.values()) - headers[28]
    default = list(read_events([log], UTC))
    assert len(messages(default)) == jobs  # no 028 copies
    assert not any(m["attrs"].get("adinfo") for m in messages(default))
    assert sum(i.skipped for i in default) == ad_info
    # Fermilab's count: the job events, and each 028 once more as its trigger.
    trigger = messages(list(read_events([log], TRIGGER)))
    assert len(trigger) == jobs + ad_info
    assert sum(bool(m["attrs"].get("adinfo")) for m in trigger) == ad_info


def test_the_real_logs_hold_ad_information_events() -> None:
    # Else the test above never sees a 028 event and proves nothing about them.
    assert sum(header_counts(log)[28] for log in LOGS) > 0


def test_ad_information_events_in_each_mode() -> None:
    log = require(DATA / "htcondor_python_bindings_test_log.txt")
    default = list(read_events([log], UTC))
    assert [m["type"] for m in messages(default)] == ["SubmitEvent"] * 2
    assert sum(i.skipped for i in default) == 2
    trigger = messages(list(read_events([log], TRIGGER)))
    assert [m["type"] for m in trigger] == ["SubmitEvent"] * 4  # Fermilab's count
    assert [m["attrs"].get("adinfo", False) for m in trigger] == [False, True, False, True]
    event = messages(list(read_events([log], EVERY)))
    assert [m["type"] for m in event] == ["SubmitEvent", "JobAdInformationEvent"] * 2


def test_stream_by_attribute_from_the_ad_information_events() -> None:
    log = require(DATA / "htcondor_python_bindings_test_log.txt")
    # Sent as their triggers, so that the 028 events' own streams show.
    by_notes = StreamRule.parse("attr:LogNotes")
    config = ReadConfig(timezone="UTC", stream_by=by_notes, ad_info="trigger")
    got = messages(list(read_events([log], config)))
    assert [m["stream"] for m in got] == [
        "LogNotes:DAG Node: Job1",
        "LogNotes:DAG Node: Job1",
        "LogNotes:DAG Node: Job2",
        "LogNotes:DAG Node: Job2",
    ]
    # The site attribute is an unexpanded $$() in this log: no site.
    config = ReadConfig(timezone="UTC", stream_by=StreamRule.parse("site"))
    assert {m["stream"] for m in messages(list(read_events([log], config)))} == {"site:unknown"}
