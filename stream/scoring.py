"""Closed windows → window, score and alert messages: the one code path that scores a window.

The Faust worker and the offline evaluator both call :meth:`Scorer.score`; it runs the scoring
model (detector + threshold, see :mod:`gridalarm.models.compose`) once per window start over
every stream whose window closed there (one batched call, never one per stream), and steps each
stream's alert state machine, telling it which windows lie in a silence (given as data: the
worker reads the silences topic, the evaluator has none).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from gridalarm.messages import VERSION
from gridalarm.models.detector import ScoringModel
from gridalarm.stream.alerting import AlertPolicy, ScoredWindow, step_alert
from gridalarm.stream.silences import Silences
from gridalarm.stream.windows import ClosedWindow, StreamState
from gridalarm.timeutil import format_time


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """What turns detector output into messages."""

    features: tuple[str, ...]
    threshold: float = 50.0  # a score at or above this is anomalous
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    explain_top: int = 5  # features listed in an explanation at most
    explain_min_share: float = 0.05  # ... and only those with at least this share


@dataclass(slots=True)
class Outputs:
    """Messages produced by one scoring step, in the order they must be published."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


# A close gives every known stream a window with the same start and end, and most of them are
# silent (all zeros): formatting the two times (strftime) and the zeros once per close instead
# of once per stream was 40% of the worker's scoring step at 10,000 streams (benchmarks/scale.py).
_time_text = lru_cache(maxsize=256)(format_time)


@lru_cache(maxsize=16)
def _zero_features(features: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(features, 0)


def window_message(window: ClosedWindow, features: tuple[str, ...]) -> dict[str, Any]:
    """The window message of DESIGN.md."""
    if any(window.values):
        values = {name: _number(v) for name, v in zip(features, window.values, strict=True)}
    else:
        if len(window.values) != len(features):
            raise ValueError("a window's values and the features differ in length")
        values = dict(_zero_features(features))  # a copy: a caller may change its message
    return {
        "v": VERSION,
        "stream": window.stream,
        "start": _time_text(window.start),
        "end": _time_text(window.end),
        "features": values,
        "events": window.events,
        "late": window.late,
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


class Scorer:
    """Scores closed windows with one scoring model; pure apart from the states."""

    def __init__(self, model: ScoringModel, config: ScoringConfig) -> None:
        self.model = model
        self.config = config

    def score(
        self,
        closed: list[ClosedWindow],
        states: dict[str, StreamState],
        silences: Silences | None = None,
    ) -> Outputs:
        """Score ``closed`` (any order) and update ``states[stream].detector``/``.alert``;
        alerts about windows in one of ``silences`` come out suppressed."""
        out = Outputs()
        by_start: dict[float, list[ClosedWindow]] = defaultdict(list)
        for window in closed:
            by_start[window.start].append(window)
        for start in sorted(by_start):  # time order, so each stream's state steps in order
            self._score_group(by_start[start], states, out, silences)
        return out

    def _score_group(
        self,
        group: list[ClosedWindow],
        states: dict[str, StreamState],
        out: Outputs,
        silences: Silences | None,
    ) -> None:
        features = self.config.features
        x = np.array([w.values for w in group], dtype=float)
        result = self.model.score(x, [states[w.stream].detector for w in group])
        for i, window in enumerate(group):
            state = states[window.stream]
            state.detector = result.states[i]
            score = float(result.scores[i]) if result.ready[i] else 0.0
            anomalous = score >= self.config.threshold
            explain = self._explain(x[i], result.expected[i], result.share[i]) if anomalous else []
            model = result.models[i]
            out.windows.append(window_message(window, features))
            out.scores.append(
                {
                    "v": VERSION,
                    "stream": window.stream,
                    "start": _time_text(window.start),
                    "end": _time_text(window.end),
                    "score": round(score, 2),
                    "anomalous": anomalous,
                    "model": model,
                    "explain": explain,
                }
            )
            silence = silences.matching(window.stream, window.start) if silences else None
            scored = ScoredWindow(
                window.stream, window.start, window.end, score, anomalous, model, explain,
                silence.id if silence else None,
            )  # fmt: skip
            state.alert, alert = step_alert(state.alert, scored, self.config.policy)
            if alert is not None:
                out.alerts.append(alert)

    def _explain(
        self, observed: np.ndarray, expected: np.ndarray, share: np.ndarray
    ) -> list[dict[str, Any]]:
        order = np.argsort(-share, kind="stable")[: self.config.explain_top]
        return [
            {
                "feature": self.config.features[j],
                "observed": _number(observed[j]),
                "expected": round(float(expected[j]), 3),
                "share": round(float(share[j]), 3),
            }
            for j in order
            if share[j] >= self.config.explain_min_share
        ]
