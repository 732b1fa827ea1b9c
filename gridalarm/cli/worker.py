"""`gridalarm worker`: run the Faust worker that windows, scores and alerts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.config import load_settings

if TYPE_CHECKING:
    from gridalarm.kafka_auth import KafkaTarget
    from gridalarm.metrics import MetricsBind


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the CLI."""
    app.command("worker")(worker)


def worker(
    window: Annotated[str | None, typer.Option(help="window size, e.g. 1h, 5m, 60s")] = None,
    lateness: Annotated[str | None, typer.Option(help="allowed lateness, e.g. 30s")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="advance idle partitions with the wall clock")
    ] = False,
    idle_timeout: Annotated[
        str | None, typer.Option(help="live mode: idle time before a wall-clock step")
    ] = None,
    detector: Annotated[
        str | None, typer.Option(help="lstm-forecast, lstm-classifier or baseline")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="LSTM artifact or folder of them (newest is followed)")
    ] = None,
    worker_id: Annotated[str | None, typer.Option(help="Faust app id (consumer group)")] = None,
    web: Annotated[bool, typer.Option("--web", help="enable Faust's web server")] = False,
    metrics: Annotated[
        str | None,
        typer.Option(help="serve Prometheus metrics at HOST:PORT/metrics (e.g. :9464)"),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error")] = "warning",
) -> None:
    """Consume the events topic; publish windows, scores, alerts and dead letters."""
    from gridalarm.models.registry import detector_names
    from gridalarm.topics import (
        ensure_topics,
        resolve_kafka,
        wait_for_broker,
        wait_for_group_coordinator,
    )

    if live and idle_timeout is None:
        idle_timeout = "10s"
    settings = load_settings(
        window=window,
        lateness=lateness,
        idle_timeout=idle_timeout,
        detector=detector,
        model=model,
        worker_id=worker_id,
    )
    if settings.detector not in detector_names():
        raise CliError(
            f"setting 'detector' ({settings.detector!r}) is unknown; "
            f"use one of: {', '.join(detector_names())}"
        )
    if loglevel.lower() not in {"debug", "info", "warning", "error"}:
        raise CliError(f"--loglevel {loglevel!r}: use debug, info, warning or error")
    from gridalarm.metrics import MetricsBind, MetricsError

    try:
        where = MetricsBind.parse(metrics) if metrics is not None else None
    except MetricsError as err:
        raise CliError(str(err)) from None
    from gridalarm.stream.pipeline import Pipeline

    try:  # fail before touching Kafka when the model cannot be loaded
        Pipeline.from_settings(settings)
    except ValueError as err:
        raise CliError(str(err)) from None
    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    ensure_topics(settings, bootstrap)
    wait_for_group_coordinator(bootstrap, settings.worker_id)
    run_worker(settings, bootstrap, web=web, loglevel=loglevel, metrics=where)


def run_worker(
    settings,
    bootstrap: KafkaTarget,
    web: bool = False,
    loglevel: str = "warning",
    metrics: MetricsBind | None = None,
) -> None:
    """Build and run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    import faust

    from gridalarm.metrics import MetricsError
    from gridalarm.stream.app import WorkerOptions, build_worker

    logging.getLogger("gridalarm").setLevel(loglevel.upper())
    # "producer buffer full" is Faust's normal back-pressure while a burst of windows is
    # published (a backfill, a replay): it waits for the buffer to drain, loses nothing, and
    # at warning level it floods the operator's terminal.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    options = WorkerOptions(bootstrap=bootstrap, web_enabled=web, metrics=metrics)
    try:
        app = build_worker(settings, options)
    except MetricsError as err:
        raise CliError(str(err)) from None
    runner = faust.Worker(app, loglevel=loglevel.upper(), quiet=True)
    runner.spinner = None  # Faust draws a terminal spinner even when quiet; it garbles the demo
    runner.execute_from_commandline()
