"""LSTM streaming step: batched cost per stream, the per-stream Keras baseline, state, training.

Everything runs in-process on synthetic Poisson counts (no Kafka), in one run:

1. Batched step cost, in µs per stream per window, at 1, 100, 10,000 and 100,000 streams, at the
   default network size (32 units, 1 layer, 13 features; ``network_inputs`` shows whether the
   detector adds a total column), with real weights from an artifact trained quickly (10 streams
   x 300 windows, 2 epochs) into a temporary folder:
   ``core``: ``LSTMStack.step`` on stacked float32 arrays; ``rows``: ``ForecastDetector.
   step_rows`` on unpacked state rows (scaling, error scales, the step); ``packed``:
   ``ForecastDetector.step`` with packed (base64) per-stream states in and out, what the worker's
   model calls; ``score``: the complete scoring model of ``build_model("lstm-forecast")``
   (forecast detector, quantile threshold, cold-start baseline), what the scorer calls. States are
   those of 500 synthetic streams after 200 windows, copied round to the batch size through JSON
   (distinct objects, as a worker holds them). Each point is warmed up, then repeated for at least
   ``--min-seconds`` and 3 calls (so 100,000 streams gets few calls), timed with perf_counter.
   At 10,000 streams ``score`` is also timed in parts: the LSTM side with its threshold, and the
   baseline fallback (``ColdStart`` steps both on every window); threshold = LSTM side - packed.
2. The naive baseline beside it: one Keras call per stream, without saved state, on that
   stream's last ``sequence`` (64, the training chunk) scaled windows: ``model.predict`` (the
   issue's wording) and ``model(x, training=False)``, on a sample of streams; and the variant
   with the state carried: a one-step Keras model whose LSTM layers take ``initial_state`` and
   return their state (Keras 3 makes that easy, so it is measured too), fed each stream's saved
   (h, c). The ratios are naive µs per stream / batched µs per stream at 10,000 and 100,000
   streams: ``predict`` against all four variants, the other naive ways against ``packed``. The
   naive figures time the network only (the scaling of the sequence is left out, which flatters
   the baseline). Both Keras networks' outputs are compared with the numpy step's (max abs diff).
   TensorFlow's op determinism, which training switches on for the process, is switched off
   again for these calls, as a plain Keras user would have it.
3. State per stream after 200 windows (all rings full): bytes of ``orjson.dumps`` of the forecast
   detector's part, the threshold's part, the baseline fallback's part and the whole state the
   scoring model returns; mean and max over the 500 streams.
4. Training time of the study-scale job: 20 streams x 4,200 hourly windows x 13 features (Poisson
   counts with a daily cycle, stream sizes over three orders of magnitude), ``train`` with the
   default ``TrainConfig`` (lstm-forecast): wall seconds and epochs run. ``--skip-training``
   leaves it out.

The issue's targets are printed as ``target_*`` yes/no lines: <= 10 µs per stream per window at
>= 10,000 streams, >= 1,000x faster than per-stream predict, <= 2 KB of state per stream, and
study-scale training in < 120 s.

Run: ``python -m benchmarks.lstm_step`` (2-3 minutes on 2 cores; ``--skip-training`` saves the
study-scale training, under a minute of it). The timings share the machine: the 1-minute load
average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# None of these imports TensorFlow; models/networks.py and models/training.py set
# TF_CPP_MIN_LOG_LEVEL when imported, so keras is imported only inside functions, after them.
from gridalarm.config import DEFAULT_FEATURES
from gridalarm.models.artifact import KERAS_WEIGHTS, Artifact, latest_artifact
from gridalarm.models.lstm_forecast import ForecastDetector
from gridalarm.models.networks import NetworkConfig
from gridalarm.models.registry import ModelOptions, build_model
from gridalarm.models.training import Series, TrainConfig, TrainingData, train

SIZES = (1, 100, 10_000, 100_000)
BIG = tuple(n for n in SIZES if n >= 10_000)  # where the targets apply
VARIANTS = ("core", "rows", "packed", "score")
PARTS_AT = 10_000  # streams at which the score's parts are timed apart
NAIVE = ("keras_predict_seq", "keras_call_seq", "keras_predict_state", "keras_call_state")
POOL = 500  # distinct synthetic streams behind every batch
HISTORY = 200  # windows the pool runs before it is measured: every ring full
TARGET_US = 10.0
TARGET_RATIO = 1_000.0
TARGET_STATE_BYTES = 2048
TARGET_TRAIN_SECONDS = 120.0


def _note(message: str) -> None:
    print(f"[lstm_step] {message}", file=sys.stderr, flush=True)


def synthetic_counts(
    streams: int, windows: int, features: int, rng: np.random.Generator, period: float = 24.0
) -> np.ndarray:
    """(streams, windows, features) Poisson counts with a daily cycle and per-stream sizes."""
    size = 10.0 ** rng.uniform(-0.5, 2.5, streams)  # mean counts per window from ~0.3 to ~300
    mix = rng.dirichlet(np.full(features, 0.7), streams) * features  # each stream's feature mix
    phase = rng.uniform(0.0, 2.0 * np.pi, streams)
    t = np.arange(windows)
    daily = 1.0 + 0.6 * np.sin(2.0 * np.pi * t[None, :] / period + phase[:, None])
    rate = size[:, None, None] * mix[:, None, :] * daily[:, :, None]
    return rng.poisson(rate).astype(np.float64)


def training_data(counts: np.ndarray, source: str) -> TrainingData:
    features = tuple(DEFAULT_FEATURES[: counts.shape[2]])
    series = tuple(Series(f"s{i}", counts[i]) for i in range(len(counts)))
    return TrainingData(features=features, window=3600.0, series=series, source=source)


def per_stream_us(
    call: Callable[[], object], streams: int, min_seconds: float, min_calls: int = 3
) -> tuple[float, int]:
    """(µs per stream of one ``call`` over ``streams`` streams, calls timed), after a warm-up."""
    call()
    calls = 0
    started = time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if calls >= min_calls and elapsed >= min_seconds:
            return elapsed / calls / streams * 1e6, calls


def _copies(states: list[Any], n: int) -> list[Any]:
    """``n`` states cycling over ``states``, as distinct objects (a JSON round trip)."""
    return orjson.loads(orjson.dumps([states[i % len(states)] for i in range(n)]))


def batched_costs(
    model: Any,
    detector: ForecastDetector,
    states: list[Any],
    x_next: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, float]:
    """µs per stream per window of the four batched variants at every size."""
    out: dict[str, float] = {}
    for n in SIZES:
        idx = np.arange(n) % len(states)
        x = x_next[idx]
        full = _copies(states, n)
        packed = [s[0][0] for s in full]  # ColdStart[Thresholded[detector, threshold], baseline]
        rows = detector.unpack_states(x, packed)
        z = _scaled(detector, x, rows)
        hc = np.ascontiguousarray(rows[:, detector._hc], dtype=np.float32)
        calls: dict[str, Callable[[], object]] = {
            "core": lambda z=z, hc=hc: detector.stack.step(z, hc),
            "rows": lambda x=x, rows=rows: detector.step_rows(x, rows),
            "packed": lambda x=x, packed=packed: detector.step(x, packed),
            "score": lambda x=x, full=full: model.score(x, full),
        }
        for variant in VARIANTS:
            us, reps = per_stream_us(calls[variant], n, args.min_seconds)
            out[f"{variant}_us_per_stream_n{n}"] = round(us, 3)
            out[f"{variant}_calls_n{n}"] = reps
        if n == PARTS_AT:
            # Where ``score`` spends its time beyond ``packed``: the LSTM side with its
            # threshold, and the baseline fallback that ColdStart steps on every window.
            parts: dict[str, Callable[[], object]] = {
                "lstm_thresholded": lambda x=x, full=full: model.primary.score(
                    x, [s[0] for s in full]
                ),
                "baseline_fallback": lambda x=x, full=full: model.fallback.score(
                    x, [s[1] for s in full]
                ),
            }
            for part, call in parts.items():
                us, reps = per_stream_us(call, n, args.min_seconds)
                out[f"score_part_{part}_us_per_stream_n{n}"] = round(us, 3)
            lstm_side = out[f"score_part_lstm_thresholded_us_per_stream_n{n}"]
            threshold = lstm_side - out[f"packed_us_per_stream_n{n}"]
            out[f"score_part_threshold_us_per_stream_n{n}"] = round(threshold, 3)
        _note(f"batched step at {n} streams done")
    return out


def _scaled(detector: ForecastDetector, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The network inputs of windows ``x`` under state ``rows`` (what step_rows feeds the LSTM)."""
    scaler_state = (rows[:, 0], rows[:, detector._centre], rows[:, detector._spread])
    return detector.scaler.scale(detector.inputs(x), scaler_state)[0].astype(np.float32)


def _widths(detector: ForecastDetector) -> tuple[int, int]:
    """(inputs, outputs) of the network: the features, plus the total column if it has one."""
    first = detector.stack.layers[0]
    return first.w.shape[0] - first.units, detector.stack.head.b.shape[0]


def keras_networks(artifact: Artifact, inputs: int, outputs: int) -> tuple[Any, Any]:
    """The artifact's sequence network (with its saved weights) and a one-step twin of it."""
    import keras

    from gridalarm.models.networks import build_network

    config = NetworkConfig.from_json(artifact.metadata["network"])
    sequence_model = build_network(config, inputs, outputs, "linear")
    sequence_model.load_weights(artifact.path / KERAS_WEIGHTS)

    x_in = keras.Input(shape=(1, inputs), name="window")
    state_inputs, state_outputs = [], []
    y = x_in
    for k in range(config.layers):
        h_in = keras.Input(shape=(config.units,), name=f"h{k}")
        c_in = keras.Input(shape=(config.units,), name=f"c{k}")
        y, h, c = keras.layers.LSTM(
            config.units, return_sequences=True, return_state=True, name=f"lstm{k}"
        )(y, initial_state=[h_in, c_in])
        state_inputs += [h_in, c_in]
        state_outputs += [h, c]
    y = keras.layers.Dense(outputs, activation="linear", name="head")(y)
    step_model = keras.Model([x_in, *state_inputs], [y, *state_outputs])
    for layer in step_model.layers:
        if layer.weights:
            layer.set_weights(sequence_model.get_layer(layer.name).get_weights())
    return sequence_model, step_model


def naive_costs(
    artifact: Artifact,
    detector: ForecastDetector,
    history: np.ndarray,
    states: list[Any],
    x_next: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """µs per stream of one Keras call per stream, on a sample of the pool's streams.

    ``history`` (streams, T, F) are the windows ``states`` have seen; ``x_next`` the next one.
    """
    import keras
    from tensorflow.python.framework import config as tf_config

    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()  # train() switched it on for the whole process
    sequence_model, step_model = keras_networks(artifact, *_widths(detector))
    sample = range(min(args.sample, len(history)))
    # Each stream's last ``sequence`` windows as the network reads them, scaled causally.
    seqs = [
        detector.scaler.scale_series(detector.inputs(history[i]))[-args.sequence :][None].astype(
            np.float32
        )
        for i in sample
    ]
    packed = [states[i][0][0] for i in sample]
    rows = detector.unpack_states(x_next[list(sample)], packed)
    z = _scaled(detector, x_next[list(sample)], rows)
    units = [layer.units for layer in detector.stack.layers]
    step_inputs = []
    for k in range(len(seqs)):
        hc = rows[k, detector._hc].astype(np.float32)
        parts, at = [], 0
        for u in units:
            parts += [hc[None, at : at + u], hc[None, at + u : at + 2 * u]]
            at += 2 * u
        step_inputs.append([z[k][None, None, :], *parts])

    # The Keras networks against the numpy step, on the same inputs.
    whole = np.concatenate(seqs)
    seq_diff = np.max(np.abs(np.asarray(sequence_model(whole, training=False))
                             - detector.stack.run(whole)))  # fmt: skip
    batch = [np.concatenate([inp[j] for inp in step_inputs]) for j in range(len(step_inputs[0]))]
    keras_y = np.asarray(step_model(batch, training=False)[0])[:, 0, :]
    numpy_y, _ = detector.stack.step(batch[0][:, 0, :], np.concatenate(batch[1:], axis=1))
    step_diff = np.max(np.abs(keras_y - numpy_y))

    n = len(seqs)
    calls: dict[str, Callable[[], object]] = dict(
        zip(
            NAIVE,
            (
                lambda: [sequence_model.predict(s, verbose=0) for s in seqs],
                lambda: [sequence_model(s, training=False) for s in seqs],
                lambda: [step_model.predict(s, verbose=0) for s in step_inputs],
                lambda: [step_model(s, training=False) for s in step_inputs],
            ),
            strict=True,
        )
    )
    out: dict[str, Any] = {
        "keras_version": keras.__version__,
        "naive_sample_streams": n,
        "naive_sequence_windows": args.sequence,
        "keras_seq_vs_numpy_max_abs_diff": float(f"{seq_diff:.3g}"),
        "keras_step_vs_numpy_max_abs_diff": float(f"{step_diff:.3g}"),
    }
    for name, call in calls.items():
        us, reps = per_stream_us(call, n, args.min_seconds, min_calls=1)
        out[f"{name}_us_per_stream"] = round(us, 1)
        out[f"{name}_passes"] = reps
    _note("per-stream Keras baseline done")
    return out


def state_bytes(states: list[Any]) -> dict[str, float]:
    """JSON bytes per stream of each part of the scoring model's state, mean and max."""
    parts = {
        "forecast": [len(orjson.dumps(s[0][0])) for s in states],
        "threshold": [len(orjson.dumps(s[0][1])) for s in states],
        "baseline": [len(orjson.dumps(s[1])) for s in states],
        "total": [len(orjson.dumps(s)) for s in states],
    }
    out: dict[str, float] = {}
    for name, sizes in parts.items():
        out[f"state_bytes_{name}_mean"] = round(float(np.mean(sizes)), 1)
        out[f"state_bytes_{name}_max"] = int(np.max(sizes))
    return out


def study_training(tmp: Path, seed: int) -> dict[str, float]:
    """Wall time of the study-scale job with the default TrainConfig."""
    rng = np.random.default_rng(seed + 1)
    counts = synthetic_counts(20, 4200, len(DEFAULT_FEATURES), rng)
    data = training_data(counts, "synthetic study-scale")
    config = TrainConfig()
    started = time.perf_counter()
    result = train(data, config, tmp / "study", progress=False)
    wall = time.perf_counter() - started
    meta = result.artifact.metadata["training"]
    _note("study-scale training done")
    return {
        "train_study_streams": len(data.series),
        "train_study_windows": meta["windows"],
        "train_study_chunks": meta["chunks"],
        "train_study_seconds": round(wall, 1),
        "train_study_epochs_run": meta["epochs_run"],
        "train_study_max_epochs": config.epochs,
        "train_study_best_epoch": meta["best_epoch"],
        "train_study_val_loss": round(meta["val_loss"], 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min-seconds", type=float, default=0.5, help="least time per measured point"
    )
    parser.add_argument(
        "--sample", type=int, default=30, help="streams called one by one for the Keras baseline"
    )
    parser.add_argument(
        "--sequence", type=int, default=TrainConfig().sequence,
        help="windows per naive Keras call (default: the training chunk, 64)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-training", action="store_true", help="leave out the study-scale training run"
    )
    args = parser.parse_args(argv)
    run_started = time.perf_counter()
    load_start = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    width = len(DEFAULT_FEATURES)
    result: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="lstm-step-") as tmp_name:
        tmp = Path(tmp_name)
        # A small real artifact: the weights every step below uses.
        started = time.perf_counter()
        quick = training_data(synthetic_counts(10, 300, width, rng), "synthetic quick")
        train(quick, TrainConfig(epochs=2, seed=args.seed), tmp / "quick", progress=False)
        result["quick_train_seconds"] = round(time.perf_counter() - started, 1)
        _note("quick artifact trained")

        model = build_model("lstm-forecast", ModelOptions(model_path=tmp / "quick"))
        artifact = latest_artifact(tmp / "quick", "lstm-forecast")
        detector = model.primary.model.detector  # ColdStart -> HotSwap -> Thresholded
        if not isinstance(detector, ForecastDetector):
            raise SystemExit(f"expected a ForecastDetector, got {type(detector).__name__}")
        network = artifact.metadata["network"]
        result |= {
            "units": network["units"],
            "layers": network["layers"],
            "features": detector.features,
            "network_inputs": _widths(detector)[0],
            "state_floats_hc": detector.stack.state_size,
            "pool_streams": POOL,
            "pool_history_windows": HISTORY,
        }

        # The pool: HISTORY windows through the full scoring model, then the next window.
        counts = synthetic_counts(POOL, HISTORY + 1, width, rng)
        states: list[Any] = [None] * POOL
        for t in range(HISTORY):
            states = model.score(counts[:, t, :], states).states
        ready = model.score(counts[:, HISTORY, :], states).ready
        result["pool_ready_share"] = round(float(np.mean(ready)), 3)
        _note("pool warmed up")

        result |= batched_costs(model, detector, states, counts[:, HISTORY, :], args)
        result |= naive_costs(
            artifact, detector, counts[:, :HISTORY, :], states, counts[:, HISTORY, :], args
        )

        # The ratio (predict per stream) against every variant; the other naive ways
        # against the worker's detector call.
        pairs = [("keras_predict_seq", variant) for variant in VARIANTS]
        pairs += [(name, "packed") for name in NAIVE[1:]]
        for name, variant in pairs:
            for n in BIG:
                naive_us = result[f"{name}_us_per_stream"]
                ratio = naive_us / result[f"{variant}_us_per_stream_n{n}"]
                result[f"ratio_{name}_to_{variant}_n{n}"] = round(ratio, 1)

        result |= state_bytes(states)
        if not args.skip_training:
            result |= study_training(tmp, args.seed)

    for variant in VARIANTS:
        worst = max(result[f"{variant}_us_per_stream_n{n}"] for n in BIG)
        result[f"target_{variant}_le_{TARGET_US:g}us_at_10k_plus"] = _yes(worst <= TARGET_US)
        least = min(result[f"ratio_keras_predict_seq_to_{variant}_n{n}"] for n in BIG)
        result[f"target_{variant}_ge_{TARGET_RATIO:g}x_predict"] = _yes(least >= TARGET_RATIO)
    total = result["state_bytes_total_max"]
    result[f"target_state_le_{TARGET_STATE_BYTES}_bytes"] = _yes(total <= TARGET_STATE_BYTES)
    if not args.skip_training:
        fast = result["train_study_seconds"] < TARGET_TRAIN_SECONDS
        result[f"target_train_lt_{TARGET_TRAIN_SECONDS:g}s"] = _yes(fast)
    result["run_seconds"] = round(time.perf_counter() - run_started, 1)
    # Other work on the machine skews every timing: the 1-minute load average, start and end.
    result["load_average_start"] = round(load_start, 2)
    result["load_average_end"] = round(os.getloadavg()[0], 2)

    width_key = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:{width_key}} {value}")
    return result


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


if __name__ == "__main__":
    main()
