"""`gridalarm label ALERT_ID confirmed|false-positive`: an operator's verdict on an alert."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.cli.silence import operator
from gridalarm.config import load_settings

_HEX = re.compile(r"^[0-9a-f]{4,64}$")


def register(app: typer.Typer) -> None:
    """Add ``label`` to the CLI."""
    app.command("label")(label)


def label(
    alert_id: Annotated[
        str,
        typer.Argument(
            metavar="ALERT_ID", help="the alert's id, or a unique prefix (alerts tail shows 12)"
        ),
    ],
    verdict: Annotated[str, typer.Argument(metavar="confirmed|false-positive")],
    note: Annotated[str | None, typer.Option(help="why, for whoever reads it later")] = None,
) -> None:
    """Label an alert confirmed or false-positive (train and evaluate: --labels-topic)."""
    from gridalarm.history import read_topic
    from gridalarm.labels import (
        VERDICTS,
        LabelError,
        find_alert,
        incidents,
        label_message,
        send_label,
    )
    from gridalarm.topics import ensure_topics, resolve_kafka, wait_for_broker

    if verdict not in VERDICTS:
        raise CliError(f"verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    if not _HEX.match(alert_id):
        raise CliError(f"alert id {alert_id!r}: give the hexadecimal id (or a prefix) of an alert")
    settings = load_settings()
    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    ensure_topics(settings, bootstrap)
    alerts_topic = settings.topic("alerts")
    try:
        incident = find_alert(alert_id, incidents(read_topic(bootstrap, alerts_topic)))
    except LabelError as err:
        raise CliError(str(err)) from None
    if incident is None and len(alert_id) < 16:
        raise CliError(f"no alert on {alerts_topic} starts with {alert_id!r}; give its full id")
    try:
        if incident is None:
            # A full id not on the topic (retention, another prefix): the label is still
            # useful to whoever has the alert; it just carries no span.
            message = label_message(alert_id, verdict, operator(), note=note)
        else:
            message = label_message(
                incident.alert_id, verdict, operator(), stream=incident.stream,
                since=incident.since, end=incident.end, model=incident.model, note=note,
            )  # fmt: skip
        asyncio.run(send_label(bootstrap, settings.topic("labels"), message))
    except LabelError as err:
        raise CliError(str(err)) from None
    where = f" ({message['stream']}, since {message['since']})" if incident else ""
    typer.echo(f"alert {message['alert_id']}{where}: {verdict}")
    if incident is None:
        typer.echo(
            f"note: alert {alert_id} is not on {alerts_topic}; the label carries no stream or "
            "span, so train and evaluate can use it only if they find the alert",
            err=True,
        )
