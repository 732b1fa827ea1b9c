"""`gridalarm alerts tail`: print alerts as they arrive, one readable line each or JSON lines."""

from __future__ import annotations

import fnmatch
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import typer

from gridalarm.cli import CliError
from gridalarm.config import load_settings
from gridalarm.kafka_auth import KafkaTarget, access_of

alerts_app = typer.Typer(help="Read the alerts topic.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``alerts`` to the CLI."""
    app.add_typer(alerts_app, name="alerts")


@dataclass(frozen=True, slots=True)
class TailFilter:
    """Which alerts an operator wants to see."""

    stream_glob: str = "*"
    min_score: float = 0.0

    def accepts(self, alert: dict[str, Any]) -> bool:
        return (
            fnmatch.fnmatchcase(str(alert.get("stream", "")), self.stream_glob)
            and float(alert.get("score", 0.0)) >= self.min_score
        )


def format_alert(alert: dict[str, Any]) -> str:
    """One line an operator can read at a glance."""
    explain = ", ".join(
        f"{item['feature']} {item['observed']:g} (expected {item['expected']:g})"
        for item in alert.get("explain", [])[:3]
    )
    return (
        f"{alert['end']}  {alert['state'].upper():<8} {alert['severity']:<8} "
        f"{alert['stream']}  score {alert['score']:5.1f}  since {alert['since']}"
        + (f"  [{explain}]" if explain else "")
        + f"  id={alert['alert_id'][:12]} model={alert['model']}"
        + (f" silence={alert['silence']}" if "silence" in alert else "")
    )


def read_alerts(
    bootstrap: KafkaTarget, topic: str, from_beginning: bool, until_idle: float | None
) -> Iterator[dict[str, Any]]:
    """Alerts from ``topic``, each distinct message once (a re-processed window repeats one)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        **access_of(bootstrap).kafka_python(),
        group_id=None,  # a tail is a reader, not a member of a consumer group
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(until_idle * 1000) if until_idle else float("inf"),
    )
    seen: set[tuple[str, str, str]] = set()
    try:
        for record in consumer:
            try:
                alert = orjson.loads(record.value)
                key = (alert["alert_id"], alert["state"], alert["start"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # not an alert; the worker is the only writer, so this is foreign
            if key in seen:
                continue
            seen.add(key)
            yield alert
    finally:
        consumer.close()


@alerts_app.command("tail")
def tail(
    stream: Annotated[str, typer.Option(help="only streams matching this glob")] = "*",
    min_score: Annotated[float, typer.Option(help="only alerts with at least this score")] = 0.0,
    json_lines: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
    until_idle: Annotated[
        float | None, typer.Option(help="stop after this many seconds without an alert")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="start at the oldest alert, not now")
    ] = False,
) -> None:
    """Print alerts as they arrive."""
    from gridalarm.topics import resolve_kafka, wait_for_broker

    if not 0 <= min_score <= 100:
        raise CliError(f"--min-score {min_score:g}: give a score between 0 and 100")
    if until_idle is not None and until_idle <= 0:
        raise CliError(f"--until-idle {until_idle:g}: give a number of seconds > 0")
    settings = load_settings()
    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    wanted = TailFilter(stream, min_score)
    started = time.monotonic()
    for alert in read_alerts(bootstrap, settings.topic("alerts"), from_beginning, until_idle):
        if not wanted.accepts(alert):
            continue
        line = orjson.dumps(alert).decode() if json_lines else format_alert(alert)
        print(line, flush=True)
    if until_idle is not None:
        seconds = time.monotonic() - started
        print(
            f"alerts tail: idle for {until_idle:g}s, stopped after {seconds:.0f}s", file=sys.stderr
        )
