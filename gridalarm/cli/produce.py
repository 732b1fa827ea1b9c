"""`gridalarm produce replay FILE`: send a file of events to the events topic.

Also home of what the producer commands share (``simulate`` imports it): reading ``--speed``,
connecting to Kafka with one-line errors, and running a producer coroutine until it ends or is
stopped with Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gridalarm.cli import CliError
from gridalarm.config import Settings, load_settings
from gridalarm.kafka_auth import KafkaAccess
from gridalarm.timeutil import parse_time

T = TypeVar("T")

produce_app = typer.Typer(
    help="Send events to the events topic (file replay, HTCondor event logs).",
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    """Add ``produce`` (with ``replay``) to the CLI."""
    app.add_typer(produce_app, name="produce")


# -- shared by the producer commands ---------------------------------------------------------


def parse_speed(text: str) -> float | None:
    """``max`` → None (as fast as the broker takes it); ``N`` → N× real time (N > 0)."""
    value = text.strip().lower()
    if value == "max":
        return None
    try:
        speed = float(value.removesuffix("x"))
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed > 0):
        raise CliError(f"--speed {text!r}: use 'max' or a number > 0 (times real time), e.g. 60")
    return speed


def parse_start(text: str | None) -> float | None:
    """``--start``: RFC 3339 or epoch seconds."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise CliError(
            f"--start {text!r}: use RFC 3339 (2017-01-01T00:00:00Z) or epoch seconds"
        ) from None


def kafka_ready(settings: Settings) -> KafkaAccess:
    """The broker and its security, once the broker answers and the project's topics exist."""
    from gridalarm.topics import KafkaSetupError, ensure_topics, resolve_kafka

    bootstrap = resolve_kafka(settings)
    try:
        ensure_topics(settings, bootstrap)
    except KafkaSetupError as err:
        raise CliError(str(err)) from None
    return bootstrap


def run_producer(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end. Ctrl-C and SIGTERM cancel it (its ``finally`` blocks and the
    sink's close still run) and raise :class:`KeyboardInterrupt` here."""

    async def runner() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            # A service manager (or `gridalarm demo`) stops the producer with SIGTERM: let it
            # deliver what it queued, like Ctrl-C, instead of dying mid-batch.
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await main
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def producer_metrics(bind: str | None, source: str) -> Any:
    """With ``--metrics HOST:PORT``: serve the producer's metrics there and return the
    :class:`~gridalarm.metrics.ProducerMetrics` to attach its sink and run to; else None."""
    if bind is None:
        return None
    from gridalarm.metrics import MetricsBind, MetricsError, producer_registry, serve

    try:
        where = MetricsBind.parse(bind)
        registry, metrics = producer_registry(source)
        serve(registry, where)
    except MetricsError as err:
        raise CliError(str(err)) from None
    return metrics


METRICS_HELP = "serve Prometheus metrics at HOST:PORT/metrics (e.g. 127.0.0.1:9464)"
COALESCE_HELP = (
    "counter events of one stream, type and window slot seen within this much wall time go "
    "out as one message with n (default 1s, or GRIDALARM_COALESCE); 'off': one message per "
    "event. Give the producer the worker's window and lateness"
)
# The option every producer command takes (None: the settings decide).
Coalesce = Annotated[str | None, typer.Option(help=COALESCE_HELP, show_default=False)]


def producer_error(err: Exception) -> CliError:
    """A one-line CLI error for what a producer can fail with."""
    return CliError(str(err).splitlines()[0] if str(err) else type(err).__name__)


# -- produce replay --------------------------------------------------------------------------


@produce_app.command("replay")
def replay_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL events, a CSV of per-window counts, or the study's '<hour> |<counts>' "
            "file (optionally .gz)",
            show_default=False,
        ),
    ],
    speed: Annotated[
        str, typer.Option(help="'max' (as fast as the broker takes it) or N× real time")
    ] = "max",
    start: Annotated[
        str | None,
        typer.Option(
            help="skip events before this time (RFC 3339 or epoch s); for the study format, "
            "the time of hour 1 (default 2017-01-01T00:00:00Z)"
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl, csv or study")] = "auto",
    stream: Annotated[
        str | None,
        typer.Option(
            help="stream id for CSV without a stream column (default csv:<file stem>) and for "
            "the study format (default seed:fifebatch)"
        ),
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
    coalesce: Coalesce = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Replay a file to the events topic, then send heartbeats that close the last windows."""
    from gridalarm.producers.replay import FORMATS, Reader, ReplayError, ReplayOptions, replay
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError

    if fmt not in FORMATS:
        raise CliError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    settings = load_settings(coalesce=coalesce)
    try:
        options = ReplayOptions(
            settings=settings,
            format=fmt,
            speed=parse_speed(speed),
            start=parse_start(start),
            stream=stream,
            progress=not quiet,
        )
        # Read the file before touching Kafka: a wrong path or a bad CSV row should not wait
        # for a broker, nor leave half a file on the topic.
        reader = Reader(file, options)
        reader.check()
    except ReplayError as err:
        raise CliError(str(err)) from None
    bootstrap = kafka_ready(settings)
    config = SinkConfig.from_settings(settings, bootstrap, source=reader.source)
    served = producer_metrics(metrics, reader.source)

    async def main() -> str:
        async with EventSink(config) as sink:
            if served is not None:
                served.sink = sink
            stats = await replay(reader, sink, options)
        return stats.summary()

    try:
        typer.echo(run_producer(main()))
    except (ReplayError, SinkError) as err:
        raise producer_error(err) from None
