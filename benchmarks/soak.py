"""Soak: a worker under a steady live rate for an hour; its memory and lag must stay flat.

``gridalarm simulate --to-kafka --live`` sends a ``--streams`` pool in real time (an incident
every 10 minutes) while one ``gridalarm worker`` consumes it with 1-minute windows, both on a
loopback broker, for ``--duration`` (bounded: both are stopped at the end). Every ``--every``
seconds the run samples the worker's resident memory, its consumer lag (messages on the
events topic not yet committed by its group) and the windows published so far.

Printed, each as a ratio against a baseline of the same run:
- worker RSS over the last quarter of the run ÷ its RSS over the quarter after the warm-up
  (the first ``--warmup``), and the least-squares slope of RSS after the warm-up, MiB/hour;
- lag: median and largest over the last quarter ÷ the same over the first quarter after the
  warm-up, and the messages committed ÷ the messages produced by the end.

The samples go to ``reports/soak.csv`` and a plot to ``--plot`` (README shows docs/soak.png).

Run: ``python -m benchmarks.soak`` (``--duration 1h``; ``make bench`` runs a 3-minute one).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.broker import broker
from benchmarks.worker_throughput import REPO, Offsets, env_of, rss_mib, start_worker
from gridalarm.config import Settings
from gridalarm.timeutil import parse_duration
from gridalarm.topics import ensure_topics

CSV = REPO / "reports" / "soak.csv"


@dataclass(frozen=True)
class Sample:
    minute: float  # since the start of the run
    rss_mib: float  # the worker's resident memory
    produced: int  # messages on the events topic
    committed: int  # of them, committed by the worker's group
    windows: int  # messages on the windows topic

    @property
    def lag(self) -> int:
        return self.produced - self.committed


def run(settings: Settings, args: argparse.Namespace, log: Path) -> list[Sample]:
    """Run the producer and the worker for the duration; the samples taken meanwhile."""
    env = env_of(settings)
    with log.with_name("simulator.log").open("wb") as out:
        producer = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "simulate", "--streams", str(args.streams),
             "--window", "1m", "--seed", "3", "--to-kafka", "--live",
             "--incidents", "outage,hold_storm,disconnect_storm", "--incident-every", "10m",
             "--quiet"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    worker = start_worker(settings, log)
    offsets = Offsets(settings)
    samples: list[Sample] = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < args.duration:
            for proc, what in ((producer, "simulator"), (worker, "worker")):
                if proc.poll() is not None:
                    tail = log.with_name(f"{what}.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"the {what} exited with {proc.returncode}:\n{tail}")
            samples.append(
                Sample(
                    minute=round(elapsed / 60, 3),
                    rss_mib=round(rss_mib(worker.pid), 1),
                    produced=offsets.events_end(),
                    committed=offsets.committed(),
                    windows=offsets.windows_total(),
                )
            )
            time.sleep(max(0.0, args.every - (time.monotonic() - started - elapsed)))
    finally:
        for proc in (producer, worker):
            proc.terminate()
        for proc in (producer, worker):
            proc.wait(timeout=60)
        offsets.close()
    return samples


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value) points, per hour."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def figures(samples: list[Sample], warmup_min: float) -> dict[str, float]:
    """The flatness figures: the last quarter against the quarter after the warm-up."""
    steady = [s for s in samples if s.minute >= warmup_min]
    if len(steady) < 8:
        raise SystemExit("too few samples after the warm-up: run longer or sample more often")
    quarter = max(1, len(steady) // 4)
    first, last = steady[:quarter], steady[-quarter:]

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b else float("nan")

    first_rss, last_rss = (statistics.fmean(s.rss_mib for s in q) for q in (first, last))
    first_lag, last_lag = (statistics.median(s.lag for s in q) for q in (first, last))
    end = samples[-1]
    minutes = end.minute - samples[0].minute
    return {
        "minutes": round(minutes, 1),
        "events_messages_per_s": round((end.produced - samples[0].produced) / (60 * minutes), 1),
        "windows_published": end.windows,
        "rss_mib_after_warmup": round(first_rss, 1),
        "rss_mib_last_quarter": round(last_rss, 1),
        "rss_last_over_first": ratio(last_rss, first_rss),
        "rss_slope_mib_per_hour": round(slope_per_hour([(s.minute, s.rss_mib) for s in steady]), 2),
        "rss_peak_mib": max(s.rss_mib for s in samples),
        "lag_median_first_quarter": first_lag,
        "lag_median_last_quarter": last_lag,
        "lag_max_first_quarter": max(s.lag for s in first),
        "lag_max_last_quarter": max(s.lag for s in last),
        "lag_max": max(s.lag for s in steady),
        "lag_slope_per_hour": round(slope_per_hour([(s.minute, s.lag) for s in steady]), 1),
        "committed_over_produced": ratio(end.committed, end.produced),
    }


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.minute for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    top.plot(minutes, [s.rss_mib for s in samples], color="tab:blue")
    top.set_ylabel("worker RSS (MiB)")
    top.set_ylim(bottom=0)
    bottom.plot(minutes, [s.lag for s in samples], color="tab:red")
    bottom.set_ylabel("consumer lag (messages)")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=parse_duration, default=3600.0, help="e.g. 1h")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--every", type=parse_duration, default=10.0, help="sampling period")
    parser.add_argument("--warmup", type=parse_duration, default=600.0, help="left out of ratios")
    parser.add_argument("--plot", type=Path, default=REPO / "reports" / "soak.png")
    args = parser.parse_args(argv)
    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench-soak-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            kafka=bootstrap, topic_prefix=prefix, window=60.0, worker_id=f"{prefix}-worker",
            state_dir=Path(tmp) / "state",
        )  # fmt: skip
        ensure_topics(settings, bootstrap)
        samples = run(settings, args, Path(tmp) / "worker.log")
    CSV.parent.mkdir(parents=True, exist_ok=True)
    with CSV.open("w", newline="") as out:
        writer = csv.DictWriter(out, [*asdict(samples[0]), "lag"])
        writer.writeheader()
        writer.writerows({**asdict(s), "lag": s.lag} for s in samples)
    result = figures(samples, min(args.warmup, args.duration / 4) / 60)
    title = f"soak: {args.streams} streams live, 1-minute windows, {result['minutes']:.0f} min"
    plot(samples, args.plot, title)
    for key, value in result.items():
        print(f"{key:28} {value}")
    print(f"samples: {CSV}; plot: {args.plot}")
    return result


if __name__ == "__main__":
    main()
