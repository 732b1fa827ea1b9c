"""`make bench`: run every benchmark in turn and print its figures."""

from __future__ import annotations

from benchmarks import detection, worker_throughput


def main() -> None:
    print("== worker throughput (events topic -> closed windows) ==")
    worker_throughput.main([])
    print("== detection on simulated pools (in-process, the worker's scoring code) ==")
    detection.main([])


if __name__ == "__main__":
    main()
