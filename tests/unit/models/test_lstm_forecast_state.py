"""ForecastDetector's per-stream state: batching, warm-up, size, evidence, model-version changes.

The detectors here are built from random networks (no training): the properties hold for any
weights. The state row is [seen, steps, (h, c)..., pred(f), centre(f), spread(f), err(f), quiet]
with f the network's width (the features, plus their total for counts).
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gridalarm.models.artifact import save_artifact
from gridalarm.models.lstm_cell import Dense, LSTMLayer, LSTMStack
from gridalarm.models.lstm_classifier import ClassifierDetector
from gridalarm.models.lstm_forecast import ForecastDetector, ForecastSettings
from gridalarm.models.registry import ModelOptions, build_model
from gridalarm.models.scaling import RunningScaler, ScalingConfig

FEATURES = (
    "ExecuteEvent",
    "JobAbortedEvent",
    "JobDisconnectedEvent",
    "JobEvictedEvent",
    "JobHeldEvent",
    "JobImageSizeEvent",
    "JobReconnectFailedEvent",
    "JobReconnectedEvent",
    "SubmitEvent",
    "JobTerminatedEvent",
    "JobReleaseEvent",
    "ShadowExceptionEvent",
    "other",
)
# Hourly rates of a busy schedd (as in test_baseline.py).
BUSY = np.array([200, 2, 5, 3, 4, 150, 0.5, 4, 180, 170, 2, 1, 0.3])
# lstm_forecast.MIN_RATE as documented (measured on the simulator): expected counts below it
# count as it. The one place to change when it is retuned.
SMALLEST_RATE = 0.2
V1 = "20240101T000000Z-aaaaaaaa"
V2 = "20240101T000000Z-bbbbbbbb"


def random_stack(
    seed: int,
    inputs: int,
    units: int,
    layers: int = 1,
    scale: float = 0.5,
    outputs: int | None = None,
    activation: str = "linear",
) -> LSTMStack:
    rng = np.random.default_rng(seed)
    stacked = []
    width = inputs
    for _ in range(layers):
        stacked.append(
            LSTMLayer(
                w=rng.normal(0.0, scale, (width + units, 4 * units)).astype(np.float32),
                b=rng.normal(0.0, 0.1, 4 * units).astype(np.float32),
            )
        )
        width = units
    outputs = inputs if outputs is None else outputs
    head = Dense(
        rng.normal(0.0, scale, (units, outputs)).astype(np.float32),
        rng.normal(0.0, 0.1, outputs).astype(np.float32),
        activation,
    )
    return LSTMStack(layers=tuple(stacked), head=head)


def zero_forecast(inputs: int, units: int = 3) -> LSTMStack:
    """A network that always forecasts 0 (the running centre), whatever its (h, c)."""
    stack = random_stack(4, inputs, units)
    zeros = Dense(np.zeros((units, inputs), np.float32), np.zeros(inputs, np.float32))
    return LSTMStack(stack.layers, zeros)


def net_width(features: int, settings: ForecastSettings, transform: str = "log1p") -> int:
    """The network's inputs and outputs: the features, plus their total for counts."""
    return features + (1 if settings.resolved(transform).total else 0)


def decode(state: dict[str, Any]) -> np.ndarray:
    """A packed state row, read without the module's own unpacking."""
    return np.frombuffer(base64.b64decode(state["s"]), dtype="<f4").astype(np.float64)


def counts(steps: int, streams: int, features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.5, 300.0, size=(streams, features))
    return rng.poisson(rates, size=(steps, streams, features)).astype(float)


def test_five_streams_together_equal_each_alone() -> None:
    features, units = 4, 8
    settings = ForecastSettings(warmup=3, min_history=4)
    stack = random_stack(0, net_width(features, settings), units, layers=2)
    detector = ForecastDetector(stack, ScalingConfig(), features, V1, settings)
    xs = counts(30, 5, features, seed=1)
    xs[20:23, 2, 1] *= 40.0  # an incident in one stream
    joins = [0, 2, 4, 6, 8]  # streams appear at different windows

    # per stream, per window: (raw, expected, share, ready, state row) stepped in the batch
    together: list[list[tuple[Any, ...]]] = [[] for _ in range(5)]
    states: list[Any] = [None] * 5
    for t in range(30):
        active = [i for i in range(5) if joins[i] <= t]
        out = detector.step(xs[t, active], [states[i] for i in active])
        for k, i in enumerate(active):
            states[i] = out.states[k]
            together[i].append(
                (out.raw[k], out.expected[k], out.share[k], out.ready[k], decode(out.states[k]))
            )

    ready_rows = 0
    for i in range(5):
        state = None
        for k, t in enumerate(range(joins[i], 30)):
            out = detector.step(xs[t, i : i + 1], [state])
            state = out.states[0]
            raw, expected, share, ready, row = together[i][k]
            assert out.ready[0] == ready
            ready_rows += int(ready)
            np.testing.assert_allclose(out.raw[0], raw, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(out.expected[0], expected, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(out.share[0], share, rtol=0, atol=1e-6)
            np.testing.assert_allclose(decode(state), row, rtol=1e-6, atol=1e-6)
            assert state["m"] == V1[-16:]
    assert ready_rows > 60


@pytest.mark.parametrize(
    ("warmup", "min_history", "first_ready"),
    [(3, 5, 5), (7, 2, 7), (12, 12, 12), (0, 1, 1)],
)
def test_a_stream_is_not_ready_before_min_history_and_warmup(
    warmup: int, min_history: int, first_ready: int
) -> None:
    settings = ForecastSettings(warmup=warmup, min_history=min_history)
    detector = ForecastDetector(
        random_stack(2, net_width(3, settings), 4), ScalingConfig(), 3, V1, settings
    )
    xs = counts(16, 2, 3, seed=3)
    states: list[Any] = [None, None]
    for t in range(16):
        out = detector.step(xs[t], states)
        states = out.states
        assert out.ready.tolist() == [t >= first_ready] * 2, t
        if t < first_ready:
            assert out.raw.tolist() == [0.0, 0.0]
        else:
            assert np.all(out.raw > 0.0)


def test_evidence_by_hand_with_a_network_that_always_forecasts_zero() -> None:
    scaling = ScalingConfig(transform="none", floor=1.0, relative_floor=0.0)
    settings = ForecastSettings(warmup=1, min_history=1)
    detector = ForecastDetector(zero_forecast(1), scaling, 1, V1, settings)
    states: list[Any] = [None]
    raws, expected, ready, learn = [], [], [], []
    for value in (10.0, 13.0, 10.0, 16.0):
        out = detector.step(np.array([[value]]), states)
        states = out.states
        raws.append(out.raw[0])
        expected.append(out.expected[0, 0])
        ready.append(bool(out.ready[0]))
        assert out.learn is not None
        learn.append(bool(out.learn[0]))
    # gauges: the scaled error over max(typical error, error_floor), no total, no silence
    # scaled: 0, 3, -0.75, 5 / (11/6); typical error: 1, 1, 3, 1.875 (alpha 1, 1, 1/2)
    assert ready == [False, True, True, True]
    np.testing.assert_allclose(raws, [0.0, 3.0, 0.25, (5 / (11 / 6)) / 1.875], atol=1e-12)
    # "expected" is the forecast (0 scaled) at the centre before each window
    np.testing.assert_allclose(expected, [10.0, 10.0, 11.5, 11.0], atol=1e-12)
    assert learn == [True] * 4  # gauges have no silent runs: the threshold always learns
    assert decode(states[0])[-1] == 0.0  # quiet


def test_a_gauge_error_is_divided_by_at_least_the_error_floor() -> None:
    scaling = ScalingConfig(transform="none", floor=1.0, relative_floor=0.0)
    settings = ForecastSettings(warmup=1, min_history=1, error_floor=0.5)
    detector = ForecastDetector(zero_forecast(1), scaling, 1, V1, settings)
    states: list[Any] = [None]
    raws = []
    for value in (10.0, 10.0, 10.0, 12.0):
        out = detector.step(np.array([[value]]), states)
        states = out.states
        raws.append(out.raw[0])
    # errors 0, 0 (typical error 1 -> 0 at alpha 1), then 0 (stays 0); the last error is
    # 2 / 1 spread: divided by the floor 0.5, not by the typical error 0
    np.testing.assert_allclose(raws, [0.0, 0.0, 0.0, 4.0], atol=1e-12)


def test_count_evidence_by_hand_deviance_residuals_and_a_silent_run() -> None:
    # One count feature and its total (the same column), a network forecasting the centre.
    settings = ForecastSettings(warmup=1, min_history=1)
    detector = ForecastDetector(zero_forecast(2), ScalingConfig(), 1, V1, settings)
    states: list[Any] = [None]
    raws, expected, learn, quiet = [], [], [], []
    for value in (10.0, 10.0, 0.0, 0.0, 10.0):
        out = detector.step(np.array([[value]]), states)
        states = out.states
        raws.append(out.raw[0])
        expected.append(out.expected[0, 0])
        assert out.learn is not None
        learn.append(bool(out.learn[0]))
        quiet.append(decode(states[0])[-1])
    # centre log 11 for t0..t2 (spread 0.25 after t0, 0.125 -> floored 0.25 after t1), then
    # clipped steps of 3 spreads: -0.75 / 3 at t2 (spread -> 5/12), -1.25 / 4 at t3
    mu3 = 11.0 * math.exp(-0.25) - 1.0
    mu4 = 11.0 * math.exp(-0.5625) - 1.0
    np.testing.assert_allclose(expected, [10.0, 10.0, 10.0, mu3, mu4], rtol=1e-6)
    # typical |residual|: 1, 1 -> 0 (alpha 1), 0 -> 0.1 (clipped at 4 * floor 0.05, alpha
    # 1/2), 0.1 -> 0.2 (clipped at 0.4, alpha 1/3): always below 0.7979, so u = residual.
    # t2: zero given 10: sqrt(2 * 10), and quiet 10 gives the same sqrt(2 * 10)
    # t3: zero given mu3: sqrt(2 * mu3); quiet 10 + mu3: sqrt(2 * (10 + mu3)) is larger
    # t4: ten given mu4: sqrt(2 * (10 log(10 / mu4) - (10 - mu4))); the silent run is over
    t4 = math.sqrt(2.0 * (10.0 * math.log(10.0 / mu4) - (10.0 - mu4)))
    np.testing.assert_allclose(
        raws, [0.0, 0.0, math.sqrt(20.0), math.sqrt(2.0 * (10.0 + mu3)), t4], atol=2e-5
    )
    np.testing.assert_allclose(quiet, [0.0, 0.0, 10.0, 10.0 + mu3, 0.0], rtol=1e-6)
    assert learn == [True, True, False, False, True]


def test_silence_accrues_the_running_level_when_the_forecast_is_lower() -> None:
    # A network that forecasts 8 spreads below the centre from its second window on.
    head = Dense(np.zeros((3, 2), np.float32), np.full(2, -8.0, np.float32))
    stack = LSTMStack(zero_forecast(2).layers, head)
    settings = ForecastSettings(warmup=1, min_history=1)
    detector = ForecastDetector(stack, ScalingConfig(), 1, V1, settings)
    first = detector.step(np.array([[10.0]]), [None])
    out = detector.step(np.array([[0.0]]), first.states)
    # expected: expm1(log 11 - 8 * 0.25) = 11 / e^2 - 1; the running level is 10: quiet 10
    mu = 11.0 * math.exp(-2.0) - 1.0
    np.testing.assert_allclose(out.expected[0, 0], mu, rtol=1e-5)
    assert decode(out.states[0])[-1] == pytest.approx(10.0, rel=1e-6)
    # the feature's own residual sqrt(2 mu) is over-dispersion-widened by 1 / 0.7979 (the
    # typical error is still 1), well below the silence evidence sqrt(2 * 10)
    u = math.sqrt(2.0 * mu) / (1.0 / 0.7979)
    assert u < math.sqrt(20.0)
    assert out.raw[0] == pytest.approx(math.sqrt(20.0), rel=1e-6)
    assert out.share[0].tolist() == [1.0]
    assert out.learn is not None and out.learn.tolist() == [False]


def test_a_stream_silent_from_the_start_accrues_no_silence_evidence() -> None:
    # A stream that is usually silent: its level and forecast are 0, so a silent window adds
    # nothing to the silence run (no surprise), and the threshold keeps learning from it.
    settings = ForecastSettings(warmup=0, min_history=0)
    detector = ForecastDetector(zero_forecast(3), ScalingConfig(), 2, V1, settings)
    states: list[Any] = [None]
    for _ in range(50):
        out = detector.step(np.zeros((1, 2)), states)
        states = out.states
        assert decode(states[0])[-1] == 0.0
        assert out.learn is not None and out.learn.tolist() == [True]
        # both features: zero given the smallest rate, residual -sqrt(2 * rate), divided by the
        # widening (err_scale starts at 1, i.e. 1 / 0.7979, and learns down to 1)
        assert out.share[0].tolist() == [0.5, 0.5]
        residual = math.sqrt(2.0 * SMALLEST_RATE)
        assert residual * 0.7979 - 1e-6 <= out.raw[0] <= residual + 1e-6


def deviance(x: float, mu: float) -> float:
    """Signed Poisson deviance residual, written out from its textbook definition."""
    x, mu = max(x, 0.0), max(mu, SMALLEST_RATE)
    dev = 2.0 * (x * math.log(x / mu) - (x - mu)) if x > 0 else 2.0 * mu
    return math.copysign(math.sqrt(max(dev, 0.0)), x - mu) if x != mu else 0.0


class ReferenceStream:
    """One stream through lstm-forecast's documented rules, in plain Python (float64).

    The LSTM step is written out from the Keras gate order (input, forget, cell, output).
    """

    def __init__(
        self, stack: LSTMStack, scaling: ScalingConfig, features: int, settings: ForecastSettings
    ) -> None:
        self.layers = [(layer.w.astype(float), layer.b.astype(float)) for layer in stack.layers]
        self.head = (stack.head.w.astype(float), stack.head.b.astype(float))
        self.cfg = scaling
        self.features = features
        self.counts = scaling.transform == "log1p"
        self.settings = settings
        self.total = self.counts if settings.total is None else settings.total
        self.state: dict[str, Any] | None = None
        self.widened = self.silence_won = 0  # how often each branch decided

    def tr(self, v: float) -> float:
        return math.log1p(max(v, 0.0)) if self.counts else v

    def floor(self, c: float) -> float:
        return max(self.cfg.floor, self.cfg.relative_floor * abs(c))

    def lstm(self, z: list[float]) -> list[float]:
        inputs = np.array(z)
        for k, (w, b) in enumerate(self.layers):
            units = len(b) // 4
            h, c = self.state["h"][k], self.state["c"][k]
            gates = np.concatenate([inputs, h]) @ w + b
            sig = 1.0 / (1.0 + np.exp(-gates))
            i, f, o = sig[:units], sig[units : 2 * units], sig[3 * units :]
            c = f * c + i * np.tanh(gates[2 * units : 3 * units])
            h = o * np.tanh(c)
            self.state["h"][k], self.state["c"][k] = h, c
            inputs = h
        return (inputs @ self.head[0] + self.head[1]).tolist()

    def step(self, x: list[float]) -> tuple[float, list[float], list[float], bool, bool]:
        st = self.settings
        xin = [*x, sum(x)] if self.total else list(x)
        f = len(xin)
        if self.state is None:
            centre = [self.tr(v) for v in xin]
            self.state = {
                "n": 0, "steps": 0, "centre": centre, "spread": [self.floor(c) for c in centre],
                "pred": [0.0] * f, "err": [1.0] * f, "quiet": 0.0,
                "h": [np.zeros(len(b) // 4) for _, b in self.layers],
                "c": [np.zeros(len(b) // 4) for _, b in self.layers],
            }  # fmt: skip
        s = self.state
        n, steps = s["n"], s["steps"]
        alpha = max(1.0 / (n + 1.0), 1.0 / self.cfg.history)
        z, expected, u, err_new = [], [], [], []
        new_centre, new_spread = [], []
        for j in range(f):
            y, c = self.tr(xin[j]), s["centre"][j]
            sp = max(s["spread"][j], self.floor(c))
            z.append(min(max((y - c) / sp, -self.cfg.limit), self.cfg.limit))
            back = c + s["pred"][j] * sp
            expected.append(math.expm1(max(back, 0.0)) if self.counts else back)
            d = min(max(y - c, -self.cfg.clip * sp), self.cfg.clip * sp)
            new_centre.append(c + alpha * d)
            new_spread.append(max((1.0 - alpha) * sp + alpha * abs(d), self.floor(c + alpha * d)))
            err = s["err"][j]
            if self.counts:
                r = deviance(xin[j], expected[j])
                width = max(err / 0.7979, 1.0)
                self.widened += width > 1.0
            else:
                r = z[j] - s["pred"][j]
                width = max(err, st.error_floor)
            u.append(r / width)
            if steps >= 1:
                a = max(1.0 / steps, 1.0 / st.error_history)
                err += a * (min(abs(r), st.error_clip * max(err, st.error_floor)) - err)
            err_new.append(err)
        evidence = max(abs(v) for v in u)
        quiet = 0.0
        if self.total:
            if xin[-1] <= 0.0:
                level = math.expm1(max(s["centre"][-1], 0.0))
                quiet = s["quiet"] + max(expected[-1], level, SMALLEST_RATE)
            self.silence_won += math.sqrt(2.0 * quiet) > evidence
            evidence = max(evidence, math.sqrt(2.0 * quiet))
        ready = steps >= st.warmup and n >= st.min_history
        own = [v * v for v in u[: self.features]]
        total = sum(own)
        share = [v / total if total > 0 else 0.0 for v in own]
        s["pred"] = self.lstm(z)
        s.update(n=n + 1, steps=steps + 1, centre=new_centre, spread=new_spread, err=err_new)
        s["quiet"] = quiet
        return (evidence if ready else 0.0), expected[: self.features], share, ready, quiet <= 0


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_a_random_network_matches_the_reference_rules(transform: str) -> None:
    features, units, steps = 3, 5, 80
    scaling = ScalingConfig(transform=transform, history=24)  # type: ignore[arg-type]
    settings = ForecastSettings(warmup=3, min_history=5, error_history=20)
    stack = random_stack(13, net_width(features, settings, transform), units, layers=2)
    detector = ForecastDetector(stack, scaling, features, V1, settings)
    rng = np.random.default_rng(14)
    streams = 3
    xs = rng.poisson([[40.0, 3.0, 0.4]] * streams, size=(steps, streams, features)).astype(float)
    xs[30:34, 0, 1] = 60.0  # an incident
    xs[50:58, 1] = 0.0  # a stream falling silent
    xs[20:, 2] = rng.negative_binomial(2, 0.05, size=(steps - 20, features))  # over-dispersed
    refs = [ReferenceStream(stack, scaling, features, settings) for _ in range(streams)]
    states: list[Any] = [None] * streams
    for t in range(steps):
        out = detector.step(xs[t], states)
        states = out.states
        assert out.learn is not None
        for i, ref in enumerate(refs):
            raw, expected, share, ready, learn = ref.step(xs[t, i].tolist())
            assert bool(out.ready[i]) == ready and bool(out.learn[i]) == learn, (t, i)
            assert out.raw[i] == pytest.approx(raw, rel=1e-4, abs=1e-4), (t, i)
            np.testing.assert_allclose(out.expected[i], expected, rtol=1e-4, atol=1e-4)
            if max(out.raw[i], raw) > 1e-3:  # the share of rounding noise is noise
                np.testing.assert_allclose(out.share[i], share, rtol=0, atol=1e-4)
    if transform == "log1p":  # both branches of the counts' rules were taken
        assert sum(r.widened for r in refs) > 20 and sum(r.silence_won for r in refs) >= 4
    else:
        assert all(decode(s)[-1] == 0.0 for s in states)


def test_state_of_a_default_size_stream_fits_in_two_kilobytes(tmp_path: Path) -> None:
    units = 32
    stack = random_stack(5, net_width(len(FEATURES), ForecastSettings()), units, scale=0.3)
    metadata = {
        "detector": "lstm-forecast",
        "features": list(FEATURES),
        "window": 3600.0,
        "scaling": ScalingConfig().to_json(),
        "network": {"units": units, "layers": 1, "dropout": 0.0},
        "streaming": {},
        "threshold": {"prior_median": 1.0, "prior_high": 2.0},
    }
    artifact = save_artifact(tmp_path / "m", metadata, stack.to_arrays())
    model = build_model(
        "lstm-forecast", ModelOptions(model_path=tmp_path / "m", poll=3600.0, features=FEATURES)
    )
    rng = np.random.default_rng(6)
    sizes = np.array([[1.0], [0.01], [30.0], [0.3]])  # busy, quiet, huge, ordinary schedds
    states: list[Any] = [None] * 4
    for _ in range(200):
        out = model.score(rng.poisson(BUSY * sizes).astype(float), states)
        states = out.states
    assert out.models == [f"lstm-forecast@{artifact.version}"] * 4

    for state in states:
        (detector_state, threshold_state), (baseline_state, ratio_state) = state
        # 3 + 2*32 + 4*(13 + the total) = 123 float32 = 492 bytes -> 656 base64 characters
        assert len(detector_state["s"]) == 656
        assert len(decode(detector_state)) == 123
        # 128 + 1 float16 = 258 bytes -> 344 characters
        assert len(threshold_state) == 344
        assert set(baseline_state) == {"n", "mean", "var", "quiet"}
        assert ratio_state is None  # the baseline's threshold keeps no state
        assert len(orjson.dumps(state)) <= 2048


def test_a_state_of_another_version_keeps_the_scaler_but_resets_h_and_c() -> None:
    features, units = 3, 5
    scaling = ScalingConfig()
    width = net_width(features, ForecastSettings())  # 4: the features and their total
    old = ForecastDetector(random_stack(7, width, units), scaling, features, V1)
    new = ForecastDetector(
        random_stack(8, width, units), scaling, features, V2, ForecastSettings(warmup=3)
    )
    xs = counts(21, 2, features, seed=9)
    xs[18:20, 1] = 0.0  # stream 1 ends in a silent run: its quiet is > 0
    states: list[Any] = [None, None]
    for t in range(20):
        states = old.step(xs[t], states).states
    before = np.stack([decode(s) for s in states])
    hc = slice(2, 2 + 2 * units)
    pred = slice(hc.stop, hc.stop + width)
    centre = slice(pred.stop, pred.stop + width)
    scaler_part = slice(pred.stop, pred.stop + 3 * width)  # centre, spread, typical error
    assert before.shape == (2, 3 + 2 * units + 4 * width)
    assert np.all(before[:, hc] != 0.0) and np.all(before[:, pred] != 0.0)
    assert before[0, -1] == 0.0 and before[1, -1] > 0.0  # quiet

    # the scaler state really is the running scaler's on the windows and their total
    scaler = RunningScaler(scaling)
    inputs = np.concatenate([xs, xs.sum(axis=2, keepdims=True)], axis=2)
    s = scaler.initial(inputs[0])
    for t in range(20):
        _, s = scaler.scale(inputs[t], s)
    np.testing.assert_allclose(before[:, centre], s[1], rtol=1e-6)

    same = old.unpack_states(xs[20], states)
    np.testing.assert_array_equal(same, before)  # same version: everything kept

    rows = new.unpack_states(xs[20], states)
    assert rows.shape == before.shape
    assert rows[:, 0].tolist() == [20.0, 20.0]  # windows seen: kept
    assert rows[:, 1].tolist() == [0.0, 0.0]  # windows under this model: restarted
    assert np.all(rows[:, hc] == 0.0)
    assert np.all(rows[:, pred] == 0.0)
    np.testing.assert_array_equal(rows[:, scaler_part], before[:, scaler_part])
    assert rows[:, -1].tolist() == [0.0, 0.0]  # the silent run restarts too

    # seen >= min_history, yet not ready until the new model's warmup has passed
    ready = []
    for t in range(20, 24):
        out = new.step(xs[min(t, 20)], states)
        states = out.states
        ready.append(out.ready.tolist())
    assert ready == [[False, False]] * 3 + [[True, True]]
    assert {st["m"] for st in out.states} == {V2[-16:]}


def test_the_version_tag_is_the_last_16_characters() -> None:
    settings = ForecastSettings()
    detector = ForecastDetector(random_stack(9, net_width(2, settings), 2), ScalingConfig(), 2, V1)
    out = detector.step(np.ones((1, 2)), [None])
    assert out.states[0]["m"] == "000000Z-aaaaaaaa"


def lstm_by_hand(stack: LSTMStack, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h1, c1, h2, c2, ...) and the head's output after one step from zero state."""
    inputs, hc = np.asarray(x, dtype=float), []
    for layer in stack.layers:
        units = len(layer.b) // 4
        gates = np.concatenate([inputs, np.zeros(units)]) @ layer.w.astype(float) + layer.b
        sig = 1.0 / (1.0 + np.exp(-gates))
        c = sig[:units] * np.tanh(gates[2 * units : 3 * units])  # f * 0 + i * g
        h = sig[3 * units :] * np.tanh(c)
        hc += [h, c]
        inputs = h
    return np.concatenate(hc), inputs @ stack.head.w.astype(float) + stack.head.b


def test_a_state_row_has_the_documented_layout() -> None:
    features, units = 3, 4
    width = net_width(features, ForecastSettings())
    assert width == 4  # counts: the total is one more column
    stack = random_stack(10, width, units, layers=2)
    detector = ForecastDetector(stack, ScalingConfig(), features, V1)
    out = detector.step(np.array([[0.0, np.e - 1.0, 99.0]]), [None])
    row = decode(out.states[0])
    assert len(row) == 3 + 2 * 2 * units + 4 * width
    assert row[:2].tolist() == [1.0, 1.0]  # windows seen, windows under this model
    # the first window scales to 0: (h, c) and the forecast are one step on zeros
    hc, pred = lstm_by_hand(stack, np.zeros(width))
    at = 2 + 4 * units
    np.testing.assert_allclose(row[2:at], hc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row[at : at + width], pred, rtol=1e-5, atol=1e-6)
    centre = row[at + width : at + 2 * width]
    np.testing.assert_allclose(centre, [0.0, 1.0, np.log(100.0), np.log(np.e + 99.0)], rtol=1e-6)
    # spread: after the first window alpha is 1 and the step is 0, so the floor: 0.25, or 1%
    # of |centre| (all below 25 here)
    assert row[at + 2 * width : at + 3 * width].tolist() == [0.25] * width
    assert row[at + 3 * width : at + 4 * width].tolist() == [1.0] * width  # typical error
    assert row[-1] == 0.0  # quiet: the total (e + 98) is not silent
    assert out.expected.shape == (1, 3) and out.share.shape == (1, 3)  # real features only
    assert out.learn is not None and out.learn.tolist() == [True]


def test_without_the_total_column_the_state_is_narrower_and_never_quiet() -> None:
    features, units = 2, 3
    settings = ForecastSettings(total=False, warmup=0, min_history=0)
    assert net_width(features, settings) == 2
    detector = ForecastDetector(
        random_stack(15, features, units), ScalingConfig(), features, V1, settings
    )
    states: list[Any] = [None]
    for _ in range(3):
        out = detector.step(np.zeros((1, features)), states)
        states = out.states
        assert out.learn is not None and out.learn.tolist() == [True]
    row = decode(states[0])
    assert len(row) == 3 + 2 * units + 4 * features
    assert row[-1] == 0.0  # no total column: no silence evidence


@pytest.mark.parametrize(("old_units", "old_layers"), [(8, 1), (2, 1), (4, 2)])
def test_a_state_of_another_network_shape_keeps_the_scaler(old_units: int, old_layers: int) -> None:
    features, units = 3, 4
    width = net_width(features, ForecastSettings())
    old = ForecastDetector(
        random_stack(11, width, old_units, layers=old_layers), ScalingConfig(), features, V1
    )
    new = ForecastDetector(random_stack(12, width, units), ScalingConfig(), features, V2)
    xs = counts(21, 1, features, seed=12)
    xs[19] = 0.0  # a silent window last: quiet > 0
    states: list[Any] = [None]
    for t in range(20):
        states = old.step(xs[t], states).states
    before = decode(states[0])
    assert len(before) == 3 + 2 * old_units * old_layers + 4 * width
    assert before[-1] > 0.0
    rows = new.unpack_states(xs[20], states)
    assert rows.shape == (1, 3 + 2 * units + 4 * width)
    assert rows[0, 0] == 20.0  # windows seen
    assert rows[0, 1] == 0.0  # windows under this model
    assert np.all(rows[0, 2 : 2 + 2 * units + width] == 0.0)  # (h, c) and the forecast
    # centre, spread and typical error, read from the end of the old row
    np.testing.assert_array_equal(rows[0, -3 * width - 1 : -1], before[-3 * width - 1 : -1])
    assert rows[0, -1] == 0.0  # quiet restarts


def fresh_row(x: np.ndarray, width: int, units: int) -> np.ndarray:
    """The state row of a stream never seen (counts with their total), written by hand."""
    inputs = np.log1p(np.append(x, x.sum()))
    hc = 2 * units
    row = np.zeros(3 + hc + 4 * width)
    row[2 + hc + width : 2 + hc + 2 * width] = inputs
    row[2 + hc + 2 * width : 2 + hc + 3 * width] = np.maximum(0.25, 0.01 * inputs)
    row[2 + hc + 3 * width : 2 + hc + 4 * width] = 1.0
    return row


@pytest.mark.parametrize(
    ("old_features", "old_units"),
    [
        (2, 1),  # a state shorter than any of the new width
        (2, 4),  # as long as a state of the new width with other units would be
        (4, 4),  # wider
    ],
)  # fmt: skip
def test_a_state_of_another_feature_width_keeps_nothing(old_features: int, old_units: int) -> None:
    features, units = 3, 4
    width = features + 1
    old = ForecastDetector(
        random_stack(16, old_features + 1, old_units), ScalingConfig(), old_features, V1
    )
    new = ForecastDetector(random_stack(17, width, units), ScalingConfig(), features, V2)
    xs = counts(10, 1, old_features, seed=18)
    states: list[Any] = [None]
    for t in range(10):
        states = old.step(xs[t], states).states
    x = np.array([[5.0, 0.0, 40.0]])
    rows = new.unpack_states(x, states)
    np.testing.assert_allclose(rows[0], fresh_row(x[0], width, units), rtol=1e-12, atol=0)


# --- lstm-classifier: the same readiness rules -----------------------------------------------


def classifier(
    seed: int, features: int, units: int, version: str, **settings: Any
) -> ClassifierDetector:
    stack = random_stack(seed, features, units, outputs=2, activation="softmax")
    return ClassifierDetector(
        stack, ScalingConfig(), features, version, ForecastSettings(**settings)
    )


@pytest.mark.parametrize(
    ("warmup", "min_history", "first_ready"),
    [(3, 5, 5), (7, 2, 7), (12, 12, 12), (0, 1, 1), (0, 0, 0)],
)
def test_a_classifier_stream_is_ready_after_warmup_and_min_history(
    warmup: int, min_history: int, first_ready: int
) -> None:
    detector = classifier(19, 3, 4, V1, warmup=warmup, min_history=min_history)
    xs = counts(16, 2, 3, seed=20)
    states: list[Any] = [None, None]
    for t in range(16):
        out = detector.step(xs[t], states)
        states = out.states
        assert out.ready.tolist() == [t >= first_ready] * 2, t
        if t < first_ready:
            assert out.raw.tolist() == [0.0, 0.0]
        else:
            assert np.all((out.raw > 0.0) & (out.raw < 1.0))  # a softmax probability
        row = decode(states[0])
        assert row[:2].tolist() == [t + 1.0, t + 1.0]  # windows seen, windows under it


def test_a_classifier_waits_warmup_windows_after_a_model_swap() -> None:
    old = classifier(21, 3, 4, V1)
    new = classifier(22, 3, 4, V2, warmup=3, min_history=12)
    xs = counts(24, 1, 3, seed=23)
    states: list[Any] = [None]
    for t in range(20):
        states = old.step(xs[t], states).states
    before = decode(states[0])
    ready = []
    for t in range(20, 24):
        out = new.step(xs[t], states)
        if t == 20:
            row = decode(out.states[0])
            assert row[:2].tolist() == [21.0, 1.0]  # seen kept, steps restarted
            # the scaler continued from the old state: alpha 1/21, steps clipped at 3 spreads
            c, sp = before[10:13], before[13:16]
            y = np.log1p(xs[20, 0])
            spread = np.maximum(sp, 0.25)
            d = np.clip(y - c, -3 * spread, 3 * spread)
            np.testing.assert_allclose(row[10:13], c + d / 21.0, rtol=1e-6)
            np.testing.assert_allclose(
                row[13:16], np.maximum(spread * 20 / 21 + np.abs(d) / 21, 0.25), rtol=1e-6
            )
        states = out.states
        ready.append(bool(out.ready[0]))
    # seen >= min_history all along; ready once the new model has had 3 windows
    assert ready == [False, False, False, True]
