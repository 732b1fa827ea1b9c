"""Detection check on simulated pools, in-process, with the worker's own windowing and scoring.

For each seed: 20 schedds × 2 days at 1-minute windows with an outage, a hold storm and a
disconnect storm (the acceptance run's setup); prints, per incident, how many windows after its
start the alert opened, and the alerts that match no incident. No Kafka: the same ``Windower``
and ``Scorer`` objects the Faust worker uses, fed from the simulator. (Issue 3's ``gridalarm
evaluate`` will replace this with the full metrics.)

Run: ``python -m benchmarks.detection --seeds 7,8,9,10,11,12``.
"""

from __future__ import annotations

import argparse
from typing import Any

from gridalarm.config import load_settings
from gridalarm.messages import Event, Heartbeat
from gridalarm.producers.simulate import Simulation, SimulationConfig
from gridalarm.stream.pipeline import Pipeline
from gridalarm.stream.windows import PartitionState, StreamState
from gridalarm.timeutil import parse_time

WINDOW = 60.0
KINDS = ("outage", "hold_storm", "disconnect_storm")


def run(seed: int, streams: int = 20, days: float = 2.0) -> dict[str, Any]:
    """Delays (windows) per incident kind and the number of unmatched alerts for one seed."""
    sim = Simulation(
        SimulationConfig(
            streams=streams, duration=days * 86_400, window=WINDOW, incidents=KINDS, seed=seed
        )
    )
    pipeline = Pipeline.from_settings(load_settings(window=WINDOW))
    partition = PartitionState()
    states: dict[str, StreamState] = {}
    alerts: list[dict[str, Any]] = []
    batch: list[tuple[int, Event | Heartbeat]] = []

    def flush() -> None:
        step = pipeline.windower.apply(partition, states, batch)
        alerts.extend(pipeline.scorer.score(step.closed, states).alerts)
        batch.clear()

    offset = 0
    for ev in sim.events():
        offset += 1
        batch.append((offset, Event(ts=ev.ts, stream=ev.stream, kind=ev.kind)))
        if len(batch) >= 5000:
            flush()
    end = sim.config.start + sim.config.duration
    batch.append((offset + 1, Heartbeat(ts=end + pipeline.windower.config.lateness, source="x")))
    flush()

    opens = [a for a in alerts if a["state"] == "open"]
    matched: set[str] = set()
    delays: dict[str, float | None] = {}
    for inc in sim.labels:
        hits = [
            a
            for a in opens
            if a["stream"] == inc.stream and inc.start <= parse_time(a["since"]) < inc.end
        ]
        first = min((parse_time(a["start"]) for a in hits), default=None)
        delays[inc.kind] = None if first is None else (first - inc.start) / WINDOW
        matched.update(a["alert_id"] for a in hits)
    return {
        "seed": seed,
        "delays": delays,
        "other_alerts": sum(a["alert_id"] not in matched for a in opens),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7,8,9,10,11,12", help="comma-separated seeds")
    args = parser.parse_args(argv)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        result = run(seed)
        delays = "  ".join(
            f"{k} {v:g}" if v is not None else f"{k} missed" for k, v in result["delays"].items()
        )
        print(
            f"seed {seed:>5}: opened after (windows)  {delays}"
            f"   other alerts {result['other_alerts']}"
        )
        results.append(result)
    return results


if __name__ == "__main__":
    main()
