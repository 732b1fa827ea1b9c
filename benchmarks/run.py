"""`make bench`: run every benchmark in turn and print its figures."""

from __future__ import annotations

from benchmarks import detection, eventlog_rate, lstm_step, worker_throughput


def main() -> None:
    print("== worker throughput (events topic -> closed windows) ==")
    worker_throughput.main([])
    print("== detection on simulated pools (in-process, the worker's scoring code) ==")
    detection.main([])
    print("== LSTM streaming step, per-stream Keras baseline, state size, training time ==")
    lstm_step.main([])
    print("== EventLog producer: parse-and-produce beside parse-only ==")
    eventlog_rate.main([])


if __name__ == "__main__":
    main()
