"""A Faust agent that only iterates the events topic: the ceiling any Faust worker starts from.

Run as a child process by worker_throughput.py: ``python -m benchmarks.bare_faust BOOTSTRAP
TOPIC PARTITIONS GROUP``. It consumes exactly as the real worker does (the worker's consumer
settings, raw bytes, no acks on the events topic, the same ``take_events`` batches) and does
nothing with the batches, so the gap between it and the real worker is our code, and the gap
between it and a bare aiokafka loop is Faust's per-message machinery.
"""

from __future__ import annotations

import sys
import tempfile

import faust
from faust.types import TP

from gridalarm.stream.app import BATCH_MAX, BATCH_WITHIN, CONSUMER_SETTINGS


def main() -> None:
    bootstrap, topic_name, partitions, group = sys.argv[1:5]
    # Faust's Worker exits through SystemExit on SIGTERM, so the context removes the data dir.
    with tempfile.TemporaryDirectory(prefix="bare-faust-") as datadir:
        run(bootstrap, topic_name, int(partitions), group, datadir)


def run(bootstrap: str, topic_name: str, partitions: int, group: str, datadir: str) -> None:
    """Run the draining agent until the process is stopped."""
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
        datadir=datadir,
        **CONSUMER_SETTINGS,
    )
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        acks=False,
    )

    read: dict[TP, int] = {}  # the next offset of each partition

    @app.agent(topic)
    async def drain(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            for event in batch:
                message = event.message
                read[message.tp] = message.offset + 1

    # The worker acks nothing and commits its offsets itself, once a second, with Faust's
    # commit call; so does this one (the benchmark reads its progress from the commits).
    @app.timer(interval=1.0)
    async def commit() -> None:
        if read and not app.rebalancing:
            await app.consumer._commit(dict(read))

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
