"""`gridalarm produce plugins` and `gridalarm produce run NAME`: list and run installed probes.

Wiring only: the probe is found (:mod:`gridalarm.producers.plugins`), its options validated
and the probe built before Kafka is touched, so a wrong name or option is a one-line error and
nothing is sent; then :class:`~gridalarm.producers.probe.ProbeProducer` polls it until Ctrl-C /
SIGTERM (or once, with ``--once``), commits its checkpoint and prints a summary.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.cli.produce import (
    METRICS_HELP,
    Coalesce,
    kafka_ready,
    producer_error,
    producer_metrics,
    run_producer,
)
from gridalarm.config import load_settings
from gridalarm.timeutil import parse_duration

COMMANDS = ("plugins", "run")


def register(produce_app: typer.Typer) -> None:
    """Add ``plugins`` and ``run`` to ``gridalarm produce`` (once)."""
    names = {info.name for info in produce_app.registered_commands}
    if "plugins" not in names:
        produce_app.command("plugins")(plugins_command)
    if "run" not in names:
        produce_app.command("run")(run_command)


def plugins_command() -> None:
    """List the installed probes (entry-point group gridalarm.producers) and their options."""
    from gridalarm.producers.plugins import ENTRY_POINT_GROUP, describe

    infos = describe()
    if not infos:
        typer.echo(f"no probes installed (entry-point group {ENTRY_POINT_GROUP})")
        return
    for info in infos:
        typer.echo(f"{info.name}  ({info.package}; {info.target})")
        if info.error:
            typer.echo(f"    BROKEN: {info.error}")
            continue
        if info.summary:
            typer.echo(f"    {info.summary}")
        for name, kind, default in info.options:
            typer.echo(f"    --set {name}=<{kind}>  ({default})")


def _options(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {pair!r}: write NAME=VALUE, e.g. --set interval=30s")
        values[name.strip()] = value
    return values


def run_command(
    name: Annotated[str, typer.Argument(help="probe name (see 'gridalarm produce plugins')")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="a probe option NAME=VALUE (repeat)"),
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="time between polls (default: the probe's own)")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="poll once, close the window it fell in, and exit")
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="checkpoint file (default: <state dir>/probes/<topic>-<name>-…json)"),
    ] = None,
    no_checkpoint: Annotated[
        bool, typer.Option("--no-checkpoint", help="keep no state between runs")
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="source of the messages (default: probe:<name>)")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
    coalesce: Coalesce = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no warnings on stderr")] = False,
) -> None:
    """Run an installed probe: poll it every interval and send its events, until stopped."""
    from pydantic import ValidationError

    from gridalarm.producers import plugins
    from gridalarm.producers.probe import (
        ProbeContext,
        ProbeError,
        ProbeProducer,
        ProbeRun,
        default_checkpoint_path,
        load_checkpoint,
        probe_delivery,
    )
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError
    from gridalarm.producers.warn import no_warning, warn_to_stderr

    settings = load_settings(coalesce=coalesce)
    warn = no_warning if quiet else warn_to_stderr
    topic = settings.topic("events")
    try:
        cls = plugins.load(name)
        try:
            options = cls.Options(**_options(set_ or []))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "options"
            raise CliError(
                f"probe {name}: --set {where}: {first['msg']} (see 'gridalarm produce plugins')"
            ) from None
        try:
            every = parse_duration(interval) if interval is not None else cls.interval
        except ValueError as err:
            raise CliError(f"--interval: {err}") from None
        run = ProbeRun(name=name, interval=every, once=once)
        where = None if no_checkpoint else checkpoint
        if where is None and not no_checkpoint:
            where = default_checkpoint_path(settings.state_dir, topic, name, options)
        previous = load_checkpoint(where, topic, name) if where is not None else None
        context = ProbeContext(source=source or f"probe:{name}", settings=settings, warn=warn)
        probe = cls(options, context)
    except ProbeError as err:
        raise CliError(str(err)) from None
    bootstrap = kafka_ready(settings)
    events = SinkConfig.from_settings(settings, bootstrap, source=context.source)
    served = producer_metrics(metrics, context.source)
    dead = SinkConfig.deadletters_of(settings, bootstrap, context.source)

    async def main() -> str:
        async with EventSink(events) as sink, EventSink(dead) as deadletters:
            delivery = probe_delivery(settings, sink, deadletters, where, previous, warn)
            producer = ProbeProducer(probe, run, delivery, resumed_from=previous)
            if served is not None:
                served.sink, served.producer = sink, producer
            try:
                await producer.run()
            except asyncio.CancelledError:
                # SIGTERM ends a polling run: the checkpoint is committed; report and exit 0.
                if once:
                    raise
        return producer.stats.summary(name)

    try:
        typer.echo(run_producer(main()))
    except (ProbeError, SinkError) as err:
        raise producer_error(err) from None


__all__ = ["COMMANDS", "plugins_command", "register", "run_command"]
