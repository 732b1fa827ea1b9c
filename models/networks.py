"""The Keras networks behind the LSTM detectors, and their weights as numpy step arrays.

Only training imports this module (and with it TensorFlow); the streaming step reads the
exported arrays (:mod:`gridalarm.models.lstm_cell`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gridalarm.models.lstm_cell import Dense, LSTMLayer, LSTMStack

if TYPE_CHECKING:
    import keras

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # see models/training.py


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Shape of a stacked LSTM with a per-step output layer."""

    units: int = 32
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.units < 1 or self.layers < 1:
            raise ValueError("units and layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkConfig:
        return cls(**data)


def build_network(config: NetworkConfig, inputs: int, outputs: int, activation: str) -> keras.Model:
    """Sequences (batch, time, inputs) -> per-step outputs (batch, time, outputs)."""
    import keras

    x = source = keras.Input(shape=(None, inputs), name="windows")
    for k in range(config.layers):
        # dropout on the inputs only: recurrent dropout would break the fused kernel and the
        # step equivalence (at inference both are off anyway).
        x = keras.layers.LSTM(
            config.units, return_sequences=True, dropout=config.dropout, name=f"lstm{k}"
        )(x)
    y = keras.layers.Dense(outputs, activation=activation, name="head")(x)
    return keras.Model(source, y)


def export_stack(model: keras.Model, config: NetworkConfig, activation: str) -> LSTMStack:
    """The streaming step's weights, read from a network :func:`build_network` made."""
    layers = []
    for k in range(config.layers):
        kernel, recurrent, bias = model.get_layer(f"lstm{k}").get_weights()
        layers.append(LSTMLayer.from_keras(kernel, recurrent, bias))
    w, b = model.get_layer("head").get_weights()
    head = Dense(np.asarray(w, np.float32), np.asarray(b, np.float32), activation)
    return LSTMStack(layers=tuple(layers), head=head)
