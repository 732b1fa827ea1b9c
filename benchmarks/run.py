"""`make bench`: run every benchmark in turn and print its figures."""

from __future__ import annotations

from benchmarks import (
    backfill,
    dashboard,
    detection,
    elastic_rate,
    eventlog_rate,
    lstm_step,
    novelty_step,
    scale,
    soak,
    worker_throughput,
)


def main() -> None:
    print("== worker throughput (events topic -> closed windows), natural and adversarial ==")
    worker_throughput.main([])
    print("== backfill: 1,000 streams at 1-minute windows, a quarter day, scaled to 30 days ==")
    backfill.main(["--days", "0.25"])
    print("== scale: 10,000 streams at 1-minute windows: closes, state, restore of a new owner ==")
    scale.main(["--streams", "10000"])
    print("== detection on simulated pools (in-process, the worker's scoring code) ==")
    detection.main([])
    print("== LSTM streaming step, per-stream Keras baseline, state size, training time ==")
    lstm_step.main([])
    print("== novelty streaming step beside the baseline, warm-up and fit, state size ==")
    novelty_step.main([])
    print("== EventLog producer: parse-and-produce beside parse-only ==")
    eventlog_rate.main([])
    print("== Elasticsearch producer: backfill beside a raw read, --aggregate ==")
    elastic_rate.main([])
    print("== dashboard: 5,000 streams, overview render, score-to-page latency, CPU share ==")
    dashboard.main([])
    print("== soak: 2,000 live streams for 3 minutes (the README's is an hour: --duration 1h) ==")
    soak.main(["--duration", "3m", "--warmup", "30s", "--every", "5s"])


if __name__ == "__main__":
    main()
