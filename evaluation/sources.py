"""Where training and evaluation data come from: a file, a history topic, or the simulator.

Files are read by format (JSONL events, CSV of window counts, the study's lines), as the replay
producer reads them; a windows history topic gives the worker's own windows back; a simulated
pool gives window counts directly (no events on disk: a 50-stream month is tens of millions of
events), equal to what the worker would make of the simulator's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridalarm.evaluation.datasets import (
    DatasetError,
    LabelledSet,
    LabelledStream,
    load_events,
    load_study,
    load_window_csv,
    read_labels,
)
from gridalarm.timeutil import parse_time


def load_file(
    path: Path, labels: Path | None, window: float, features: tuple[str, ...], lateness: float
) -> LabelledSet:
    """A labelled set from a data file of any format the replay producer reads."""
    from gridalarm.producers.replay import ReplayError, detect_format

    try:
        kind = detect_format(Path(path))
    except ReplayError as err:
        raise DatasetError(str(err)) from None
    if kind == "jsonl":
        return load_events(path, labels, window, features, lateness)
    if kind == "csv":
        return load_window_csv(path, labels, window)
    data = load_study(path)
    if labels is not None:
        data = with_labels(data, labels)
    return data


def with_labels(data: LabelledSet, labels: Path) -> LabelledSet:
    """``data`` with the intervals of a ``stream,start,end`` labels file."""
    table = read_labels(labels)
    unknown = sorted(set(table) - {s.name for s in data.streams} - {""})
    if unknown:
        raise DatasetError(f"{labels}: labels name streams not in the data: {', '.join(unknown)}")
    streams = tuple(
        LabelledStream(
            s.name, s.starts, s.values, table.get(s.name, ()) + table.get("", ()),
            s.train_until, s.group,
        )
        for s in data.streams
    )  # fmt: skip
    return LabelledSet(data.name, data.window, data.features, streams)


def from_history(
    windows: dict[str, list[dict[str, Any]]],
    features: tuple[str, ...],
    name: str,
    labels: Path | None = None,
) -> LabelledSet:
    """A labelled set from window messages per stream (``gridalarm.history.read_windows``).

    A feature missing from a message counts 0 (the worker writes every feature; older windows
    may predate a feature). A stream with a gap (windows lost to retention) keeps only its
    windows after the last gap, so that every stream is evenly spaced.
    """
    size = None
    streams = []
    for stream, messages in sorted(windows.items()):
        starts = np.array([parse_time(m["start"]) for m in messages])
        ends = np.array([parse_time(m["end"]) for m in messages])
        size = size or float(np.median(ends - starts))
        gaps = np.flatnonzero(np.abs(np.diff(starts) - size) > 1e-6)
        first = int(gaps[-1]) + 1 if len(gaps) else 0
        values = np.array(
            [[float(m["features"].get(f, 0.0)) for f in features] for m in messages[first:]]
        )
        streams.append(LabelledStream(stream, starts[first:], values, ()))
    data = LabelledSet(name, size or 0.0, features, tuple(streams))
    return with_labels(data, labels) if labels is not None else data


@dataclass(frozen=True, slots=True)
class SimulatedPool:
    """A simulated pool to train or evaluate on (see ``gridalarm simulate``)."""

    streams: int = 50
    days: float = 28.0
    window: float = 3600.0
    incidents: tuple[str, ...] = ()
    seed: int = 1
    warmup_days: float = 2.0  # no incident starts before this


def simulated(pool: SimulatedPool, features: tuple[str, ...]) -> LabelledSet:
    """Window counts and incident labels of a simulated pool."""
    from gridalarm.producers.simulate import Simulation, SimulationConfig

    config = SimulationConfig(
        streams=pool.streams,
        duration=pool.days * 86_400.0,
        window=pool.window,
        incidents=pool.incidents,
        seed=pool.seed,
        warmup=pool.warmup_days * 86_400.0,
    )
    sim = Simulation(config)
    starts, counts = sim.window_counts(pool.window, features)
    labels: dict[str, list[tuple[float, float]]] = {}
    for incident in sim.labels:
        labels.setdefault(incident.stream, []).append((incident.start, incident.end))
    streams = []
    for k, name in enumerate(sim.streams):
        seen = np.flatnonzero(counts[k].sum(axis=1) > 0)
        first = int(seen[0]) if len(seen) else 0  # the worker's rows begin at the first event
        streams.append(
            LabelledStream(name, starts[first:], counts[k, first:], tuple(labels.get(name, ())))
        )
    kinds = f"{len(pool.incidents)}incidents" if pool.incidents else "normal"
    name = f"sim-{pool.streams}x{pool.days:g}d-{pool.window:g}s-{kinds}-seed{pool.seed}"
    return LabelledSet(name, pool.window, features, tuple(streams))
