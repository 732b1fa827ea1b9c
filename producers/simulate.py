"""A deterministic HTCondor grid simulator: schedd event streams with labelled incidents.

Each stream is a schedd whose load follows the day (peak in the afternoon, trough at night) and
the week (weekends lower), with its own size, phase and slow random drift. Jobs arrive as a
Poisson process; every job then lives through HTCondor's event life cycle (submit → execute →
image-size updates → terminate, with background holds, releases, evictions, disconnects and
reconnects, shadow exceptions, aborts and a little file-transfer / ad-information noise that the
worker counts under ``other``). Incidents are overlaid on chosen streams and returned as labels.

Generation is vectorised with numpy and lazy: time is cut into chunks of about 15 minutes, and
each chunk's job arrivals produce all of those jobs' future events at once. Events that fall in a
later chunk wait in a per-chunk buffer, so ``Simulation.events`` yields a sorted stream chunk by
chunk and an endless (live) run can be consumed in real time.

Everything random comes from numpy generators seeded from ``SimulationConfig.seed``: the same
config gives the same events and labels, byte for byte once written.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import count
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from gridalarm.messages import event_message
from gridalarm.timeutil import format_time

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_START",
    "EVENT_KINDS",
    "INCIDENT_KINDS",
    "Incident",
    "SimEvent",
    "Simulation",
    "SimulationConfig",
    "write_simulation",
]

DEFAULT_START = 1_767_571_200.0  # 2026-01-05T00:00:00Z, a Monday
# ~17 events per stream per 1-minute window at the daily average; 20 streams x 2 weekdays
# come to about 0.96 M events.
DEFAULT_RATE = 1000.0
INCIDENT_KINDS: tuple[str, ...] = (
    "outage",
    "hold_storm",
    "eviction_wave",
    "disconnect_storm",
    "black_hole",
    "submit_flood",
)
SOURCE = "simulator"

HOUR = 3600.0
DAY = 86_400.0
MIN_START = 631_152_000.0  # 1990-01-01: the worker rejects anything older
MAX_WINDOW = DAY
# Incidents last 10-40 windows (bounded to the run) and keep this many windows clear after them,
# so a detector sees the stream recover before the run ends.
INCIDENT_WINDOWS = (10, 40)
TAIL_WINDOWS = 2
# A storm hits the jobs already in the pool (a periodic_hold expression or a lost file server
# catches hundreds of jobs within minutes), so even a small schedd sees at least this many
# storm events per second: ten a minute.
STORM_FLOOR = 1.0 / 6.0
# Without an explicit warm-up, no incident starts in the first quarter of the run or the first
# two hours (whichever is longer), so a detector has history to compare against.
MIN_WARMUP = 2 * HOUR
WARMUP_SHARE = 0.25
# Jobs submitted before the run's start still produce events inside it; simulating this long
# before the start fills the pool so the first hours look like any other.
BURN_IN = 6 * HOUR
CHUNK_TARGET = 900.0  # seconds of events generated at once
MAX_STEP = 60.0  # rates change at most every this many seconds
# Slow drift of each stream's rate (log-AR(1)): real schedds are not perfect Poisson sources.
DRIFT_SIGMA = 0.1
DRIFT_TIME = HOUR


class _K(IntEnum):
    """Event kinds the simulator emits; the member name is the HTCondor ``MyType``."""

    SubmitEvent = 0
    ExecuteEvent = 1
    JobImageSizeEvent = 2
    JobTerminatedEvent = 3
    JobHeldEvent = 4
    JobReleaseEvent = 5
    JobEvictedEvent = 6
    JobDisconnectedEvent = 7
    JobReconnectedEvent = 8
    JobReconnectFailedEvent = 9
    JobAbortedEvent = 10
    ShadowExceptionEvent = 11
    # Not among the worker's features: they count under ``other``.
    FileTransferEvent = 12
    JobAdInformationEvent = 13


EVENT_KINDS: tuple[str, ...] = tuple(kind.name for kind in _K)
_NK = len(_K)


# --------------------------------------------------------------------------- public types


class SimEvent(NamedTuple):
    """One simulated event: epoch seconds (millisecond precision), stream id, HTCondor type."""

    ts: float
    stream: str
    kind: str


@dataclass(frozen=True, slots=True)
class Incident:
    """A labelled incident: ``kind`` on ``stream`` during [start, end) in epoch seconds."""

    stream: str
    start: float
    end: float
    kind: str


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate.

    ``rate`` is the mean number of events per stream per hour at the weekday daily average
    (streams differ in size around it, load swings with the hour and drops at weekends). The
    default, 1000/h, gives about 17 events per stream per 1-minute window (about 8 image-size
    updates, 2 each of submits, executes and terminations, and rare kinds at 0.02-0.1 per window)
    and keeps 20 streams x 2 days at about 0.96 M events.

    ``duration`` None is an endless run (live mode); it then needs ``incident_every`` to place
    incidents. ``warmup`` None means the default rule: no incident in the first 25 % of a finite
    run or its first 2 hours, whichever is longer (2 hours for an endless run).
    """

    streams: int = 20
    start: float = DEFAULT_START
    duration: float | None = 2 * DAY
    window: float = 60.0
    incidents: tuple[str, ...] = ()
    seed: int = 0
    rate: float = DEFAULT_RATE
    incident_every: float | None = None
    prefix: str = "schedd:sim"
    warmup: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.incidents, str):  # "outage,hold_storm" from a command line
            kinds = tuple(part.strip() for part in self.incidents.split(",") if part.strip())
            object.__setattr__(self, "incidents", kinds)
        elif not isinstance(self.incidents, tuple):
            object.__setattr__(self, "incidents", tuple(self.incidents))
        _validate(self)
        # Plain floats and ints from here on (an int window or a numpy seed would otherwise
        # leak into labels and arithmetic).
        for name in ("start", "duration", "window", "rate", "incident_every", "warmup"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        object.__setattr__(self, "streams", int(self.streams))
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def end(self) -> float | None:
        """Epoch seconds at which a finite run ends; None when endless."""
        return None if self.duration is None else self.start + self.duration

    @property
    def warmup_seconds(self) -> float:
        """Seconds after ``start`` before which no incident begins."""
        if self.warmup is not None:
            return float(self.warmup)
        if self.duration is None:
            return MIN_WARMUP
        return max(WARMUP_SHARE * self.duration, MIN_WARMUP)


# --------------------------------------------------------------------------- validation


def _validate(config: SimulationConfig) -> None:
    """Raise ValueError with one line naming the first bad field and what it accepts."""
    _require_int(config.streams, "streams", "an integer from 1 to 9999", 1, 9999)
    _require_number(config.start, "start", f"epoch seconds after 1990-01-01 (>= {MIN_START:.0f})")
    if config.start < MIN_START:
        _fail("start", f"epoch seconds after 1990-01-01 (>= {MIN_START:.0f})", config.start)
    if config.duration is not None:
        _require_positive(config.duration, "duration", "seconds > 0, or None for an endless run")
    _require_positive(config.window, "window", f"seconds from 1 to {MAX_WINDOW:.0f}")
    if not 1.0 <= config.window <= MAX_WINDOW:
        _fail("window", f"seconds from 1 to {MAX_WINDOW:.0f}", config.window)
    for kind in config.incidents:
        if kind not in INCIDENT_KINDS:
            _fail("incidents", f"kinds among {', '.join(INCIDENT_KINDS)}", kind)
    _require_int(config.seed, "seed", "an integer >= 0", 0, None)
    _require_positive(config.rate, "rate", "events per stream per hour > 0")
    if (
        not isinstance(config.prefix, str)
        or not config.prefix
        or config.prefix != "".join(config.prefix.split())
    ):
        _fail("prefix", "a non-empty stream id prefix without spaces", config.prefix)
    if config.warmup is not None:
        _require_number(config.warmup, "warmup", "seconds >= 0, or None for the default")
        if config.warmup < 0:
            _fail("warmup", "seconds >= 0, or None for the default", config.warmup)
    _validate_schedule(config)


def _validate_schedule(config: SimulationConfig) -> None:
    every = config.incident_every
    if every is not None:
        _require_positive(every, "incident_every", "seconds >= window, or None")
        if every < config.window:
            _fail("incident_every", f"seconds >= window ({config.window:g}), or None", every)
        if not config.incidents:
            _fail(
                "incident_every",
                "to be left unset while incidents is empty (name a kind there, e.g. outage)",
                every,
            )
    elif config.duration is None and config.incidents:
        _fail(
            "incident_every",
            "seconds between incidents: an endless run places incidents periodically",
            every,
        )
    if config.duration is None or not config.incidents:
        return
    first, last = _incident_span(config)
    per_stream = math.ceil(len(config.incidents) / config.streams)
    needed = per_stream if every is None else 1
    if (last - first) / config.window < needed - 1e-9:
        _fail(
            "duration",
            f"a run long enough for {needed} incident window(s) per stream after the "
            f"{config.warmup_seconds:g} s warm-up and {TAIL_WINDOWS} windows of tail",
            config.duration,
        )


def _require_number(value: Any, name: str, accepts: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(name, accepts, value)


def _require_positive(value: Any, name: str, accepts: str) -> None:
    _require_number(value, name, accepts)
    if value <= 0:
        _fail(name, accepts, value)


def _require_int(value: Any, name: str, accepts: str, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        _fail(name, accepts, value)
    if value < low or (high is not None and value > high):
        _fail(name, accepts, value)


def _fail(name: str, accepts: str, got: Any) -> None:
    raise ValueError(f"{name}: expects {accepts} (got {got!r})")


# --------------------------------------------------------------------------- the job model


@dataclass(frozen=True, slots=True)
class _JobModel:
    """Background behaviour of one job; probabilities are per submitted job.

    Chosen to look like a busy schedd: image-size updates outnumber executes several times over
    (as in the 2017 study's hourly counts), holds and evictions hit a few percent of jobs, and
    disconnects almost always reconnect.
    """

    queue_wait: float = 600.0  # mean idle time before the first execute
    queue_wait_max: float = 2 * HOUR
    runtime_median: float = 1800.0
    runtime_sigma: float = 1.0
    runtime_max: float = 8 * HOUR
    restart_wait: float = 300.0  # idle again after an eviction etc., then re-executes
    image_interval: float = 1200.0  # one JobImageSizeEvent per this much run time, plus one
    p_idle_abort: float = 0.015  # removed by the user before it ever runs
    p_evict: float = 0.03
    p_shadow: float = 0.01
    p_disconnect: float = 0.02
    p_hold: float = 0.04
    p_reconnect_fail: float = 0.05  # of disconnects
    reconnect_wait: float = 60.0
    lease: tuple[float, float] = (600.0, 1800.0)  # job lease: reconnect gives up after this
    p_release: float = 0.6  # of holds; the rest are removed or stay held
    p_hold_abort: float = 0.5  # of holds that are not released
    release_wait: float = 1800.0
    abort_wait: float = HOUR
    p_file_transfer: float = 0.08  # jobs that log transfer events (2 at start, 2 at the end)
    p_ad_info: float = 0.05  # jobs that log a JobAdInformationEvent at the end

    def fate_edges(self) -> NDArray[np.float64]:
        """Cumulative probabilities of: idle abort, evict, shadow, disconnect, hold."""
        return np.cumsum(
            [self.p_idle_abort, self.p_evict, self.p_shadow, self.p_disconnect, self.p_hold]
        )

    def mean_runtime(self) -> float:
        """E[min(R, runtime_max)] for the lognormal runtime R."""
        mu, sigma, cap = math.log(self.runtime_median), self.runtime_sigma, self.runtime_max
        z = (math.log(cap) - mu) / sigma
        below = math.exp(mu + sigma * sigma / 2) * _phi(z - sigma)
        return below + cap * (1.0 - _phi(z))

    def events_per_job(self) -> float:
        """Expected number of events one submitted job produces (turns ``rate`` into jobs)."""
        ran = 1.0 - self.p_idle_abort
        held_for_good = self.p_hold * (1.0 - self.p_release)
        completes = ran - held_for_good
        restarts = (
            self.p_evict
            + self.p_shadow
            + self.p_disconnect * self.p_reconnect_fail
            + self.p_hold * self.p_release
        )
        per_job = 1.0  # submit
        per_job += ran + restarts  # executes
        per_job += ran * (1.0 + self.mean_runtime() / self.image_interval)
        per_job += completes  # terminations
        per_job += self.p_idle_abort + held_for_good * self.p_hold_abort  # aborts
        per_job += self.p_evict + self.p_shadow + 2 * self.p_disconnect  # + (re)connect outcome
        per_job += self.p_hold + self.p_hold * self.p_release
        per_job += self.p_file_transfer * 2 * (ran + completes) + self.p_ad_info * completes
        return per_job


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


_JOB_MODEL = _JobModel()


class _Batch:
    """Collects generated events as (ts, stream index, kind) array pieces."""

    def __init__(self) -> None:
        self._ts: list[NDArray[np.float64]] = []
        self._code: list[NDArray[np.int64]] = []

    def add(self, ts: NDArray[np.float64], stream: NDArray[np.int64] | int, kind: _K) -> None:
        if ts.size == 0:
            return
        self._ts.append(ts)
        self._code.append(np.asarray(stream, dtype=np.int64) * _NK + int(kind))

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        if not self._ts:
            return np.empty(0), np.empty(0, dtype=np.int64)
        ts = np.concatenate(self._ts)
        codes = [np.broadcast_to(c, t.shape) for c, t in zip(self._code, self._ts, strict=True)]
        return ts, np.concatenate(codes)


def _job_events(
    rng: np.random.Generator,
    submit: NDArray[np.float64],
    stream: NDArray[np.int64],
    model: _JobModel,
    out: _Batch,
) -> None:
    """All events of jobs submitted at ``submit``: one vectorised pass over the life cycle."""
    n = submit.size
    if n == 0:
        return
    out.add(submit, stream, _K.SubmitEvent)
    wait = np.minimum(rng.exponential(model.queue_wait, n), model.queue_wait_max)
    run = np.minimum(
        rng.lognormal(math.log(model.runtime_median), model.runtime_sigma, n), model.runtime_max
    )
    fate = np.searchsorted(model.fate_edges(), rng.random(n), side="right")
    idle_abort, evict, shadow, disconnect, hold = (fate == i for i in range(5))
    start = submit + wait
    hit = start + rng.random(n) * run  # when an eviction, disconnect, hold... strikes
    outcome = rng.random(n)  # decides how a disconnect or hold resolves

    gave_up = submit[idle_abort] + rng.random(int(idle_abort.sum())) * wait[idle_abort]
    out.add(gave_up, stream[idle_abort], _K.JobAbortedEvent)
    ran = ~idle_abort
    out.add(start[ran], stream[ran], _K.ExecuteEvent)
    out.add(hit[evict], stream[evict], _K.JobEvictedEvent)
    out.add(hit[shadow], stream[shadow], _K.ShadowExceptionEvent)

    # A disconnect mostly reconnects within a minute; otherwise the lease runs out and the job
    # goes back to idle and runs again.
    out.add(hit[disconnect], stream[disconnect], _K.JobDisconnectedEvent)
    failed = disconnect & (outcome < model.p_reconnect_fail)
    back = disconnect & ~failed
    back_ts = hit[back] + 1.0 + rng.exponential(model.reconnect_wait, int(back.sum()))
    out.add(back_ts, stream[back], _K.JobReconnectedEvent)
    fail_ts = hit[failed] + rng.uniform(*model.lease, int(failed.sum()))
    out.add(fail_ts, stream[failed], _K.JobReconnectFailedEvent)

    # A hold is released (the job runs again), or the user removes the job, or it stays held.
    out.add(hit[hold], stream[hold], _K.JobHeldEvent)
    released = hold & (outcome < model.p_release)
    release_ts = hit[released] + rng.exponential(model.release_wait, int(released.sum()))
    out.add(release_ts, stream[released], _K.JobReleaseEvent)
    # ``outcome`` is uniform above p_release too: the next p_hold_abort share of it removes.
    removed = (
        hold
        & ~released
        & (outcome < model.p_release + (1.0 - model.p_release) * model.p_hold_abort)
    )
    removed_ts = hit[removed] + rng.exponential(model.abort_wait, int(removed.sum()))
    out.add(removed_ts, stream[removed], _K.JobAbortedEvent)

    idle_again = hit.copy()  # the moment the job is back in the queue, for restarted jobs
    idle_again[failed] = fail_ts
    idle_again[released] = release_ts
    restarted = evict | shadow | failed | released
    rerun = idle_again[restarted] + rng.exponential(model.restart_wait, int(restarted.sum()))
    out.add(rerun, stream[restarted], _K.ExecuteEvent)
    end = start + run
    end[restarted] = rerun + run[restarted]
    completes = ran & ~(hold & ~released)
    out.add(end[completes], stream[completes], _K.JobTerminatedEvent)

    # Image-size updates spread over the job's time in the pool until it ends or is held.
    last = np.where(hold & ~released, hit, end)
    updates = 1 + rng.poisson(run[ran] / model.image_interval)
    first = np.repeat(start[ran], updates)
    span = np.repeat(last[ran] - start[ran], updates)
    image_ts = first + rng.random(first.size) * span
    out.add(image_ts, np.repeat(stream[ran], updates), _K.JobImageSizeEvent)
    _other_events(rng, start, end, stream, ran, completes, model, out)


def _other_events(
    rng: np.random.Generator,
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    stream: NDArray[np.int64],
    ran: NDArray[np.bool_],
    completes: NDArray[np.bool_],
    model: _JobModel,
    out: _Batch,
) -> None:
    """Event types outside the feature list, so the worker's ``other`` is not always zero."""
    n = start.size
    transfers = rng.random(n) < model.p_file_transfer
    inbound = transfers & ran
    outbound = transfers & completes
    for when, mask in ((start, inbound), (start, inbound), (end, outbound), (end, outbound)):
        moved = when[mask] + rng.uniform(0.0, 30.0, int(mask.sum()))
        out.add(moved, stream[mask], _K.FileTransferEvent)
    info = completes & (rng.random(n) < model.p_ad_info)
    out.add(end[info] + 0.5, stream[info], _K.JobAdInformationEvent)


# --------------------------------------------------------------------------- streams and load


@dataclass(frozen=True, slots=True)
class _Streams:
    """Per-stream load shape: size, diurnal amplitude and phase, weekend factor."""

    size: NDArray[np.float64]
    amplitude: NDArray[np.float64]
    phase: NDArray[np.float64]  # seconds added to UTC: the schedd's users' local time
    weekend: NDArray[np.float64]

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Streams:
        size = rng.lognormal(0.0, 0.5, n)
        return cls(
            size=size / size.mean(),  # keep the pool's mean rate at ``rate``
            amplitude=rng.uniform(0.45, 0.65, n),
            phase=rng.uniform(-2.0, 2.0, n) * HOUR,
            weekend=rng.uniform(0.45, 0.65, n),
        )

    def shape(self, times: NDArray[np.float64]) -> NDArray[np.float64]:
        """Load factor (mean 1 over a weekday) per stream (rows) at ``times`` (columns)."""
        hour = np.mod(self._local(times), DAY) / HOUR
        # Peak at 15:00 local, trough at 03:00: people submit in the afternoon.
        diurnal = 1.0 + self.amplitude[:, None] * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        return self.level(times) * diurnal

    def level(self, times: NDArray[np.float64]) -> NDArray[np.float64]:
        """The daily mean of ``shape``: stream size, lower at weekends."""
        weekday = np.mod(np.floor(self._local(times) / DAY) + 3, 7)  # 1970-01-01: Thursday
        return self.size[:, None] * np.where(weekday >= 5, self.weekend[:, None], 1.0)

    def _local(self, times: NDArray[np.float64]) -> NDArray[np.float64]:
        return times[None, :] + self.phase[:, None]


# --------------------------------------------------------------------------- incidents


@dataclass(frozen=True, slots=True)
class _Planned:
    """An incident with what the generator needs: stream index and strength."""

    incident: Incident
    stream: int
    intensity: float


@dataclass(frozen=True, slots=True)
class _Overlay:
    """One incident's share of one chunk: the steps it covers and the stream's job rate."""

    planned: _Planned
    step_start: NDArray[np.float64]
    step: float
    # Expected background jobs per step on that stream at its daily mean load: storms and
    # floods follow the pool's size, not the hour (a runaway script does not sleep at night).
    jobs: NDArray[np.float64]

    @property
    def stream(self) -> int:
        return self.planned.stream

    @property
    def length(self) -> float:
        return self.planned.incident.end - self.planned.incident.start

    def scatter(self, rng: np.random.Generator, expected: NDArray[np.float64]) -> NDArray:
        """Poisson counts per step, spread uniformly inside each step."""
        counts = rng.poisson(expected)
        ts = np.repeat(self.step_start, counts)
        return ts + rng.random(ts.size) * self.step

    def storm(
        self, rng: np.random.Generator, per_job: float, on: NDArray[np.bool_] | None = None
    ) -> NDArray[np.float64]:
        """``intensity`` times a background rate (``per_job`` events per job), with a floor;
        only in the steps where ``on`` is true, if given."""
        expected = np.maximum(self.planned.intensity * per_job * self.jobs, STORM_FLOOR * self.step)
        if on is not None:
            expected = np.where(on, expected, 0.0)
        return self.scatter(rng, expected)

    def before_end(self, ts: NDArray[np.float64]) -> NDArray[np.float64]:
        """Follow-up events are kept inside the labelled interval."""
        return ts[ts < self.planned.incident.end]


def _hold_storm(ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch) -> None:
    held = ov.storm(rng, model.p_hold)
    out.add(held, ov.stream, _K.JobHeldEvent)
    # An admin releases part of them once the cause (a full disk, a bad policy) is fixed.
    some = held[rng.random(held.size) < 0.3]
    released = some + rng.uniform(0.05, 0.5, some.size) * ov.length
    out.add(ov.before_end(released), ov.stream, _K.JobReleaseEvent)


def _eviction_wave(ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch) -> None:
    # Machines are reclaimed (owners back, preemption): evictions surge; executes are thinned.
    evicted = ov.storm(rng, model.p_evict)
    out.add(evicted, ov.stream, _K.JobEvictedEvent)


def _disconnect_storm(
    ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch
) -> None:
    # A network partition: running jobs disconnect, and most of their leases then run out.
    lost = ov.storm(rng, model.p_disconnect)
    out.add(lost, ov.stream, _K.JobDisconnectedEvent)
    fails = rng.random(lost.size) < 0.6
    failed = lost[fails] + rng.uniform(0.1, 0.5, int(fails.sum())) * ov.length
    out.add(ov.before_end(failed), ov.stream, _K.JobReconnectFailedEvent)
    back = lost[~fails] + 1.0 + rng.exponential(model.reconnect_wait, int((~fails).sum()))
    out.add(ov.before_end(back), ov.stream, _K.JobReconnectedEvent)


def _black_hole(ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch) -> None:
    # A broken node that matches job after job and kills each within a minute: bursts of
    # executes, each followed by a shadow exception or, after too many retries, an abort.
    bursting = rng.random(ov.jobs.size) < 0.5  # on in about half the steps, twice as hard
    execs = ov.storm(rng, 2.0, on=bursting)
    out.add(execs, ov.stream, _K.ExecuteEvent)
    died = execs + rng.uniform(2.0, 60.0, execs.size)
    aborted = rng.random(execs.size) < 0.3
    out.add(ov.before_end(died[~aborted]), ov.stream, _K.ShadowExceptionEvent)
    out.add(ov.before_end(died[aborted]), ov.stream, _K.JobAbortedEvent)


def _submit_flood(ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch) -> None:
    # A runaway script: adds ``intensity`` times the usual rate of submits; the jobs sit idle.
    extra = ov.scatter(rng, ov.planned.intensity * ov.jobs)
    out.add(extra, ov.stream, _K.SubmitEvent)


def _no_overlay(ov: _Overlay, rng: np.random.Generator, model: _JobModel, out: _Batch) -> None:
    return None


_OverlayFn = Callable[[_Overlay, np.random.Generator, _JobModel, _Batch], None]


@dataclass(frozen=True, slots=True)
class _Signature:
    """How an incident kind changes its stream: extra events, thinned kinds, strength range."""

    overlay: _OverlayFn
    keep: tuple[tuple[_K, float], ...] = ()  # (kind, share of background events kept)
    silent: bool = False  # drop every event of the stream
    intensity: tuple[float, float] = (1.0, 1.0)


SIGNATURES: Mapping[str, _Signature] = MappingProxyType(
    {
        "outage": _Signature(_no_overlay, silent=True),
        "hold_storm": _Signature(_hold_storm, intensity=(20.0, 40.0)),
        "eviction_wave": _Signature(
            _eviction_wave, keep=((_K.ExecuteEvent, 0.3),), intensity=(15.0, 30.0)
        ),
        "disconnect_storm": _Signature(
            _disconnect_storm, keep=((_K.JobReconnectedEvent, 0.5),), intensity=(20.0, 40.0)
        ),
        "black_hole": _Signature(
            _black_hole, keep=((_K.JobTerminatedEvent, 0.2),), intensity=(4.0, 8.0)
        ),
        "submit_flood": _Signature(_submit_flood, intensity=(10.0, 20.0)),
    }
)


def _incident_span(config: SimulationConfig) -> tuple[float, float]:
    """[first, last): where incidents may lie, on the epoch-aligned window grid.

    The worker's tumbling windows are aligned to the epoch, so labels on the same grid cover
    whole windows even when ``start`` (e.g. "now" in live mode) is not on it.
    """
    window = config.window
    first = math.ceil((config.start + config.warmup_seconds) / window - 1e-9) * window
    if config.end is None:
        return first, math.inf
    return first, (math.floor(config.end / window + 1e-9) - TAIL_WINDOWS) * window


def _plan_finite(config: SimulationConfig, ids: list[str]) -> list[_Planned]:
    """Each listed kind once, on distinct streams while they last, never overlapping."""
    if not config.incidents:
        return []
    rng = np.random.default_rng([config.seed, 1])
    first, last = _incident_span(config)
    span = round((last - first) / config.window)
    order = rng.permutation(config.streams)
    by_stream: dict[int, list[str]] = defaultdict(list)
    for i, kind in enumerate(config.incidents):
        by_stream[int(order[i % config.streams])].append(kind)
    planned = []
    for stream, kinds in by_stream.items():
        slot = span // len(kinds)  # each incident gets its own slot: no overlap on a stream
        for k, kind in enumerate(kinds):
            windows = min(int(rng.integers(INCIDENT_WINDOWS[0], INCIDENT_WINDOWS[1] + 1)), slot)
            offset = k * slot + int(rng.integers(0, slot - windows + 1))
            begin = first + offset * config.window
            planned.append(
                _make_planned(rng, ids, stream, kind, begin, begin + windows * config.window)
            )
    return sorted(planned, key=lambda p: (p.incident.start, p.incident.stream))


def _plan_periodic(config: SimulationConfig, ids: list[str], index: int) -> _Planned | None:
    """The ``index``-th incident of a periodic schedule, or None past a finite run's end."""
    assert config.incident_every is not None
    rng = np.random.default_rng([config.seed, 2, index])
    window = config.window
    first, last = _incident_span(config)
    begin = first + math.ceil(index * config.incident_every / window - 1e-9) * window
    # At most one period long, so consecutive incidents never overlap even on one stream.
    room = math.floor(config.incident_every / window + 1e-9)
    windows = min(int(rng.integers(INCIDENT_WINDOWS[0], INCIDENT_WINDOWS[1] + 1)), room)
    end = begin + windows * window
    if end > last + 1e-6:
        return None
    kind = config.incidents[index % len(config.incidents)]
    return _make_planned(rng, ids, int(rng.integers(config.streams)), kind, begin, end)


def _make_planned(
    rng: np.random.Generator, ids: list[str], stream: int, kind: str, begin: float, end: float
) -> _Planned:
    low, high = SIGNATURES[kind].intensity
    return _Planned(Incident(ids[stream], begin, end, kind), stream, float(rng.uniform(low, high)))


# --------------------------------------------------------------------------- the simulation


@dataclass(frozen=True, slots=True)
class _Grid:
    """Time layout: rate steps inside chunks, chunks counted from ``origin``.

    ``origin`` lies on the epoch-aligned window grid, early enough for the burn-in.
    """

    step: float
    steps_per_chunk: int
    origin: float

    @classmethod
    def for_config(cls, config: SimulationConfig) -> _Grid:
        # Steps divide the window, so incident edges (window edges) are step edges.
        step = config.window / math.ceil(config.window / MAX_STEP)
        per_chunk = max(1, round(CHUNK_TARGET / step))
        chunk = per_chunk * step
        aligned = math.floor(config.start / config.window) * config.window
        return cls(step, per_chunk, aligned - math.ceil(BURN_IN / chunk) * chunk)

    @property
    def chunk(self) -> float:
        return self.steps_per_chunk * self.step

    def chunk_start(self, index: int) -> float:
        return self.origin + index * self.chunk

    def chunk_of(self, ts: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor((ts - self.origin) / self.chunk).astype(np.int64)


@dataclass
class _RunState:
    """Mutable state of one pass over the simulation (one call of ``events``)."""

    rng: np.random.Generator
    drift: NDArray[np.float64]
    pending: defaultdict[int, list[tuple[NDArray[np.float64], NDArray[np.int64]]]] = field(
        default_factory=lambda: defaultdict(list)
    )


class Simulation:
    """A simulated pool: stream ids, incident labels, and a lazy, time-ordered event stream."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        width = max(2, len(str(config.streams)))
        self.streams: list[str] = [
            f"{config.prefix}{i:0{width}d}" for i in range(1, config.streams + 1)
        ]
        self._stream_names = np.asarray(self.streams, dtype=object)
        self._kind_names = np.asarray(EVENT_KINDS, dtype=object)
        self._shape = _Streams.draw(np.random.default_rng([config.seed, 3]), config.streams)
        self._grid = _Grid.for_config(config)
        self._model = _JOB_MODEL
        # Expected jobs per second per stream at load factor 1.
        self._jobs_per_s = config.rate / self._model.events_per_job() / HOUR
        self._periodic = config.incident_every is not None
        self._planned: list[_Planned] = [] if self._periodic else _plan_finite(config, self.streams)
        self._periodic_done = False  # a finite periodic schedule reached the end of the run
        self._horizon = config.start  # incidents starting before this have been scheduled

    @property
    def labels(self) -> list[Incident]:
        """The incidents, by start time; for an endless run, those scheduled so far."""
        if not self._periodic:
            return [p.incident for p in self._planned]
        if self.config.duration is not None:
            self._schedule_until(math.inf)  # a finite schedule is known in full
            return [p.incident for p in self._planned]
        return [p.incident for p in self._planned if p.incident.start < self._horizon]

    def message(self, ev: SimEvent) -> dict[str, Any]:
        """The wire dict of ``ev`` (an event message of DESIGN.md)."""
        return event_message(ev.ts, ev.stream, ev.kind, source=SOURCE)

    def events(self, until: float | None = None) -> Iterator[SimEvent]:
        """Events with ts < ``until`` (and before the run's end), in non-decreasing ts order.

        Each call starts again from the beginning and yields the same events; they are made
        about 15 minutes of simulated time at a time, so an endless run costs nothing ahead.
        """
        for ts, codes in self._chunks(self._stop(until)):
            streams = self._stream_names[codes // _NK]
            kinds = self._kind_names[codes % _NK]
            yield from map(SimEvent, ts.tolist(), streams.tolist(), kinds.tolist())

    def window_counts(
        self, window: float, features: tuple[str, ...], other: str = "other"
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-window event counts without writing events: (starts (W,), counts (S, W, F)).

        The windows are those the worker makes of :meth:`events` (event times rounded to the
        millisecond as on the wire, windows aligned to the epoch, kinds outside ``features``
        counted under ``other`` when it is a feature), from the window of the first event to
        that of the last; a stream's rows before its own first event are zeros here, where the
        worker has no row at all. Tens of millions of events aggregate in seconds, which makes
        month-long evaluations practical (a test holds this equal to the event path).
        """
        if self.config.duration is None:
            raise ValueError("duration: window_counts needs a finite run (got None, endless)")
        column = np.full(_NK, -1, dtype=np.int64)
        for kind in _K:
            if kind.name in features:
                column[kind] = features.index(kind.name)
            elif other in features:
                column[kind] = features.index(other)
        first: int | None = None
        rows: dict[int, NDArray[np.float64]] = {}
        width = len(features)
        for ts, codes in self._chunks(self._stop(None)):
            wire = np.round(ts * 1000.0) / 1000.0
            index = np.floor(wire / window).astype(np.int64)
            col = column[codes % _NK]
            keep = col >= 0
            index, stream, col = index[keep], (codes // _NK)[keep], col[keep]
            if index.size == 0:
                continue
            first = int(index[0]) if first is None else first
            for w in np.unique(index).tolist():
                rows.setdefault(w, np.zeros((self.config.streams, width)))
            flat = np.zeros((int(index.max()) - int(index.min()) + 1, self.config.streams, width))
            np.add.at(flat, (index - index.min(), stream, col), 1.0)
            for k, w in enumerate(range(int(index.min()), int(index.max()) + 1)):
                if w in rows:
                    rows[w] += flat[k]
        if first is None:
            return np.zeros(0), np.zeros((self.config.streams, 0, width))
        last = max(rows)
        span = range(first, last + 1)
        counts = np.stack([rows.get(w, np.zeros((self.config.streams, width))) for w in span])
        return np.array(span, dtype=np.float64) * window, counts.transpose(1, 0, 2)

    # -- generation

    def _stop(self, until: float | None) -> float:
        stop = math.inf if until is None else float(until)
        return stop if self.config.end is None else min(stop, self.config.end)

    def _chunks(self, stop: float) -> Iterator[tuple[NDArray[np.float64], NDArray[np.int64]]]:
        rng = np.random.default_rng([self.config.seed, 0])
        state = _RunState(rng, rng.normal(0.0, DRIFT_SIGMA, self.config.streams))
        for index in count():
            begin = self._grid.chunk_start(index)
            if begin >= stop:
                return
            self._generate(state, index)
            ts, codes = self._take(state, index)
            keep = ts < stop
            if not keep.all():
                ts, codes = ts[keep], codes[keep]
            if ts.size:
                yield ts, codes

    def _generate(self, state: _RunState, index: int) -> None:
        """Jobs submitted in chunk ``index`` and its incident overlays, into the buffer."""
        grid = self._grid
        begin = grid.chunk_start(index)
        step_start = begin + np.arange(grid.steps_per_chunk) * grid.step
        jobs = self._expected_jobs(state, step_start + grid.step / 2)
        counts = state.rng.poisson(jobs)
        per_step = counts.ravel()
        stream = np.repeat(np.arange(self.config.streams).repeat(grid.steps_per_chunk), per_step)
        steps = np.repeat(np.tile(step_start, self.config.streams), per_step)
        submit = steps + state.rng.random(steps.size) * grid.step
        # Submission order per stream is irrelevant: the chunk is sorted before it is emitted.
        batch = _Batch()
        _job_events(state.rng, submit, stream, self._model, batch)
        for overlay in self._overlays(begin, step_start):
            SIGNATURES[overlay.planned.incident.kind].overlay(
                overlay, state.rng, self._model, batch
            )
        self._buffer(state, *batch.arrays())

    def _expected_jobs(self, state: _RunState, mids: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected job submissions per (stream, step), with each stream's slow drift."""
        phi = math.exp(-self._grid.step / DRIFT_TIME)
        noise = state.rng.standard_normal((mids.size, self.config.streams))
        noise *= DRIFT_SIGMA * math.sqrt(1.0 - phi * phi)
        drift = np.empty((self.config.streams, mids.size))
        for k in range(mids.size):
            state.drift = phi * state.drift + noise[k]
            drift[:, k] = state.drift
        return self._jobs_per_s * self._grid.step * self._shape.shape(mids) * np.exp(drift)

    def _buffer(self, state: _RunState, ts: NDArray[np.float64], codes: NDArray[np.int64]) -> None:
        # Millisecond precision: what the wire format carries, so ``message`` loses nothing.
        ts = np.floor(ts * 1000.0) / 1000.0
        keep = ts >= self.config.start
        if self.config.end is not None:
            keep &= ts < self.config.end
        ts, codes = ts[keep], codes[keep]
        chunk = self._grid.chunk_of(ts)
        order = np.argsort(chunk, kind="stable")
        ts, codes, chunk = ts[order], codes[order], chunk[order]
        cuts = np.flatnonzero(np.diff(chunk)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, ts.size], strict=True):
            if hi > lo:
                state.pending[int(chunk[lo])].append((ts[lo:hi], codes[lo:hi]))

    def _take(self, state: _RunState, index: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The chunk's events, incident effects applied, sorted by time."""
        pieces = state.pending.pop(index, [])
        if not pieces:
            return np.empty(0), np.empty(0, dtype=np.int64)
        ts = np.concatenate([p[0] for p in pieces])
        codes = np.concatenate([p[1] for p in pieces])
        begin = self._grid.chunk_start(index)
        keep = np.ones(ts.size, dtype=bool)
        for planned in self._active(begin, begin + self._grid.chunk):
            self._suppress(state.rng, planned, ts, codes, keep)
        ts, codes = ts[keep], codes[keep]
        order = np.argsort(ts, kind="stable")
        return ts[order], codes[order]

    def _suppress(
        self,
        rng: np.random.Generator,
        planned: _Planned,
        ts: NDArray[np.float64],
        codes: NDArray[np.int64],
        keep: NDArray[np.bool_],
    ) -> None:
        """Drop what an incident silences: everything (outage) or a share of some kinds."""
        signature = SIGNATURES[planned.incident.kind]
        inside = (
            (codes // _NK == planned.stream)
            & (ts >= planned.incident.start)
            & (ts < planned.incident.end)
        )
        if signature.silent:
            keep &= ~inside
            return
        for kind, share in signature.keep:
            hit = np.flatnonzero(inside & (codes % _NK == kind))
            keep[hit[rng.random(hit.size) >= share]] = False

    def _overlays(self, begin: float, step_start: NDArray[np.float64]) -> Iterator[_Overlay]:
        step = self._grid.step
        mids = step_start + step / 2
        for planned in self._active(begin, begin + self._grid.chunk):
            inside = (mids >= planned.incident.start) & (mids < planned.incident.end)
            level = self._shape.level(mids[inside])[planned.stream]
            yield _Overlay(planned, step_start[inside], step, self._jobs_per_s * step * level)

    def _active(self, begin: float, end: float) -> list[_Planned]:
        """Incidents overlapping [begin, end); extends a periodic schedule as time goes on."""
        if self._periodic:
            self._schedule_until(end)
            self._horizon = max(self._horizon, end)
        return [p for p in self._planned if p.incident.start < end and p.incident.end > begin]

    def _schedule_until(self, end: float) -> None:
        while not self._periodic_done and (
            not self._planned or self._planned[-1].incident.start < end
        ):
            planned = _plan_periodic(self.config, self.streams, len(self._planned))
            if planned is None:
                self._periodic_done = True
            else:
                self._planned.append(planned)


# --------------------------------------------------------------------------- the writer


def write_simulation(sim: Simulation, out_dir: Path) -> tuple[int, int]:
    """Write ``out_dir/events.jsonl`` and ``out_dir/labels.csv``; return (events, incidents).

    Files appear whole or not at all (written beside, then renamed), so a half-written run is
    never taken for a finished one.
    """
    if sim.config.duration is None:
        raise ValueError("duration: write_simulation needs a finite run (got None, endless)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = out_dir / "events.jsonl", out_dir / "labels.csv"
    written = _write_events(sim, events_path.with_name(events_path.name + ".tmp"))
    labels = sim.labels
    with open(labels_path.with_name(labels_path.name + ".tmp"), "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("stream", "start", "end", "kind"))
        for inc in labels:
            writer.writerow((inc.stream, format_time(inc.start), format_time(inc.end), inc.kind))
    os.replace(events_path.with_name(events_path.name + ".tmp"), events_path)
    os.replace(labels_path.with_name(labels_path.name + ".tmp"), labels_path)
    return written, len(labels)


def _write_events(sim: Simulation, path: Path) -> int:
    """The events as JSON lines, byte for byte ``orjson.dumps(sim.message(ev))`` per event.

    Formatting a time with ``format_time`` and building the dict per event costs about 8 µs;
    this does the same per chunk (each distinct second formatted once, a template message per
    stream and kind) at about 1 µs, which matters at a million events.
    """
    templates = [
        event_message(sim.config.start, stream, kind, source=SOURCE)
        for stream in sim.streams
        for kind in EVENT_KINDS
    ]
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    written = 0
    with open(path, "wb") as fh:
        for ts, codes in sim._chunks(sim._stop(None)):
            lines = []
            for stamp, code in zip(_wire_times(ts), codes.tolist(), strict=True):
                message = templates[code].copy()
                message["ts"] = stamp
                lines.append(dumps(message, option=newline))
            fh.write(b"".join(lines))
            written += len(lines)
    return written


_MILLIS = ("Z", *(f".{i:03d}Z" for i in range(1, 1000)))


def _wire_times(ts: NDArray[np.float64]) -> list[str]:
    """``format_time`` of each (millisecond) time in a sorted chunk, formatting each second once."""
    if ts.size == 0:
        return []
    seconds, millis = np.divmod(np.round(ts * 1000.0).astype(np.int64), 1000)
    base = int(seconds[0])
    offset = seconds - base
    prefixes = [format_time(float(base + i))[:-1] for i in range(int(offset[-1]) + 1)]
    return [
        prefixes[sec] + _MILLIS[ms]
        for sec, ms in zip(offset.tolist(), millis.tolist(), strict=True)
    ]
