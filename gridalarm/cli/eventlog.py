"""`gridalarm produce eventlog PATH...`: HTCondor job event logs to the events topic.

Wiring only: options to configs, the logs opened and checked before Kafka is touched (a wrong
path or a file that is no event log is a one-line error, and nothing is sent), then the
producer (:mod:`gridalarm.producers.eventlog`) run until the logs are read, or, with
``--follow``, until Ctrl-C / SIGTERM, after which it commits its checkpoint and prints a summary.
"""

from __future__ import annotations

import asyncio
import os
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

COMMAND = "eventlog"


def register(produce_app: typer.Typer) -> None:
    """Add ``eventlog`` to ``gridalarm produce`` (once, however often this is called)."""
    if any(info.name == COMMAND for info in produce_app.registered_commands):
        return
    produce_app.command(COMMAND)(eventlog_command)


def eventlog_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="event log files (text, JSON or XML format), e.g. /var/log/condor/EventLog",
            show_default=False,
        ),
    ],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="keep reading as the logs grow, through rotations, until stopped"
        ),
    ] = False,
    stream_by: Annotated[
        str,
        typer.Option(help="stream id: schedd, site, owner or attr:NAME (a ClassAd attribute)"),
    ] = "schedd",
    schedd: Annotated[
        str | None,
        typer.Option(help="schedd name for --stream-by schedd (default: the log's submit host)"),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(
            help="zone of stamps without Z: 'local', 'UTC' or an IANA name (America/Chicago)"
        ),
    ] = "local",
    ad_info: Annotated[
        str,
        typer.Option(
            help="what a JobAdInformation event (028) sends: 'skip' (default) nothing, so each "
            "job event is counted once; 'trigger' a copy of its trigger event, counted again "
            "(Fermilab's pipeline's count); 'event' a JobAdInformationEvent"
        ),
    ] = "skip",
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="checkpoint file (default: <state dir>/eventlog/<topic>-<digest of paths>.json)"
        ),
    ] = None,
    no_checkpoint: Annotated[
        bool, typer.Option("--no-checkpoint", help="read from the start; remember nothing")
    ] = False,
    poll: Annotated[str, typer.Option(help="pause between looks at an idle log")] = "0.5s",
    checkpoint_interval: Annotated[
        str, typer.Option(help="time between checkpoints (each waits for the broker's acks)")
    ] = "1s",
    source: Annotated[
        str | None, typer.Option(help="source of the messages (default: eventlog:<host>)")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
    coalesce: Coalesce = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no warnings on stderr")] = False,
) -> None:
    """Send HTCondor job events from event logs, once each, resuming from a checkpoint."""
    from gridalarm.producers.checkpoint import (
        CheckpointError,
        default_checkpoint_path,
        load_checkpoint,
    )
    from gridalarm.producers.eventlog import EventLogError, ReadConfig, StreamRule, Tailer
    from gridalarm.producers.eventlog_producer import EventLogProducer, ProduceConfig
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError
    from gridalarm.producers.warn import warn_to_stderr

    settings = load_settings(coalesce=coalesce)
    warn = (lambda message: None) if quiet else warn_to_stderr
    try:
        interval = parse_duration(poll)
    except ValueError as err:
        raise CliError(f"--poll: {err}") from None
    try:
        every = parse_duration(checkpoint_interval)
    except ValueError as err:
        raise CliError(f"--checkpoint-interval: {err}") from None
    topic = settings.topic("events")
    tailers: list[Tailer] = []
    try:
        read = ReadConfig(
            follow=follow,
            stream_by=StreamRule.parse(stream_by),
            schedd=schedd,
            timezone=timezone,
            ad_info=ad_info,
            source=source or "",
        )
        produce = ProduceConfig(
            settings=settings, poll_interval=interval, checkpoint_interval=every
        )
        where = None if no_checkpoint else checkpoint
        if where is None and not no_checkpoint:
            where = default_checkpoint_path(settings.state_dir, topic, paths)
        previous = load_checkpoint(where, topic) if where is not None else None
        states = previous.paths if previous is not None else {}
        # Open every log before Kafka: a wrong path fails here, and nothing is sent.
        for path in paths:
            tailer = Tailer(path, read, states.get(os.path.abspath(path)), warn=warn)
            tailers.append(tailer)
    except (EventLogError, CheckpointError) as err:
        for tailer in tailers:
            tailer.close()
        raise CliError(str(err)) from None
    bootstrap = kafka_ready(settings)
    events = SinkConfig.from_settings(settings, bootstrap, source=read.source)
    served = producer_metrics(metrics, read.source or "eventlog")
    dead = SinkConfig.deadletters_of(settings, bootstrap, read.source)

    async def main() -> str:
        async with EventSink(events) as sink, EventSink(dead) as deadletters:
            producer = EventLogProducer(
                tailers,
                produce,
                sink,
                deadletters,
                checkpoint_path=where,
                resumed_from=previous,
                warn=warn,
            )
            if served is not None:
                served.sink, served.producer = sink, producer
            try:
                await producer.run()
            except asyncio.CancelledError:
                # SIGTERM ends a follow run: the checkpoint is committed; report and exit 0.
                if not follow:
                    raise
        return producer.stats.summary()

    try:
        typer.echo(run_producer(main()))
    except (EventLogError, CheckpointError, SinkError) as err:
        raise producer_error(err) from None
    finally:
        for tailer in tailers:
            tailer.close()


__all__ = ["COMMAND", "eventlog_command", "register"]
