"""The web app in-process (no Kafka): pages, auth, guarded writes, the event stream.

The label sender is the one dependency the app takes for writes; here it is a list that
records what the app would send (the browser test sends real labels to a real broker).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gridalarm.labels import LabelError
from gridalarm.stream.dashboard.access import Bind, Credentials
from gridalarm.stream.dashboard.feed import FeedConfig
from gridalarm.stream.dashboard.live import Hub
from gridalarm.stream.dashboard.server import DashboardConfig, build_app
from gridalarm.stream.dashboard.state import DashboardState
from gridalarm.timeutil import format_time

T0 = 1_767_571_200.0
AID = "ef" * 12
TOKEN = "tok-0123456789abcdef"
NO_AUTH = Credentials()


def config(credentials: Credentials = NO_AUTH) -> DashboardConfig:
    feed = FeedConfig("127.0.0.1:9", {"labels": "t.labels"}, 3600.0)
    return DashboardConfig(Bind("127.0.0.1", 0), credentials, feed)


def seeded() -> DashboardState:
    state = DashboardState()
    state.apply_score({
        "v": 1, "stream": "schedd:a", "start": format_time(T0), "end": format_time(T0 + 60),
        "score": 77.0, "anomalous": True, "model": "m@1",
        "explain": [{"feature": "JobHeldEvent", "observed": 9, "expected": 1, "share": 1.0}],
    })  # fmt: skip
    state.apply_alert({
        "v": 1, "alert_id": AID, "state": "open", "stream": "schedd:a", "since": format_time(T0),
        "start": format_time(T0), "end": format_time(T0 + 60), "score": 77.0,
        "severity": "warning", "explain": [], "model": "m@1",
    }, 1.0)  # fmt: skip
    return state


Scenario = Callable[[TestClient, DashboardState, Hub, list[dict[str, Any]]], Awaitable[None]]


def run(scenario: Scenario, credentials: Credentials = NO_AUTH, fail: bool = False) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if fail:
            raise LabelError("cannot write the label to t.labels: broker down")
        sent.append(message)

    async def main() -> None:
        state = seeded()
        hub = Hub(state, 50.0)
        app = build_app(config(credentials), state, hub, send)
        async with TestClient(TestServer(app)) as client:
            await scenario(client, state, hub, sent)

    asyncio.run(main())


def test_pages_json_and_static_files_on_loopback() -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        page = await client.get("/")
        assert page.status == 200 and 'src="/static/overview.js"' in await page.text()
        assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self'
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        rows = await (await client.get("/api/overview")).json()
        assert rows["rows"][0][:5] == ["schedd:a", T0, T0 + 60, 77.0, "warning"]
        assert (await client.get("/static/overview.js")).status == 200
        assert (await client.get("/static/../server.py")).status in (403, 404)
        assert (await client.get("/alerts")).status == 200
        assert AID in await (await client.get("/alerts/body")).text()
        stream = await client.get("/stream", params={"name": "schedd:a"})
        assert stream.status == 200 and "Score against threshold" in await stream.text()
        assert (await client.get("/stream", params={"name": "nope"})).status == 404
        assert (await client.get("/stream")).status == 400
        assert (await client.get("/stream", params={"name": "schedd:a", "at": "x"})).status == 400
        panel = await client.get("/stream/panel", params={"name": "schedd:a", "at": str(T0)})
        assert "selected anomaly" in await panel.text()
        assert (await client.get("/api/alerts")).status == 200

    run(scenario)


def test_requests_for_a_foreign_host_name_are_refused_without_credentials() -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        response = await client.get("/", headers={"Host": "attacker.example:8080"})
        assert response.status == 421

    run(scenario)


def test_token_from_a_link_becomes_a_cookie() -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        assert (await client.get("/")).status == 401
        assert (await client.get("/healthz")).status == 200
        trade = await client.get("/alerts", params={"token": TOKEN}, allow_redirects=False)
        assert trade.status == 303 and trade.headers["Location"] == "/alerts"
        cookie = trade.cookies["gridalarm_token"]
        assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
        assert (await client.get("/alerts")).status == 200  # the cookie jar carries it now
        client.session.cookie_jar.clear()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/overview", headers=bearer)).status == 200
        assert (await client.get("/", params={"token": "wrong-wrong-wrong"})).status == 401

    run(scenario, Credentials(token=TOKEN))


def test_basic_auth_and_who_labelled() -> None:
    good = {"Authorization": "Basic " + base64.b64encode(b"alice:pw").decode()}

    async def scenario(client: TestClient, state, hub, sent) -> None:
        refused = await client.get("/")
        assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        done = await client.post(f"/api/alerts/{AID}/label", json={"label": "confirmed"},
                                 headers=good)  # fmt: skip
        assert done.status == 200
        assert sent[0]["by"] == "dashboard:alice" and sent[0]["label"] == "confirmed"

    run(scenario, Credentials(user="alice", password="pw"))


def test_label_posts() -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        url = f"/api/alerts/{AID}/label"
        form = await client.post(
            url,
            data="label=confirmed",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status == 403
        foreign = await client.post(url, json={"label": "confirmed"},
                                    headers={"Origin": "http://evil.example"})  # fmt: skip
        assert foreign.status == 403
        assert (await client.post(url, json={"verdict": "x"})).status == 400
        bad = await client.post(url, json={"label": "maybe"})
        assert bad.status == 400 and "confirmed, false-positive" in (await bad.json())["error"]
        unknown = await client.post(f"/api/alerts/{'0' * 24}/label", json={"label": "confirmed"})
        assert unknown.status == 404
        assert not sent
        ok = await client.post(url, json={"label": "false-positive"}, headers={
            "Origin": f"http://{client.host}:{client.port}"})  # fmt: skip
        assert ok.status == 200
        (message,) = sent
        assert message["alert_id"] == AID and message["label"] == "false-positive"
        assert message["by"] == "dashboard" and message["stream"] == "schedd:a"
        assert message["since"] == format_time(T0) and message["model"] == "m@1"
        # The row changes only when the label is read back from the topic.
        assert AID not in state.labels

    run(scenario)


def test_a_label_the_broker_refused_is_an_error_for_the_page() -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        response = await client.post(f"/api/alerts/{AID}/label", json={"label": "confirmed"})
        assert response.status == 502 and "broker down" in (await response.json())["error"]

    run(scenario, fail=True)


@pytest.mark.parametrize("query", ["", "?want=nothing", "?want=stream"])
def test_event_streams_need_to_say_what_they_want(query: str) -> None:
    async def scenario(client: TestClient, state, hub, sent) -> None:
        assert (await client.get("/events" + query)).status == 400

    run(scenario)


def test_the_event_stream_starts_with_the_status_and_carries_changes() -> None:
    async def scenario(client: TestClient, state: DashboardState, hub: Hub, sent) -> None:
        response = await client.get("/events", params={"want": "overview"})
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert first == b"retry: 1000\n\n"
        status = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert status.startswith(b"event: status\n")
        state.apply_score({
            "v": 1, "stream": "schedd:b", "start": format_time(T0),
            "end": format_time(T0 + 60), "score": 5.0, "anomalous": False, "model": "m@1",
            "explain": [],
        })  # fmt: skip
        hub.flush()
        frame = b""
        while not frame.startswith(b"event: rows\n"):  # a status frame may come first
            frame = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert b"schedd:b" in frame
        response.close()

    run(scenario)
