"""`gridalarm notify`: route alerts to Alertmanager and JSON webhooks, at least once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from gridalarm.cli import CliError
from gridalarm.config import load_settings
from gridalarm.timeutil import parse_duration


def register(app: typer.Typer) -> None:
    """Add ``notify`` to the CLI."""
    app.command("notify")(notify)


def _seconds(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise CliError(f"{option} {text!r}: give a duration such as 30s, 5m or 2h") from None
    if seconds <= 0:
        raise CliError(f"{option} {text!r}: give a duration > 0")
    return seconds


def notify(
    to: Annotated[
        list[str],
        typer.Option(
            help="KIND=URL, repeatable: alertmanager=http://host:9093 or webhook=https://host/path"
        ),
    ],
    group: Annotated[
        str | None,
        typer.Option(help="consumer group (default <prefix>-notify); members share the work"),
    ] = None,
    from_now: Annotated[
        bool,
        typer.Option("--from-now", help="a new group starts at the newest alert, not the oldest"),
    ] = False,
    expire_after: Annotated[
        str | None,
        typer.Option(
            help="Alertmanager resolves a firing alert this long after its last message "
            "(default: max(1h, resolve_after + 2 windows))"
        ),
    ] = None,
    timeout: Annotated[str, typer.Option(help="HTTP timeout per request")] = "10s",
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Route alerts to Alertmanager and JSON webhooks, at least once.

    Open, update and resolved alerts (never suppressed ones) go to every target; an alert's
    offset is committed only after every target accepted it.
    """
    from gridalarm.stream.routing.alertmanager import AlertmanagerConfig
    from gridalarm.stream.routing.delivery import DeliveryConfig
    from gridalarm.stream.routing.notifier import NotifyConfig, run_notifier
    from gridalarm.stream.routing.targets import TargetError, parse_target
    from gridalarm.topics import (
        ensure_topics,
        resolve_kafka,
        wait_for_broker,
        wait_for_group_coordinator,
    )

    try:
        targets = tuple(parse_target(text) for text in to)
    except TargetError as err:
        raise CliError(str(err)) from None
    if loglevel.lower() not in {"debug", "info", "warning", "error"}:
        raise CliError(f"--loglevel {loglevel!r}: use debug, info, warning or error")
    expiry = _seconds("--expire-after", expire_after)
    http_timeout = _seconds("--timeout", timeout) or 10.0
    settings = load_settings()
    group = group or f"{settings.topic_prefix}-notify"
    config = NotifyConfig(
        bootstrap=resolve_kafka(settings),
        topic=settings.topic("alerts"),
        group=group,
        targets=targets,
        delivery=DeliveryConfig(
            alertmanager=AlertmanagerConfig(
                expire_after=expiry, resolve_after=settings.resolve_after
            ),
            timeout=http_timeout,
        ),
        from_now=from_now,
    )
    wait_for_broker(config.bootstrap, timeout=10.0)
    ensure_topics(settings, config.bootstrap)
    wait_for_group_coordinator(config.bootstrap, group)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gridalarm").setLevel(loglevel.upper())
    typer.echo(
        f"notify: {config.topic} → {', '.join(t.name for t in targets)} (group {group})", err=True
    )
    from aiokafka.errors import KafkaError

    try:
        asyncio.run(_until_signalled(run_notifier(config)))
    except KafkaError as err:
        raise CliError(f"notify: Kafka at {config.bootstrap}: {err}") from None


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGINT or SIGTERM; then cancel it, so that what is in flight is not
    committed (it is delivered again on the next start)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
