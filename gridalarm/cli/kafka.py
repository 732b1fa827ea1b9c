"""`gridalarm kafka start|stop|status`: a local single-node Apache Kafka for development.

The broker runs detached from Maven Central jars (see :mod:`gridalarm.localkafka`); its data,
pid file and log live under ``<state dir>/kafka/``. Point other commands at it with nothing
(127.0.0.1:9092 is the default) or ``GRIDALARM_KAFKA=<printed address>`` for other ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridalarm.cli import CliError

if TYPE_CHECKING:
    from gridalarm.localkafka import LocalKafka
    from gridalarm.localkafka_security import BrokerSecurity

kafka_app = typer.Typer(
    name="kafka",
    help="Run a local single-node Apache Kafka broker (KRaft) from Maven Central jars.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="state folder (default: GRIDALARM_STATE_DIR or .state); the broker uses <it>/kafka",
    ),
]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="broker (client) port")]
ControllerPort = Annotated[
    int, typer.Option("--controller-port", min=1, max=65535, help="KRaft controller port")
]
ScramUsers = Annotated[
    list[str] | None,
    typer.Option(
        "--scram-user",
        help="NAME:PASSWORD (repeatable): the client port speaks SASL_SSL with these SCRAM "
        "users and a test CA made under the state dir (clients: GRIDALARM_KAFKA_SECURITY="
        "sasl_ssl, GRIDALARM_KAFKA_CA=the printed CA file). Users are made when the state dir "
        "is first formatted",
        show_default=False,
    ),
]
InternalPort = Annotated[
    int,
    typer.Option(
        "--internal-port", min=1, max=65535,
        help="with --scram-user: the broker's own PLAINTEXT listener (on its loopback host)",
    ),
]  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the ``kafka`` command group to the CLI."""
    app.add_typer(kafka_app)


def _broker(
    state_dir: Path | None,
    port: int,
    controller_port: int,
    security: BrokerSecurity | None = None,
) -> LocalKafka:
    # Imported here so `gridalarm --help` does not pay for them.
    from gridalarm.config import load_settings
    from gridalarm.localkafka import LocalKafka, LocalKafkaConfig

    if port == controller_port:
        raise CliError(f"--port and --controller-port are both {port}; give them different ports")
    if security is not None and security.internal_port in (port, controller_port):
        raise CliError(
            f"--internal-port {security.internal_port} is also --port or --controller-port; "
            "give it a port of its own"
        )
    if state_dir is None:
        state_dir = load_settings().state_dir
    return LocalKafka(
        LocalKafkaConfig(
            state_dir=state_dir, port=port, controller_port=controller_port, security=security
        )
    )


def _security(users: list[str] | None, internal_port: int) -> BrokerSecurity | None:
    """``--scram-user`` values as the broker's security, or None (PLAINTEXT)."""
    from gridalarm.localkafka_security import BrokerSecurity, BrokerSecurityError, ScramUser

    if not users:
        return None
    parsed = []
    for text in users:
        name, sep, password = text.partition(":")
        if not sep:
            raise CliError(f"--scram-user {name!r}: give NAME:PASSWORD")
        try:
            parsed.append(ScramUser(name, password))
        except BrokerSecurityError as err:
            raise CliError(f"--scram-user: {err}") from None
    return BrokerSecurity(users=tuple(parsed), internal_port=internal_port)


@kafka_app.command()
def start(
    state_dir: StateDir = None,
    port: Port = 9092,
    controller_port: ControllerPort = 9093,
    scram_user: ScramUsers = None,
    internal_port: InternalPort = 9094,
) -> None:
    """Start the broker (if it is not running) and print its bootstrap address."""
    # A LocalKafkaError reaches main(), which prints it on one line.
    broker = _broker(state_dir, port, controller_port, _security(scram_user, internal_port))
    started = broker.start()
    status = broker.status()
    verb = "started" if started else "already running"
    typer.echo(f"{verb} (pid {status.pid}); log: {status.log}", err=True)
    if broker.ca_pem is not None:
        typer.echo(f"SASL_SSL (SCRAM-SHA-256/512); CA for clients: {broker.ca_pem}", err=True)
    # The address alone on stdout, so `export GRIDALARM_KAFKA=$(gridalarm kafka start)` works.
    typer.echo(broker.bootstrap)


@kafka_app.command()
def stop(
    state_dir: StateDir = None,
    port: Port = 9092,
    controller_port: ControllerPort = 9093,
) -> None:
    """Stop the broker: SIGTERM, then SIGKILL if it has not exited after 30 s."""
    broker = _broker(state_dir, port, controller_port)
    stopped = broker.stop()
    typer.echo("stopped" if stopped else "not running")


@kafka_app.command()
def status(
    state_dir: StateDir = None,
    port: Port = 9092,
    controller_port: ControllerPort = 9093,
) -> None:
    """Say whether the broker runs; exit status 0 if it answers, 1 if not."""
    current = _broker(state_dir, port, controller_port).status()
    typer.echo(str(current))
    if not current.running:
        raise typer.Exit(code=1)
