"""Replay labelled windows through the worker's own scoring code, in event-time order.

No look-ahead: windows go to :class:`~gridalarm.stream.scoring.Scorer` grouped by start time,
oldest first, each group in one batched call, with the same per-stream states, threshold and
alert state machine as the worker. What comes out is each stream's scores, anomalous flags and
alert intervals (from the window that opened an alert to the end of the one that resolved it),
ready for :mod:`gridalarm.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridalarm.evaluation.datasets import LabelledSet, LabelledStream
from gridalarm.evaluation.metrics import StreamOutcome
from gridalarm.models.detector import ScoringModel
from gridalarm.stream.alerting import AlertPolicy
from gridalarm.stream.scoring import Scorer, ScoringConfig
from gridalarm.stream.windows import ClosedWindow, StreamState
from gridalarm.timeutil import parse_time


@dataclass(frozen=True, slots=True)
class RunConfig:
    """How scores become flags and alerts: the worker's settings of the same names."""

    threshold: float = 50.0
    policy: AlertPolicy = field(default_factory=AlertPolicy)


@dataclass(frozen=True, slots=True)
class StreamRun:
    """One stream's replay: its data and what the model made of it."""

    stream: LabelledStream
    scores: np.ndarray  # (n,) 0..100
    flagged: np.ndarray  # (n,) bool
    alerts: tuple[tuple[float, float], ...]
    models: tuple[str, ...]  # distinct "name@version" that scored it

    def outcome(self, window: float) -> StreamOutcome:
        return StreamOutcome(
            stream=self.stream.name,
            starts=self.stream.starts,
            window=window,
            scores=self.scores,
            flagged=self.flagged,
            alerts=self.alerts,
            labels=self.stream.labels,
        )


def window_of(stream: LabelledStream, fallback: float) -> float:
    """A stream's window size: the set's, or (NAB, uneven rows) its median row spacing."""
    if fallback > 0:
        return fallback
    if len(stream.starts) > 1:
        return float(np.median(np.diff(stream.starts)))
    return 1.0


def replay(
    model: ScoringModel,
    data: LabelledSet,
    config: RunConfig | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[StreamRun]:
    """Score every window of ``data`` with ``model`` as the worker would, oldest first."""
    config = config or RunConfig()
    scorer = Scorer(
        model,
        ScoringConfig(features=data.features, threshold=config.threshold, policy=config.policy),
    )
    index = {s.name: k for k, s in enumerate(data.streams)}
    sizes = [window_of(s, data.window) for s in data.streams]
    scores = [np.zeros(len(s.starts)) for s in data.streams]
    flags = [np.zeros(len(s.starts), dtype=bool) for s in data.streams]
    models: list[set[str]] = [set() for _ in data.streams]
    opened: list[dict[str, float]] = [{} for _ in data.streams]
    alerts: list[list[tuple[float, float]]] = [[] for _ in data.streams]
    states: dict[str, StreamState] = {s.name: StreamState() for s in data.streams}

    # Every (start, stream, row), in time order: one scorer call per distinct start. A stream
    # whose times repeat or step back (NAB has clock changes) is replayed on its own, row by
    # row in file order, as NAB does.
    starts = np.concatenate([s.starts for s in data.streams])
    owner = np.concatenate([np.full(len(s.starts), k) for k, s in enumerate(data.streams)])
    row = np.concatenate([np.arange(len(s.starts)) for s in data.streams])
    if all(np.all(np.diff(s.starts) > 0) for s in data.streams):
        order = np.lexsort((owner, starts))
        starts, owner, row = starts[order], owner[order], row[order]
        groups = np.split(np.arange(len(starts)), np.flatnonzero(np.diff(starts)) + 1)
    else:
        groups = [np.array([g]) for g in range(len(starts))]
    for group in groups:
        closed = []
        for g in group.tolist():
            k, r = int(owner[g]), int(row[g])
            stream = data.streams[k]
            start = float(stream.starts[r])
            closed.append(
                ClosedWindow(stream.name, start, start + sizes[k], tuple(stream.values[r]), 0, 0)
            )
        out = scorer.score(closed, states)
        for g, message in zip(group.tolist(), out.scores, strict=True):
            k = int(owner[g])
            scores[k][int(row[g])] = message["score"]
            flags[k][int(row[g])] = message["anomalous"]
            models[k].add(message["model"])
        for alert in out.alerts:
            _track(alert, index, opened, alerts)
        if on_step is not None:
            on_step(len(group))
    runs = []
    for k, stream in enumerate(data.streams):
        intervals = list(alerts[k])
        for since in opened[k].values():  # still open at the end of the data
            intervals.append((since, float(stream.starts[-1]) + sizes[k]))
        runs.append(
            StreamRun(
                stream=stream,
                scores=scores[k],
                flagged=flags[k],
                alerts=tuple(sorted(intervals)),
                models=tuple(sorted(models[k])),
            )
        )
    return runs


def _track(
    alert: dict[str, Any],
    index: dict[str, int],
    opened: list[dict[str, float]],
    alerts: list[list[tuple[float, float]]],
) -> None:
    k = index[alert["stream"]]
    if alert["state"] == "open":
        opened[k][alert["alert_id"]] = parse_time(alert["start"])
    elif alert["state"] == "resolved":
        began = opened[k].pop(alert["alert_id"], None)
        if began is not None:
            alerts[k].append((began, parse_time(alert["end"])))
