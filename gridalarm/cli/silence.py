"""`gridalarm silence add|list|remove`: maintenance windows on the compacted silences topic."""

from __future__ import annotations

import getpass
import time
import uuid
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from gridalarm.cli import CliError
from gridalarm.config import Settings, load_settings
from gridalarm.timeutil import format_time, parse_duration, parse_time

if TYPE_CHECKING:
    from gridalarm.kafka_auth import KafkaAccess
    from gridalarm.stream.silences import Silence

silence_app = typer.Typer(
    help="Maintenance windows: alerts inside a silence are recorded as suppressed, not routed.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``silence`` to the CLI."""
    app.add_typer(silence_app, name="silence")


def operator() -> str:
    """Who runs this command, for the ``by`` field of what it writes."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def parse_span(start: str | None, until: str, now: float) -> tuple[float, float]:
    """``--from`` (default now) and ``--until`` (a time, or a duration after ``--from``)."""
    try:
        begin = now if start is None else parse_time(start)
    except ValueError:
        raise CliError(f"--from {start!r}: give an RFC 3339 time or epoch seconds") from None
    try:
        return begin, parse_time(until)
    except ValueError:
        pass
    try:
        return begin, begin + parse_duration(until)
    except ValueError:
        raise CliError(
            f"--until {until!r}: give an RFC 3339 time, epoch seconds or a duration after "
            "--from such as 2h"
        ) from None


def _connect(settings: Settings) -> KafkaAccess:
    from gridalarm.topics import ensure_topics, resolve_kafka, wait_for_broker

    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    ensure_topics(settings, bootstrap)
    return bootstrap


def _describe(silence: Silence, now: float) -> str:
    status = "ended" if silence.until <= now else "active" if silence.start <= now else "planned"
    return (
        f"{silence.id}  {status:<7}  {silence.stream}  {format_time(silence.start)} .. "
        f"{format_time(silence.until)}  {silence.reason}  (by {silence.by}, "
        f"{format_time(silence.created)})"
    )


@silence_app.command("add")
def add(
    stream: Annotated[str, typer.Option(help="glob over stream ids, e.g. 'schedd:fife*'")],
    until: Annotated[
        str, typer.Option(help="end: an RFC 3339 time, epoch seconds, or a duration after --from")
    ],
    reason: Annotated[str, typer.Option(help="why, for whoever sees the suppressed alerts")],
    start: Annotated[
        str | None, typer.Option("--from", help="start: RFC 3339 or epoch seconds (default: now)")
    ] = None,
    silence_id: Annotated[
        str | None, typer.Option("--id", help="id (default: a new one); an existing id is replaced")
    ] = None,
) -> None:
    """Add or replace a silence.

    Alerts of matching streams whose window starts in [--from, --until) are published as
    suppressed and not routed.
    """
    from gridalarm.compacted import write_compacted
    from gridalarm.stream.silences import SilenceError, new_silence

    now = time.time()
    begin, end = parse_span(start, until, now)
    try:
        silence = new_silence(
            silence_id or f"s-{uuid.uuid4().hex[:12]}", stream, begin, end, reason, operator(), now
        )
    except SilenceError as err:
        raise CliError(str(err)) from None
    settings = load_settings()
    bootstrap = _connect(settings)
    topic = settings.topic("silences")
    write_compacted(bootstrap, topic, silence.id.encode(), orjson.dumps(silence.to_message()))
    typer.echo(_describe(silence, now))
    if end <= now:
        typer.echo(
            "note: this silence is over already; it affects only windows closed from now on "
            "(a replay or a worker catching up)",
            err=True,
        )


@silence_app.command("list")
def list_silences(
    show_all: Annotated[
        bool, typer.Option("--all", help="ended silences too (they stay until removed)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per silence")] = False,
) -> None:
    """Show the active and planned silences, earliest first."""
    from gridalarm.compacted import read_compacted
    from gridalarm.stream.silences import SilenceError, Silences

    settings = load_settings()
    bootstrap = _connect(settings)
    silences = Silences()
    for key, value in read_compacted(bootstrap, settings.topic("silences")).items():
        try:
            silences.apply(key, value)
        except SilenceError as err:
            typer.echo(f"note: message {key!r} is not a silence ({err}); skipped", err=True)
    now = time.time()
    shown = list(silences) if show_all else silences.current(now)
    for silence in shown:
        line = orjson.dumps(silence.to_message()).decode() if as_json else _describe(silence, now)
        typer.echo(line)
    if not shown and not as_json:
        ended = len(silences) - len(shown)
        typer.echo("no silences" + (f" ({ended} ended: --all shows them)" if ended else ""))


@silence_app.command("remove")
def remove(
    silence_id: Annotated[str, typer.Argument(metavar="ID", help="the silence's id")],
) -> None:
    """Remove a silence (a tombstone on the silences topic); workers stop applying it."""
    from gridalarm.compacted import read_compacted, write_compacted

    settings = load_settings()
    bootstrap = _connect(settings)
    topic = settings.topic("silences")
    if silence_id.encode() not in read_compacted(bootstrap, topic):
        raise CliError(f"no silence {silence_id!r} on {topic}; 'gridalarm silence list --all'")
    write_compacted(bootstrap, topic, silence_id.encode(), None)
    typer.echo(f"silence {silence_id} removed")
