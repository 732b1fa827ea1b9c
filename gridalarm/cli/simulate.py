"""`gridalarm simulate`: a simulated HTCondor pool, written to files or sent to Kafka.

``--out DIR`` writes ``DIR/events.jsonl`` and ``DIR/labels.csv`` (the same seed gives the same
files). ``--to-kafka`` sends the events to the events topic: a finite run (``--days``) at
``--speed``, ending with heartbeats that close its last windows; or, with ``--live``, an endless
run in real time (wall-clock heartbeats every second) until Ctrl-C, optionally after
``--backfill`` of history sent at once so that a detector has something to compare against.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.cli.produce import (
    METRICS_HELP,
    Coalesce,
    kafka_ready,
    parse_speed,
    producer_error,
    producer_metrics,
    run_producer,
)
from gridalarm.config import MAX_WINDOW_S, MIN_WINDOW_S, load_settings
from gridalarm.timeutil import format_time, parse_duration

if TYPE_CHECKING:
    from tqdm import tqdm

    from gridalarm.producers.replay import Item
    from gridalarm.producers.simulate import Simulation, SimulationConfig

DEFAULT_DAYS = 2.0

# SimulationConfig field → the option an operator typed, for its one-line errors.
_OPTION_OF = {
    "streams": "--streams",
    "duration": "--days",
    "window": "--window",
    "incidents": "--incidents",
    "seed": "--seed",
    "incident_every": "--incident-every",
    "start": "--backfill",
}


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the CLI."""
    app.command("simulate")(simulate)


def simulate(
    streams: Annotated[int, typer.Option(help="number of schedds (streams)")] = 20,
    days: Annotated[
        float | None,
        typer.Option(help=f"length of a finite run in days (default {DEFAULT_DAYS:g})"),
    ] = None,
    window: Annotated[
        str, typer.Option(help="window size the incidents are laid out on, e.g. 1m, 1h")
    ] = "1m",
    incidents: Annotated[
        str,
        typer.Option(
            help="comma-separated kinds: outage, hold_storm, eviction_wave, disconnect_storm, "
            "black_hole, submit_flood"
        ),
    ] = "",
    seed: Annotated[int, typer.Option(help="random seed: the same seed, the same events")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="write DIR/events.jsonl and DIR/labels.csv")
    ] = None,
    to_kafka: Annotated[
        bool, typer.Option("--to-kafka", help="send the events to the events topic")
    ] = False,
    live: Annotated[
        bool, typer.Option("--live", help="with --to-kafka: real time, endless, until Ctrl-C")
    ] = False,
    speed: Annotated[
        str | None,
        typer.Option(help="with --to-kafka (not --live): 'max' (the default) or N× real time"),
    ] = None,
    incident_every: Annotated[
        str | None,
        typer.Option(help="place an incident every DURATION (e.g. 5m); needed with --live"),
    ] = None,
    backfill: Annotated[
        str | None,
        typer.Option(help="with --live: first send this much history at once, e.g. 2h"),
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
    coalesce: Coalesce = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Simulate a pool of HTCondor schedds with labelled incidents."""
    _check_modes(out, to_kafka, live, speed, days, backfill)
    if days is not None and not days > 0:
        raise CliError(f"--days {days:g}: use a number of days > 0, e.g. 2 or 0.5")
    window_s = _window(window)
    config = _config(
        streams=streams,
        days=days,
        window=window_s,
        incidents=incidents,
        seed=seed,
        every=_duration("--incident-every", incident_every),
        live=live,
        backfill=_duration("--backfill", backfill) or 0.0,
    )
    from gridalarm.producers.simulate import Simulation

    sim = Simulation(config)
    if out is not None:
        if metrics is not None:
            raise CliError("--metrics: only with --to-kafka (a file run has no endpoint)")
        if coalesce is not None:
            raise CliError("--coalesce: only with --to-kafka (files hold one line per event)")
        _write(sim, out)
    elif live:
        _live(sim, quiet, metrics, coalesce)
    else:
        _to_kafka(sim, parse_speed(speed or "max"), quiet, metrics, coalesce)


# -- options ---------------------------------------------------------------------------------


def _check_modes(
    out: Path | None,
    to_kafka: bool,
    live: bool,
    speed: str | None,
    days: float | None,
    backfill: str | None,
) -> None:
    """Reject options that contradict each other, with one line saying what goes together."""
    if out is not None and to_kafka:
        raise CliError("--out and --to-kafka exclude each other: write files or send to Kafka")
    if out is None and not to_kafka:
        raise CliError("say where the events go: --out DIR (files) or --to-kafka")
    if live and out is not None:
        raise CliError("--live sends in real time to Kafka; use it with --to-kafka, not --out")
    if speed is not None and out is not None:
        raise CliError("--speed paces sending to Kafka; files are written at once (drop --speed)")
    if speed is not None and live:
        raise CliError("--live runs at real time; drop --speed (or drop --live for a paced run)")
    if live and days is not None:
        raise CliError("--live runs until Ctrl-C; drop --days (use --backfill for history)")
    if backfill is not None and not live:
        raise CliError("--backfill applies to --live; a finite run has --days of history")


def _window(text: str) -> float:
    seconds = _duration("--window", text)
    if seconds is None or not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise CliError(f"--window {text!r}: use a duration from 1s to 1d, e.g. 1m or 1h")
    return seconds


def _duration(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise CliError(f"{option} {text!r}: use a duration such as 30s, 5m, 1h or 1d") from None
    if seconds <= 0 and option != "--window":
        raise CliError(f"{option} {text!r}: use a duration > 0, such as 30s, 5m, 1h or 1d")
    return seconds


def _config(
    *,
    streams: int,
    days: float | None,
    window: float,
    incidents: str,
    seed: int,
    every: float | None,
    live: bool,
    backfill: float,
) -> SimulationConfig:
    """The simulator's config; its validation errors become one line naming the option."""
    from gridalarm.producers.simulate import SimulationConfig

    kinds = tuple(part.strip() for part in incidents.split(",") if part.strip())
    try:
        if live:
            return SimulationConfig(
                streams=streams,
                start=time.time() - backfill,
                duration=None,
                window=window,
                incidents=kinds,
                seed=seed,
                incident_every=every,
            )
        duration = (DEFAULT_DAYS if days is None else days) * 86_400.0
        return SimulationConfig(
            streams=streams,
            duration=duration,
            window=window,
            incidents=kinds,
            seed=seed,
            incident_every=every,
        )
    except ValueError as err:
        raise CliError(_option_message(str(err))) from None


def _option_message(message: str) -> str:
    """``"incidents: expects ..."`` → ``"--incidents: expects ..."``."""
    field, sep, rest = message.partition(":")
    option = _OPTION_OF.get(field.strip())
    return f"{option}:{rest}" if sep and option else message


# -- the three ways to run -------------------------------------------------------------------


def _write(sim: Simulation, out: Path) -> None:
    from gridalarm.producers.simulate import write_simulation

    started = time.monotonic()
    try:
        events, incidents = write_simulation(sim, out)
    except OSError as err:
        raise CliError(f"--out {str(out)!r}: cannot write ({err.strerror or err})") from None
    seconds = time.monotonic() - started
    typer.echo(
        f"wrote {events} events and {incidents} incidents to {out} in {seconds:.2f}s, "
        f"{events / max(seconds, 1e-9):,.0f} events/s"
    )


def _to_kafka(
    sim: Simulation, speed: float | None, quiet: bool, metrics: str | None, coalesce: str | None
) -> None:
    """A finite run to Kafka, paced by ``speed``, ending with heartbeats past its last window."""
    from gridalarm.producers.replay import Pacer, ReplayStats, play
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError

    # The final heartbeat closes the last window of the *worker's* size, which is the
    # configured one (GRIDALARM_WINDOW, shared with the worker), not --window; coalescing
    # groups by that window too.
    settings = load_settings(coalesce=coalesce)
    bootstrap = kafka_ready(settings)
    config = SinkConfig.from_settings(settings, bootstrap, source="simulator")
    served = producer_metrics(metrics, config.source)
    stats = ReplayStats(path="simulator", format="simulated")
    bar = _bar(quiet)

    async def main() -> None:
        async with EventSink(config) as sink:
            if served is not None:
                served.sink = sink
            await play(_items(sim, bar), sink, Pacer(speed), settings, stats)

    try:
        run_producer(main())
    except SinkError as err:
        raise producer_error(err) from None
    finally:
        if bar is not None:
            bar.close()
    typer.echo(
        f"sent {stats.messages} simulated events ({len(sim.labels)} incidents) in "
        f"{stats.seconds:.2f}s, {stats.rate:,.0f} events/s{stats.coalesced()}; "
        f"{stats.heartbeats} heartbeats"
    )


def _live(sim: Simulation, quiet: bool, metrics: str | None, coalesce: str | None) -> None:
    """An endless run in real time: the backfill goes out at once, then each event when the
    wall clock reaches it; heartbeats carry the wall clock once the backfill is sent."""
    from gridalarm.producers.replay import Pacer, ReplayStats, play
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError

    settings = load_settings(coalesce=coalesce)
    bootstrap = kafka_ready(settings)
    config = SinkConfig.from_settings(settings, bootstrap, source="simulator", heartbeat_interval=1)
    stats = ReplayStats(path="simulator", format="live")
    sink = EventSink(config)
    served = producer_metrics(metrics, config.source)
    if served is not None:
        served.sink = sink
    started = time.monotonic()
    if not quiet:
        typer.echo(
            f"simulating {sim.config.streams} streams live to {config.topic}; Ctrl-C stops",
            err=True,
        )

    async def main() -> None:
        async with sink:
            # Anchored to the wall clock: an event is due when time.time() reaches its ts.
            items = _announced(sim, _items(sim, None))
            await play(items, sink, Pacer(1.0, anchor=time.time()), settings, stats)

    try:
        run_producer(main())
    except KeyboardInterrupt:
        pass  # the normal end of a live run
    except SinkError as err:
        raise producer_error(err) from None
    seconds = time.monotonic() - started
    typer.echo(
        f"sent {sink.stats.events} simulated events live in {seconds:.2f}s, "
        f"{sink.stats.events / max(seconds, 1e-9):,.0f} events/s as {sink.stats.messages} "
        f"messages; {sink.stats.heartbeats} heartbeats"
    )


def _announced(sim: Simulation, items: Iterator[Item]) -> Iterator[Item]:
    """Pass ``items`` through; say on stderr when a live incident begins, so that an operator
    watching the alert tail knows what the detector should find."""
    announced = 0
    for item in items:
        labels = sim.labels
        while (
            announced < len(labels) and item.ts is not None and labels[announced].start <= item.ts
        ):
            inc = labels[announced]
            typer.echo(
                f"simulator: {inc.kind} on {inc.stream} from {format_time(inc.start)} "
                f"to {format_time(inc.end)}",
                err=True,
            )
            announced += 1
        yield item


def _items(sim: Simulation, bar: tqdm | None) -> Iterator[Item]:
    """The simulation's events as replay items (the sink keys them by stream)."""
    from gridalarm.producers.replay import Item

    message = sim.message
    if bar is None:
        for ev in sim.events():
            yield Item(ev.ts, message(ev))
        return
    for count, ev in enumerate(sim.events(), 1):
        if count % 4096 == 0:
            bar.update(4096)  # every event would cost more than making it
        yield Item(ev.ts, message(ev))


def _bar(quiet: bool) -> tqdm | None:
    """A progress bar counting events on stderr, unless quiet or not a terminal."""
    from tqdm import tqdm

    if quiet or not sys.stderr.isatty():
        return None
    return tqdm(unit=" events", unit_scale=True, desc="simulate", file=sys.stderr)
