"""`gridalarm es start|stop|status`: a local single-node Elasticsearch 8 for development.

The node runs detached from Maven Central jars (see :mod:`gridalarm.locales`); its config, data,
pid file and log live under ``<state dir>/es/``. Point other commands and the tests at it with
``GRIDALARM_ES=<printed URL>``, e.g. ``export GRIDALARM_ES=$(gridalarm es start)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from gridalarm.cli import CliError

if TYPE_CHECKING:
    from gridalarm.locales import LocalElasticsearch

T = TypeVar("T")

es_app = typer.Typer(
    name="es",
    help="Run a local single-node Elasticsearch 8 from Maven Central jars.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="state folder (default: GRIDALARM_STATE_DIR or .state); the node uses <it>/es",
    ),
]
Port = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="HTTP port; 0 picks any free port")
]


def register(app: typer.Typer) -> None:
    """Add the ``es`` command group to the CLI."""
    app.add_typer(es_app)


def _node(state_dir: Path | None, port: int) -> LocalElasticsearch:
    # Imported here so `gridalarm --help` does not pay for them.
    from gridalarm.config import load_settings
    from gridalarm.locales import LocalElasticsearch, LocalElasticsearchConfig

    if state_dir is None:
        state_dir = load_settings().state_dir
    return LocalElasticsearch(LocalElasticsearchConfig(state_dir=state_dir, port=port))


def _one_line(action: Callable[[], T]) -> T:
    """Run ``action``; its LocalElasticsearchError becomes the CLI's one-line error."""
    from gridalarm.locales import LocalElasticsearchError

    try:
        return action()
    except LocalElasticsearchError as err:
        raise CliError(str(err)) from None


@es_app.command()
def start(state_dir: StateDir = None, port: Port = 9200) -> None:
    """Start the node (if it is not running) and print its URL."""
    node = _node(state_dir, port)
    started = _one_line(node.start)
    status = node.status()
    verb = "started" if started else "already running"
    typer.echo(f"{verb} (pid {status.pid}); log: {status.log}", err=True)
    # The URL alone on stdout, so `export GRIDALARM_ES=$(gridalarm es start)` works.
    typer.echo(status.url)


@es_app.command()
def stop(state_dir: StateDir = None, port: Port = 9200) -> None:
    """Stop the node: SIGTERM, then SIGKILL if it has not exited after 30 s."""
    stopped = _one_line(_node(state_dir, port).stop)
    typer.echo("stopped" if stopped else "not running")


@es_app.command()
def status(state_dir: StateDir = None, port: Port = 9200) -> None:
    """Say whether the node runs; exit status 0 if it answers, 1 if not."""
    current = _node(state_dir, port).status()
    typer.echo(str(current))
    if not current.running:
        raise typer.Exit(code=1)
