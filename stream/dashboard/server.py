"""The dashboard's web server (aiohttp): pages, JSON, server-sent events, label POSTs.

One process, one event loop: the Kafka feed, the live hub and the HTTP handlers share the
state without locks because only one of them runs at a time. Everything the pages need (CSS,
scripts) is served from the package's ``static`` folder: no CDN, it works offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from gridalarm.labels import LabelError, label_message, send_label
from gridalarm.stream.dashboard import access, pages
from gridalarm.stream.dashboard.feed import Feed, FeedConfig
from gridalarm.stream.dashboard.live import CLOSE, Hub, Interest
from gridalarm.stream.dashboard.state import DashboardState, ViewLimits

log = logging.getLogger("gridalarm.dashboard")

LabelSender = Callable[[dict[str, Any]], Awaitable[None]]
PING_EVERY = 15.0  # seconds: keeps proxies from closing an idle event stream
STATIC = Path(str(resources.files("gridalarm.stream.dashboard") / "static"))
# No inline script or style anywhere: the policy can forbid both, so that a stream name that
# smuggled markup past escaping still could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DashboardError(RuntimeError):
    """The dashboard cannot start (a one-line message for the operator)."""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Everything ``gridalarm dashboard`` was told."""

    bind: access.Bind
    credentials: access.Credentials
    feed: FeedConfig
    threshold: float = 50.0
    limits: ViewLimits = field(default_factory=ViewLimits)


STATE_KEY = web.AppKey("state", DashboardState)
HUB_KEY = web.AppKey("hub", Hub)
CONFIG_KEY = web.AppKey("config", DashboardConfig)
SEND_KEY = web.AppKey("send", object)
WHO_KEY = web.RequestKey("who", str)  # who the guard let in: "local", "token" or a user


def build_app(
    config: DashboardConfig, state: DashboardState, hub: Hub, send: LabelSender
) -> web.Application:
    """The aiohttp application over ``state``; ``send`` writes a label message."""
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[STATE_KEY] = state
    app[HUB_KEY] = hub
    app[CONFIG_KEY] = config
    app[SEND_KEY] = send
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", overview_page)
    app.router.add_get("/api/overview", overview_json)
    app.router.add_get("/stream", stream_page)
    app.router.add_get("/stream/panel", stream_panel)
    app.router.add_get("/alerts", alerts_page)
    app.router.add_get("/alerts/body", alerts_fragment)
    app.router.add_get("/api/alerts", alerts_json)
    app.router.add_post("/api/alerts/{alert_id}/label", post_label)
    app.router.add_get("/events", events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC, append_version=False)
    return app


# -- access --------------------------------------------------------------------------------


@web.middleware
async def _guard(request: web.Request, handler: Callable) -> web.StreamResponse:
    credentials = request.app[CONFIG_KEY].credentials
    if request.path == "/healthz":
        return await handler(request)
    if not access.host_allowed(credentials, request.headers.get("Host")):
        return _text(421, "this dashboard answers on a loopback address only (127.0.0.1)")
    query_token = request.query.get("token")
    who = access.authenticated(
        credentials,
        request.headers.get("Authorization"),
        request.cookies.get(access.TOKEN_COOKIE),
        query_token,
    )
    if who is None:
        if credentials.user is not None:
            return _text(401, "log in", {"WWW-Authenticate": 'Basic realm="gridalarm"'})
        return _text(401, "token required: open the dashboard once with ?token=TOKEN")
    if query_token and request.method == "GET":
        # Trade the token in the address bar (and history, and logs) for a cookie.
        rest = {k: v for k, v in request.query.items() if k != "token"}
        target = request.path + (f"?{urlencode(rest)}" if rest else "")
        redirect = web.HTTPSeeOther(target)
        redirect.set_cookie(
            access.TOKEN_COOKIE, query_token, httponly=True, samesite="Strict", path="/"
        )
        raise redirect
    if request.method == "POST" and not access.write_allowed(
        request.headers.get("Content-Type"), request.headers.get("Origin"),
        request.headers.get("Host"),
    ):  # fmt: skip
        return _text(403, "writes must come from the dashboard's own pages (JSON)")
    request[WHO_KEY] = who
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


# -- pages -----------------------------------------------------------------------------------


async def overview_page(request: web.Request) -> web.Response:
    state, config = request.app[STATE_KEY], request.app[CONFIG_KEY]
    body = pages.overview_body(config.threshold)
    return _html(pages.page("Overview", "overview", body, "overview.js", pages.status_text(state)))


async def overview_json(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json(
        {"rows": state.overview_rows(), "status": pages.status_text(state), "phase": state.phase}
    )


def _selected(request: web.Request) -> float | None:
    at = request.query.get("at")
    try:
        return float(at) if at else None
    except ValueError:
        raise web.HTTPBadRequest(text="at: give a window start in epoch seconds\n") from None


def _panel(request: web.Request) -> tuple[str, str | None]:
    name = request.query.get("name", "")
    if not name:
        raise web.HTTPBadRequest(text="name: give a stream name, /stream?name=schedd:x\n")
    state, config = request.app[STATE_KEY], request.app[CONFIG_KEY]
    detail = state.stream_detail(name)
    if detail is None:
        return name, None
    return name, pages.stream_panel(detail, config.threshold, _selected(request), state.labels)


async def stream_page(request: web.Request) -> web.Response:
    name, panel = _panel(request)
    state = request.app[STATE_KEY]
    body = pages.stream_body(
        name, panel or '<p class="muted">no windows of this stream in the dashboard (yet)</p>'
    )
    text = pages.page(name, "overview", body, "stream.js", pages.status_text(state))
    return _html(text, 200 if panel is not None else 404)


async def stream_panel(request: web.Request) -> web.Response:
    _, panel = _panel(request)
    if panel is None:
        return _html('<p class="muted">no windows of this stream (yet)</p>', 404)
    return _html(panel)


async def alerts_page(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = pages.alerts_body(state)
    return _html(pages.page("Alerts", "alerts", body, "alerts.js", pages.status_text(state)))


async def alerts_fragment(request: web.Request) -> web.Response:
    return _html(pages.alerts_body(request.app[STATE_KEY]))


async def alerts_json(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    out = []
    for alert in state.alerts.values():
        item = {k: getattr(alert, k) for k in alert.__slots__}
        label = state.labels.get(alert.alert_id)
        item["label"] = None if label is None else label.label
        out.append(item)
    return _json(out)


async def healthz(request: web.Request) -> web.Response:
    return _text(200, "ok")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of this dashboard (behind the same access rules as the pages)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(DashboardCollector(request.app[STATE_KEY], request.app[HUB_KEY]))
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class DashboardCollector:
    """The dashboard's counters at scrape time."""

    def __init__(self, state: DashboardState, hub: Hub) -> None:
        self.state = state
        self.hub = hub

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        consumed = CounterMetricFamily(
            "gridalarm_dashboard_messages",
            "Messages read from the pipeline's topics, by topic kind.",
            labels=["topic"],
        )
        for kind, count in sorted(self.state.consumed.items()):
            consumed.add_metric([kind], count)
        yield consumed
        yield GaugeMetricFamily(
            "gridalarm_dashboard_clients",
            "Pages receiving live updates.",
            len(self.hub.subscribers),
        )
        yield GaugeMetricFamily(
            "gridalarm_dashboard_streams", "Streams the dashboard shows.", len(self.state.streams)
        )
        yield CounterMetricFamily(
            "gridalarm_dashboard_skipped",
            "Messages that were not what their topic promises (not shown).",
            value=self.state.skipped,
        )


# -- writes ----------------------------------------------------------------------------------


async def post_label(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    alert_id = request.match_info["alert_id"]
    alert = state.alerts.get(alert_id)
    if alert is None:
        return _json({"error": f"no alert {alert_id!r} in the dashboard"}, 404)
    try:
        body = orjson.loads(await request.read())
        verdict = body["label"]
        note = body.get("note")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return _json({"error": 'send {"label": "confirmed" | "false-positive"}'}, 400)
    who = request[WHO_KEY]
    try:
        message = label_message(
            alert_id,
            str(verdict),
            "dashboard" if who in ("local", "token") else f"dashboard:{who}",
            stream=alert.stream,
            since=alert.since,
            end=alert.end,
            model=alert.model,
            note=note if isinstance(note, str) and note else None,
        )
    except LabelError as err:
        return _json({"error": str(err)}, 400)
    try:
        await request.app[SEND_KEY](message)
    except LabelError as err:
        log.warning("%s", err)
        return _json({"error": str(err)}, 502)
    # The page shows the label once it is read back from the topic (over the event stream),
    # so what it shows is what the labels topic holds.
    return _json({"ok": True, "label": message})


# -- live ------------------------------------------------------------------------------------


def _interest(request: web.Request) -> Interest:
    want = request.query.get("want", "")
    if want == "overview":
        return Interest(overview=True)
    if want == "alerts":
        return Interest(alerts=True)
    if want == "stream" and request.query.get("name"):
        return Interest(stream=request.query["name"])
    raise web.HTTPBadRequest(text="want: overview, alerts, or stream with name=\n")


async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    interest = _interest(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    subscriber = hub.subscribe(interest)
    try:
        # retry: how soon the browser reconnects after we close a lagging stream.
        await response.write(b"retry: 1000\n\n" + hub.status_frame())
        while True:
            try:
                frame = await asyncio.wait_for(subscriber.queue.get(), PING_EVERY)
            except TimeoutError:
                frame = b": ping\n\n"
            if frame == CLOSE:
                break
            await response.write(frame)
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    finally:
        hub.unsubscribe(subscriber)
    return response


# -- running ---------------------------------------------------------------------------------


async def serve(
    config: DashboardConfig,
    announce: Callable[[str], None] = print,
    send: LabelSender | None = None,
) -> None:
    """Run the dashboard until SIGINT/SIGTERM: the feed, the hub and the web server."""
    state = DashboardState(config.limits)
    hub = Hub(state, config.threshold)
    feed = Feed(config.feed, state)
    sender = send or partial(send_label, config.feed.bootstrap, config.feed.topics["labels"])
    runner = web.AppRunner(
        build_app(config, state, hub, sender), access_log=None, handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(runner, config.bind.host, config.bind.port, shutdown_timeout=2.0)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise DashboardError(
            f"cannot listen on {config.bind.host}:{config.bind.port}: {err.strerror or err}"
        ) from None
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    feed_task = asyncio.create_task(feed.run(), name="dashboard-feed")
    hub_task = asyncio.create_task(hub.run(), name="dashboard-hub")
    stopper = asyncio.create_task(stop.wait())
    url = access.Bind(config.bind.host, port).url
    announce(f"dashboard on {url}/ (back-filling {config.feed.backfill:g}s, then live)")
    try:
        await asyncio.wait({feed_task, hub_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (feed_task, hub_task):
            if task.done() and task.exception() is not None:
                raise DashboardError(f"the dashboard's {task.get_name()} stopped: "
                                     f"{task.exception()}")  # fmt: skip
    finally:
        for task in (hub_task, feed_task, stopper):
            task.cancel()
        for task in (hub_task, feed_task, stopper):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
