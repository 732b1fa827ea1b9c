"""`gridalarm produce es --url URL --index PATTERN`: Elasticsearch documents to the events topic.

Wiring only: options to configs, the mapping and checkpoint read and the cluster asked once
(with retries) before Kafka is touched, so a wrong URL or mapping is a one-line error and
nothing is sent; then :class:`~gridalarm.producers.elastic_producer.ElasticProducer` runs until
the range is read or, with ``--follow``, until Ctrl-C / SIGTERM, and prints a summary.
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
from gridalarm.timeutil import parse_duration, parse_time

COMMAND = "es"


def register(produce_app: typer.Typer) -> None:
    """Add ``es`` to ``gridalarm produce`` (once, however often this is called)."""
    if any(info.name == COMMAND for info in produce_app.registered_commands):
        return
    produce_app.command(COMMAND)(es_command)


def _time(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise CliError(
            f"{option} {text!r}: use RFC 3339 (2017-03-01T00:00:00Z) or epoch s"
        ) from None


def _duration(option: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise CliError(f"{option}: {err}") from None


def es_command(
    url: Annotated[
        list[str],
        typer.Option(help="Elasticsearch URL (repeat for more nodes)", envvar="GRIDALARM_ES_URL"),
    ],
    index: Annotated[str, typer.Option(help="index or pattern, e.g. 'fifebatch-logs-*'")],
    since: Annotated[
        str | None, typer.Option(help="first time to read (RFC 3339 / epoch s)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="read before this time (default: now - lag)")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="after the backfill, keep reading new documents")
    ] = False,
    aggregate: Annotated[
        bool,
        typer.Option(help="send counts per window, stream and type (n > 1), not one per document"),
    ] = False,
    mapping: Annotated[
        str | None,
        typer.Option(help="field mapping: 'fermilab' (default), 'cms', or a JSON mapping file"),
    ] = None,
    lag: Annotated[
        str, typer.Option(help="stay this far behind now (index refresh, late documents)")
    ] = "1m",
    window: Annotated[
        str | None, typer.Option(help="--aggregate window (default: the worker's window)")
    ] = None,
    poll: Annotated[str, typer.Option(help="pause between passes with --follow")] = "5s",
    page_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65_536,
            help="documents (default 1000, at most 10000) or --aggregate buckets (default "
            "10000) per search request",
        ),
    ] = None,
    retry_for: Annotated[
        str, typer.Option(help="give up when Elasticsearch is unreachable this long ('0': never)")
    ] = "5m",
    api_key: Annotated[
        str | None, typer.Option(help="API key (encoded)", envvar="GRIDALARM_ES_API_KEY")
    ] = None,
    user: Annotated[str | None, typer.Option(help="basic auth user")] = None,
    password: Annotated[
        str | None, typer.Option(help="basic auth password", envvar="GRIDALARM_ES_PASSWORD")
    ] = None,
    ca_certs: Annotated[Path | None, typer.Option(help="CA bundle for https URLs")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="do not verify the server's certificate")
    ] = False,
    client_cert: Annotated[Path | None, typer.Option(help="TLS client certificate")] = None,
    client_key: Annotated[Path | None, typer.Option(help="TLS client key")] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="checkpoint file (default: <state dir>/elastic/<topic>-<digest>.json)"),
    ] = None,
    no_checkpoint: Annotated[
        bool, typer.Option("--no-checkpoint", help="read from --since; remember nothing")
    ] = False,
    checkpoint_interval: Annotated[
        str, typer.Option(help="time between checkpoints (each waits for the broker's acks)")
    ] = "1s",
    source: Annotated[
        str | None, typer.Option(help="source of the messages (default: es:<index>)")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
    coalesce: Coalesce = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no warnings on stderr")] = False,
) -> None:
    """Send job events from Elasticsearch documents, once each, resuming from a checkpoint."""
    from gridalarm.producers.elastic import (
        Connection,
        ElasticError,
        Retrying,
        RetryPolicy,
        default_checkpoint_path,
        load_checkpoint,
        load_mapping,
        quiet_transport_log,
    )
    from gridalarm.producers.elastic_producer import ElasticConfig, ElasticProducer
    from gridalarm.producers.sink import EventSink, SinkConfig, SinkError
    from gridalarm.producers.warn import warn_to_stderr

    settings = load_settings(coalesce=coalesce)
    warn = (lambda message: None) if quiet else warn_to_stderr
    give_up = _duration("--retry-for", retry_for)
    urls = tuple(u for item in url for u in item.split(",") if u)
    try:
        connection = Connection(
            urls=urls,
            api_key=api_key,
            username=user,
            password=password,
            ca_certs=ca_certs,
            verify_certs=not insecure,
            client_cert=client_cert,
            client_key=client_key,
        )
        config = ElasticConfig(
            settings=settings,
            index=index,
            fields=load_mapping(mapping),
            source=source or f"es:{index}",
            since=_time("--since", since),
            until=_time("--until", until),
            follow=follow,
            aggregate=aggregate,
            window=_duration("--window", window) if window else settings.window,
            lag=_duration("--lag", lag),
            poll_interval=_duration("--poll", poll),
            checkpoint_interval=_duration("--checkpoint-interval", checkpoint_interval),
            page_size=page_size,
        )
        topic = settings.topic("events")
        where = None if no_checkpoint else checkpoint
        if where is None and not no_checkpoint:
            where = default_checkpoint_path(
                settings.state_dir, topic, urls, index, config.fields, config.mode
            )
        previous = load_checkpoint(where, topic, config.mode) if where is not None else None
        quiet_transport_log()
        call = Retrying(
            connection.client(), ",".join(urls), RetryPolicy(give_up=give_up or None), warn
        )
        call("connect", call.client.info)  # before Kafka: a wrong URL sends nothing
    except ElasticError as err:
        raise CliError(str(err)) from None
    bootstrap = kafka_ready(settings)
    events = SinkConfig.from_settings(settings, bootstrap, source=config.source)
    served = producer_metrics(metrics, config.source)
    dead = SinkConfig.deadletters_of(settings, bootstrap, config.source)

    async def main() -> str:
        async with EventSink(events) as sink, EventSink(dead) as deadletters:
            producer = ElasticProducer(
                call,
                config,
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
                if not follow:
                    raise
        return producer.stats.summary()

    try:
        typer.echo(run_producer(main()))
    except (ElasticError, SinkError) as err:
        raise producer_error(err) from None
    finally:
        call.client.close()


__all__ = ["COMMAND", "es_command", "register"]
