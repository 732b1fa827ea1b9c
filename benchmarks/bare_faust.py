"""A Faust agent that only iterates the events topic: the ceiling any Faust worker starts from.

Run as a child process by worker_throughput.py: ``python -m benchmarks.bare_faust BOOTSTRAP
TOPIC PARTITIONS GROUP``. It consumes in batches exactly as the real worker does
(``take_events``) and does nothing with them, so the gap between it and the real worker is our
code, and the gap between it and a bare aiokafka loop is Faust's per-message machinery.
"""

from __future__ import annotations

import sys
import tempfile

import faust


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
        stream_wait_empty=False,
        broker_max_poll_records=5000,
        broker_commit_interval=1.0,
        datadir=datadir,
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, partitions=partitions)

    @app.agent(topic)
    async def drain(stream: faust.StreamT) -> None:
        async for _batch in stream.take_events(2000, within=0.05):
            pass

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
