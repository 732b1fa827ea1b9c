"""Thresholds wrap detectors: they turn raw evidence into a 0..100 score.

A score of 50 means "at the alarm level"; the worker calls a window anomalous when its score
reaches the configured threshold (50 by default), so the mapping and the cut stay separate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class RatioThreshold:
    """score = 100 * raw / (raw + alarm): 0 at no evidence, 50 at ``alarm``, towards 100 above.

    Stateless; for detectors whose raw evidence already has a fixed meaning (a z-score).

    >>> RatioThreshold(alarm=4.0).apply(np.array([0.0, 4.0, 12.0]), [None] * 3)[0].tolist()
    [0.0, 50.0, 75.0]
    """

    alarm: float = 4.0

    def apply(self, raw: np.ndarray, states: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
        raw = np.maximum(np.asarray(raw, dtype=float), 0.0)
        return 100.0 * raw / (raw + self.alarm), list(states)
