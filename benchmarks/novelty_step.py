"""``novelty`` streaming cost: µs per stream per window, warm-up and fit, state size.

In-process on synthetic gauges (a daily cycle plus noise, one feature; no Kafka), in one run:

1. The live step of the complete ``novelty`` scoring model (``build_model("novelty")``: the
   detector and its threshold, packed base64 states in and out: what the worker's scorer calls),
   in µs per stream per window at 1, 100 and 10,000 streams, after every stream has warmed up
   and been fitted (104 windows). Each point is the median of ``--calls`` calls.
2. Beside it, in the same run and on the same windows: the ``baseline`` scoring model (the
   robust z-score every worker already runs), batched the same way, and ``novelty`` called once
   per stream (the naive way, one stream per call) on a sample of streams. Ratios: novelty ÷
   baseline (what the richer detector costs) and naive ÷ batched (what batching saves).
3. The warm-up and fit: wall seconds for all streams' first 105 windows (104 stored, the fit at
   the 104th, the first scored), and per stream.
4. State per stream as the worker stores it (JSON of the scoring model's state): mean and max.

Targets of issue 10 printed as ``target_*`` yes/no lines: <= 20 µs per stream per window at
10,000 streams and <= 4 KB of state per stream.

Run: ``python -m benchmarks.novelty_step`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from gridalarm.models.detector import ScoringModel
from gridalarm.models.registry import ModelOptions, build_model

SIZES = (1, 100, 10_000)
WARMUP = 104
TARGET_US = 20.0
TARGET_STATE_BYTES = 4096
NAIVE_SAMPLE = 200  # streams the one-call-per-stream baseline is timed on


def gauges(n: int, windows: int, seed: int = 0) -> np.ndarray:
    """(windows, n) hourly gauges: a daily cycle of its own phase and size per stream, noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(windows)[:, None]
    phase = rng.uniform(0, 24, n)[None, :]
    size = rng.uniform(5, 50, n)[None, :]
    cycle = np.sin(2 * np.pi * (hours + phase) / 24.0)
    return 100.0 + size * cycle + rng.normal(0.0, 1.0, (windows, n))


def model(name: str) -> ScoringModel:
    return build_model(name, ModelOptions(features=("value",), warmup=WARMUP))


def advance(scorer: ScoringModel, series: np.ndarray, states: list[Any]) -> list[Any]:
    """Step every stream through ``series`` (windows, n); the states after."""
    for row in series:
        states = scorer.score(row[:, None], states).states
    return states


def timed_steps(
    scorer: ScoringModel, series: np.ndarray, states: list[Any], calls: int
) -> tuple[float, list[Any]]:
    """Median seconds of one batched call over ``calls`` windows; the states after."""
    times = []
    for row in series[:calls]:
        started = time.perf_counter()
        states = scorer.score(row[:, None], states).states
        times.append(time.perf_counter() - started)
    return float(np.median(times)), states


def naive_seconds(scorer: ScoringModel, series: np.ndarray, states: list[Any]) -> float:
    """Seconds per stream per window when each stream is its own call."""
    started = time.perf_counter()
    for row in series:
        for k in range(len(states)):
            states[k] = scorer.score(row[k : k + 1, None], [states[k]]).states[0]
    return (time.perf_counter() - started) / (len(series) * len(states))


def measure(sizes: Sequence[int], calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    novelty, baseline = model("novelty"), model("baseline")
    for n in sizes:
        series = gauges(n, WARMUP + 1 + calls)
        started = time.perf_counter()
        fitted = advance(novelty, series[: WARMUP + 1], [None] * n)
        warm = time.perf_counter() - started
        ready = advance(baseline, series[: WARMUP + 1], [None] * n)
        live = series[WARMUP + 1 :]
        seconds, states = timed_steps(novelty, live, fitted, calls)
        base_seconds, _ = timed_steps(baseline, live, ready, calls)
        row = {
            "novelty_us": seconds / n * 1e6,
            "baseline_us": base_seconds / n * 1e6,
            "warmup_and_fit_s": warm,
            "warmup_and_fit_ms_per_stream": warm / n * 1e3,
        }
        row["novelty_over_baseline"] = row["novelty_us"] / row["baseline_us"]
        if n == max(sizes):
            sample = min(NAIVE_SAMPLE, n)
            naive = naive_seconds(novelty, live[:3], list(fitted[:sample]))
            row["naive_us"] = naive * 1e6
            row["naive_over_batched"] = row["naive_us"] / row["novelty_us"]
            sizes_json = [len(orjson.dumps(s)) for s in states]
            row["state_bytes_mean"] = float(np.mean(sizes_json))
            row["state_bytes_max"] = int(np.max(sizes_json))
        out[str(n)] = row
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="timed windows per point")
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    results = measure(sizes, args.calls)
    print("| streams | novelty µs/stream/window | baseline µs | novelty ÷ baseline "
          "| warm-up + fit (s) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for n, row in results.items():
        cells = [f"{int(n):,}"] + [
            f"{row[key]:.2f}"
            for key in ("novelty_us", "baseline_us", "novelty_over_baseline", "warmup_and_fit_s")
        ]
        print("| " + " | ".join(cells) + " |")
    top, most = results[str(max(sizes))], max(sizes)
    print(f"one call per stream (naive): {top['naive_us']:.1f} µs per stream per window, "
          f"{top['naive_over_batched']:.0f}x the batched step at {most:,} streams")  # fmt: skip
    print(f"state per stream (JSON): mean {top['state_bytes_mean']:.0f} bytes, "
          f"max {top['state_bytes_max']} bytes")  # fmt: skip
    at = results.get("10000")
    if at is not None:
        met = at["novelty_us"] <= TARGET_US
        print(f"target_us_per_stream_at_10000 (<= {TARGET_US}): {'yes' if met else 'no'}")
    met = top["state_bytes_max"] <= TARGET_STATE_BYTES
    print(f"target_state_bytes (<= {TARGET_STATE_BYTES}): {'yes' if met else 'no'}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
