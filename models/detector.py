"""The detector interface every model implements.

A detector scores the windows that just closed, for a batch of streams at once, from each
stream's saved state, and returns new state: it never sees Kafka or Faust, and the same object
serves the live worker and the offline evaluator. States are JSON-ready values (lists, dicts,
numbers), so the worker can keep them in a Faust table and a restart resumes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class DetectorOutput:
    """One batched step: row i belongs to stream i of the input."""

    raw: np.ndarray  # (n,) anomaly evidence >= 0, before any threshold; 0 while warming up
    expected: np.ndarray  # (n, F) what the detector expected to observe
    share: np.ndarray  # (n, F) each feature's share of the evidence; rows sum to 1 or 0
    states: list[Any]  # new per-stream states, JSON-ready
    ready: np.ndarray  # (n,) bool: False while a stream is still warming up (cold start)
    # (n,) bool or None (all): may the threshold learn from this window's evidence? False
    # while the evidence is still building up (a run of silence), so it cannot raise the bar.
    learn: np.ndarray | None = None


class Detector(Protocol):
    """Scores a batch of feature vectors from per-stream states."""

    name: str
    version: str

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        """``x`` is (n, F) observed window values; ``states[i]`` is stream i's state or None."""
        ...


class Threshold(Protocol):
    """Turns raw evidence into a 0..100 score; may keep per-stream state of its own."""

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        """Return (scores in 0..100, new states); ``learn`` masks windows not to learn from."""
        ...


@dataclass(frozen=True, slots=True)
class Scored:
    """A detector step passed through its threshold: what the scorer turns into messages."""

    scores: np.ndarray  # (n,) 0..100; 0 where not ready
    expected: np.ndarray  # (n, F)
    share: np.ndarray  # (n, F)
    states: list[Any]  # new per-stream states, JSON-ready
    ready: np.ndarray  # (n,) bool
    models: list[str]  # (n,) "name@version" of the model that scored each row


class ScoringModel(Protocol):
    """A detector with its threshold (or a composition of them): windows in, 0..100 scores out."""

    name: str
    version: str

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        """``x`` is (n, F) observed window values; ``states[i]`` is stream i's state or None."""
        ...
