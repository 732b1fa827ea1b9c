"""EventLog producer rate: parse-and-produce beside parse-only, on the same log in the same run.

The log is the largest real one (``ospool_metl_aws.log``, 6,043 events of an OSPool access
point) repeated to ``--events`` events, with distinct job ids. Three figures, events/s:

- htcondor2 alone: ``JobEventLog`` iterating the log (the library's own ceiling);
- parse-only: the producer's reader (framing, htcondor2 per event with the offset cross-check,
  stamps, stream ids, message dicts), no Kafka;
- parse-and-produce: the same reader sending to a real broker through ``EventSink``, with
  checkpoints every second (each waits for the broker's acks), to the final flush.

The target is parse-and-produce >= 0.5 × parse-only.

Run: ``python -m benchmarks.eventlog_rate --events 200000`` (``GRIDALARM_KAFKA`` names the
broker; without it one is started under ``.state/bench-kafka``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import htcondor2

from benchmarks.broker import broker
from gridalarm.config import Settings
from gridalarm.producers.eventlog import ReadConfig, Tailer
from gridalarm.producers.eventlog_producer import EventLogProducer, ProduceConfig
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "htcondor-eventlogs" / "ospool_metl_aws.log"
READ = ReadConfig(timezone="UTC", schedd="bench", source="eventlog:bench")
_CLUSTER = re.compile(rb"^(\d{3}) \((\d+)\.", re.MULTILINE)


def build_log(path: Path, events: int) -> int:
    """The source log repeated (each copy's clusters shifted) to at least ``events`` events."""
    text = SOURCE.read_bytes()
    per_copy = len(_CLUSTER.findall(text))
    copies = -(-events // per_copy)
    with path.open("wb") as out:
        for copy in range(copies):
            out.write(_CLUSTER.sub(_shifted(copy * 100_000_000), text))
    return copies * per_copy


def _shifted(shift: int) -> Callable[[re.Match[bytes]], bytes]:
    """A substitution that adds ``shift`` to an event header's cluster id."""

    def sub(match: re.Match[bytes]) -> bytes:
        return match[1] + b" (" + str(int(match[2]) + shift).encode() + b"."

    return sub


def library_rate(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for _ in htcondor2.JobEventLog(str(path)).events(0))
    return count, count / (time.perf_counter() - started)


def parse_rate(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    tailer = Tailer(path, READ)
    count = 0
    while not tailer.finished:
        count += sum(1 for item in tailer.poll() if item.message is not None)
    tailer.close()
    return count, count / (time.perf_counter() - started)


async def produce_rate(path: Path, settings: Settings, checkpoint: Path) -> tuple[int, float]:
    config = SinkConfig.from_settings(settings, settings.kafka or "", READ.source)
    async with EventSink(config) as sink:
        started = time.perf_counter()
        producer = EventLogProducer(
            [Tailer(path, READ)], ProduceConfig(settings=settings), sink, checkpoint_path=checkpoint
        )
        stats = await producer.run()
        seconds = time.perf_counter() - started
    for tailer in producer.tailers:
        tailer.close()
    return stats.events, stats.events / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        log = Path(tmp) / "EventLog"
        total = build_log(log, args.events)
        print(f"log: {total:,} events, {log.stat().st_size / 1e6:.1f} MB")
        settings = Settings(kafka=bootstrap, topic_prefix=f"bench-el-{uuid.uuid4().hex[:6]}")
        ensure_topics(settings, bootstrap)
        n_lib, lib = library_rate(log)
        n_parse, parse = parse_rate(log)
        n_prod, prod = asyncio.run(produce_rate(log, settings, Path(tmp) / "ck.json"))
        assert n_lib == n_parse == n_prod == total, (n_lib, n_parse, n_prod, total)
        print(f"htcondor2 JobEventLog alone : {lib:>10,.0f} events/s")
        print(f"parse-only (producer reader): {parse:>10,.0f} events/s")
        print(f"parse-and-produce (Kafka)   : {prod:>10,.0f} events/s")
        ratio = prod / parse
        verdict = "meets" if ratio >= 0.5 else "MISSES"
        print(f"produce / parse-only        : {ratio:>10.2f}  ({verdict} the 0.5 target)")


if __name__ == "__main__":
    main()
