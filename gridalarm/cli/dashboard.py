"""`gridalarm dashboard`: the live web dashboard of streams and alerts."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.config import load_settings


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the CLI."""
    app.command("dashboard")(dashboard)


def dashboard(
    bind: Annotated[
        str, typer.Option(help="HOST:PORT to listen on; other than loopback needs auth")
    ] = "127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="GRIDALARM_DASHBOARD_TOKEN",
            help="require this token (open the dashboard once with ?token=TOKEN)",
        ),
    ] = None,
    basic_auth: Annotated[
        str | None,
        typer.Option(
            "--basic-auth", envvar="GRIDALARM_DASHBOARD_BASIC_AUTH", help="require USER:PASSWORD"
        ),
    ] = None,
    backfill: Annotated[
        str, typer.Option(help="history to read at start, by publish time, e.g. 6h; 0: none")
    ] = "6h",
    keep: Annotated[int, typer.Option(help="windows kept per stream for the stream page")] = 120,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error")] = "warning",
) -> None:
    """Serve the live dashboard: overview, stream pages and alerts with feedback buttons."""
    from gridalarm.stream.dashboard.access import (
        AccessError,
        check_bind,
        parse_bind,
        parse_credentials,
    )
    from gridalarm.timeutil import parse_duration

    try:
        where = parse_bind(bind)
        credentials = parse_credentials(token, basic_auth)
        check_bind(where, credentials)
    except AccessError as err:
        raise CliError(str(err)) from None
    try:
        backfill_s = parse_duration(backfill)
    except ValueError as err:
        raise CliError(f"--backfill: {err}") from None
    if not 1 <= keep <= 100_000:
        raise CliError(f"--keep {keep}: give a number of windows between 1 and 100000")
    if loglevel.lower() not in {"debug", "info", "warning", "error"}:
        raise CliError(f"--loglevel {loglevel!r}: use debug, info, warning or error")
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The Kafka clients log every connection at INFO and retries at ERROR: noise here.
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

    from gridalarm.stream.dashboard.feed import FeedConfig
    from gridalarm.stream.dashboard.server import DashboardConfig, DashboardError, serve
    from gridalarm.stream.dashboard.state import ViewLimits
    from gridalarm.topics import ensure_topics, resolve_kafka, wait_for_broker

    settings = load_settings()
    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    ensure_topics(settings, bootstrap)
    config = DashboardConfig(
        bind=where,
        credentials=credentials,
        feed=FeedConfig(
            bootstrap=bootstrap,
            topics={k: settings.topic(k) for k in ("scores", "windows", "alerts", "labels")},
            backfill=backfill_s,
        ),
        threshold=settings.threshold,
        limits=ViewLimits(keep_windows=keep),
    )
    try:
        asyncio.run(serve(config, announce=lambda line: print(line, flush=True)))
    except DashboardError as err:
        raise CliError(str(err)) from None
