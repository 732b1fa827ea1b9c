"""Backfill at scale: a simulated pool's history replayed through the worker, timed end to end.

The simulator sends ``--days`` of a ``--streams`` pool to a fresh events topic as fast as the
broker takes it (``gridalarm simulate --to-kafka``, coalescing on as by default), while a real
``gridalarm worker`` consumes it with 1-minute windows; the clock runs from the producer's
start until the worker has committed the whole topic. The issue's case is 30 days of 1,000
streams; a shorter run prints the time the full one would take at the rate it measured.

Run: ``python -m benchmarks.backfill`` (``--days``, ``--streams``; ``make bench`` runs a
scaled one).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.broker import broker
from benchmarks.worker_throughput import REPO, Offsets, env_of, peak_rss_kib, start_worker
from gridalarm.config import Settings
from gridalarm.topics import ensure_topics

FULL_DAYS = 30.0
FULL_STREAMS = 1000


def run(settings: Settings, streams: int, days: float, log: Path) -> dict:
    """Produce and consume at once; the figures of the run."""
    env = env_of(settings)
    started = time.perf_counter()
    producer = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", "simulate", "--streams", str(streams),
         "--days", str(days), "--window", "1m", "--seed", "2", "--to-kafka", "--quiet"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = start_worker(settings, log)
    offsets = Offsets(settings)
    try:
        summary, _ = producer.communicate()
        if producer.returncode != 0:
            raise SystemExit(f"the simulator failed ({producer.returncode})")
        produced = time.perf_counter() - started
        total = offsets.events_end()
        while offsets.committed() < total:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}; see {log}")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        peak = peak_rss_kib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        offsets.close()
    events = int(summary.split()[1])  # "sent N simulated events ..."
    return {
        "streams": streams,
        "days": days,
        "events": events,
        "messages": total,
        "producer_seconds": round(produced, 1),
        "end_to_end_seconds": round(seconds, 1),
        "events_per_s": round(events / seconds),
        "worker_peak_rss_mib": round(peak / 1024, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=FULL_STREAMS)
    parser.add_argument("--days", type=float, default=FULL_DAYS)
    args = parser.parse_args(argv)
    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench-backfill-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            kafka=bootstrap, topic_prefix=prefix, window=60.0, worker_id=f"{prefix}-worker",
            state_dir=Path(tmp) / "state",
        )  # fmt: skip
        ensure_topics(settings, bootstrap)
        result = run(settings, args.streams, args.days, Path(tmp) / "worker.log")
    scale = (FULL_DAYS * FULL_STREAMS) / (args.days * args.streams)
    result["full_run_minutes_at_this_rate"] = round(result["end_to_end_seconds"] * scale / 60, 1)
    for key, value in result.items():
        print(f"{key:32} {value}")
    return result


if __name__ == "__main__":
    main()
