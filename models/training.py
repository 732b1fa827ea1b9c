"""Training the LSTM detectors: sequences, seeds, early stopping, the artifact and its plot.

Both detectors learn from each stream's causally scaled windows (the same scaling the stream
applies), cut into chunks of ``sequence`` windows that the network reads from a zero state with a
per-step output, which is how the stream uses it: one step per window from the saved state.
``lstm-forecast`` learns to predict window t+1 from windows up to t (Huber loss, robust to the
odd incident in "normal" training data); ``lstm-classifier`` learns P(anomaly) per window from
labels (softmax cross-entropy, Adam, class weights for the rare anomalies), as the 2017 study
meant to.

Same data, same config and same seed give the same weights: seeds are fixed and TensorFlow's
op determinism is switched on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gridalarm.models.artifact import Artifact, digest_arrays, save_artifact
from gridalarm.models.lstm_forecast import ForecastDetector, ForecastSettings, with_total
from gridalarm.models.networks import NetworkConfig
from gridalarm.models.scaling import RunningScaler, ScalingConfig

# TensorFlow's C++ start-up chatter on stderr, and a harmless tf.data attribute "error" that
# newer Keras releases trigger; real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DetectorKind = Literal["lstm-forecast", "lstm-classifier"]


@dataclass(frozen=True, slots=True)
class Series:
    """One stream's training windows: values (T, F) and, for the classifier, labels (T,)."""

    name: str
    values: np.ndarray
    labels: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What a model learns from."""

    features: tuple[str, ...]
    window: float  # seconds
    series: tuple[Series, ...]
    source: str = ""  # where it came from, for the metadata

    def digest(self) -> str:
        arrays: list[np.ndarray] = []
        for s in self.series:
            arrays.append(np.asarray(s.values, dtype=np.float64))
            if s.labels is not None:
                arrays.append(np.asarray(s.labels, dtype=np.int8))
        return digest_arrays(arrays)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything a training run is told. The study's batch of 20 is the default."""

    detector: DetectorKind = "lstm-forecast"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    streaming: ForecastSettings = field(default_factory=ForecastSettings)
    sequence: int = 64  # windows per training chunk
    batch: int = 20
    epochs: int = 40
    patience: int = 4  # epochs without a better validation loss before stopping
    learning_rate: float = 2e-3
    validation: float = 0.2  # share of chunks held out for early stopping
    seed: int = 0
    max_chunks: int = 20_000  # a cap that keeps study-scale jobs well under 2 minutes
    class_weight: float | None = None  # classifier: weight of anomalies; None = balanced

    def __post_init__(self) -> None:
        if self.sequence < 4:
            raise ValueError("sequence must be >= 4 windows")
        if self.batch < 1 or self.epochs < 1:
            raise ValueError("batch and epochs must be >= 1")
        if not 0.0 < self.validation < 1.0:
            raise ValueError("validation must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class TrainResult:
    artifact: Artifact
    history: dict[str, list[float]]
    seconds: float


def scaled_series(
    data: TrainingData, scaling: ScalingConfig, streaming: ForecastSettings
) -> list[np.ndarray]:
    """Each stream's network inputs scaled causally, exactly as the stream will scale them."""
    scaler = RunningScaler(scaling)
    total = streaming.resolved(scaling.transform).total
    return [
        scaler.scale_series(with_total(s.values) if total else s.values).astype(np.float32)
        for s in data.series
    ]


def chunks(
    arrays: Sequence[np.ndarray], length: int, rng: np.random.Generator, cap: int
) -> np.ndarray:
    """Non-overlapping chunks of ``length`` rows from every array (a ragged end is dropped)."""
    out = [a[k : k + length] for a in arrays for k in range(0, len(a) - length + 1, length)]
    if not out:
        raise ValueError(f"not enough windows: every series is shorter than {length} windows")
    stacked = np.stack(out)
    order = rng.permutation(len(stacked))[:cap]
    return stacked[order]


def train(data: TrainingData, config: TrainConfig, out: Path, progress: bool = True) -> TrainResult:
    """Train ``config.detector`` on ``data`` and write its artifact to ``out``."""
    import keras
    import tensorflow as tf

    from gridalarm.models.networks import build_network, export_stack

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(config.seed)
    streaming = config.streaming.resolved(config.scaling.transform)
    if config.detector == "lstm-classifier":
        streaming = replace(streaming, total=False)  # the classifier reads the features only
    z = scaled_series(data, config.scaling, streaming)
    width = z[0].shape[1] if z else len(data.features)

    if config.detector == "lstm-forecast":
        block = chunks(z, config.sequence + 1, rng, config.max_chunks)
        x, y = block[:, :-1, :], block[:, 1:, :]
        weights = None
        outputs, activation = width, "linear"
        loss: Any = keras.losses.Huber(delta=1.0)
    else:
        if any(s.labels is None for s in data.series):
            raise ValueError("lstm-classifier learns from labels: give --labels")
        labelled = [
            np.concatenate([zi, s.labels.astype(np.float32)[:, None]], axis=1)
            for zi, s in zip(z, data.series, strict=True)
        ]
        block = chunks(labelled, config.sequence, rng, config.max_chunks)
        x, y = block[:, :, :width], block[:, :, width].astype(np.int32)
        positives = float(y.mean())
        if positives <= 0.0:
            raise ValueError("lstm-classifier needs labelled anomalies; the labels mark none")
        w_pos = config.class_weight or (1.0 - positives) / positives
        weights = np.where(y == 1, w_pos, 1.0).astype(np.float32)
        outputs, activation = 2, "softmax"
        loss = keras.losses.SparseCategoricalCrossentropy()

    held = max(1, round(len(x) * config.validation))
    if held >= len(x):
        raise ValueError(f"not enough windows: {len(x)} chunks of {config.sequence} windows")
    model = build_network(config.network, width, outputs, activation)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        )
    ]
    if progress:
        callbacks.append(_ProgressBar(config.epochs))
    fit_args: dict[str, Any] = {}
    if weights is not None:
        fit_args["sample_weight"] = weights[:-held]
        val = (x[-held:], y[-held:], weights[-held:])
    else:
        val = (x[-held:], y[-held:])
    history = model.fit(
        x[:-held], y[:-held], validation_data=val, batch_size=config.batch,
        epochs=config.epochs, shuffle=True, verbose=0, callbacks=callbacks, **fit_args,
    ).history  # fmt: skip
    stack = export_stack(model, config.network, activation)
    curves = {key: [float(v) for v in values] for key, values in history.items()}
    best = int(np.argmin(curves["val_loss"]))
    metadata: dict[str, Any] = {
        "detector": config.detector,
        "features": list(data.features),
        "window": data.window,
        "scaling": config.scaling.to_json(),
        "network": config.network.to_json(),
        "streaming": asdict(streaming),
        "training": {
            "source": data.source,
            "data_digest": data.digest(),
            "streams": len(data.series),
            "windows": int(sum(len(s.values) for s in data.series)),
            "chunks": len(x),
            "sequence": config.sequence,
            "batch": config.batch,
            "seed": config.seed,
            "epochs_run": len(curves["loss"]),
            "best_epoch": best + 1,
            "loss": curves["loss"][best],
            "val_loss": curves["val_loss"][best],
        },
    }
    if config.detector == "lstm-forecast":
        median, high = _evidence_levels(stack, replace(config, streaming=streaming), data)
        metadata["threshold"] = {"prior_median": median, "prior_high": high}
    metadata["training"]["seconds"] = round(time.perf_counter() - started, 2)

    def extra(folder: Path) -> None:
        from gridalarm.models.artifact import KERAS_WEIGHTS

        model.save_weights(folder / KERAS_WEIGHTS)
        plot_curves(curves, folder / "training.png", f"{config.detector} on {data.source}")

    artifact = save_artifact(out, metadata, stack.to_arrays(), extra)
    return TrainResult(artifact, curves, time.perf_counter() - started)


def _evidence_levels(stack: Any, config: TrainConfig, data: TrainingData) -> tuple[float, float]:
    """Population median and 95% quantile of the forecast evidence on the training streams.

    Streams are replayed through the streaming step itself, so the prior describes exactly the
    evidence the worker will compute.
    """
    detector = ForecastDetector(
        stack, config.scaling, len(data.features), "training", config.streaming
    )
    length = min(len(s.values) for s in data.series)
    x = np.stack([s.values[:length] for s in data.series]).astype(np.float64)
    rows = detector.initial(x[:, 0, :])
    evidence: list[np.ndarray] = []
    for t in range(length):
        out, rows = detector.step_rows(x[:, t, :], rows)
        evidence.append(out.raw[out.ready])
    values = np.concatenate(evidence) if evidence else np.array([])
    if len(values) < 10:
        return 1.0, 2.0
    return float(np.median(values)), float(np.quantile(values, 0.95))


def plot_curves(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """Training and validation loss per epoch, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in curves:
            ax.plot(range(1, len(curves[key]) + 1), curves[key], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


class _ProgressBar:
    """A tqdm bar over epochs with the latest losses (Keras's own bar is per batch and noisy)."""

    def __new__(cls, epochs: int) -> Any:
        import keras
        from tqdm import tqdm

        class Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.bar = tqdm(total=epochs, desc="training", unit="epoch")

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                self.bar.set_postfix(
                    loss=f"{logs.get('loss', float('nan')):.4f}",
                    val=f"{logs.get('val_loss', float('nan')):.4f}",
                )
                self.bar.update(1)

            def on_train_end(self, logs: Any = None) -> None:
                self.bar.close()

        return Bar()


def with_overrides(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``config`` with the non-None ``changes`` applied (CLI options that were given)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
