"""Feedback labels (gridalarm.labels): the label message, and incidents from alert messages."""

from __future__ import annotations

from typing import Any

import pytest

from gridalarm.labels import Incident, LabelError, find_alert, incidents, label_message
from gridalarm.messages import alert_id, validate
from gridalarm.timeutil import format_time

T0 = 1_767_600_000.0
W = 60.0
MODEL = "baseline@2"
AID = alert_id("schedd:fife1", T0, MODEL)


def test_a_full_label_validates_and_says_what_was_given() -> None:
    message = label_message(
        AID, "confirmed", "cli:alice", stream="schedd:fife1", since=T0, end=T0 + 5 * W,
        model=MODEL, note="disk full", at=T0 + 3600,
    )  # fmt: skip
    validate("label", message)
    assert message == {
        "v": 1,
        "alert_id": AID,
        "label": "confirmed",
        "at": format_time(T0 + 3600),
        "by": "cli:alice",
        "stream": "schedd:fife1",
        "since": format_time(T0),
        "end": format_time(T0 + 5 * W),
        "model": MODEL,
        "note": "disk full",
    }


def test_a_minimal_label_has_no_optional_fields() -> None:
    message = label_message(AID, "false-positive", "dashboard", at=T0)
    validate("label", message)
    assert set(message) == {"v", "alert_id", "label", "at", "by"}


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((AID, "maybe", "cli"), {}, "use one of confirmed, false-positive"),
        (("INCIDENT-7", "confirmed", "cli"), {}, "alert_id must match pattern"),
        ((AID, "confirmed", ""), {}, "by must be longer"),
        ((AID, "confirmed", "cli"), {"model": "baseline"}, "model must match pattern"),
        ((AID, "confirmed", "cli"), {"note": "x" * 2001}, "note must be shorter"),
    ],
)
def test_bad_labels_are_one_line_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(LabelError, match=match) as caught:
        label_message(*args, **kwargs)
    assert "\n" not in str(caught.value)


def alert(state: str, k: int, aid: str = AID, stream: str = "schedd:fife1") -> dict[str, Any]:
    return {
        "alert_id": aid, "state": state, "stream": stream, "since": format_time(T0),
        "start": format_time(T0 + k * W), "end": format_time(T0 + (k + 1) * W), "model": MODEL,
    }  # fmt: skip


def test_an_incident_spans_since_to_the_end_of_its_last_anomalous_window() -> None:
    messages = [alert("open", 1), alert("update", 3), alert("update", 2), alert("resolved", 6)]
    found = incidents([*messages, alert("update", 3)])  # a repeated message changes nothing
    assert found == {AID: Incident(AID, "schedd:fife1", T0, T0 + 4 * W, MODEL)}


def test_a_suppressed_incident_has_a_span_too() -> None:
    found = incidents([alert("suppressed", 0), alert("suppressed", 1), alert("suppressed", 4)])
    assert found[AID].end == T0 + 5 * W  # a suppressed resolution counts like any message


def test_an_incident_known_only_by_its_resolution_ends_there() -> None:
    assert incidents([alert("resolved", 6)])[AID].end == T0 + 7 * W


def test_messages_that_are_not_alerts_are_ignored() -> None:
    assert incidents([{"v": 1, "stream": "s"}, {**alert("open", 0), "since": "never"}]) == {}


def test_an_alert_is_found_by_its_id_or_a_unique_prefix() -> None:
    other = alert_id("schedd:fife2", T0, MODEL)
    known = incidents([alert("open", 0), alert("open", 0, aid=other, stream="schedd:fife2")])
    assert find_alert(AID, known) == known[AID]
    assert find_alert(AID[:12], known) == known[AID]
    assert find_alert("0" * 24, known) is None
    twins = {"abcd" + "1" * 20: known[AID], "abcd" + "2" * 20: known[other]}
    with pytest.raises(LabelError, match="ambiguous: 2 alerts"):
        find_alert("abcd", twins)
    assert find_alert("abcd1", twins) == known[AID]
