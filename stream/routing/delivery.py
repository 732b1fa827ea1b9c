"""HTTP delivery of one alert to one target, tried again with backoff until the target answers.

Alertmanager gets ``[alertmanager_alert(...)]``; a webhook gets the alert message itself, with
an ``Idempotency-Key`` header (alert id, state and window) that a receiver can dedupe on, since
at-least-once delivery can repeat a message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from gridalarm.stream.routing.alertmanager import AlertmanagerConfig, alertmanager_alert
from gridalarm.stream.routing.backoff import RetryPolicy, Verdict, verdict
from gridalarm.stream.routing.targets import Target

log = logging.getLogger("gridalarm.notify")


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How alerts are sent."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    timeout: float = 10.0  # seconds per HTTP request


def idempotency_key(alert: dict[str, Any]) -> str:
    """What makes one alert message distinct: a repeated message carries the same key."""
    return f"{alert['alert_id']}:{alert['state']}:{alert['start']}"


def request_body(
    target: Target, alert: dict[str, Any], now: float, config: AlertmanagerConfig
) -> bytes:
    """The JSON body POSTed to ``target`` for ``alert``."""
    if target.kind == "alertmanager":
        return orjson.dumps([alertmanager_alert(alert, now, config)])
    return orjson.dumps(alert)


class Deliverer:
    """Sends alerts over one HTTP client; clock, randomness and sleep are injectable."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: DeliveryConfig,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.draw = draw
        self.sleep = sleep

    async def deliver(self, target: Target, alert: dict[str, Any]) -> Verdict:
        """POST ``alert`` to ``target`` until it is accepted or refused; never gives up on
        errors that may pass (see :mod:`.backoff`)."""
        headers = {"Content-Type": "application/json"}
        if target.kind == "webhook":
            headers["Idempotency-Key"] = idempotency_key(alert)
        what = f"{alert['state']} {alert['alert_id']} ({alert['stream']})"
        attempt = 0
        while True:
            attempt += 1
            # Built per attempt: an open alert's endsAt counts from the moment it is sent.
            body = request_body(target, alert, self.clock(), self.config.alertmanager)
            try:
                response = await self.client.post(target.url, content=body, headers=headers)
            except httpx.HTTPError as err:
                outcome: Verdict = "retry"
                detail = f"{type(err).__name__}: {err}".rstrip(": ")
            else:
                outcome = verdict(response.status_code)
                detail = f"HTTP {response.status_code} {response.text[:200]!r}"
            if outcome == "accepted":
                log.info("%s: %s delivered (attempt %d)", target.name, what, attempt)
                return outcome
            if outcome == "refused":
                # The target says the message itself is wrong; sending it again cannot help,
                # and waiting on it would hold back every later alert.
                log.error("%s: %s refused, not sent again: %s", target.name, what, detail)
                return outcome
            wait = self.config.retry.delay(attempt, self.draw())
            log.warning("%s: %s failed (attempt %d: %s); again in %.1fs", target.name, what,
                        attempt, detail, wait)  # fmt: skip
            await self.sleep(wait)
