"""``lstm-classifier``: the 2017 study's supervised design, done right, as a streaming detector.

The study fed one hour's counts as every time step of its sequence and added the biases to the
weights before the matmul; here each step is a different window, the LSTM cell is Keras's own,
and the network outputs P(anomaly) for every window from the (h, c) it carried so far. The
evidence is that probability (:class:`~gridalarm.models.thresholds.ProbabilityThreshold`
makes it the score). The explanation cannot come from a classifier's output, so it shows each
feature's scaled distance from the stream's running centre, with that centre as "expected".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridalarm.models.artifact import Artifact
from gridalarm.models.detector import DetectorOutput
from gridalarm.models.lstm_cell import LSTMStack
from gridalarm.models.lstm_forecast import ForecastSettings
from gridalarm.models.packing import pack, unpack
from gridalarm.models.scaling import RunningScaler, ScalingConfig

NAME = "lstm-classifier"


class ClassifierDetector:
    """The streaming ``lstm-classifier`` detector of one artifact."""

    name = NAME

    def __init__(
        self,
        stack: LSTMStack,
        scaling: ScalingConfig,
        features: int,
        version: str,
        settings: ForecastSettings | None = None,
    ) -> None:
        self.stack = stack
        self.scaler = RunningScaler(scaling)
        self.features = features
        self.version = version
        self.settings = settings or ForecastSettings()
        self._tag = version[-16:]
        hc = stack.state_size
        self._hc = slice(2, 2 + hc)
        self._centre = slice(2 + hc, 2 + hc + features)
        self._spread = slice(2 + hc + features, 2 + hc + 2 * features)
        self._width = 2 + hc + 2 * features

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> ClassifierDetector:
        meta = artifact.metadata
        return cls(
            LSTMStack.from_arrays(artifact.arrays(), "softmax"),
            ScalingConfig.from_json(meta["scaling"]),
            len(meta["features"]),
            artifact.version,
            ForecastSettings(**meta.get("streaming", {})),
        )

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        x = np.asarray(x, dtype=np.float64)
        n, centre, spread = self.scaler.initial(x)
        rows = np.zeros((len(x), self._width))
        rows[:, 0], rows[:, self._centre], rows[:, self._spread] = n, centre, spread
        for i, state in enumerate(states):
            if state and len(values := unpack(state["s"])) == self._width:
                rows[i] = values
                if state.get("m") != self._tag:
                    rows[i, 1] = 0.0
                    rows[i, self._hc] = 0.0
        seen, steps = rows[:, 0], rows[:, 1]
        centre, spread = rows[:, self._centre], rows[:, self._spread]
        z, (seen_new, centre_new, spread_new) = self.scaler.scale(x, (seen, centre, spread))
        probs, hc_new = self.stack.step(z.astype(np.float32), rows[:, self._hc].astype(np.float32))
        cfg = self.settings
        ready = (steps >= cfg.warmup) & (seen >= cfg.min_history)
        zsq = z**2
        total = zsq.sum(axis=1, keepdims=True)
        new_rows = np.empty_like(rows)
        new_rows[:, 0], new_rows[:, 1] = seen_new, steps + 1.0
        new_rows[:, self._hc] = hc_new
        new_rows[:, self._centre], new_rows[:, self._spread] = centre_new, spread_new
        return DetectorOutput(
            raw=np.where(ready, probs[:, 1], 0.0),
            expected=self.scaler.unscale(np.zeros_like(z), centre, spread),
            share=np.divide(zsq, total, out=np.zeros_like(zsq), where=total > 0),
            states=[{"m": self._tag, "s": pack(row)} for row in new_rows],
            ready=ready,
        )
