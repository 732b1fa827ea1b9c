"""The plug-in API: a new probe is a :class:`Probe` subclass; :class:`ProbeProducer` runs it.

A probe only reads its source. Every ``interval`` seconds the runner calls
:meth:`Probe.poll` (in a worker thread, so a probe may block on a subprocess or an HTTP call)
and sends what it returns through :class:`~gridalarm.producers.base.CheckpointedProducer`:
keyed by stream, batched, idempotent, each message checked against the event schema first (a
bad one is dead-lettered with its reason, never sent), heartbeats at the last poll time, a
checkpoint of :meth:`Probe.snapshot` saved only after the broker acknowledged every event
before it, and a clean stop on Ctrl-C or SIGTERM. Probes are found by name through the
``gridalarm.producers`` entry-point group (:mod:`gridalarm.producers.plugins`).

A minimal probe (docs/producers.md walks through a real one)::

    class Load(Probe):
        summary = "the machine's load average as a gauge"

        def poll(self, now):
            return [self.gauge(now, "host:" + socket.gethostname(), load=os.getloadavg()[0])]
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict

from gridalarm.config import Settings
from gridalarm.messages import InvalidMessage, TimeBounds, dumps, event_message, parse_event
from gridalarm.producers.base import CheckpointedProducer, Delivery, ProducerStats
from gridalarm.producers.checkpoint import write_atomically
from gridalarm.producers.sink import EventSink
from gridalarm.producers.warn import Warn, no_warning
from gridalarm.timeutil import format_time, parse_duration

PROBE_CHECKPOINT_VERSION = 1

# An option type for durations: "30s", "5m", "1h" or seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]


class ProbeError(RuntimeError):
    """A probe cannot run (bad options, a source that is not there); one line for the operator."""


class ProbeOptions(BaseModel):
    """Base of a probe's options: typed, immutable, unknown names refused.

    The CLI fills it from ``--set NAME=VALUE`` (strings, converted by pydantic), so a wrong
    name or value is a one-line error before anything runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a probe may know of the run: its source label, the settings, a way to warn."""

    source: str
    settings: Settings
    warn: Warn = no_warning


class Probe(ABC):
    """A source of events. Subclass it, give it an ``Options`` model if it takes options, and
    implement :meth:`poll`; register the class under the ``gridalarm.producers`` entry-point
    group. State that must survive a restart goes through :meth:`snapshot` / :meth:`restore`."""

    summary: ClassVar[str] = ""
    Options: ClassVar[type[ProbeOptions]] = ProbeOptions
    # Seconds between polls unless the operator says otherwise (--interval).
    interval: ClassVar[float] = 60.0

    def __init__(self, options: ProbeOptions, context: ProbeContext) -> None:
        self.options = options
        self.context = context
        # A one-shot probe sets this once it has returned everything it ever will.
        self.finished = False

    @abstractmethod
    def poll(self, now: float) -> Iterable[dict[str, Any] | bytes]:
        """The events (from :meth:`event` / :meth:`gauge`) the source has at wall time ``now``.

        Raw bytes stand for a message the source produced as JSON text: checked like the rest.

        Runs in a worker thread. Raise :class:`ProbeError` when the source cannot be read this
        time: the runner warns and polls again at the next interval.
        """

    def snapshot(self) -> Any:
        """JSON-able state to resume from; saved once everything polled so far is delivered."""
        return None

    def restore(self, state: Any) -> None:
        """Take back a :meth:`snapshot` saved by an earlier run (called before the first poll)."""
        return None

    def close(self) -> None:
        """Release what the probe holds (connections, files); called once at the end."""
        return None

    # -- message helpers: they fill in the version and source --------------------------------

    def event(self, ts: float, stream: str, kind: str, n: int = 1, **attrs: Any) -> dict[str, Any]:
        """A counter event: ``n`` events of type ``kind`` on ``stream`` at ``ts``.

        Give ``eid`` (a string unique to the event) in ``attrs`` where the source has one: a
        restarted producer then never sends that event twice.
        """
        return event_message(ts, stream, kind, n=n, source=self.context.source, **attrs)

    def gauge(self, ts: float, stream: str, **metrics: float) -> dict[str, Any]:
        """A gauge sample: named numbers on ``stream`` at ``ts`` (queue lengths, totals)."""
        return {
            "v": 1,
            "ts": format_time(ts),
            "stream": stream,
            "metrics": metrics,
            "source": self.context.source,
        }


@dataclass(slots=True)
class ProbeStats(ProducerStats):
    """What a probe run did."""

    polls: int = 0
    failed_polls: int = 0

    def summary(self, name: str) -> str:
        """One line for the operator."""
        extra = [
            f"{count} {what}"
            for count, what in (
                (self.deadletters, "dead-lettered"),
                (self.duplicates, "already delivered, not sent again"),
                (self.failed_polls, "failed polls"),
            )
            if count
        ]
        how = "resumed from a checkpoint, " if self.resumed else ""
        more = f" ({', '.join(extra)})" if extra else ""
        end = "; stopped" if self.stopped else ""
        return (
            f"{name}: {how}sent {self.events} events from {self.polls} polls{more} in "
            f"{self.seconds:.2f}s; {self.heartbeats} heartbeats{end}"
        )


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """How to run a probe: its registered name, poll interval, and whether to poll once."""

    name: str
    interval: float
    once: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval) and self.interval > 0):
            raise ProbeError("--interval must be > 0")


@dataclass(frozen=True, slots=True)
class ProbeCheckpoint:
    """A probe's saved state, and the events topic's end offsets when it was saved."""

    topic: str
    probe: str
    state: Any = None
    kafka_ends: dict[int, int] | None = None


def default_checkpoint_path(state_dir: Path, topic: str, name: str, options: ProbeOptions) -> Path:
    """``<state_dir>/probes/<topic>-<name>-<digest>.json``: one per topic, probe and options."""
    text = f"{topic}\n{name}\n{options.model_dump_json()}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return state_dir / "probes" / f"{topic}-{name}-{digest}.json"


def load_checkpoint(path: Path, topic: str, name: str) -> ProbeCheckpoint | None:
    """The checkpoint at ``path`` (None if there is none); :class:`ProbeError` if unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ProbeError(f"checkpoint {path}: cannot read ({err.strerror or err})") from None
    try:
        data = orjson.loads(raw)
        if data.get("v") != PROBE_CHECKPOINT_VERSION:
            raise ValueError(f"not a version {PROBE_CHECKPOINT_VERSION} checkpoint")
        ends = data.get("kafka_ends")
        checkpoint = ProbeCheckpoint(
            topic=str(data["topic"]),
            probe=str(data["probe"]),
            state=data.get("state"),
            kafka_ends=None if ends is None else {int(p): int(o) for p, o in ends.items()},
        )
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ProbeError(f"checkpoint {path} is damaged ({err}); move it away") from None
    if (checkpoint.topic, checkpoint.probe) != (topic, name):
        raise ProbeError(
            f"checkpoint {path} is for probe {checkpoint.probe!r} on {checkpoint.topic!r}, "
            f"not {name!r} on {topic!r}; use another --checkpoint"
        )
    return checkpoint


class ProbeProducer(CheckpointedProducer):
    """Polls a :class:`Probe` and sends what it returns, once each (see the module docstring)."""

    stats: ProbeStats

    def __init__(
        self,
        probe: Probe,
        run: ProbeRun,
        delivery: Delivery,
        resumed_from: ProbeCheckpoint | None = None,
    ) -> None:
        super().__init__(delivery, ProbeStats())
        self.probe = probe
        self.run_config = run
        self._bounds = TimeBounds(max_future=delivery.settings.max_future)
        self._last_poll: float | None = None
        if resumed_from is not None and resumed_from.state is not None:
            probe.restore(resumed_from.state)
        # The probe's state as of the last poll whose events are all queued on the sink: what
        # a checkpoint saves. A poll stopped half-way (Ctrl-C while it runs) may have moved
        # the probe on without its events being sent; a restart must poll them again.
        self._state = probe.snapshot()

    @property
    def follows(self) -> bool:
        return not self.run_config.once

    def clock(self) -> float | None:
        # A poll at `now` returned everything up to `now`: nothing earlier is still to come.
        return self._last_poll

    async def produce(self, stop: asyncio.Event | None) -> None:
        try:
            while True:
                now = time.time()
                await self._poll(now)
                await self.maybe_commit()
                if self.run_config.once or self.probe.finished:
                    return
                if await self.wait(stop, self.run_config.interval):
                    return
        finally:
            self.probe.close()

    async def _poll(self, now: float) -> None:
        """One poll: its events queued on the sink, then its state taken for checkpoints."""
        try:
            messages = list(await asyncio.to_thread(self.probe.poll, now) or ())
        except ProbeError as err:
            self.stats.polls += 1
            self.stats.failed_polls += 1
            self.warn(f"{self.run_config.name}: poll failed: {err}")
            return
        sent = 0
        try:
            for message in messages:
                await self._send(message)
                sent += 1
        except asyncio.CancelledError:
            # Stopped half-way through this poll's events (the one in flight was not queued):
            # queue the rest, so that the checkpoint's state and the topic agree, then stop.
            for message in messages[sent:]:
                await self._send(message)
            self._polled(now)
            raise
        self._polled(now)

    def _polled(self, now: float) -> None:
        self._state = self.probe.snapshot()
        self.stats.polls += 1
        self._last_poll = now

    async def _send(self, message: Any) -> None:
        """Check ``message`` as the worker will (schema, time bounds), then send or dead-letter."""
        name = self.run_config.name
        if isinstance(message, bytes):
            raw = message  # what the source said, as it said it (checked below)
        else:
            try:
                raw = dumps(message)
            except TypeError as err:
                raw = repr(message).encode("utf-8", "replace")
                await self.dead_letter(
                    raw, "bad_json", str(err), origin=f"probe:{name}", where=name
                )
                return
        try:
            event = parse_event(raw, self._bounds)
        except InvalidMessage as err:
            stream = message.get("stream") if isinstance(message, dict) else None
            await self.dead_letter(
                raw,
                err.reason,
                err.detail,
                origin=f"probe:{name}",
                where=name,
                stream=stream if isinstance(stream, str) else None,
            )
            return
        attrs = message.get("attrs")
        eid = attrs.get("eid") if isinstance(attrs, dict) else None
        await self.emit(message, event.ts, eid if isinstance(eid, str) else None)

    def save_checkpoint(self, path: Path, kafka_ends: dict[int, int] | None) -> None:
        data = {
            "v": PROBE_CHECKPOINT_VERSION,
            "topic": self.sink.config.topic,
            "probe": self.run_config.name,
            "state": self._state,
            "kafka_ends": None
            if kafka_ends is None
            else {str(p): o for p, o in sorted(kafka_ends.items())},
            "saved_at": time.time(),
        }
        try:
            payload = orjson.dumps(data, option=orjson.OPT_INDENT_2)
        except TypeError as err:
            raise ProbeError(f"{self.run_config.name}: snapshot() is not JSON ({err})") from None
        try:
            write_atomically(path, payload)
        except OSError as err:
            raise ProbeError(f"checkpoint {path}: cannot write ({err.strerror or err})") from None

    fatal = (*CheckpointedProducer.fatal, ProbeError)


def probe_delivery(
    settings: Settings,
    sink: EventSink,
    deadletters: EventSink | None,
    checkpoint_path: Path | None,
    resumed_from: ProbeCheckpoint | None,
    warn: Warn,
) -> Delivery:
    """The :class:`Delivery` of a probe run."""
    return Delivery(
        settings=settings,
        sink=sink,
        deadletters=deadletters,
        checkpoint_path=checkpoint_path,
        resumed_ends=resumed_from.kafka_ends if resumed_from is not None else None,
        resumed=resumed_from is not None,
        warn=warn,
    )


__all__ = [
    "Duration",
    "Probe",
    "ProbeCheckpoint",
    "ProbeContext",
    "ProbeError",
    "ProbeOptions",
    "ProbeProducer",
    "ProbeRun",
    "ProbeStats",
    "default_checkpoint_path",
    "load_checkpoint",
    "probe_delivery",
]
