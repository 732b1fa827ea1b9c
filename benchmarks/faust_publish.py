"""A Faust app that only publishes: the ceiling of the worker's publishing at a window close.

Run as a child process by scale.py: ``python -m benchmarks.faust_publish OUT BOOTSTRAP
TOPIC PARTITIONS COUNT SIZE...``. It sends ``COUNT`` messages to ``TOPIC`` through Faust's producer
as the worker sends a close's outputs and state records (``send_soon`` on a raw-bytes topic,
the worker's producer settings), value sizes taking turns through ``SIZE...``, in one burst per
partition that it awaits before the next, as the worker awaits a batch's deliveries. It writes
the seconds from its first send to its last acknowledgement to the file ``OUT`` (Faust takes
over stdout), then stops itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import faust

PRODUCER_SETTINGS = {"producer_max_request_size": 16 * 1024 * 1024}  # as in stream/app.py


def main() -> None:
    out, bootstrap, topic_name, partitions, count, *sizes = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="faust-publish-") as datadir:
        run(
            Path(out), bootstrap, topic_name, int(partitions), int(count),
            [int(s) for s in sizes], datadir,
        )  # fmt: skip


def run(
    out: Path,
    bootstrap: str,
    topic_name: str,
    partitions: int,
    count: int,
    sizes: list[int],
    datadir: str,
) -> None:
    """Publish, print the seconds, stop."""
    app = faust.App(
        f"faust-publish-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
        datadir=datadir,
        **PRODUCER_SETTINGS,
    )
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    values = [b"x" * size for size in sizes]

    @app.task
    async def publish() -> None:
        started = time.perf_counter()
        per_burst = -(-count // partitions)
        for first in range(0, count, per_burst):
            sent = [
                topic.send_soon(key=b"s:%d" % i, value=values[i % len(values)])
                for i in range(first, min(count, first + per_burst))
            ]
            await asyncio.wait(sent)
        out.write_text(f"{time.perf_counter() - started:.3f}\n")
        os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
