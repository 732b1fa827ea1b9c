"""Server-sent events: framing, coalescing, who gets what, and lagging browsers."""

from __future__ import annotations

import asyncio

import orjson

from gridalarm.stream.dashboard.live import CLOSE, QUEUE_FRAMES, Hub, Interest, sse
from gridalarm.stream.dashboard.state import DashboardState
from gridalarm.timeutil import format_time

T0 = 1_767_571_200.0
AID = "cd" * 12


def score(stream: str, i: int, value: float = 1.0) -> dict:
    return {
        "v": 1, "stream": stream, "start": format_time(T0 + 60 * i),
        "end": format_time(T0 + 60 * (i + 1)), "score": value, "anomalous": value >= 50,
        "model": "m@1", "explain": [],
    }  # fmt: skip


def alert(stream: str = "s1") -> dict:
    return {
        "v": 1, "alert_id": AID, "state": "open", "stream": stream, "since": format_time(T0),
        "start": format_time(T0), "end": format_time(T0 + 60), "score": 90.0,
        "severity": "critical", "explain": [], "model": "m@1",
    }  # fmt: skip


def frames(queue: asyncio.Queue) -> dict[str, object]:
    out: dict[str, object] = {}
    while not queue.empty():
        frame = queue.get_nowait()
        if frame == CLOSE:
            out["close"] = True
            continue
        event, data = frame.decode().split("\n", 1)
        out[event.removeprefix("event: ")] = orjson.loads(data.removeprefix("data: "))
    return out


def test_sse_framing_gives_each_line_its_data_field() -> None:
    assert sse("rows", b"[1]") == b"event: rows\ndata: [1]\n\n"
    assert sse("x", b"a\nb") == b"event: x\ndata: a\ndata: b\n\n"


def test_a_burst_becomes_one_rows_event_for_overview_pages_only() -> None:
    async def scenario() -> None:
        state = DashboardState()
        hub = Hub(state, 50.0)
        overview = hub.subscribe(Interest(overview=True))
        alerts = hub.subscribe(Interest(alerts=True))
        for n in range(500):
            state.apply_score(score(f"s{n:03d}", 0))
            state.apply_score(score(f"s{n:03d}", 1))
        hub.flush()
        got = frames(overview.queue)
        assert set(got) == {"rows"}
        assert len(got["rows"]) == 500  # type: ignore[arg-type]
        assert frames(alerts.queue) == {}

    asyncio.run(scenario())


def test_alert_fragments_go_to_alert_pages_and_touch_the_streams_page() -> None:
    async def scenario() -> None:
        state = DashboardState()
        hub = Hub(state, 50.0)
        alerts = hub.subscribe(Interest(alerts=True))
        mine = hub.subscribe(Interest(stream="s1"))
        other = hub.subscribe(Interest(stream="s2"))
        state.apply_alert(alert(), 1.0)
        hub.flush()
        got = frames(alerts.queue)
        fragment = got["alerts"][0]  # type: ignore[index]
        assert fragment["id"] == AID and fragment["section"] == "open"
        assert f'data-alert-id="{AID}"' in fragment["html"]
        assert "open alerts" in got["status"]["text"]  # type: ignore[index]
        assert frames(mine.queue)["stream"] == {"name": "s1"}
        assert "stream" not in frames(other.queue)
        # A label changes the alert's row and its stream's page.
        state.apply_label({"alert_id": AID, "label": "confirmed", "by": "t", "at": "t"})
        hub.flush()
        assert "confirmed" in frames(alerts.queue)["alerts"][0]["html"]  # type: ignore[index]
        assert frames(mine.queue)["stream"] == {"name": "s1"}

    asyncio.run(scenario())


def test_nothing_is_encoded_without_subscribers_and_changes_are_not_kept_for_later() -> None:
    async def scenario() -> None:
        state = DashboardState()
        hub = Hub(state, 50.0)
        state.apply_score(score("s1", 0))
        assert hub.flush().rows == {"s1"}
        late = hub.subscribe(Interest(overview=True))
        hub.flush()
        assert frames(late.queue) == {}  # a new page loads its snapshot instead

    asyncio.run(scenario())


def test_a_browser_that_lags_is_disconnected_not_buffered() -> None:
    async def scenario() -> None:
        state = DashboardState()
        hub = Hub(state, 50.0)
        slow = hub.subscribe(Interest(overview=True))
        for i in range(QUEUE_FRAMES + 5):
            state.apply_score(score("s1", i))
            hub.flush()
        assert slow.dropped
        assert slow.queue.qsize() == 1 and slow.queue.get_nowait() == CLOSE

    asyncio.run(scenario())


def test_stopping_the_hub_closes_every_stream() -> None:
    async def scenario() -> None:
        hub = Hub(DashboardState(), 50.0)
        page = hub.subscribe(Interest(alerts=True))
        task = asyncio.create_task(hub.run(interval=0.01))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert page.queue.get_nowait() == CLOSE

    asyncio.run(scenario())
