"""A Faust app that only publishes: the ceiling of the worker's publishing at a window close.

Run as a child process by scale.py: ``python -m benchmarks.faust_publish OUT BOOTSTRAP
PARTITIONS COUNT TOPIC:SIZE...``. It sends ``COUNT`` messages of ``SIZE`` bytes to each
``TOPIC`` through Faust's producer as the worker sends a close's windows, scores and state
records (``send_soon`` on raw-bytes topics, the worker's producer settings): every topic's
messages in turn, all of them queued before it awaits their deliveries once, as the worker
queues a batch's outputs and state records of all its partitions and then awaits them. It writes
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
    out, bootstrap, partitions, count, *targets = sys.argv[1:]
    sizes = {name: int(size) for name, size in (t.rsplit(":", 1) for t in targets)}
    with tempfile.TemporaryDirectory(prefix="faust-publish-") as datadir:
        run(Path(out), bootstrap, int(partitions), int(count), sizes, datadir)


def run(
    out: Path,
    bootstrap: str,
    partitions: int,
    count: int,
    sizes: dict[str, int],
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
    topics = [
        (
            app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions,
            ),
            b"x" * size,
        )
        for name, size in sizes.items()
    ]

    @app.task
    async def publish() -> None:
        keys = [b"s:%d" % i for i in range(count)]
        started = time.perf_counter()
        sent = [topic.send_soon(key=key, value=value) for topic, value in topics for key in keys]
        await asyncio.wait(sent)
        out.write_text(f"{time.perf_counter() - started:.3f}\n")
        os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
