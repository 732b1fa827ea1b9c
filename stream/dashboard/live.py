"""Live updates: what changed in the state, a few times a second, as server-sent events.

The hub coalesces: a burst of 5,000 scores (every stream's window closing at once) becomes one
``rows`` event with 5,000 rows, not 5,000 events, and each payload is encoded once however many
browsers listen. A browser that falls behind (its queue fills) is disconnected instead of
buffered without bound; EventSource reconnects by itself and the page reloads its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson

from gridalarm.stream.dashboard import pages
from gridalarm.stream.dashboard.state import Changes, DashboardState

FLUSH_INTERVAL = 0.2  # seconds between pushes: the floor of the score-to-page latency
QUEUE_FRAMES = 256  # frames a browser may lag behind before it is disconnected
CLOSE = b""  # the frame that tells a subscriber's response to end


def sse(event: str, data: bytes) -> bytes:
    """One server-sent event; every line of ``data`` gets its own ``data:`` field."""
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return b"event: " + event.encode() + b"\n" + lines + b"\n"


@dataclass(frozen=True, slots=True)
class Interest:
    """What one page listens to."""

    overview: bool = False
    alerts: bool = False
    stream: str | None = None


@dataclass(eq=False, slots=True)
class Subscriber:
    """One open event stream."""

    interest: Interest
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_FRAMES))
    dropped: bool = False

    def offer(self, frame: bytes) -> None:
        """Queue a frame; a full queue closes the subscription instead."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)


class Hub:
    """Turns the state's changes into events for the subscribed pages."""

    def __init__(self, state: DashboardState, threshold: float) -> None:
        self.state = state
        self.threshold = threshold
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, interest: Interest) -> Subscriber:
        subscriber = Subscriber(interest)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def status_frame(self) -> bytes:
        state = self.state
        data = {"text": pages.status_text(state), "phase": state.phase, "progress": state.progress}
        return sse("status", orjson.dumps(data))

    def flush(self) -> Changes:
        """Push everything changed since the last flush; returns what it pushed."""
        changes = self.state.take_changes()
        if not changes or not self.subscribers:
            return changes
        frames: dict[str, bytes] = {}
        if changes.status or changes.alerts:
            frames["status"] = self.status_frame()
        wanted = {s.interest for s in self.subscribers}
        if changes.rows and any(i.overview for i in wanted):
            rows = [self.state.overview_row(n) for n in sorted(changes.rows)]
            frames["rows"] = sse("rows", orjson.dumps(rows))
        if changes.alerts and any(i.alerts for i in wanted):
            frames["alerts"] = sse("alerts", orjson.dumps(self._alert_fragments(changes)))
        # A stream page shows its alerts with their labels too: a label changes the panel.
        touched = set(changes.streams)
        for alert_id in changes.alerts:
            alert = self.state.alerts.get(alert_id)
            if alert is not None:
                touched.add(alert.stream)
        for subscriber in list(self.subscribers):
            interest = subscriber.interest
            if "status" in frames:
                subscriber.offer(frames["status"])
            if interest.overview and "rows" in frames:
                subscriber.offer(frames["rows"])
            if interest.alerts and "alerts" in frames:
                subscriber.offer(frames["alerts"])
            if interest.stream is not None and interest.stream in touched:
                subscriber.offer(sse("stream", orjson.dumps({"name": interest.stream})))
        return changes

    def _alert_fragments(self, changes: Changes) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for alert_id in sorted(changes.alerts):
            alert = self.state.alerts.get(alert_id)
            if alert is None:  # evicted: the page removes its row
                out.append({"id": alert_id, "section": None, "html": None, "seq": 0})
            else:
                html = pages.alert_row(alert, self.state.labels.get(alert_id))
                out.append(
                    {"id": alert_id, "section": alert.section, "html": html, "seq": alert.seq}
                )
        return out

    async def run(self, interval: float = FLUSH_INTERVAL) -> None:
        """Flush every ``interval`` seconds until cancelled; then close every subscription."""
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            for subscriber in list(self.subscribers):
                with contextlib.suppress(asyncio.QueueFull):
                    subscriber.queue.put_nowait(CLOSE)
