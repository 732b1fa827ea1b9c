"""The recent windows of one stream, in fixed memory: scores, feature values, explanations.

A dashboard of thousands of streams cannot keep Python objects per window: a ring of numpy
arrays per stream holds the last ``capacity`` windows (about 8 KB per stream for 120 windows of
13 features). Windows are tumbling and aligned, so a window's slot is its index
``start / width`` modulo the capacity: no search, and a message repeated by a restarted worker
lands on the same slot and overwrites it with the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Series:
    """The kept windows of one stream in time order (the arrays are copies)."""

    starts: np.ndarray  # float64 epoch seconds
    width: float  # window size in seconds
    scores: np.ndarray  # float32, NaN where no score arrived
    anomalous: np.ndarray  # bool
    features: tuple[str, ...]
    values: np.ndarray  # float32 [windows, features], NaN where no window arrived
    expected: np.ndarray  # float32 [windows, features], NaN where the model said nothing
    explain: tuple[list[dict[str, Any]], ...]  # per window; empty unless anomalous


class WindowRing:
    """The last ``capacity`` windows of one stream."""

    __slots__ = ("_explain", "anomalous", "capacity", "features", "scores", "starts", "values",
                 "width")  # fmt: skip

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a ring keeps at least one window")
        self.capacity = capacity
        self.width: float | None = None
        self.starts = np.full(capacity, np.nan)
        self.scores = np.full(capacity, np.nan, dtype=np.float32)
        self.anomalous = np.zeros(capacity, dtype=bool)
        self.features: list[str] = []
        self.values = np.full((capacity, 0), np.nan, dtype=np.float32)
        # Sparse: only anomalous windows carry an explanation (a few per stream at most).
        self._explain: dict[int, list[dict[str, Any]]] = {}

    def put_score(
        self, start: float, end: float, score: float, anomalous: bool,
        explain: list[dict[str, Any]],
    ) -> bool:  # fmt: skip
        """Record a window's score; False when the window is older than everything kept."""
        slot = self._slot(start, end)
        if slot is None:
            return False
        self.scores[slot] = score
        self.anomalous[slot] = anomalous
        if explain:
            self._explain[slot] = explain
        else:
            self._explain.pop(slot, None)
        return True

    def put_window(self, start: float, end: float, features: dict[str, float]) -> bool:
        """Record a window's feature values; False when it is older than everything kept."""
        slot = self._slot(start, end)
        if slot is None:
            return False
        for name in features:
            if name not in self.features:
                self._add_feature(name)
        row = self.values[slot]
        for j, name in enumerate(self.features):
            row[j] = features.get(name, np.nan)
        return True

    def latest_scores(self, n: int) -> list[float]:
        """The scores of the newest ``n`` scored windows, oldest first."""
        order = self._ordered()
        order = order[~np.isnan(self.scores[order])][-n:]
        return [round(float(v), 1) for v in self.scores[order]]

    def series(self) -> Series:
        """Every kept window in time order, with expected values taken from explanations."""
        order = self._ordered()
        index = {name: j for j, name in enumerate(self.features)}
        expected = np.full((order.size, len(self.features)), np.nan, dtype=np.float32)
        explains: list[list[dict[str, Any]]] = []
        for i, slot in enumerate(order):
            items = self._explain.get(int(slot), [])
            explains.append(items)
            for item in items:
                j = index.get(item.get("feature"))
                if j is not None:
                    expected[i, j] = item.get("expected", np.nan)
        return Series(
            starts=self.starts[order].copy(),
            width=self.width or 0.0,
            scores=self.scores[order].copy(),
            anomalous=self.anomalous[order].copy(),
            features=tuple(self.features),
            values=self.values[order].copy(),
            expected=expected,
            explain=tuple(explains),
        )

    def _ordered(self) -> np.ndarray:
        """Slots in time order, limited to the newest ``capacity`` windows' span (a window
        that arrived late into a stale slot would otherwise stretch the time axis)."""
        kept = np.flatnonzero(~np.isnan(self.starts))
        if kept.size == 0:
            return kept
        newest = self.starts[kept].max()
        kept = kept[self.starts[kept] > newest - self.capacity * (self.width or 0.0)]
        return kept[np.argsort(self.starts[kept], kind="stable")]

    def _slot(self, start: float, end: float) -> int | None:
        width = end - start
        if not width > 0 or not math.isfinite(start):
            return None
        if self.width != width:
            if self.width is not None:
                # The worker was reconfigured to another window size: the old windows no
                # longer line up with the new ones, so the ring starts over.
                self._clear(range(self.capacity))
            self.width = width
        slot = round(start / width) % self.capacity
        held = self.starts[slot]
        if held == start:
            return slot
        if held > start:  # that slot already holds a newer window: this one has aged out
            return None
        self._clear((slot,))
        self.starts[slot] = start
        return slot

    def _clear(self, slots: Any) -> None:
        for slot in slots:
            self.starts[slot] = np.nan
            self.scores[slot] = np.nan
            self.anomalous[slot] = False
            self.values[slot] = np.nan
            self._explain.pop(slot, None)

    def _add_feature(self, name: str) -> None:
        self.features.append(name)
        column = np.full((self.capacity, 1), np.nan, dtype=np.float32)
        self.values = np.hstack([self.values, column])
