"""Thresholds wrap detectors: they turn raw evidence into a 0..100 score.

A score of 50 means "at the alarm level"; the worker calls a window anomalous when its score
reaches the configured threshold (50 by default), so the mapping and the cut stay separate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridalarm.models.packing import pack, unpack


@dataclass(frozen=True, slots=True)
class RatioThreshold:
    """score = 100 * raw / (raw + alarm): 0 at no evidence, 50 at ``alarm``, towards 100 above.

    Stateless; for detectors whose raw evidence already has a fixed meaning (a z-score).

    >>> RatioThreshold(alarm=4.0).apply(np.array([0.0, 4.0, 12.0]), [None] * 3)[0].tolist()
    [0.0, 50.0, 75.0]
    """

    alarm: float = 4.0

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        raw = np.maximum(np.asarray(raw, dtype=float), 0.0)
        return 100.0 * raw / (raw + self.alarm), list(states)


def _row_quantiles(rows: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per-row quantiles of the non-NaN values (numpy's default linear method), vectorised.

    ``np.nanquantile(axis=1)`` loops over rows in Python (~40 µs a row); sorting puts NaNs last,
    so each row's values are its first ``count`` sorted entries.
    """
    ordered = np.sort(rows, axis=1)
    count = np.sum(~np.isnan(rows), axis=1)
    out = []
    for q in qs:
        position = q * (count - 1)
        lo = np.floor(position).astype(np.int64)
        hi = np.minimum(lo + 1, count - 1)
        below = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
        above = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
        out.append(below + (position - lo) * (above - below))
    return out


@dataclass(frozen=True, slots=True)
class QuantileThresholdConfig:
    """Tuning of :class:`QuantileThreshold`."""

    size: int = 128  # recent evidence values kept per stream
    quantile: float = 0.95  # the high quantile the alarm level extrapolates from
    margin: float = 2.0  # alarm = q_hi + margin * (q_hi - median); 2.0: see README
    min_samples: int = 32  # below this many values a stream uses the prior
    prior_median: float = 1.0  # population median of the evidence (from training)
    prior_high: float = 2.0  # population ``quantile`` of the evidence (from training)
    min_alarm: float = 3.0  # the alarm level never drops below this (a flat, perfectly
    # predicted series would otherwise alarm on rounding noise)


class QuantileThreshold:
    """A dynamic, nonparametric threshold learned per stream from its own recent evidence.

    Each stream keeps its last ``size`` evidence values from normal windows. Its alarm level is
    extrapolated from their empirical median and high quantile, ``q_hi + margin * (q_hi -
    median)``, with no assumption of a distribution (a sigma rule would be wrong for the heavy
    tails of forecast errors). The score maps the median to 0 and the alarm level to 50.
    Values that score anomalous are not kept once a stream has its own levels, so an incident
    does not raise its own bar; until a stream has ``min_samples`` values it is judged by the
    population levels found in training (and keeps every value, clipped at the alarm level).
    State per stream: packed float16 ring of values, then the count.

    >>> thr = QuantileThreshold(QuantileThresholdConfig(prior_median=1.0, prior_high=2.0,
    ...                                                  margin=1.0, min_alarm=1.0))
    >>> thr.apply(np.array([1.0, 3.0, 5.0]), [None] * 3)[0].round(1).tolist()
    [0.0, 50.0, 66.7]
    """

    def __init__(self, config: QuantileThresholdConfig) -> None:
        self.config = config

    def levels(self, buffers: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(median, alarm level) per row of ``buffers`` (n, size), NaN where empty."""
        cfg = self.config
        median = np.full(len(counts), cfg.prior_median)
        high = np.full(len(counts), cfg.prior_high)
        own = counts >= cfg.min_samples
        if own.any():
            median[own], high[own] = _row_quantiles(buffers[own], (0.5, cfg.quantile))
        alarm = np.maximum(high + cfg.margin * np.maximum(high - median, 0.0), cfg.min_alarm)
        return median, alarm

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        cfg = self.config
        raw = np.maximum(np.asarray(raw, dtype=float), 0.0)
        n = len(raw)
        buffers = np.full((n, cfg.size), np.nan)
        counts = np.zeros(n, dtype=np.int64)
        for i, state in enumerate(states):
            if state:
                values = unpack(state, "<f2")
                if len(values) == cfg.size + 1:
                    buffers[i] = values[:-1]
                    counts[i] = int(values[-1])
        median, alarm = self.levels(buffers, counts)
        excess = np.maximum(raw - median, 0.0) / np.maximum(alarm - median, 1e-9)
        scores = 100.0 * excess / (1.0 + excess)
        # Normal windows teach. Anomalous ones teach only while the stream is still judged by
        # the prior, and only up to the alarm level: a prior that is too low for a stream must
        # not keep it from learning its own levels, and once it has them an incident cannot
        # raise its own bar. ``learn`` (from the detector) withholds windows whose evidence is
        # still building up (a run of silence), which would raise the bar ahead of it.
        keep = (scores < 50.0) | (counts < cfg.min_samples)
        if learn is not None:
            keep &= np.asarray(learn, dtype=bool)
        slot = counts % cfg.size
        rows = np.flatnonzero(keep)
        buffers[rows, slot[rows]] = np.minimum(raw, alarm)[rows]
        counts = counts + keep
        # float16 counts exactly only to 2048: past a full ring only the slot matters.
        counts = np.where(counts >= cfg.size, cfg.size + counts % cfg.size, counts)
        new_states = [pack(np.append(buffers[i], counts[i]), "<f2") for i in range(n)]
        return scores, new_states


@dataclass(frozen=True, slots=True)
class ProbabilityThreshold:
    """score = 100 * p for evidence that is already a probability of anomaly (a classifier).

    >>> ProbabilityThreshold().apply(np.array([0.0, 0.5, 0.9]), [None] * 3)[0].tolist()
    [0.0, 50.0, 90.0]
    """

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        return 100.0 * np.clip(np.asarray(raw, dtype=float), 0.0, 1.0), list(states)
