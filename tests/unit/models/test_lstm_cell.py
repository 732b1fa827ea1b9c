"""The numpy streaming step against Keras's own LSTM on the same sequences."""

from __future__ import annotations

import numpy as np
import pytest

from gridalarm.models.lstm_cell import LSTMStack
from gridalarm.models.networks import NetworkConfig, build_network, export_stack


@pytest.mark.parametrize(
    ("layers", "units", "activation", "outputs"),
    [(1, 32, "linear", 13), (2, 16, "linear", 13), (2, 24, "softmax", 2)],
)
def test_step_by_step_reproduces_keras_on_a_whole_sequence(
    layers: int, units: int, activation: str, outputs: int
) -> None:
    import keras

    keras.utils.set_random_seed(3)
    config = NetworkConfig(units=units, layers=layers, dropout=0.1)
    model = build_network(config, 13, outputs, activation)
    # Random weights are too tame to exercise saturation: scale them up.
    model.set_weights([w * 3.0 for w in model.get_weights()])
    rng = np.random.default_rng(5)
    sequence = rng.normal(0.0, 2.0, size=(7, 50, 13)).astype(np.float32)

    expected = np.asarray(model(sequence, training=False))
    stack = export_stack(model, config, activation)
    got = stack.run(sequence)

    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < 1e-5


def test_streams_step_independently_of_their_batch_neighbours() -> None:
    import keras

    keras.utils.set_random_seed(4)
    config = NetworkConfig(units=8)
    stack = export_stack(build_network(config, 3, 3, "linear"), config, "linear")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    hc = rng.normal(size=(5, stack.state_size)).astype(np.float32)
    together, hc_together = stack.step(x, hc)
    for i in range(5):
        alone, hc_alone = stack.step(x[i : i + 1], hc[i : i + 1])
        np.testing.assert_allclose(alone[0], together[i], rtol=0, atol=1e-6)
        np.testing.assert_allclose(hc_alone[0], hc_together[i], rtol=0, atol=1e-6)


def test_arrays_round_trip() -> None:
    import keras

    keras.utils.set_random_seed(1)
    config = NetworkConfig(units=4, layers=2)
    stack = export_stack(build_network(config, 3, 2, "softmax"), config, "softmax")
    again = LSTMStack.from_arrays(stack.to_arrays(), "softmax")
    x = np.ones((2, 6, 3), dtype=np.float32)
    np.testing.assert_array_equal(stack.run(x), again.run(x))
    assert again.state_size == 2 * 4 * 2
