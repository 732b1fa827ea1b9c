"""`gridalarm demo`: a broker, a live simulated pool, the worker and the alert tail, in one go.

It starts the local Kafka broker when no ``GRIDALARM_KAFKA`` is configured, then runs, as child
processes, ``gridalarm worker --live`` and ``gridalarm simulate --to-kafka --live`` (20 schedds,
1-minute windows, two hours of history sent first, an incident every few minutes), and tails
the alerts topic in the foreground. Each run uses fresh topics (a timestamped prefix), so an old
demo's state never mixes in. Ctrl-C stops everything it started, the broker included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.config import load_settings


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the CLI."""
    app.command("demo")(demo)


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What the demo runs; the defaults show an alert within a few minutes."""

    streams: int = 20
    window: str = "1m"
    lateness: str = "5s"
    backfill: str = "2h"
    incident_every: str = "3m"
    incidents: str = "outage,hold_storm,disconnect_storm,eviction_wave,black_hole,submit_flood"


def demo(
    streams: Annotated[int, typer.Option(help="simulated schedds")] = 20,
    incident_every: Annotated[str, typer.Option(help="an incident every DURATION")] = "3m",
    state_dir: Annotated[
        Path | None, typer.Option(help="where the local broker keeps its data")
    ] = None,
) -> None:
    """Run the whole pipeline on a simulated pool and print alerts as they happen."""
    from gridalarm.localkafka import LocalKafka, LocalKafkaConfig
    from gridalarm.topics import resolve_kafka, wait_for_broker

    if streams < 1:
        raise CliError(f"--streams {streams}: give at least 1")
    plan = DemoPlan(streams=streams, incident_every=incident_every)
    settings = load_settings()
    broker: LocalKafka | None = None
    bootstrap = settings.kafka
    if bootstrap is None:
        broker = LocalKafka(LocalKafkaConfig(state_dir=state_dir or settings.state_dir))
        print("demo: starting the local Kafka broker (the first start fetches its jars)...")
        started = broker.start()
        bootstrap = broker.bootstrap
        if not started:
            broker = None  # it was running before us: leave it running after us
    # A broker of the operator's (GRIDALARM_KAFKA) with its GRIDALARM_KAFKA_* security, which
    # the children inherit from the environment; the demo's own local broker is PLAINTEXT.
    wait_for_broker(resolve_kafka(settings) if settings.kafka else bootstrap, timeout=30.0)
    prefix = time.strftime("gridalarm-demo-%Y%m%d-%H%M%S")
    env = {
        **os.environ,
        "GRIDALARM_KAFKA": bootstrap,
        "GRIDALARM_TOPIC_PREFIX": prefix,
        "GRIDALARM_WORKER_ID": prefix,
        "GRIDALARM_WINDOW": plan.window,
        "GRIDALARM_LATENESS": plan.lateness,
    }
    exe = [sys.executable, "-m", "gridalarm"]
    children: list[subprocess.Popen[bytes]] = []
    try:
        print(f"demo: topics {prefix}.*  broker {bootstrap}")
        children.append(subprocess.Popen([*exe, "worker", "--live"], env=env))
        time.sleep(2.0)  # the worker creates the topics; let it get there first
        children.append(
            subprocess.Popen(
                [
                    *exe,
                    "simulate",
                    "--to-kafka",
                    "--live",
                    "--quiet",
                    "--streams",
                    str(plan.streams),
                    "--window",
                    plan.window,
                    "--backfill",
                    plan.backfill,
                    "--incident-every",
                    plan.incident_every,
                    "--incidents",
                    plan.incidents,
                ],
                env=env,
            )
        )
        model = f" ({settings.model})" if settings.model else " (the bundled model)"
        print(
            f"demo: {plan.streams} simulated schedds, {plan.window} windows, an incident every "
            f"{plan.incident_every}, detector {settings.detector}"
            f"{model if settings.detector != 'baseline' else ''}; alerts appear below "
            "(Ctrl-C stops everything)"
        )
        tail = subprocess.Popen([*exe, "alerts", "tail"], env=env)
        children.append(tail)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.returncode not in (None, 0)]
        if failed:
            raise CliError(
                f"demo: a child process stopped (exit {failed[0].returncode}); see above"
            )
    except KeyboardInterrupt:
        print("\ndemo: stopping...")
    finally:
        _stop(children)
        if broker is not None:
            broker.stop()
            print("demo: local broker stopped")


def _stop(children: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
