"""One batched LSTM step in numpy, from Keras weights: the streaming half of the LSTM detectors.

Keras trains the networks over sequences; the worker never re-runs a sequence. Each closed
window advances every stream by ONE step from the (h, c) it saved, and all streams whose window
closed advance together in one matrix product per layer. numpy keeps the worker free of
TensorFlow (import time, memory) and is faster than a Keras call at these sizes; a unit test
holds the step to Keras's own LSTM output on the same sequence to 1e-5.

Keras's LSTM (``activation="tanh"``, ``recurrent_activation="sigmoid"``) keeps ``kernel``
(inputs x 4H), ``recurrent_kernel`` (H x 4H) and ``bias`` (4H) with the gates in the order
input, forget, cell, output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LSTMLayer:
    """One layer's weights, stacked so that a step is one product: [x, h] @ w + b."""

    w: np.ndarray  # (inputs + units, 4 * units), float32
    b: np.ndarray  # (4 * units,), float32

    @property
    def units(self) -> int:
        return self.b.shape[0] // 4

    @classmethod
    def from_keras(cls, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> LSTMLayer:
        w = np.concatenate([kernel, recurrent], axis=0).astype(np.float32)
        return cls(w=np.ascontiguousarray(w), b=np.asarray(bias, dtype=np.float32))


@dataclass(frozen=True, slots=True)
class Dense:
    """The output layer: y = x @ w + b, then ``activation`` (linear or softmax)."""

    w: np.ndarray  # (inputs, outputs), float32
    b: np.ndarray  # (outputs,), float32
    activation: str = "linear"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.w + self.b
        if self.activation == "softmax":
            y = np.exp(y - y.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
        return y


@dataclass(frozen=True, slots=True)
class LSTMStack:
    """Stacked LSTM layers and an output layer: everything one streaming step needs."""

    layers: tuple[LSTMLayer, ...]
    head: Dense

    @property
    def state_size(self) -> int:
        """Floats of (h, c) per stream over all layers."""
        return sum(2 * layer.units for layer in self.layers)

    def step(self, x: np.ndarray, hc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance ``n`` streams by one step: ``x`` (n, F) inputs, ``hc`` (n, state_size).

        ``hc`` holds [h_1, c_1, h_2, c_2, ...] per row. Returns (head output (n, out), new hc).
        """
        out = np.empty_like(hc, dtype=np.float32)
        inputs = np.asarray(x, dtype=np.float32)
        at = 0
        for layer in self.layers:
            units = layer.units
            h = hc[:, at : at + units]
            c = hc[:, at + units : at + 2 * units]
            gates = np.concatenate([inputs, h], axis=1) @ layer.w
            gates += layer.b
            i = _sigmoid(gates[:, :units])
            f = _sigmoid(gates[:, units : 2 * units])
            g = np.tanh(gates[:, 2 * units : 3 * units])
            o = _sigmoid(gates[:, 3 * units :])
            c_new = f * c + i * g
            h_new = o * np.tanh(c_new)
            out[:, at : at + units] = h_new
            out[:, at + units : at + 2 * units] = c_new
            inputs = h_new
            at += 2 * units
        return self.head(inputs), out

    def run(self, sequence: np.ndarray) -> np.ndarray:
        """Outputs for a (n, T, F) batch of sequences from zero state, step by step: (n, T, out).

        For tests and training-time bookkeeping; streaming code calls :meth:`step`.
        """
        n, steps, _ = sequence.shape
        hc = np.zeros((n, self.state_size), dtype=np.float32)
        outputs = []
        for t in range(steps):
            y, hc = self.step(sequence[:, t, :], hc)
            outputs.append(y)
        return np.stack(outputs, axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez``; :meth:`from_arrays` reads them back."""
        arrays = {f"lstm{k}_w": layer.w for k, layer in enumerate(self.layers)}
        arrays |= {f"lstm{k}_b": layer.b for k, layer in enumerate(self.layers)}
        arrays |= {"head_w": self.head.w, "head_b": self.head.b}
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], activation: str) -> LSTMStack:
        count = sum(1 for key in arrays if key.startswith("lstm") and key.endswith("_w"))
        layers = tuple(
            LSTMLayer(
                w=np.asarray(arrays[f"lstm{k}_w"], dtype=np.float32),
                b=np.asarray(arrays[f"lstm{k}_b"], dtype=np.float32),
            )
            for k in range(count)
        )
        head = Dense(
            np.asarray(arrays["head_w"], dtype=np.float32),
            np.asarray(arrays["head_b"], dtype=np.float32),
            activation,
        )
        return cls(layers=layers, head=head)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings for large |x|, same values as 1 / (1 + exp(-x)).
    return 0.5 * (np.tanh(0.5 * x) + 1.0)
