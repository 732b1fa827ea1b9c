"""The ``gridalarm`` command, the composition root: wires settings, producers, worker, models.

Each command group lives in its own module and registers itself on :data:`app`. Errors an
operator can mend (bad settings, bad arguments, an unreachable broker) print one line on stderr
and exit 2; they never show a traceback.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.2x carries its own copy of click; older ones use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click import UsageError

from gridalarm.config import ConfigError
from gridalarm.localkafka import LocalKafkaError
from gridalarm.topics import KafkaSetupError

app = typer.Typer(
    name="gridalarm",
    help="Streaming anomaly detection for HTCondor batch pools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CliError(RuntimeError):
    """An error with a one-line message for the operator (what is wrong and how to mend it)."""


def operator() -> str:
    """Who runs this command, for the ``by`` field of the silences and labels it writes."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def fail(message: str) -> typer.Exit:
    """Print one line on stderr and return the exit to raise."""
    typer.echo(f"gridalarm: {message}", err=True)
    return typer.Exit(code=2)


def _register() -> None:
    # Imported here so that `gridalarm --help` stays fast and each group owns its module.
    from gridalarm.cli import (
        alerts,
        dashboard,
        demo,
        elastic,
        es,
        eventlog,
        kafka,
        label,
        models,
        notify,
        probes,
        produce,
        silence,
        simulate,
        worker,
    )

    for module in (kafka, es, produce, simulate, worker, alerts, demo, models):
        module.register(app)
    for module in (notify, silence, label):
        module.register(app)
    dashboard.register(app)
    eventlog.register(produce.produce_app)
    elastic.register(produce.produce_app)
    probes.register(produce.produce_app)


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        # standalone_mode=False: usage errors reach us, and we print them on one line rather
        # than as click's boxed, multi-line block.
        result = app(standalone_mode=False)
    except UsageError as err:
        message = err.format_message()
        if message:  # empty when a bare group printed its help (no_args_is_help)
            where = err.ctx.command_path if err.ctx else "gridalarm"
            typer.echo(f"gridalarm: {message} (see '{where} --help')", err=True)
        sys.exit(2)
    except (ConfigError, CliError, LocalKafkaError, KafkaSetupError, ValueError) as err:
        # ValueError: the data and model errors (DatasetError, ArtifactError, HistoryError)
        # derive from it and carry one-line messages.
        typer.echo(f"gridalarm: {err}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
