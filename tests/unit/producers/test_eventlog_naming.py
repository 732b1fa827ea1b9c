"""Naming events (gridalarm.producers.eventlog): type names, trigger types, schedds, streams."""

from __future__ import annotations

import json
from pathlib import Path

import htcondor2
import pytest

from gridalarm.producers.eventlog import (
    EVENT_TYPE_NAMES,
    EventLogError,
    ReadConfig,
    StreamRule,
    read_events,
    schedd_name,
    trigger_type,
    type_name,
)


def test_type_names_are_htcondor2s(tmp_path: Path) -> None:
    # htcondor2 names an event from its number: read a JSON log of one minimal event per
    # number (events it cannot render from so little are skipped by the iterator).
    path = tmp_path / "types.json"
    with path.open("w") as out:
        for number in range(130):
            ad = {"EventTypeNumber": number, "MyType": "x", "EventTime": "2025-01-01T00:00:00"}
            out.write(json.dumps({**ad, "Cluster": 1, "Proc": 0, "Subproc": 0}, indent=2) + "\n")
    names: dict[int, str] = {}
    log = htcondor2.JobEventLog(str(path)).events(0)
    while True:
        try:
            event = next(log)
        except StopIteration:
            break
        except Exception:  # htcondor2 cannot render some events from so little
            continue
        names[event["EventTypeNumber"]] = event["MyType"]
    assert len(names) > 90
    assert {n: type_name(n) for n in names} == names
    # The ones htcondor2 could not render from a bare ad are read from real logs elsewhere.
    assert {type_name(n) for n in (22, 23, 24, 40)} == {
        "JobDisconnectedEvent",
        "JobReconnectedEvent",
        "JobReconnectFailedEvent",
        "FileTransferEvent",
    }
    assert set(EVENT_TYPE_NAMES.values()) >= {"ExecuteEvent", "JobHeldEvent", "SubmitEvent"}


def test_trigger_type_of_ad_information_events() -> None:
    assert trigger_type({"TriggerEventTypeNumber": 1}) == "ExecuteEvent"
    assert trigger_type({"TriggerEventTypeName": "ULOG_JOB_HELD"}) == "JobHeldEvent"
    assert trigger_type({"TriggerEventTypeNumber": 12, "TriggerEventTypeName": "x"}) == (
        "JobHeldEvent"
    )
    assert trigger_type({}) == "JobAdInformationEvent"


@pytest.mark.parametrize(
    "sinful, name",
    [
        ("<128.105.68.62:9618?addrs=128.105.68.62-9618&alias=ap40.uw.osg-htc.org&noUDP>", None),
        ("<169.228.38.38:9615?sock=18627_6227_3>", "169.228.38.38"),
        ("<128.105.175.133:1027>", "128.105.175.133"),
        ("<[2607:f388::1]:9618>", "2607:f388::1"),
        ("", None),
    ],
)
def test_schedd_names_from_submit_hosts(sinful: str, name: str | None) -> None:
    expected = "ap40.uw.osg-htc.org" if "alias=" in sinful else name
    assert schedd_name(sinful) == expected


def test_stream_rules() -> None:
    assert StreamRule.parse("schedd") == StreamRule("schedd")
    assert StreamRule.parse("attr:AcctGroup").prefix == "AcctGroup"
    assert StreamRule.parse("owner").attrs == ("Owner",)
    assert StreamRule.parse("site").attrs[0] == "MATCH_EXP_JOB_GLIDEIN_Site"
    assert str(StreamRule.parse("attr:x")) == "attr:x"
    for bad in ("host", "attr:", "attr:1x", "attr:a b"):
        with pytest.raises(EventLogError, match="--stream-by"):
            StreamRule.parse(bad)


def test_read_config_checks_its_values() -> None:
    with pytest.raises(EventLogError, match="--ad-info"):
        ReadConfig(ad_info="both")
    with pytest.raises(EventLogError, match="--timezone"):
        ReadConfig(timezone="Nowhere/Else")
    with pytest.raises(EventLogError, match="--schedd"):
        ReadConfig(schedd=" ")
    assert ReadConfig().source.startswith("eventlog:")


AD_INFO = """028 ({job}) 2025-06-01 10:00:00 Job ad information event triggered.
Proc = 0
EventTime = "2025-06-01T10:00:00"
TriggerEventTypeName = "ULOG_EXECUTE"
TriggerEventTypeNumber = 1
Owner = "{owner}"
MATCH_EXP_JOB_GLIDEIN_Site = "{site}"
MyType = "ExecuteEvent"
EventTypeNumber = 28
...
"""
EXECUTE = "001 ({job}) 2025-06-01 10:00:00 Job executing on host: <10.0.0.2:9618>\n...\n"
HELD = (
    "012 ({job}) 2025-06-01 11:00:00 Job was held.\n\tReason unspecified\n\tCode 0 Subcode 0\n...\n"
)


def test_owner_and_site_streams_remember_each_jobs_attributes(tmp_path: Path) -> None:
    path = tmp_path / "EventLog"
    path.write_text(
        EXECUTE.format(job="1.000.000")
        + AD_INFO.format(job="1.000.000", owner="alice", site="FNAL")
        + EXECUTE.format(job="2.000.000")
        + AD_INFO.format(job="2.000.000", owner="bob", site="$$(GLIDEIN_Site:Unknown)")
        + HELD.format(job="1.000.000")  # no Owner here: remembered from the 028 event
        + HELD.format(job="2.000.000")
        + HELD.format(job="3.000.000")  # never said
    )

    def streams(rule: str, ad_info: str = "skip") -> list[tuple[str, str]]:
        config = ReadConfig(timezone="UTC", stream_by=StreamRule.parse(rule), ad_info=ad_info)
        return [
            (i.message["stream"], i.message["type"])
            for i in read_events([path], config)
            if i.message
        ]

    # By default the 028 events are not sent, but they still name their jobs' later events.
    assert streams("owner") == [
        ("owner:unknown", "ExecuteEvent"),  # before anything named the owner
        ("owner:unknown", "ExecuteEvent"),
        ("owner:alice", "JobHeldEvent"),
        ("owner:bob", "JobHeldEvent"),
        ("owner:unknown", "JobHeldEvent"),
    ]
    assert streams("owner", "trigger") == [
        ("owner:unknown", "ExecuteEvent"),
        ("owner:alice", "ExecuteEvent"),  # the 028 event, counted as its trigger
        ("owner:unknown", "ExecuteEvent"),
        ("owner:bob", "ExecuteEvent"),
        ("owner:alice", "JobHeldEvent"),
        ("owner:bob", "JobHeldEvent"),
        ("owner:unknown", "JobHeldEvent"),
    ]
    assert [s for s, _ in streams("site", "trigger")] == [
        "site:unknown",
        "site:FNAL",
        "site:unknown",
        "site:unknown",  # an unexpanded $$() names no site
        "site:FNAL",
        "site:unknown",
        "site:unknown",
    ]


def test_schedd_stream_comes_from_the_first_submit_host_or_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "EventLog"
    submit = (
        "000 (5.000.000) 2025-06-01 09:00:00 Job submitted from host: "
        "<10.0.0.1:9618?alias=submit-1.example.org>\n...\n"
    )
    path.write_text(EXECUTE.format(job="4.000.000") + submit + HELD.format(job="5.000.000"))
    got = [i.message["stream"] for i in read_events([path], ReadConfig()) if i.message]
    assert got == ["schedd:submit-1.example.org"] * 3  # looked for ahead of the first event
    flagged = ReadConfig(schedd="fifebatch1")
    assert {i.message["stream"] for i in read_events([path], flagged) if i.message} == {
        "schedd:fifebatch1"
    }
