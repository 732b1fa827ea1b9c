"""The test kit of probe authors: check a probe without Kafka, then run it against a broker.

In a plug-in's own tests (pytest)::

    from gridalarm.producers.testkit import poll_once, check_snapshot

    def test_totals(fake_condor_q):
        messages = poll_once(CondorQTotals, {"command": fake_condor_q}, now=1_700_000_000)
        assert messages[0]["metrics"]["held_jobs"] == 3

:func:`poll_once` builds the probe from string options exactly as ``gridalarm produce run
--set`` does and checks every message as the runner will (event schema, time bounds), so a
message that would be dead-lettered fails the test with the reason. :func:`check_snapshot`
proves the checkpointed state survives JSON and a restart. :func:`run_probe` runs the real
producer against a real broker (the project's own tests do; a plug-in author can point it at
any test broker) and returns what reached the events topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from gridalarm.config import Settings, load_settings
from gridalarm.messages import InvalidMessage, TimeBounds, dumps, parse_event
from gridalarm.producers.probe import (
    Probe,
    ProbeContext,
    ProbeProducer,
    ProbeRun,
    ProbeStats,
    load_checkpoint,
    probe_delivery,
)


def build_probe(
    cls: type[Probe], options: Mapping[str, Any] | None = None, settings: Settings | None = None
) -> Probe:
    """The probe with ``options`` validated by its ``Options`` model, as the CLI builds it."""
    settings = settings or load_settings()
    context = ProbeContext(source=f"probe:{cls.__name__}", settings=settings)
    return cls(cls.Options(**dict(options or {})), context)


def poll_once(
    cls: type[Probe] | Probe,
    options: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Poll once and return the messages; AssertionError if one would be dead-lettered."""
    probe = cls if isinstance(cls, Probe) else build_probe(cls, options)
    now = time.time() if now is None else now
    messages = list(probe.poll(now) or ())
    bounds = TimeBounds(max_future=probe.context.settings.max_future)
    problems = []
    for i, message in enumerate(messages):
        try:
            raw = message if isinstance(message, bytes) else dumps(message)
            parse_event(raw, bounds)
        except (InvalidMessage, TypeError) as err:
            problems.append(f"message {i}: {err}: {message!r:.200}")
    assert not problems, "the runner would dead-letter:\n" + "\n".join(problems)
    return messages


def check_snapshot(probe: Probe, cls: type[Probe] | None = None) -> Any:
    """Snapshot ``probe``, pass it through JSON, restore it into a fresh instance built with the
    same options, and return the restored probe's own snapshot (equal to the first)."""
    state = probe.snapshot()
    restored_state = orjson.loads(orjson.dumps(state))
    fresh = (cls or type(probe))(probe.options, probe.context)
    fresh.restore(restored_state)
    again = fresh.snapshot()
    assert orjson.dumps(again) == orjson.dumps(state), (
        f"restore(snapshot()) lost state: {state!r:.200} became {again!r:.200}"
    )
    return again


def run_probe(
    probe: Probe,
    settings: Settings,
    bootstrap: str,
    polls: int = 1,
    interval: float = 0.2,
    checkpoint_path: Path | None = None,
) -> ProbeStats:
    """Run ``probe`` through the real producer for ``polls`` polls against the broker at
    ``bootstrap`` (topics must exist: :func:`gridalarm.topics.ensure_topics`)."""
    from gridalarm.producers.sink import EventSink, SinkConfig

    async def main() -> ProbeStats:
        name = type(probe).__name__
        events = SinkConfig.from_settings(settings, bootstrap, source=probe.context.source)
        dead = SinkConfig.deadletters_of(settings, bootstrap, probe.context.source)
        topic = settings.topic("events")
        previous = load_checkpoint(checkpoint_path, topic, name) if checkpoint_path else None
        async with EventSink(events) as sink, EventSink(dead) as deadletters:
            delivery = probe_delivery(settings, sink, deadletters, checkpoint_path, previous, print)
            run = ProbeRun(name=name, interval=interval, once=polls == 1)
            producer = ProbeProducer(probe, run, delivery, resumed_from=previous)
            stop = asyncio.Event()
            if polls > 1:
                task = asyncio.create_task(producer.run(stop))
                while producer.stats.polls < polls and not task.done():
                    await asyncio.sleep(interval / 4)
                stop.set()
                return await task  # type: ignore[return-value]
            return await producer.run()  # type: ignore[return-value]

    return asyncio.run(main())


__all__ = ["build_probe", "check_snapshot", "poll_once", "run_probe"]
