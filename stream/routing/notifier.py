"""The notifier: consume the alerts topic in a consumer group, deliver, then commit.

At-least-once: a message's offset is committed only after every target accepted it (or
refused it for good, see :mod:`.backoff`), so a notifier that crashes or is stopped mid-way
delivers that message again when it (or another member of its group) resumes. Repeats are
harmless: Alertmanager identifies an alert by its labels, which carry the ``alert_id``, and
webhook receivers get an ``Idempotency-Key``. Within one partition messages go out in offset
order, one at a time, so an incident's ``resolved`` never overtakes its ``open``.

Suppressed alerts (inside a silence) and messages that are not alerts are committed without
being sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from gridalarm.kafka_auth import KafkaTarget, access_of
from gridalarm.messages import InvalidMessage, validate
from gridalarm.stream.routing.delivery import Deliverer, DeliveryConfig, idempotency_key
from gridalarm.stream.routing.targets import Target

log = logging.getLogger("gridalarm.notify")

ROUTED_STATES = frozenset({"open", "update", "resolved"})
# A member that has not polled for this long is taken out of its group. Deliveries that wait
# for a failing target are not a hung process, so the bound is generous.
MAX_POLL_INTERVAL_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """What one notifier process does."""

    bootstrap: KafkaTarget
    topic: str
    group: str
    targets: tuple[Target, ...]
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    from_now: bool = False  # a group with no committed offset starts at the end of the topic
    remember: int = 10_000  # recently delivered messages whose exact repeats are skipped


def routable(value: bytes | None) -> tuple[dict[str, Any] | None, str]:
    """The alert to send, or None and why not."""
    try:
        alert = orjson.loads(value) if value is not None else None
        if not isinstance(alert, dict):
            return None, "not a JSON object"
        validate("alert", alert)
    except (orjson.JSONDecodeError, InvalidMessage) as err:
        return None, f"not an alert: {err}"
    if alert["state"] not in ROUTED_STATES:
        return None, alert["state"]
    return alert, ""


class RecentKeys:
    """A bounded set of the last ``size`` keys added (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)


async def run_notifier(config: NotifyConfig) -> None:
    """Deliver alerts until cancelled."""
    import httpx
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        config.topic,
        **access_of(config.bootstrap).aiokafka(),
        group_id=config.group,
        client_id="gridalarm-notify",
        enable_auto_commit=False,
        auto_offset_reset="latest" if config.from_now else "earliest",
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
    )
    await consumer.start()
    try:
        async with httpx.AsyncClient(timeout=config.delivery.timeout) as client:
            notifier = _Notifier(consumer, Deliverer(client, config.delivery), config)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    await notifier.handle(tp, records)
    finally:
        await consumer.stop()


class _Notifier:
    def __init__(self, consumer: Any, deliverer: Deliverer, config: NotifyConfig) -> None:
        self.consumer = consumer
        self.deliverer = deliverer
        self.config = config
        self.recent = RecentKeys(config.remember)

    async def handle(self, tp: Any, records: list[Any]) -> None:
        """Deliver one partition's records in order, committing behind each delivery."""
        done: int | None = None  # offset to commit for records skipped since the last commit
        for record in records:
            if tp not in self.consumer.assignment():
                return  # revoked meanwhile: the partition's new owner delivers the rest
            alert, why = routable(record.value)
            if alert is None:
                if why != "suppressed":
                    log.warning("%s[%d]@%d skipped: %s", tp.topic, tp.partition, record.offset,
                                why)  # fmt: skip
                done = record.offset + 1
                continue
            key = idempotency_key(alert)
            if key not in self.recent:
                await asyncio.gather(
                    *(self.deliverer.deliver(target, alert) for target in self.config.targets)
                )
                self.recent.add(key)
            await self._commit(tp, record.offset + 1)
            done = None
        if done is not None:
            await self._commit(tp, done)

    async def _commit(self, tp: Any, offset: int) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self.consumer.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as err:
            # The group rebalanced and the partition moved: its new owner starts at the last
            # committed offset and delivers this message again, which is harmless.
            log.warning("commit of %s[%d] at %d failed (%s); the new owner repeats it",
                        tp.topic, tp.partition, offset, err)  # fmt: skip
