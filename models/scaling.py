"""Per-stream running robust scaling, so that one network serves streams of any size.

A schedd with 40 jobs and a site with 40,000 differ by orders of magnitude in every count; the
LSTMs see neither. Counts go through ``log1p`` (a doubling is the same step at any size), then
each stream's own running centre and spread turn them into unit-free values. The estimates are
causal (a window is scaled with what was known before it) and robust (each update is clipped at
``clip`` spreads, so an incident hardly moves them), and they run the same way in training and in
the stream, so the network sees in the worker exactly what it was trained on.

State per stream is three arrays (count, centre, spread) kept by the caller.

>>> import numpy as np
>>> scaler = RunningScaler(ScalingConfig(transform="none", floor=1.0))
>>> n, centre, spread = scaler.initial(np.array([[10.0]]))
>>> z, state = scaler.scale(np.array([[13.0]]), (n, centre, spread))
>>> float(z[0, 0])  # 13 is 3 spreads (the floor, 1.0) above the first value seen
3.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

ScalerState = tuple[np.ndarray, np.ndarray, np.ndarray]  # (n (k,), centre (k, F), spread (k, F))


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    """How raw window values become network inputs."""

    transform: Literal["log1p", "none"] = "log1p"  # log1p for counts; none for gauges and NAB
    history: int = 168  # windows: the weight of the past at steady state (1/alpha)
    clip: float = 3.0  # an update moves the estimates by at most this many spreads
    floor: float = 0.25  # smallest spread, in transformed units: a flat feature stays calm
    relative_floor: float = 0.01  # ... and at least this share of |centre| (gauges of any size)
    limit: float = 8.0  # scaled values are clipped to +-limit: bounded network inputs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScalingConfig:
        return cls(**data)


class RunningScaler:
    """Scales a batch of streams' windows and learns from them, one window at a time."""

    def __init__(self, config: ScalingConfig) -> None:
        self.config = config

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.config.transform == "log1p":
            return np.log1p(np.maximum(x, 0.0))
        return x

    def initial(self, x: np.ndarray) -> ScalerState:
        """The state of streams seen for the first time, whose first window is ``x``."""
        y = self.transform(x)
        return np.zeros(len(y)), y.copy(), self.floor(y)

    def scale(self, x: np.ndarray, state: ScalerState) -> tuple[np.ndarray, ScalerState]:
        """Scaled ``x`` (n, F) from the state before it, and the state after learning it."""
        cfg = self.config
        n, centre, spread = state
        y = self.transform(x)
        spread = np.maximum(spread, self.floor(centre))
        z = np.clip((y - centre) / spread, -cfg.limit, cfg.limit)
        alpha = np.maximum(1.0 / (n + 1.0), 1.0 / cfg.history)[:, None]
        delta = np.clip(y - centre, -cfg.clip * spread, cfg.clip * spread)
        new_centre = centre + alpha * delta
        new_spread = np.maximum(
            (1.0 - alpha) * spread + alpha * np.abs(delta), self.floor(new_centre)
        )
        return z, (n + 1.0, new_centre, new_spread)

    def floor(self, centre: np.ndarray) -> np.ndarray:
        """The smallest spread allowed around ``centre``."""
        return np.maximum(self.config.floor, self.config.relative_floor * np.abs(centre))

    def unscale(self, z: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Scaled values back to window values (for "expected" in explanations)."""
        y = centre + np.asarray(z) * np.maximum(spread, self.floor(centre))
        if self.config.transform == "log1p":
            return np.expm1(np.maximum(y, 0.0))
        return y

    def scale_series(self, x: np.ndarray) -> np.ndarray:
        """Scale one stream's whole (T, F) series causally, as the stream would: training data."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        state = self.initial(x[:1])
        for t in range(len(x)):
            z, state = self.scale(x[t : t + 1], state)
            out[t] = z[0]
        return out
