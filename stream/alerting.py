"""The alert state machine: one incident of one stream makes one alert, not one per window.

normal --`open_after` anomalous windows--> open --anomalous--> update ... --`resolve_after`
normal windows in a row--> resolved --> normal. Like Prometheus' ``for:``, the opening run
filters one-window blips; gaps in it shorter than `resolve_after` are tolerated, and the alert's
``since`` is the run's first window. A normal window inside an incident keeps it open (counting
towards resolution) and emits nothing; an anomalous one resets the count.

The alert id is derived from stream, incident start and model (:func:`alert_id`), so
re-processing the same windows after a restart yields the same id, never a second alert.

Silences (:mod:`gridalarm.stream.silences`): a message about a window that lies in a silence of
its stream is still published, with state ``suppressed`` and the silence's id, and is never
routed. The state remembers whether the pager has heard of the incident, because incidents and
silences overlap in every way:

- an incident that opens inside a silence and is still anomalous after it: its first message
  after the silence goes out as ``open`` (same ``alert_id``, ``since`` = the incident's real
  start), so the pager learns of it; its later messages are ``update`` and ``resolved`` as usual;
- an incident that opens inside a silence and resolves after it without a further anomalous
  window: its ``resolved`` is ``suppressed`` too (the pager never heard of it, nothing to close);
- an incident that was routed as ``open`` before a silence began: its updates inside the
  silence are ``suppressed``, but its resolution is routed as ``resolved`` even inside the
  silence, so that the page it opened is closed.

Plain Python over plain data: the state is a small dict that the worker keeps per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridalarm.messages import VERSION, alert_id
from gridalarm.timeutil import format_time


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When incidents open, resolve and how severe they are."""

    open_after: int = 2  # consecutive anomalous windows that open an incident
    resolve_after: int = 2  # consecutive normal windows that end an incident
    critical_at: float = 80.0  # score from which an alert is critical, else a warning


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """The part of a score message the alert machine needs."""

    stream: str
    start: float
    end: float
    score: float
    anomalous: bool
    model: str
    explain: list[dict[str, Any]]
    silence: str | None = None  # id of a silence that covers this window of this stream


# Alert-state key present while an incident has been routed to nobody: the id of the silence
# that suppressed it. Absent (also in states written before silences existed) means routed.
SILENCED = "silenced"


def step_alert(
    state: dict[str, Any] | None, scored: ScoredWindow, policy: AlertPolicy
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Advance one stream's alert state by one scored window.

    Returns ``(new_state, alert_message_or_None)``. ``None`` state means "no incident"; a state
    with ``pending`` counts anomalous windows that have not opened an incident yet.
    ``scored.silence`` turns the message into a suppressed one (see the module docstring).
    """
    new_state, message = _step(state, scored, policy)
    if message is None:
        return new_state, None
    return _apply_silence(state, new_state, message, scored.silence)


def _step(
    state: dict[str, Any] | None, scored: ScoredWindow, policy: AlertPolicy
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if state is None or "pending" in state:
        if not scored.anomalous:
            if state is None:
                return None, None
            # A candidate survives gaps shorter than a resolution, like an open incident does.
            gap = state.get("gap", 0) + 1
            return (None if gap >= policy.resolve_after else {**state, "gap": gap}), None
        if state is None:
            state = {"since": scored.start, "model": scored.model, "pending": 0, "peak": 0.0}
        run = state["pending"] + 1
        peak = max(state["peak"], scored.score)
        if run < policy.open_after:
            return {**state, "pending": run, "peak": peak, "gap": 0}, None
        state = {"since": state["since"], "model": state["model"], "normal": 0, "peak": peak}
        return state, _message("open", state, scored, policy)
    if scored.anomalous:
        state = {**state, "normal": 0, "peak": max(state["peak"], scored.score)}
        return state, _message("update", state, scored, policy)
    normal = state["normal"] + 1
    if normal < policy.resolve_after:
        return {**state, "normal": normal}, None
    return None, _message("resolved", state, scored, policy)


def _apply_silence(
    previous: dict[str, Any] | None,
    state: dict[str, Any] | None,
    message: dict[str, Any],
    silence: str | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The message as routed: suppressed inside a silence, and re-stated after one."""
    kind = message["state"]
    # An open message comes from a pending state, never from an incident: nothing silenced it.
    silenced_by = previous.get(SILENCED) if previous and kind != "open" else None
    if silence is not None:
        if kind == "resolved" and silenced_by is None:
            return state, message  # the pager has this incident open: close it
        if state is not None and (kind == "open" or silenced_by is not None):
            state = {**state, SILENCED: silence}
        return state, {**message, "state": "suppressed", "silence": silence}
    if silenced_by is None:
        return state, message
    if kind == "resolved":  # the incident ended unseen: nothing to open or close
        return state, {**message, "state": "suppressed", "silence": silenced_by}
    # The first message after the silence: the pager learns of the incident now.
    if state is not None:  # an update always keeps its incident's state
        state = {key: value for key, value in state.items() if key != SILENCED}
    return state, {**message, "state": "open"}


def _message(
    kind: str, state: dict[str, Any], scored: ScoredWindow, policy: AlertPolicy
) -> dict[str, Any]:
    # Severity follows the incident's peak so that a resolved alert still says how bad it was.
    severity = "critical" if state["peak"] >= policy.critical_at else "warning"
    return {
        "v": VERSION,
        "alert_id": alert_id(scored.stream, state["since"], state["model"]),
        "state": kind,
        "stream": scored.stream,
        "since": format_time(state["since"]),
        "start": format_time(scored.start),
        "end": format_time(scored.end),
        "score": round(scored.score, 2),
        "severity": severity,
        "explain": scored.explain,
        "model": state["model"],
    }
