"""Data sources: simulated window counts equal the worker's windows of the simulator's events."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.evaluation.datasets import load_events
from gridalarm.evaluation.sources import SimulatedPool, from_history, simulated
from gridalarm.producers.simulate import Simulation, SimulationConfig, write_simulation
from gridalarm.timeutil import format_time


def test_simulated_counts_equal_the_windows_of_the_written_events(tmp_path: Path) -> None:
    pool = SimulatedPool(streams=4, days=1.0, window=300.0, incidents=("outage", "hold_storm"),
                         seed=3, warmup_days=0.25)  # fmt: skip
    direct = simulated(pool, DEFAULT_FEATURES)
    config = SimulationConfig(
        streams=4,
        duration=86_400.0,
        window=300.0,
        incidents=("outage", "hold_storm"),
        seed=3,
        warmup=0.25 * 86_400,
    )
    write_simulation(Simulation(config), tmp_path)
    via_events = load_events(tmp_path / "events.jsonl", tmp_path / "labels.csv", 300.0,
                             DEFAULT_FEATURES)  # fmt: skip
    assert [s.name for s in direct.streams] == [s.name for s in via_events.streams]
    for a, b in zip(direct.streams, via_events.streams, strict=True):
        np.testing.assert_array_equal(a.starts, b.starts)
        np.testing.assert_array_equal(a.values, b.values)
        assert a.labels == b.labels
    assert sum(len(s.labels) for s in direct.streams) == 2


def test_from_history_builds_evenly_spaced_streams_and_skips_gaps() -> None:
    def message(stream: str, start: float, a: float) -> dict:
        return {"stream": stream, "start": format_time(start), "end": format_time(start + 60),
                "features": {"a": a}}  # fmt: skip

    windows = {
        "x": [message("x", 60.0 * k, k) for k in range(5)],
        # a gap (retention ate windows 2-3): only the windows after it are kept
        "y": [message("y", 60.0 * k, 1) for k in (0, 1, 4, 5, 6)],
    }
    data = from_history(windows, ("a", "b"), "hist")
    assert data.window == 60.0
    x, y = data.streams
    assert x.values[:, 0].tolist() == [0, 1, 2, 3, 4] and x.values[:, 1].tolist() == [0] * 5
    assert y.starts.tolist() == [240.0, 300.0, 360.0]
