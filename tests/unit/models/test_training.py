"""Training the LSTM detectors: determinism, the artifact, and what the trained models detect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridalarm.models.artifact import load_artifact
from gridalarm.models.networks import NetworkConfig
from gridalarm.models.registry import ModelOptions, build_model
from gridalarm.models.training import Series, TrainConfig, TrainingData, train

FEATURES = tuple(f"f{i}" for i in range(5))
SMALL = TrainConfig(network=NetworkConfig(units=8), sequence=24, epochs=3, batch=8)


def pool(seed: int, streams: int = 6, windows: int = 240) -> list[np.ndarray]:
    """Poisson counts with a daily cycle (24 windows), streams of different sizes."""
    rng = np.random.default_rng(seed)
    t = np.arange(windows)
    daily = 1.5 + np.sin(2 * np.pi * t / 24)
    return [
        rng.poisson((5 + 15 * k) * daily[:, None] * np.linspace(0.5, 2, 5)).astype(float)
        for k in range(streams)
    ]


def data(seed: int = 0, labels: list[np.ndarray] | None = None) -> TrainingData:
    values = pool(seed)
    return TrainingData(
        FEATURES,
        3600.0,
        tuple(
            Series(f"s{k}", v, None if labels is None else labels[k]) for k, v in enumerate(values)
        ),
        source="test",
    )


@pytest.fixture(scope="module")
def forecast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("art") / "forecast"
    train(data(), SMALL, out, progress=False)
    return out


def test_same_data_and_seed_give_the_same_weights(forecast: Path, tmp_path: Path) -> None:
    again = train(data(), SMALL, tmp_path / "again", progress=False).artifact
    other = train(
        data(), TrainConfig(**{**_fields(SMALL), "seed": 7}), tmp_path / "other", progress=False
    ).artifact
    first = load_artifact(forecast)
    assert again.metadata["weights_digest"] == first.metadata["weights_digest"]
    assert other.metadata["weights_digest"] != first.metadata["weights_digest"]
    for key, array in first.arrays().items():
        np.testing.assert_array_equal(array, again.arrays()[key])


def _fields(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_artifact_holds_weights_metadata_and_training_curve(forecast: Path) -> None:
    files = {p.name for p in forecast.iterdir()}
    assert {"metadata.json", "step.npz", "model.weights.h5", "training.png"} <= files
    meta = json.loads((forecast / "metadata.json").read_text())
    assert meta["detector"] == "lstm-forecast"
    assert meta["features"] == list(FEATURES)
    assert meta["window"] == 3600.0
    assert meta["scaling"]["transform"] == "log1p"
    assert meta["network"] == {"units": 8, "layers": 1, "dropout": 0.0}
    t = meta["training"]
    assert t["data_digest"] == data().digest()
    assert t["streams"] == 6 and t["windows"] == 6 * 240
    assert t["epochs_run"] == 3 and 1 <= t["best_epoch"] <= 3
    assert np.isfinite(t["loss"]) and np.isfinite(t["val_loss"])
    assert 0 < meta["threshold"]["prior_median"] < meta["threshold"]["prior_high"]
    assert (forecast / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_data_digest_changes_with_the_data() -> None:
    assert data(0).digest() == data(0).digest()
    assert data(0).digest() != data(1).digest()


def _stream(model, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Score one stream window by window, as the worker would."""
    states: list = [None]
    scores, models = [], []
    for row in x:
        out = model.score(row[None, :], states)
        states = out.states
        scores.append(float(out.scores[0]))
        models.append(out.models[0])
    return np.array(scores), models


def test_forecast_detects_an_outage_and_stays_quiet_otherwise(forecast: Path) -> None:
    model = build_model("lstm-forecast", ModelOptions(model_path=forecast, features=FEATURES))
    x = pool(42, streams=3)[2].copy()
    x[200:205] = 0.0  # the stream falls silent
    scores, models = _stream(model, x)
    assert all(m.startswith("lstm-forecast@") for m in models[40:])
    assert scores[200:205].min() >= 50.0
    false_flags = int((scores[40:200] >= 50.0).sum())
    assert false_flags <= 3, f"{false_flags} normal windows scored anomalous"


def test_cold_start_is_scored_by_the_baseline_until_warm(forecast: Path) -> None:
    model = build_model(
        "lstm-forecast", ModelOptions(model_path=forecast, features=FEATURES, min_history=5)
    )
    _, models = _stream(model, pool(3, streams=1)[0][:30])
    warmup = load_artifact(forecast).metadata["streaming"]["warmup"]
    assert all(m.startswith("baseline@") for m in models[:warmup])
    assert all(m.startswith("lstm-forecast@") for m in models[warmup + 1 :])


def test_classifier_learns_labelled_anomalies(tmp_path: Path) -> None:
    values = pool(5)
    labels = []
    for k, v in enumerate(values):
        flags = np.zeros(len(v), dtype=bool)
        for start in (60 + 7 * k, 150 + 5 * k):
            v[start : start + 4, 1] *= 8  # a storm of one event kind
            flags[start : start + 4] = True
        labels.append(flags)
    labelled = TrainingData(
        FEATURES,
        3600.0,
        tuple(Series(f"s{k}", v, f) for k, (v, f) in enumerate(zip(values, labels, strict=True))),
    )
    config = TrainConfig(
        detector="lstm-classifier",
        network=NetworkConfig(units=16),
        sequence=24,
        epochs=25,
        batch=8,
        patience=25,
    )
    out = tmp_path / "clf"
    train(labelled, config, out, progress=False)
    model = build_model("lstm-classifier", ModelOptions(model_path=out, features=FEATURES))
    x = pool(99, streams=3)[2].copy()
    x[120:124, 1] *= 8
    scores, _ = _stream(model, x)
    assert scores[120:124].max() >= 50.0
    assert np.median(scores[30:110]) < 20.0


def test_classifier_without_labels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels"):
        train(data(), TrainConfig(detector="lstm-classifier"), tmp_path / "x", progress=False)


def test_too_little_data_is_a_clear_error(tmp_path: Path) -> None:
    short = TrainingData(FEATURES, 60.0, (Series("s", np.ones((10, 5))),))
    with pytest.raises(ValueError, match="not enough windows"):
        train(short, SMALL, tmp_path / "x", progress=False)
