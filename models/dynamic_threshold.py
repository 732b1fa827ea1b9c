"""Telemanom's nonparametric dynamic error threshold, streaming and batched over streams.

Hundman et al. (KDD 2018, "Detecting spacecraft anomalies using LSTMs and nonparametric dynamic
thresholding") judge a forecaster's errors without assuming their distribution:

1. **Smoothing.** Errors are smoothed by an exponential average (a single surprising window is
   rarely an incident; a run of them is).
2. **Epsilon search.** Over the recent smoothed errors ``e`` (mean ``mu``, spread ``sd``) the
   threshold is ``epsilon = mu + z * sd`` for the ``z`` of a grid that maximises

       (delta_mu / mu + delta_sd / sd) / (|anomalous windows| + |anomalous sequences|^2)

   where the deltas are how much the mean and spread drop once the windows at or above epsilon
   are left out, and a sequence is a run of such windows (each widened by ``buffer`` windows
   either side). A threshold that removes much of the spread with few, compact anomalies wins;
   more than ``max_sequences`` sequences, or half the windows, is never an answer.
3. **Pruning.** An anomalous sequence is kept only if its largest error stands at least
   ``prune`` (13 %) clear of the next one down, the largest normal error included: near-
   threshold bumps that look like the rest are dropped.

Streaming, per stream: the last ``history`` smoothed errors are kept (float16); every ``refit``
windows epsilon is searched again over them. Pruning against the largest normal error becomes
part of the level: a window is anomalous when its smoothed error reaches ``max(epsilon,
normal_max / (1 - prune))``. The score is 50 there, 0 at the mean, towards 100 above, so the
worker's threshold of 50 means exactly Telemanom's decision. :func:`find_epsilon` and
:func:`prune_sequences` are the batch forms, kept separate so each can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridalarm.models.packing import pack, unpack


@dataclass(frozen=True, slots=True)
class DynamicThresholdConfig:
    """Tuning of :class:`DynamicThreshold`; the defaults are Telemanom's where it has one."""

    history: int = 256  # smoothed errors searched per stream (Telemanom: its 30 x 70 window)
    span: int = 8  # windows of the exponential smoothing (Telemanom: 5 % of the history)
    z_min: float = 2.5
    z_max: float = 12.0
    z_step: float = 0.5
    buffer: int = 1  # windows either side of an exceedance that join its sequence
    max_sequences: int = 5
    prune: float = 0.13  # an anomaly's error stands this share clear of the next one down
    refit: int = 16  # windows between epsilon searches
    min_samples: int = 32  # smoothed errors a stream needs before it is judged at all

    def __post_init__(self) -> None:
        if not 0.0 < self.prune < 1.0:
            raise ValueError("prune must lie between 0 and 1")
        if self.min_samples > self.history:
            raise ValueError("min_samples cannot exceed history")
        if self.z_max < self.z_min or self.z_step <= 0:
            raise ValueError("z grid: need z_min <= z_max and z_step > 0")

    @property
    def z_grid(self) -> np.ndarray:
        return np.arange(self.z_min, self.z_max + self.z_step / 2, self.z_step)


def find_epsilon(
    errors: np.ndarray, z_grid: np.ndarray, buffer: int = 1, max_sequences: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Telemanom's epsilon per row of ``errors`` (m, h): smoothed errors, oldest first, NaN
    where a row has fewer than ``h``. Returns (epsilon, mean, sd) per row. A row for which no
    ``z`` is an answer (nothing stands out) gets the largest ``z``.

    >>> e = np.array([[1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 6.0, 1.0, 1.02]])
    >>> eps, mu, sd = find_epsilon(e, np.arange(1.0, 4.01, 0.5))
    >>> bool(1.1 < eps[0] < 6.0)  # the one spike is the anomaly, nothing else
    True
    """
    valid = ~np.isnan(errors)
    count = valid.sum(axis=1)
    e = np.where(valid, errors, 0.0)
    mean = e.sum(axis=1) / np.maximum(count, 1)
    sd = np.sqrt(np.where(valid, (e - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(count, 1))
    sd = np.maximum(sd, 1e-9 * np.maximum(np.abs(mean), 1.0))  # a flat row: any rise stands out
    eps = mean[:, None] + z_grid[None, :] * sd[:, None]  # (m, Z)
    above = valid[:, None, :] & (e[:, None, :] >= eps[:, :, None])  # (m, Z, h)
    below = valid[:, None, :] & ~above
    n_below = below.sum(axis=2)
    safe = np.maximum(n_below, 1)
    mean_below = np.where(below, e[:, None, :], 0.0).sum(axis=2) / safe
    var_below = np.where(below, (e[:, None, :] - mean_below[:, :, None]) ** 2, 0.0).sum(axis=2)
    sd_below = np.sqrt(var_below / safe)
    # Each exceedance widened by ``buffer`` windows either side; sequences are its runs.
    widened = above.copy()
    for shift in range(1, buffer + 1):
        widened[:, :, shift:] |= above[:, :, :-shift]
        widened[:, :, :-shift] |= above[:, :, shift:]
    widened &= valid[:, None, :]
    starts = widened[:, :, :1].sum(axis=2) + (widened[:, :, 1:] & ~widened[:, :, :-1]).sum(axis=2)
    n_anom = widened.sum(axis=2)
    gain = (mean[:, None] - mean_below) / np.maximum(np.abs(mean[:, None]), 1e-12) + (
        sd[:, None] - sd_below
    ) / sd[:, None]
    score = gain / np.maximum(n_anom + starts**2, 1)
    allowed = (n_anom > 0) & (starts <= max_sequences) & (n_anom < count[:, None] / 2)
    score = np.where(allowed, score, -np.inf)
    # Ties go to the larger z (the stricter threshold), as in Telemanom.
    best = score.shape[1] - 1 - np.argmax(score[:, ::-1], axis=1)
    none = ~np.isfinite(score.max(axis=1))
    best = np.where(none, len(z_grid) - 1, best)
    epsilon = mean + z_grid[best] * sd
    return epsilon, mean, sd


def prune_sequences(maxima: Sequence[float], normal_max: float, prune: float) -> list[bool]:
    """Which anomalous sequences survive Telemanom's pruning, given each one's largest error.

    Sorted from the largest down, with the largest normal error appended, each step's relative
    drop is measured; every sequence above the last drop of at least ``prune`` is kept, the
    rest (near-threshold sequences that look like the normal errors) are pruned.

    >>> prune_sequences([10.0, 9.5, 2.1], normal_max=2.0, prune=0.13)
    [True, True, False]
    """
    order = sorted(range(len(maxima)), key=lambda i: -maxima[i])
    values = [maxima[i] for i in order] + [normal_max]
    keep_upto = -1  # index in ``order`` of the last sequence kept
    for k in range(len(order)):
        if values[k] > 0 and (values[k] - values[k + 1]) / values[k] >= prune:
            keep_upto = k
    kept = [False] * len(maxima)
    for k in range(keep_upto + 1):
        kept[order[k]] = True
    return kept


# State per stream: [ring of ``history`` smoothed errors ..., count, smoothed, epsilon, mean,
# normal_max]. The ring is float16 (errors are scale-free ratios, 3 digits are plenty); the
# five scalars are float32 in a second packed string, where float16 would round them.
_SCALARS = 5


class DynamicThreshold:
    """The streaming threshold (see the module text): raw evidence in, 0..100 score out.

    >>> thr = DynamicThreshold(DynamicThresholdConfig(history=64, min_samples=32, span=1))
    >>> states = [None]
    >>> for value in [1.0, 1.2, 0.9, 1.1] * 10:
    ...     scores, states = thr.apply(np.array([value]), states)
    >>> bool(scores[0] < 50), bool(thr.apply(np.array([5.0]), states)[0][0] > 50)
    (True, True)
    """

    def __init__(self, config: DynamicThresholdConfig | None = None) -> None:
        self.config = config or DynamicThresholdConfig()
        self._z = self.config.z_grid
        self._alpha = 2.0 / (self.config.span + 1.0)

    def _unpack(self, states: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        h = self.config.history
        rings = np.full((len(states), h), np.nan)
        scalars = np.zeros((len(states), _SCALARS))
        scalars[:, 2] = np.nan  # no epsilon yet
        for i, state in enumerate(states):
            if not state:
                continue
            ring, values = unpack(state[0], "<f2"), unpack(state[1])
            if len(ring) == h and len(values) == _SCALARS:
                rings[i], scalars[i] = ring, values
        return rings, scalars

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        cfg = self.config
        raw = np.maximum(np.nan_to_num(np.asarray(raw, dtype=float), posinf=1e6), 0.0)
        rings, scalars = self._unpack(states)
        count, smoothed = scalars[:, 0], scalars[:, 1]
        smoothed = np.where(count > 0, smoothed + self._alpha * (raw - smoothed), raw)
        # ``learn`` (from the detector) keeps windows whose evidence is still building up out
        # of the history, as the quantile threshold does.
        keep = np.ones(len(raw), bool) if learn is None else np.asarray(learn, dtype=bool)
        slot = (count % cfg.history).astype(np.int64)
        rows = np.flatnonzero(keep)
        rings[rows, slot[rows]] = smoothed[rows]
        count = count + keep
        # A fresh search when due: at min_samples, then every ``refit`` windows.
        due = (count >= cfg.min_samples) & (
            np.isnan(scalars[:, 2]) | (((count - cfg.min_samples) % cfg.refit == 0) & keep)
        )
        epsilon, mean, normal_max = scalars[:, 2], scalars[:, 3], scalars[:, 4]
        if due.any():
            idx = np.flatnonzero(due)
            # Oldest first: the ring read from the slot after the newest value.
            start = (count[idx] % cfg.history).astype(np.int64)
            order = (start[:, None] + np.arange(cfg.history)[None, :]) % cfg.history
            ordered = np.take_along_axis(rings[idx], order, axis=1)
            eps, mu, _ = find_epsilon(ordered, self._z, cfg.buffer, cfg.max_sequences)
            normal = np.where(ordered < eps[:, None], ordered, -np.inf)
            epsilon[idx], mean[idx] = eps, mu
            normal_max[idx] = np.maximum(np.max(normal, axis=1), 0.0)
        judged = count >= cfg.min_samples
        level = np.maximum(epsilon, normal_max / (1.0 - cfg.prune))
        excess = np.maximum(smoothed - mean, 0.0) / np.maximum(level - mean, 1e-9)
        scores = np.where(judged & np.isfinite(level), 100.0 * excess / (1.0 + excess), 0.0)
        # The count only places the ring slot and the refit phase, which both repeat every
        # history * refit windows: kept below that, float32 holds it exactly forever.
        period = cfg.history * cfg.refit
        count = np.where(count >= cfg.min_samples + period, count - period, count)
        scalars = np.column_stack([count, smoothed, epsilon, mean, normal_max])
        new_states = [[pack(rings[i], "<f2"), pack(scalars[i])] for i in range(len(raw))]
        return scores, new_states
