"""``lstm-forecast``: an LSTM forecasts each stream's next window; surprise is the evidence.

Per stream and window: scale the observed window (:mod:`gridalarm.models.scaling`), compare it
with the forecast made one window earlier, and normalise each feature's error by that stream's
running typical error for the feature (a feature the network predicts well is allowed less
slack). The evidence is the largest normalised error; its share per feature explains the score,
with the forecast turned back into counts as the "expected" value. Then one batched LSTM step
from the saved (h, c) makes the next forecast. :class:`~gridalarm.models.thresholds.
QuantileThreshold` turns the evidence into a score.

For counts two things matter that a plain error in log space gets wrong (measured on the
simulator at 1-minute windows: an outage missed, ~0.4 false alarms per stream-day at night):
- the error is a Poisson deviance residual of the observed count given the forecast (about a
  standard-normal z at any rate: one event more or less weighs the same at night as at peak,
  and a busy schedd falling to zero, P = e^-mu, is the surprise it should be), and the typical
  error only ever widens it (over-dispersion), never narrows it below one: a rare event kind
  that is almost always zero must not turn its first event into a 20-sigma alarm;
- the total of all features is an extra input and output of the network, so a schedd falling
  silent is one big surprise rather than thirteen small ones.

All state a stream needs (scaler, error scales, the forecast, (h, c)) is one packed float32
vector tagged with the model version: after a model swap a stream keeps its scaling and error
scales, restarts (h, c) from zeros and waits ``warmup`` windows before it is scored again
(the cold-start fallback scores it meanwhile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gridalarm.models.artifact import Artifact
from gridalarm.models.detector import DetectorOutput
from gridalarm.models.lstm_cell import LSTMStack
from gridalarm.models.packing import pack_many, unpack, unpack_many
from gridalarm.models.scaling import RunningScaler, ScalingConfig

NAME = "lstm-forecast"


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    """Streaming settings kept in the artifact's metadata."""

    warmup: int = 12  # windows under a model before its forecasts are trusted
    min_history: int = 12  # windows of a stream before it is scored at all
    error_history: int = 336  # windows: horizon of the per-feature typical error
    error_floor: float = 0.05  # smallest typical error, in scaled units
    error_clip: float = 4.0  # an error moves the typical error by at most this many of it
    total: bool | None = None  # add the total of all features as an input (None: for counts)
    residual: str | None = None  # "deviance" or "scaled" (None: deviance for counts)
    # Features whose surprise is the evidence (None: all). Telemetry such as NASA MSL pairs one
    # measured channel with many command flags that only help to predict it (Telemanom).
    targets: tuple[int, ...] | None = None

    def resolved(self, transform: str) -> ForecastSettings:
        """These settings with the automatic choices made for a scaling ``transform``."""
        counts = transform == "log1p"
        return replace(
            self,
            total=counts if self.total is None else self.total,
            residual=self.residual or ("deviance" if counts else "scaled"),
        )


MEAN_ABS_NORMAL = 0.7979  # E|Z| of a standard normal
# Expected counts below this count as this. An event kind that is almost never seen (0.03 a
# window) would make two such events a 3.3-sigma surprise, and over 14 features that happens
# several times a day per stream: measured on the simulator at 1-minute windows, 0.05 gave
# 0.22 false alarms per stream-week, 0.2 none, with the same recall.
MIN_RATE = 0.2


def deviance_residual(x: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Signed Poisson deviance residual of counts ``x`` given expected counts ``mu``.

    >>> float(deviance_residual(np.array(0.0), np.array(17.0)).round(3))  # sqrt(2 * 17)
    -5.831
    """
    x = np.maximum(x, 0.0)
    mu = np.maximum(mu, MIN_RATE)
    ratio = np.where(x > 0, x / mu, 1.0)
    dev = 2.0 * (np.where(x > 0, x * np.log(ratio), 0.0) - (x - mu))
    return np.sign(x - mu) * np.sqrt(np.maximum(dev, 0.0))


def with_total(x: np.ndarray) -> np.ndarray:
    """``x`` (n, F) with the total of its features appended as one more column."""
    return np.concatenate([x, x.sum(axis=1, keepdims=True)], axis=1)


class ForecastDetector:
    """The streaming ``lstm-forecast`` detector of one artifact."""

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
        self.settings = (settings or ForecastSettings()).resolved(scaling.transform)
        self._tag = version[-16:]  # enough to tell versions apart, short in every state
        hc = stack.state_size
        f = features + (1 if self.settings.total else 0)  # the network's width
        # Layout of the packed state vector.
        self._hc = slice(2, 2 + hc)
        self._pred = slice(2 + hc, 2 + hc + f)
        self._centre = slice(2 + hc + f, 2 + hc + 2 * f)
        self._spread = slice(2 + hc + 2 * f, 2 + hc + 3 * f)
        self._err = slice(2 + hc + 3 * f, 2 + hc + 4 * f)
        self._quiet = 2 + hc + 4 * f  # expected total of the current run of silent windows
        self._width = 3 + hc + 4 * f
        self._chars = 4 * ((4 * self._width + 2) // 3)  # base64 length of a packed state

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> ForecastDetector:
        meta = artifact.metadata
        stack = LSTMStack.from_arrays(artifact.arrays(), "linear")
        return cls(
            stack,
            ScalingConfig.from_json(meta["scaling"]),
            len(meta["features"]),
            artifact.version,
            ForecastSettings(**meta.get("streaming", {})),
        )

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Window values as the network sees them (with the total column, if any)."""
        x = np.asarray(x, dtype=np.float64)
        return with_total(x) if self.settings.total else x

    def initial(self, x: np.ndarray) -> np.ndarray:
        """Packed-state rows for streams never seen, whose first window is ``x``."""
        n, centre, spread = self.scaler.initial(self.inputs(x))
        rows = np.zeros((len(x), self._width))
        rows[:, self._centre] = centre
        rows[:, self._spread] = spread
        rows[:, self._err] = 1.0
        rows[:, 0] = n
        return rows

    def unpack_states(self, x: np.ndarray, states: Sequence[Any]) -> np.ndarray:
        """(n, width) state rows; fresh rows for new streams, (h, c) reset after a model swap."""
        rows = self.initial(x)
        f = self._err.stop - self._err.start
        chars = self._chars
        # The common case, a state of this very model, is decoded for all streams at once.
        current = [
            i
            for i, state in enumerate(states)
            if state and state.get("m") == self._tag and len(state["s"]) == chars
        ]
        if current:
            rows[current] = unpack_many([states[i]["s"] for i in current], self._width)
        done = set(current)
        for i, state in enumerate(states):
            if not state or i in done:
                continue
            values = unpack(state["s"])
            # Another model version: keep the stream's scaling and error scales, restart the
            # network from zeros. Another network shape puts (h, c) elsewhere, so the kept part
            # is read from the end; another feature width keeps nothing.
            if state.get("f") != f or len(values) < 3 + 4 * f:
                continue
            rows[i, 0] = values[0]
            rows[i, self._centre] = values[-3 * f - 1 : -2 * f - 1]
            rows[i, self._spread] = values[-2 * f - 1 : -f - 1]
            rows[i, self._err] = values[-f - 1 : -1]
        return rows

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        x = np.asarray(x, dtype=np.float64)
        rows = self.unpack_states(x, states)
        out, new_rows = self.step_rows(x, rows)
        width = self._err.stop - self._err.start
        new_states = [{"m": self._tag, "f": width, "s": text} for text in pack_many(new_rows)]
        return DetectorOutput(
            raw=out.raw, expected=out.expected, share=out.share, states=new_states,
            ready=out.ready, learn=out.learn,
        )  # fmt: skip

    def step_rows(self, x: np.ndarray, rows: np.ndarray) -> tuple[DetectorOutput, np.ndarray]:
        """The step on unpacked state rows (the benchmark times this and the packing apart)."""
        cfg = self.settings
        seen, steps = rows[:, 0], rows[:, 1]
        centre, spread = rows[:, self._centre], rows[:, self._spread]
        pred, err_scale = rows[:, self._pred], rows[:, self._err]

        x_in = self.inputs(x)
        z, (seen_new, centre_new, spread_new) = self.scaler.scale(x_in, (seen, centre, spread))
        expected = self.scaler.unscale(pred, centre, spread)
        quiet = rows[:, self._quiet]
        if self.settings.residual == "deviance":
            error = deviance_residual(x_in, expected)
            # err_scale tracks E|r|, 0.8 for a unit normal: widen for over-dispersion only.
            u = error / np.maximum(err_scale / MEAN_ABS_NORMAL, 1.0)
        else:
            error = z - pred
            u = error / np.maximum(err_scale, cfg.error_floor)
        usq = u**2
        judged = usq if cfg.targets is None else usq[:, list(cfg.targets)]
        evidence = np.sqrt(judged.max(axis=1))
        if self.settings.total:
            # A run of silent windows: P(all zero) = exp(-sum of expected totals), so the run
            # is one ever less likely event (a quiet night schedd going dark shows after a few
            # windows, where each window alone is unremarkable).
            # The rate is the forecast's or the stream's running level, whichever is higher:
            # the network soon learns to expect the silence it keeps seeing.
            silent = x_in[:, -1] <= 0.0
            level = self.scaler.unscale(np.zeros(len(x_in)), centre[:, -1], spread[:, -1])
            # No rate floor here: silence on a stream that is usually silent is no surprise.
            rate = np.maximum(expected[:, -1], level)
            quiet = np.where(silent, quiet + rate, 0.0)
            evidence = np.maximum(evidence, np.sqrt(2.0 * quiet))
        ready = (steps >= cfg.warmup) & (seen >= cfg.min_history)
        raw = np.where(ready, evidence, 0.0)
        own = usq[:, : self.features]  # the explanation names real features only
        total = own.sum(axis=1, keepdims=True)
        share = np.divide(own, total, out=np.zeros_like(own), where=total > 0)
        expected = expected[:, : self.features]

        # Typical error per feature: learned once forecasts exist, clipped against incidents.
        alpha = np.maximum(1.0 / np.maximum(steps, 1.0), 1.0 / cfg.error_history)[:, None]
        learn = (steps >= 1)[:, None]
        bounded = np.minimum(np.abs(error), cfg.error_clip * np.maximum(err_scale, cfg.error_floor))
        err_new = np.where(learn, err_scale + alpha * (bounded - err_scale), err_scale)

        next_pred, hc_new = self.stack.step(
            z.astype(np.float32), rows[:, self._hc].astype(np.float32)
        )

        new_rows = np.empty_like(rows)
        new_rows[:, 0] = seen_new
        new_rows[:, 1] = steps + 1.0
        new_rows[:, self._hc] = hc_new
        new_rows[:, self._pred] = next_pred
        new_rows[:, self._centre] = centre_new
        new_rows[:, self._spread] = spread_new
        new_rows[:, self._err] = err_new
        new_rows[:, self._quiet] = quiet
        output = DetectorOutput(
            raw=raw, expected=expected, share=share, states=[], ready=ready, learn=quiet <= 0.0
        )
        return output, new_rows
