"""What the dashboard knows, built from the messages of the scores, windows, alerts and labels
topics: per stream its recent windows and current state, per incident its latest alert message,
per alert its label. Plain Python over decoded messages; the Kafka feed and the web server only
call into it.

Every change marks the stream or alert it touched as dirty; the live hub takes the dirty sets a
few times a second and pushes only those to the browsers.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gridalarm.stream.dashboard.series import Series, WindowRing
from gridalarm.timeutil import parse_time

ACTIVE_STATES = ("open", "update", "suppressed")
# Order of one incident's messages at the same window: a repeat at a lower rank is stale.
_RANK = {"open": 0, "update": 1, "suppressed": 1, "resolved": 2}
SECTIONS = ("open", "suppressed", "resolved")
# The overview's states, most urgent first (the browser sorts by this order too).
STREAM_STATES = ("critical", "warning", "suppressed", "anomalous", "normal", "unscored")


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """How much the dashboard remembers (its memory is bounded by these)."""

    keep_windows: int = 120  # windows per stream for the stream page (2 h of 1-minute windows)
    spark: int = 24  # windows in an overview sparkline
    keep_resolved: int = 2000  # resolved alerts kept; active ones are always kept


@dataclass(frozen=True, slots=True)
class Label:
    """An operator's verdict on an alert, as read back from the labels topic."""

    label: str
    by: str
    at: str


@dataclass(slots=True)
class AlertView:
    """One incident as its latest alert message describes it."""

    alert_id: str
    stream: str
    state: str
    severity: str
    since: float
    start: float
    end: float
    score: float  # of the window the latest message is about
    model: str
    explain: list[dict[str, Any]]  # the latest non-empty one (a resolution explains nothing)
    peak: float = 0.0  # the highest score of the messages read
    silence: str | None = None
    first_seen: float = 0.0  # record time (epoch s) of the first message of it we read
    updated: float = 0.0  # record time of the latest one
    seq: int = 0  # the state's change counter when it last changed (pages keep the newest)

    @property
    def section(self) -> str:
        """open (open or update), suppressed or resolved."""
        return "open" if self.state in ("open", "update") else self.state


@dataclass(slots=True)
class StreamView:
    """One stream: its latest score and the ring of its recent windows."""

    name: str
    ring: WindowRing
    start: float | None = None  # latest scored window
    end: float | None = None
    score: float | None = None
    anomalous: bool = False
    model: str = ""
    alert_id: str | None = None  # its active incident, if any
    seq: int = 0  # the state's change counter when its row last changed
    row: list[Any] | None = field(default=None, repr=False)  # cached overview row


@dataclass(frozen=True, slots=True)
class StreamDetail:
    """Everything the stream page shows."""

    name: str
    state: str
    score: float | None
    model: str
    series: Series
    alerts: list[AlertView]  # this stream's kept incidents, oldest first


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since the last :meth:`DashboardState.take_changes`."""

    streams: frozenset[str]  # anything of theirs (the stream page)
    rows: frozenset[str]  # their overview row (a subset of streams)
    alerts: frozenset[str]
    status: bool  # phase or back-fill progress moved

    def __bool__(self) -> bool:
        return bool(self.streams or self.alerts or self.status)


class DashboardState:
    """The dashboard's model of the pool, fed one message at a time."""

    def __init__(self, limits: ViewLimits | None = None) -> None:
        self.limits = limits or ViewLimits()
        self.streams: dict[str, StreamView] = {}
        self.alerts: dict[str, AlertView] = {}
        self.labels: dict[str, Label] = {}
        self.phase = "backfill"  # then "live"
        self.progress = 0.0  # share of the back-fill read
        self.skipped = 0  # messages that were not what their topic promises
        self.consumed: Counter[str] = Counter()  # messages read, by topic kind (metrics)
        self._resolved: OrderedDict[str, None] = OrderedDict()  # eviction order
        self._by_stream: dict[str, set[str]] = {}
        self._dirty_streams: set[str] = set()
        self._dirty_rows: set[str] = set()
        self._dirty_alerts: set[str] = set()
        self._dirty_status = False
        # Counts every change; rows and alert fragments carry it so that a browser can tell
        # a stale push (queued before its snapshot was taken) from a newer one.
        self._seq = 0

    # -- feeding --------------------------------------------------------------------------

    def apply(self, kind: str, message: Any, record_time: float) -> bool:
        """Apply one decoded message of topic ``kind``; False (and counted) when unusable."""
        try:
            if kind == "scores":
                self.apply_score(message)
            elif kind == "windows":
                self.apply_window(message)
            elif kind == "alerts":
                self.apply_alert(message, record_time)
            elif kind == "labels":
                self.apply_label(message)
            else:
                raise ValueError(f"no topic kind {kind!r}")
        except (KeyError, TypeError, ValueError, AttributeError):
            # The worker is the only writer of these topics, so this is foreign or corrupt
            # data: count it (the status line shows the count) rather than stop the feed.
            self.skipped += 1
            return False
        return True

    def apply_score(self, message: dict[str, Any]) -> None:
        """A score message: the stream's latest score, state and one ring slot."""
        start, end = parse_time(message["start"]), parse_time(message["end"])
        score = float(message["score"])
        anomalous = bool(message["anomalous"])
        view = self._stream(str(message["stream"]))
        if not view.ring.put_score(start, end, score, anomalous, list(message["explain"])):
            return
        if view.start is None or start >= view.start:
            view.start, view.end = start, end
            view.score, view.anomalous = score, anomalous
            view.model = str(message["model"])
        self._touch(view)

    def apply_window(self, message: dict[str, Any]) -> None:
        """A window message: the observed feature values of one ring slot."""
        start, end = parse_time(message["start"]), parse_time(message["end"])
        features = {str(k): float(v) for k, v in message["features"].items()}
        view = self._stream(str(message["stream"]))
        if view.ring.put_window(start, end, features):
            # Only the stream page shows feature values; the overview row is unchanged.
            self._dirty_streams.add(view.name)

    def apply_alert(self, message: dict[str, Any], record_time: float) -> None:
        """An alert message: open, update, suppressed or resolved, for one incident."""
        alert_id = str(message["alert_id"])
        state = str(message["state"])
        if state not in _RANK:
            raise ValueError(f"alert state {state!r}")
        start = parse_time(message["start"])
        held = self.alerts.get(alert_id)
        if held is not None and (start, _RANK[state]) <= (held.start, _RANK[held.state]):
            return  # a repeat (a restarted worker) or an older message read late
        score = float(message["score"])
        explain = list(message.get("explain") or []) or (held.explain if held else [])
        alert = AlertView(
            alert_id=alert_id,
            stream=str(message["stream"]),
            state=state,
            severity=str(message["severity"]),
            since=parse_time(message["since"]),
            start=start,
            end=parse_time(message["end"]),
            score=score,
            model=str(message["model"]),
            explain=explain,
            peak=max(score, held.peak if held else 0.0),
            silence=message.get("silence"),
            first_seen=held.first_seen if held else record_time,
            updated=record_time,
            seq=self._next_seq(),
        )
        self.alerts[alert_id] = alert
        self._by_stream.setdefault(alert.stream, set()).add(alert_id)
        view = self._stream(alert.stream)
        if state in ACTIVE_STATES:
            view.alert_id = alert_id
            self._resolved.pop(alert_id, None)
        else:
            if view.alert_id == alert_id:
                view.alert_id = None
            self._resolved[alert_id] = None
            self._resolved.move_to_end(alert_id)
            self._evict_resolved()
        self._dirty_alerts.add(alert_id)
        self._touch(view)

    def apply_label(self, message: dict[str, Any] | None, alert_id: str | None = None) -> None:
        """A label message, or a tombstone (``None`` with the record's key as ``alert_id``)."""
        if message is None:
            if alert_id is None:
                raise ValueError("a tombstone needs its key")
            self.labels.pop(alert_id, None)
        else:
            alert_id = str(message["alert_id"])
            self.labels[alert_id] = Label(
                str(message["label"]), str(message["by"]), str(message["at"])
            )
        alert = self.alerts.get(alert_id)
        if alert is not None:
            alert.seq = self._next_seq()
            self._dirty_alerts.add(alert_id)

    def set_progress(self, progress: float, live: bool) -> None:
        """Back-fill progress (0..1); ``live`` once the back-fill has been read."""
        phase = "live" if live else "backfill"
        progress = 1.0 if live else min(max(progress, 0.0), 1.0)
        if phase != self.phase or round(progress, 2) != round(self.progress, 2):
            self._dirty_status = True
        self.phase, self.progress = phase, progress

    # -- reading --------------------------------------------------------------------------

    def take_changes(self) -> Changes:
        """The streams and alerts changed since the last call (and forget them)."""
        changes = Changes(
            frozenset(self._dirty_streams),
            frozenset(self._dirty_rows),
            frozenset(self._dirty_alerts),
            self._dirty_status,
        )
        self._dirty_streams.clear()
        self._dirty_rows.clear()
        self._dirty_alerts.clear()
        self._dirty_status = False
        return changes

    def stream_state(self, view: StreamView) -> str:
        """One of :data:`STREAM_STATES`."""
        alert = self.alerts.get(view.alert_id) if view.alert_id else None
        if alert is not None:
            return "suppressed" if alert.state == "suppressed" else alert.severity
        if view.score is None:
            return "unscored"
        return "anomalous" if view.anomalous else "normal"

    def overview_row(self, name: str) -> list[Any]:
        """``[name, start, end, score, state, sparkline scores, seq]`` (times in epoch s)."""
        view = self.streams[name]
        if view.row is None:
            view.row = [
                view.name,
                view.start,
                view.end,
                None if view.score is None else round(view.score, 1),
                self.stream_state(view),
                view.ring.latest_scores(self.limits.spark),
                view.seq,
            ]
        return view.row

    def overview_rows(self) -> list[list[Any]]:
        """Every stream's overview row, by name."""
        return [self.overview_row(name) for name in sorted(self.streams)]

    def stream_detail(self, name: str) -> StreamDetail | None:
        """The stream page's data, or None for a stream the dashboard has not seen."""
        view = self.streams.get(name)
        if view is None:
            return None
        alerts = sorted(
            (self.alerts[i] for i in self._by_stream.get(name, ())), key=lambda a: a.since
        )
        return StreamDetail(
            name=name,
            state=self.stream_state(view),
            score=view.score,
            model=view.model,
            series=view.ring.series(),
            alerts=alerts,
        )

    def alerts_in(self, section: str, limit: int | None = None) -> list[AlertView]:
        """The alerts of one section (open, suppressed, resolved), latest change first."""
        if section not in SECTIONS:
            raise ValueError(f"no alert section {section!r}")
        found = sorted(
            (a for a in self.alerts.values() if a.section == section),
            key=lambda a: (a.updated, a.end),
            reverse=True,
        )
        return found if limit is None else found[:limit]

    def counts(self) -> dict[str, int]:
        """Streams and alerts per section, for the status line."""
        out = {"streams": len(self.streams), "skipped": self.skipped}
        for section in SECTIONS:
            out[section] = 0
        for alert in self.alerts.values():
            out[alert.section] += 1
        return out

    # -- internals ------------------------------------------------------------------------

    def _stream(self, name: str) -> StreamView:
        view = self.streams.get(name)
        if view is None:
            view = StreamView(name, WindowRing(self.limits.keep_windows))
            self.streams[name] = view
        return view

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _touch(self, view: StreamView) -> None:
        view.row = None
        view.seq = self._next_seq()
        self._dirty_streams.add(view.name)
        self._dirty_rows.add(view.name)

    def _evict_resolved(self) -> None:
        while len(self._resolved) > self.limits.keep_resolved:
            alert_id, _ = self._resolved.popitem(last=False)
            alert = self.alerts.pop(alert_id, None)
            if alert is not None:
                self._by_stream.get(alert.stream, set()).discard(alert_id)
                self._dirty_alerts.add(alert_id)
