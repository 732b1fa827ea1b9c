"""The alert state machine (gridalarm.stream.alerting): one incident makes one alert."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from gridalarm.messages import alert_id, validate
from gridalarm.stream.alerting import AlertPolicy, ScoredWindow, step_alert
from gridalarm.timeutil import format_time

T0 = 1_699_999_200.0
SIZE = 3600.0
MODEL = "baseline@1"
POLICY = AlertPolicy(open_after=1, resolve_after=2, critical_at=80.0)
EXPLAIN = [{"feature": "JobHeldEvent", "observed": 400, "expected": 20.0, "share": 0.9}]


def scored(k: int, score: float, stream: str = "schedd:a", model: str = MODEL) -> ScoredWindow:
    anomalous = score >= 50.0
    return ScoredWindow(
        stream=stream,
        start=T0 + k * SIZE,
        end=T0 + (k + 1) * SIZE,
        score=score,
        anomalous=anomalous,
        model=model,
        explain=EXPLAIN if anomalous else [],
    )


def run(
    scores: list[float], policy: AlertPolicy = POLICY, state: Any = None, first: int = 0
) -> tuple[Any, list[dict[str, Any] | None]]:
    """Step the machine over consecutive windows; the messages (None for silence) per window."""
    out: list[dict[str, Any] | None] = []
    for k, score in enumerate(scores, start=first):
        state, message = step_alert(state, scored(k, score), policy)
        # The worker keeps the state in a table as JSON: it must survive that.
        state = orjson.loads(orjson.dumps(state))
        out.append(message)
    return state, out


def test_normal_windows_make_no_message_and_no_state() -> None:
    state, messages = run([0.0, 10.0, 49.99])
    assert state is None
    assert messages == [None, None, None]


def test_anomalous_window_opens_an_alert() -> None:
    state, (message,) = run([70.0])
    assert message is not None
    validate("alert", message)
    assert message["state"] == "open"
    assert message["stream"] == "schedd:a"
    assert message["since"] == message["start"] == format_time(T0)
    assert message["end"] == format_time(T0 + SIZE)
    assert message["score"] == 70.0
    assert message["model"] == MODEL
    assert message["explain"] == EXPLAIN
    assert message["alert_id"] == alert_id("schedd:a", T0, MODEL)
    assert state is not None


def test_anomalous_again_updates_the_same_alert() -> None:
    _, (opened, updated, again) = run([60.0, 75.0, 55.0])
    assert [m["state"] for m in (opened, updated, again)] == ["open", "update", "update"]
    assert opened["alert_id"] == updated["alert_id"] == again["alert_id"]
    assert updated["since"] == opened["since"] == format_time(T0)
    assert updated["start"] == format_time(T0 + SIZE)
    assert again["start"] == format_time(T0 + 2 * SIZE)
    for m in (opened, updated, again):
        validate("alert", m)


def test_one_normal_window_keeps_the_incident_open_silently() -> None:
    state, messages = run([60.0, 10.0])
    assert messages[1] is None
    assert state is not None
    # Anomalous again right after: still the same incident, and the normal count resets.
    state, (update,) = run([65.0], state=state, first=2)
    assert update["state"] == "update"
    assert update["alert_id"] == messages[0]["alert_id"]
    state, (quiet,) = run([5.0], state=state, first=3)
    assert quiet is None and state is not None  # one normal again: not two in a row


def test_two_normal_windows_resolve_the_incident() -> None:
    state, messages = run([60.0, 70.0, 10.0, 20.0])
    assert messages[2] is None
    resolved = messages[3]
    assert resolved is not None
    validate("alert", resolved)
    assert resolved["state"] == "resolved"
    assert resolved["alert_id"] == messages[0]["alert_id"]
    assert resolved["since"] == format_time(T0)
    assert resolved["start"] == format_time(T0 + 3 * SIZE)
    assert state is None


def test_resolve_after_is_configurable() -> None:
    policy = AlertPolicy(open_after=1, resolve_after=1)
    state, messages = run([90.0, 0.0], policy=policy)
    assert messages[1] is not None and messages[1]["state"] == "resolved"
    assert state is None
    state, messages = run([90.0, 0.0, 0.0, 0.0], policy=AlertPolicy(open_after=1, resolve_after=3))
    assert [m and m["state"] for m in messages] == ["open", None, None, "resolved"]


def test_a_new_incident_later_gets_a_new_alert_id() -> None:
    _, messages = run([60.0, 0.0, 0.0, 0.0, 0.0, 70.0, 0.0, 0.0])
    states = [(k, m["state"], m["alert_id"]) for k, m in enumerate(messages) if m]
    assert [s for _, s, _ in states] == ["open", "resolved", "open", "resolved"]
    first_id, second_id = states[0][2], states[2][2]
    assert first_id != second_id
    assert states[1][2] == first_id and states[3][2] == second_id
    assert messages[5]["since"] == format_time(T0 + 5 * SIZE)
    assert second_id == alert_id("schedd:a", T0 + 5 * SIZE, MODEL)


def test_alert_id_is_deterministic_for_stream_since_and_model() -> None:
    assert alert_id("s", T0, MODEL) == alert_id("s", T0, MODEL)
    assert alert_id("s", T0, MODEL) == alert_id("s", float(int(T0)), MODEL)
    others = {
        alert_id("s", T0, MODEL),
        alert_id("t", T0, MODEL),
        alert_id("s", T0 + SIZE, MODEL),
        alert_id("s", T0, "baseline@2"),
    }
    assert len(others) == 4
    # Re-processing the same windows after a restart gives the same alerts, byte for byte.
    _, first = run([10.0, 80.0, 90.0, 0.0, 0.0])
    _, second = run([10.0, 80.0, 90.0, 0.0, 0.0])
    assert first == second


def test_alert_ids_of_different_streams_differ() -> None:
    a, _ = step_alert(None, scored(0, 70.0, stream="schedd:a"), POLICY)
    _, ma = step_alert(None, scored(0, 70.0, stream="schedd:a"), POLICY)
    _, mb = step_alert(None, scored(0, 70.0, stream="schedd:b"), POLICY)
    assert a is not None and ma is not None and mb is not None
    assert ma["alert_id"] != mb["alert_id"]


def test_severity_follows_the_peak_score_of_the_incident() -> None:
    _, messages = run([55.0, 85.0, 60.0, 10.0, 10.0])
    severities = [m and (m["state"], m["severity"]) for m in messages]
    assert severities == [
        ("open", "warning"),
        ("update", "critical"),
        ("update", "critical"),  # 60 now, but the incident peaked at 85
        None,
        ("resolved", "critical"),
    ]
    _, (opened,) = run([80.0])
    assert opened["severity"] == "critical"  # critical_at is inclusive
    _, (opened,) = run([79.99])
    assert opened["severity"] == "warning"
    _, messages = run([60.0], policy=AlertPolicy(open_after=1, critical_at=50.0))
    assert messages[0]["severity"] == "critical"


def test_incident_keeps_the_model_it_opened_with() -> None:
    state, open_msg = step_alert(None, scored(0, 70.0, model="baseline@1"), POLICY)
    state, update = step_alert(state, scored(1, 70.0, model="baseline@2"), POLICY)
    assert open_msg is not None and update is not None
    assert update["alert_id"] == open_msg["alert_id"]
    assert update["model"] == "baseline@1"


# --- open_after: a run of anomalous windows opens an incident, a one-window blip does not -----

POLICY2 = AlertPolicy(open_after=2, resolve_after=2, critical_at=80.0)


def test_a_single_anomalous_blip_opens_nothing_with_open_after_two() -> None:
    state, messages = run([70.0, 0.0, 0.0, 0.0], policy=POLICY2)
    assert messages == [None] * 4
    assert state is None


def test_a_run_of_anomalous_windows_opens_with_since_at_its_first_window() -> None:
    _, messages = run([10.0, 60.0, 65.0, 70.0], policy=POLICY2)
    assert messages[:2] == [None, None]
    opened, updated = messages[2], messages[3]
    assert opened is not None and updated is not None
    assert (opened["state"], updated["state"]) == ("open", "update")
    assert opened["since"] == format_time(T0 + SIZE)
    assert opened["start"] == format_time(T0 + 2 * SIZE)
    assert opened["alert_id"] == updated["alert_id"] == alert_id("schedd:a", T0 + SIZE, MODEL)
    validate("alert", opened)


def test_a_gap_shorter_than_resolve_after_does_not_break_the_opening_run() -> None:
    _, messages = run([60.0, 0.0, 60.0], policy=POLICY2)
    assert messages[2] is not None and messages[2]["state"] == "open"
    assert messages[2]["since"] == format_time(T0)
    _, messages = run([60.0, 0.0, 0.0, 60.0, 0.0, 0.0], policy=POLICY2)
    assert messages == [None] * 6  # two blips, each forgotten after resolve_after normals


def test_severity_counts_the_peak_of_the_opening_run() -> None:
    _, messages = run([90.0, 55.0], policy=POLICY2)
    assert messages[1] is not None
    assert (messages[1]["state"], messages[1]["severity"]) == ("open", "critical")


# --- silences: suppressed alerts, and incidents that outlive a silence ------------------------


def run_silenced(
    windows: list[tuple[float, str | None]], policy: AlertPolicy = POLICY
) -> list[dict[str, Any] | None]:
    """Step the machine over (score, silence id or None) windows; the messages per window."""
    state: Any = None
    out: list[dict[str, Any] | None] = []
    for k, (score, silence) in enumerate(windows):
        state, message = step_alert(state, replace(scored(k, score), silence=silence), policy)
        state = orjson.loads(orjson.dumps(state))
        if message is not None:
            validate("alert", message)
        out.append(message)
    return out


def states_of(messages: list[dict[str, Any] | None]) -> list[str | None]:
    return [m and m["state"] for m in messages]


S = "maint-1"


def test_an_incident_inside_a_silence_is_recorded_suppressed_from_start_to_end() -> None:
    messages = run_silenced([(70.0, S), (80.0, S), (0.0, S), (0.0, S)])
    assert states_of(messages) == ["suppressed", "suppressed", None, "suppressed"]
    assert {m["silence"] for m in messages if m} == {S}
    # The same messages as without the silence but for their state: same ids, same content.
    plain = run_silenced([(70.0, None), (80.0, None), (0.0, None), (0.0, None)])
    assert states_of(plain) == ["open", "update", None, "resolved"]
    for silenced, routed in zip(messages, plain, strict=True):
        if silenced is not None and routed is not None:
            assert without(silenced, "state", "silence") == without(routed, "state")


def without(message: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key not in keys}


def test_an_incident_that_outlives_its_silence_opens_with_its_first_message_after_it() -> None:
    messages = run_silenced([(70.0, S), (80.0, S), (90.0, None), (85.0, None), (0.0, None),
                             (0.0, None)])  # fmt: skip
    assert states_of(messages) == ["suppressed", "suppressed", "open", "update", None, "resolved"]
    opened = messages[2]
    assert opened is not None and "silence" not in opened
    assert opened["since"] == format_time(T0)  # the incident's real start, inside the silence
    assert opened["alert_id"] == messages[0]["alert_id"] == messages[5]["alert_id"]


def test_an_unrouted_incident_that_resolves_after_its_silence_stays_suppressed() -> None:
    messages = run_silenced([(70.0, S), (0.0, None), (0.0, None), (75.0, None)])
    assert states_of(messages) == ["suppressed", None, "suppressed", "open"]
    assert messages[2] is not None and messages[2]["silence"] == S  # the pager never heard of it
    # The anomaly after that is a new incident with a new id, routed as usual.
    assert messages[3] is not None and messages[3]["alert_id"] != messages[0]["alert_id"]


def test_a_routed_incident_is_suppressed_inside_a_silence_but_its_resolution_is_routed() -> None:
    messages = run_silenced([(70.0, None), (80.0, S), (0.0, S), (0.0, S)])
    assert states_of(messages) == ["open", "suppressed", None, "resolved"]
    assert messages[1] is not None and messages[1]["silence"] == S
    assert messages[3] is not None and "silence" not in messages[3]  # closes the page


def test_a_routed_incident_updates_again_after_the_silence_without_a_second_open() -> None:
    messages = run_silenced([(70.0, None), (80.0, S), (90.0, None)])
    assert states_of(messages) == ["open", "suppressed", "update"]


def test_a_pending_run_that_opens_inside_a_silence_is_suppressed_with_open_after_two() -> None:
    messages = run_silenced([(60.0, None), (70.0, S), (80.0, None)], policy=POLICY2)
    assert states_of(messages) == [None, "suppressed", "open"]
    assert messages[2] is not None and messages[2]["since"] == format_time(T0)


def test_alert_states_written_before_silences_existed_count_as_routed() -> None:
    # An incident open in a stored state without the "silenced" key was routed as open.
    state, (opened,) = run([70.0])
    assert opened is not None and "silenced" not in state
    state, _ = step_alert(state, replace(scored(1, 0.0), silence=S), POLICY)
    _, resolved = step_alert(state, replace(scored(2, 0.0), silence=S), POLICY)
    assert resolved is not None and resolved["state"] == "resolved"
