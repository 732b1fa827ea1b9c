"""HTTP delivery with retries (gridalarm.stream.routing.delivery), over httpx's own in-memory
transport: the requests are real httpx requests, only the network is left out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from gridalarm.messages import alert_id
from gridalarm.stream.routing.backoff import RetryPolicy
from gridalarm.stream.routing.delivery import (
    Deliverer,
    DeliveryConfig,
    idempotency_key,
    request_body,
)
from gridalarm.stream.routing.targets import parse_target

NOW = 1_767_600_600.0
ALERT = {
    "v": 1,
    "alert_id": alert_id("schedd:fife1", NOW - 600, "baseline@2"),
    "state": "open",
    "stream": "schedd:fife1",
    "since": "2026-01-05T08:00:00Z",
    "start": "2026-01-05T08:01:00Z",
    "end": "2026-01-05T08:02:00Z",
    "score": 70.0,
    "severity": "warning",
    "explain": [],
    "model": "baseline@2",
}
WEBHOOK = parse_target("webhook=http://receiver.test/in")
ALERTMANAGER = parse_target("alertmanager=http://am.test:9093")
POLICY = RetryPolicy(initial=1.0, factor=2.0, max_delay=5.0, jitter=0.0)


def deliver(target: Any, answers: list[Any]) -> tuple[str, list[httpx.Request], list[float]]:
    """Deliver ALERT to a transport that gives ``answers`` in turn (a status, or an exception
    to raise); the verdict, the requests seen and the waits between them."""
    requests: list[httpx.Request] = []
    waits: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        reply = answers[min(len(requests), len(answers)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply, text="ok" if reply < 300 else "nope")

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            deliverer = Deliverer(
                client, DeliveryConfig(retry=POLICY), clock=lambda: NOW, draw=lambda: 0.0,
                sleep=fake_sleep,
            )  # fmt: skip
            return await deliverer.deliver(target, ALERT)

    return asyncio.run(main()), requests, waits


def test_a_webhook_gets_the_alert_itself_with_its_idempotency_key() -> None:
    outcome, requests, waits = deliver(WEBHOOK, [200])
    assert outcome == "accepted" and waits == []
    (request,) = requests
    assert request.method == "POST" and str(request.url) == "http://receiver.test/in"
    assert orjson.loads(request.content) == ALERT
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == f"{ALERT['alert_id']}:open:{ALERT['start']}"


def test_alertmanager_gets_a_list_of_one_v2_alert() -> None:
    outcome, (request,), _ = deliver(ALERTMANAGER, [200])
    assert outcome == "accepted"
    assert str(request.url) == "http://am.test:9093/api/v2/alerts"
    (sent,) = orjson.loads(request.content)
    assert sent["labels"]["alert_id"] == ALERT["alert_id"]


def test_failures_are_retried_with_growing_waits_until_accepted() -> None:
    answers = [503, httpx.ConnectError("refused"), 429, 500, httpx.ReadTimeout("slow"), 200]
    outcome, requests, waits = deliver(WEBHOOK, answers)
    assert outcome == "accepted"
    assert len(requests) == 6
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    # Every attempt is the same message under the same key: a receiver can dedupe on it.
    assert len({r.content for r in requests}) == 1
    assert len({r.headers["idempotency-key"] for r in requests}) == 1


def test_a_refusal_is_final_and_not_retried() -> None:
    outcome, requests, waits = deliver(WEBHOOK, [400, 200])
    assert outcome == "refused" and len(requests) == 1 and waits == []


def test_the_body_per_kind() -> None:
    from gridalarm.stream.routing.alertmanager import AlertmanagerConfig

    assert orjson.loads(request_body(WEBHOOK, ALERT, NOW, AlertmanagerConfig())) == ALERT
    assert isinstance(orjson.loads(request_body(ALERTMANAGER, ALERT, NOW, AlertmanagerConfig())),
                      list)  # fmt: skip
    assert idempotency_key(ALERT) != idempotency_key({**ALERT, "state": "update"})
