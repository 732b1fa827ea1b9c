"""Statistical baseline: a robust, count-aware z-score per stream and per feature. No training.

Per stream the baseline keeps, for every feature and for the total of all features, a robust
exponentially weighted estimate of the expected count and of its variance. Updates are clipped
at ``clip`` standard deviations, so an incident moves the estimates little while a lasting change
of level is learned within about ``history`` windows.

Why not a plain z-score on ``log1p(count)``: at 1-minute windows most HTCondor event kinds occur
a few times or less per window, where a log-normal z is badly calibrated (one image-size update
falling from 4 to 0 looks like a 3-sigma drop; 3 holds where 0.05 are usual look ordinary). So
the z-score is read off the count distribution itself: a negative-binomial tail with the learned
mean and variance (Poisson when the variance does not exceed the mean), turned into a
standard-normal z. The evidence of a window is the largest of: each feature's *upward* z
(trouble shows as a surge of holds, evictions, aborts...; one kind falling to zero is ordinary
noise) and the total's *downward* z (a schedd falling silent), where a run of silent windows
counts as one ever less likely event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from gridalarm.models.detector import DetectorOutput

Z_CAP = 12.0  # tails beyond this are all "certainly anomalous"; keeps floats finite


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    """Tuning of the baseline."""

    history: int = 168  # windows: the weight of the past, 1/alpha at steady state
    min_history: int = 12  # windows before a stream is scored (cold start)
    clip: float = 3.0  # clip of an update, in standard deviations
    min_rate: float = 0.05  # expected count floor: never "impossible", even for a rare kind


def _z(tail: np.ndarray) -> np.ndarray:
    return np.clip(-special.ndtri(np.clip(tail, 1e-300, 1.0)), 0.0, Z_CAP)


def count_upper_z(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """z of P(X >= x) for a count X of mean ``mu`` and variance ``var``; 0 where x <= mu.

    Negative binomial where the variance exceeds the mean, Poisson otherwise; continuous in x,
    so gauge values work too.
    """
    x = np.maximum(x, 1e-9)
    extra = var - mu
    nb = extra > 1e-6 * np.maximum(mu, 1.0)
    r = np.where(nb, mu**2 / np.where(nb, extra, 1.0), 1.0)
    p = r / (r + mu)
    # NB: P(X >= x) = I_{1-p}(x, r); Poisson: P(X >= x) = P(x, mu) (regularised gamma).
    tail = np.where(nb, special.betainc(x, r, 1.0 - p), special.gammainc(x, mu))
    return np.where(x > mu, _z(tail), 0.0)


def silence_z(mu: np.ndarray, var: np.ndarray, run: np.ndarray) -> np.ndarray:
    """z of seeing ``run`` windows in a row with a count of zero (0 where run is 0)."""
    extra = var - mu
    nb = extra > 1e-6 * np.maximum(mu, 1.0)
    r = np.where(nb, mu**2 / np.where(nb, extra, 1.0), 1.0)
    log_p0 = np.where(nb, r * np.log(r / (r + mu)), -mu)
    tail = np.exp(np.maximum(run * log_p0, -690.0))
    return np.where(run > 0, _z(tail), 0.0)


def count_lower_z(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """z of P(X <= x) for a count X of mean ``mu`` and variance ``var``; 0 where x >= mu."""
    k = np.floor(np.maximum(x, 0.0)) + 1.0
    extra = var - mu
    nb = extra > 1e-6 * np.maximum(mu, 1.0)
    r = np.where(nb, mu**2 / np.where(nb, extra, 1.0), 1.0)
    p = r / (r + mu)
    # NB: P(X <= k-1) = I_p(r, k); Poisson: Q(k, mu).
    tail = np.where(nb, special.betainc(r, k, p), special.gammaincc(k, mu))
    return np.where(x < mu, _z(tail), 0.0)


class RobustZBaseline:
    """The baseline detector. State per stream: ``{"n", "mean", "var", "quiet"}``.

    ``mean`` and ``var`` cover the features and then the total; ``quiet`` counts the windows of
    silence in a row. Each window is tested on its own: the alert policy's ``open_after``
    asks for persistence, and a test over sums of recent windows would correlate neighbouring
    windows and defeat it (measured: 6 false alarms instead of 0 on the acceptance run).
    """

    name = "baseline"
    version = "2"

    def __init__(self, config: BaselineConfig | None = None) -> None:
        self.config = config or BaselineConfig()

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        cfg = self.config
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        n_streams, width = x.shape
        values = np.concatenate([x, x.sum(axis=1, keepdims=True)], axis=1)
        seen, mean, var, quiet = self._unpack(states, n_streams, width + 1, values)

        rate = np.maximum(mean, cfg.min_rate)
        var_now = np.maximum(var, rate)
        up = count_upper_z(values, rate, var_now)
        down = count_lower_z(values, rate, var_now)
        # A silent stream: the evidence grows with every further window of nothing at all.
        silent = np.where(values[:, width] <= 0.0, quiet + 1.0, 0.0)
        down[:, width] = np.maximum(
            down[:, width], silence_z(rate[:, width], var_now[:, width], silent)
        )
        ready = seen >= cfg.min_history
        evidence = np.concatenate([up[:, :width], down[:, width:]], axis=1)
        raw = np.where(ready, evidence.max(axis=1), 0.0)
        signed = up[:, :width] + down[:, :width]
        sq = signed**2
        total = sq.sum(axis=1, keepdims=True)
        share = np.divide(sq, total, out=np.zeros_like(sq), where=total > 0)

        # Learn after scoring, so a window never explains itself.
        alpha = np.maximum(1.0 / (seen + 1.0), 1.0 / cfg.history)[:, None]
        sd = np.sqrt(np.maximum(var, rate))
        step = np.clip(values - mean, -cfg.clip * sd, cfg.clip * sd)
        new_mean = mean + alpha * step
        new_var = (1.0 - alpha) * (var + alpha * step**2)
        new_states = [
            {
                "n": int(seen[i]) + 1,
                "mean": new_mean[i].round(6).tolist(),
                "var": new_var[i].round(6).tolist(),
                "quiet": int(silent[i]),
            }
            for i in range(n_streams)
        ]
        return DetectorOutput(
            raw=raw, expected=mean[:, :width], share=share, states=new_states, ready=ready
        )

    @staticmethod
    def _unpack(
        states: Sequence[Any], n_streams: int, width: int, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        seen = np.zeros(n_streams)
        quiet = np.zeros(n_streams)
        mean = values.copy()  # a new stream starts where it is
        var = np.maximum(values, 1.0)  # ... with Poisson-sized uncertainty
        for i, state in enumerate(states):
            if state and len(state.get("mean", ())) == width:
                seen[i] = state["n"]
                mean[i] = state["mean"]
                var[i] = state["var"]
                quiet[i] = state.get("quiet", 0)
        return seen, mean, var, quiet
