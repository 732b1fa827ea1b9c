"""RunningScaler: causal, robust, floored per-stream scaling (hand-computed numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridalarm.models.scaling import RunningScaler, ScalingConfig

E = math.e


def reference_series(x: np.ndarray, cfg: ScalingConfig) -> np.ndarray:
    """The module docstring's recipe, one scalar at a time in plain Python."""

    def tr(v: float) -> float:
        return math.log1p(max(v, 0.0)) if cfg.transform == "log1p" else float(v)

    def floor(c: float) -> float:
        return max(cfg.floor, cfg.relative_floor * abs(c))

    rows, width = x.shape
    out = np.empty((rows, width))
    for f in range(width):
        centre = tr(x[0, f])
        spread = floor(centre)
        for t in range(rows):  # t windows seen before this one
            y = tr(x[t, f])
            s = max(spread, floor(centre))
            out[t, f] = min(max((y - centre) / s, -cfg.limit), cfg.limit)
            alpha = max(1.0 / (t + 1), 1.0 / cfg.history)
            d = min(max(y - centre, -cfg.clip * s), cfg.clip * s)
            centre = centre + alpha * d
            spread = max((1.0 - alpha) * s + alpha * abs(d), floor(centre))
    return out


def state(n: float, centre: float, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([n]), np.array([[centre]]), np.array([[spread]])


def test_docstring_example_three_spreads_above_the_first_value() -> None:
    scaler = RunningScaler(ScalingConfig(transform="none", floor=1.0))
    z, (n, centre, spread) = scaler.scale(np.array([[13.0]]), scaler.initial(np.array([[10.0]])))
    assert z.tolist() == [[3.0]]
    # first update: alpha = 1, delta clipped to 3 spreads (exactly 3): centre 13, spread 3
    assert n.tolist() == [1.0]
    assert centre.tolist() == [[13.0]]
    assert spread.tolist() == [[3.0]]


def test_hand_computed_series() -> None:
    cfg = ScalingConfig(transform="none", history=4, clip=3.0, floor=1.0, relative_floor=0.0)
    z = RunningScaler(cfg).scale_series(np.array([[10.0], [13.0], [30.0], [10.0]]))
    # t0: z 0, centre 10, spread 1 | t1: z 3, alpha 1/2, centre 11.5, spread 2
    # t2: z 18.5/2 -> clipped to 8; alpha 1/3, delta clipped to 6: centre 13.5, spread 10/3
    # t3: z (10 - 13.5) / (10/3) = -1.05
    np.testing.assert_allclose(z[:, 0], [0.0, 3.0, 8.0, -1.05], rtol=0, atol=1e-12)


def test_initial_state_starts_at_the_first_window() -> None:
    scaler = RunningScaler(ScalingConfig())
    n, centre, spread = scaler.initial(np.array([[0.0, E - 1.0, 1e4]]))
    assert n.tolist() == [0.0]
    np.testing.assert_allclose(centre, [[0.0, 1.0, math.log1p(1e4)]], rtol=1e-12)
    np.testing.assert_allclose(spread, [[0.25, 0.25, 0.25]], rtol=1e-12)


def test_scale_series_is_causal() -> None:
    rng = np.random.default_rng(1)
    x = rng.poisson(20.0, size=(60, 3)).astype(float)
    scaler = RunningScaler(ScalingConfig())
    before = scaler.scale_series(x)
    for cut in (1, 17, 59):
        changed = x.copy()
        changed[cut:] = rng.poisson(500.0, size=(60 - cut, 3))
        after = scaler.scale_series(changed)
        np.testing.assert_array_equal(after[:cut], before[:cut])
        assert np.all(after[cut] != before[cut])  # the window itself does count


def test_the_first_window_scales_to_zero() -> None:
    z = RunningScaler(ScalingConfig()).scale_series(np.array([[5.0, 0.0, 3e6]]))
    assert z.tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("outlier", [1e9, -1e9])
def test_an_outlier_moves_the_centre_by_at_most_clip_spreads_times_alpha(outlier: float) -> None:
    cfg = ScalingConfig(transform="none", history=168, clip=3.0)
    z, (n, centre, spread) = RunningScaler(cfg).scale(
        np.array([[outlier]]), state(1000.0, 5.0, 2.0)
    )
    sign = math.copysign(1.0, outlier)
    assert z.tolist() == [[sign * 8.0]]  # clipped to the limit
    assert n.tolist() == [1001.0]
    assert centre[0, 0] == pytest.approx(5.0 + sign * 3.0 * 2.0 / 168.0, abs=1e-12)
    assert spread[0, 0] == pytest.approx((167.0 / 168.0) * 2.0 + 6.0 / 168.0, abs=1e-12)


def test_an_outlier_on_a_young_stream_moves_the_centre_at_most_clip_spreads() -> None:
    cfg = ScalingConfig(transform="none", clip=2.0)
    # n = 0: alpha = 1, so the whole clipped step is taken, but no more.
    _, (_, centre, _) = RunningScaler(cfg).scale(np.array([[1e6]]), state(0.0, 10.0, 0.5))
    assert centre[0, 0] == pytest.approx(11.0, abs=1e-12)
    # n = 3: alpha = 1/4
    _, (_, centre, _) = RunningScaler(cfg).scale(np.array([[1e6]]), state(3.0, 10.0, 0.5))
    assert centre[0, 0] == pytest.approx(10.25, abs=1e-12)


def test_an_outlier_in_log_space_is_clipped_too() -> None:
    cfg = ScalingConfig(history=100, clip=3.0)
    c0 = math.log1p(100.0)
    _, (_, centre, _) = RunningScaler(cfg).scale(np.array([[1e12]]), state(500.0, c0, 0.5))
    assert centre[0, 0] == pytest.approx(c0 + 3.0 * 0.5 / 100.0, abs=1e-12)


def test_flat_streams_keep_the_absolute_floor() -> None:
    scaler = RunningScaler(ScalingConfig(transform="none"))
    x = np.zeros((50, 1))
    s = scaler.initial(x[:1])
    for t in range(50):
        _, s = scaler.scale(x[t : t + 1], s)
    assert s[2].tolist() == [[0.25]]
    z, _ = scaler.scale(np.array([[0.5]]), s)
    assert z[0, 0] == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize("level", [1000.0, -1000.0])
def test_flat_gauges_keep_the_relative_floor(level: float) -> None:
    scaler = RunningScaler(ScalingConfig(transform="none", relative_floor=0.01))
    x = np.full((50, 1), level)
    s = scaler.initial(x[:1])
    for t in range(50):
        _, s = scaler.scale(x[t : t + 1], s)
    assert s[2][0, 0] == pytest.approx(10.0, abs=1e-12)  # 1% of |centre|, not 0.25
    z, _ = scaler.scale(np.array([[level + 10.0]]), s)
    assert z[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_a_saved_spread_below_the_floor_is_raised_before_use() -> None:
    scaler = RunningScaler(ScalingConfig(transform="none"))
    z, _ = scaler.scale(np.array([[0.5]]), state(5.0, 0.0, 1e-3))
    assert z[0, 0] == pytest.approx(2.0, abs=1e-12)  # 0.5 / 0.25, not 0.5 / 0.001
    z, _ = scaler.scale(np.array([[210.0]]), state(5.0, 200.0, 1e-3))
    assert z[0, 0] == pytest.approx(5.0, abs=1e-12)  # 10 / (0.01 * 200)


def test_spread_never_drops_below_either_floor_on_a_wild_series() -> None:
    cfg = ScalingConfig(transform="none", history=20)
    scaler = RunningScaler(cfg)
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [rng.normal(0.0, 1.0, (40, 2)), np.full((40, 2), 500.0), rng.normal(-300, 0.01, (40, 2))]
    )
    s = scaler.initial(x[:1])
    for t in range(len(x)):
        _, s = scaler.scale(x[t : t + 1], s)
        _, centre, spread = s
        assert np.all(spread >= 0.25 - 1e-15)
        assert np.all(spread >= 0.01 * np.abs(centre) - 1e-12)


def test_log1p_and_none_transforms() -> None:
    assert RunningScaler(ScalingConfig()).transform(np.array([-3.0, 0.0, E - 1.0])).tolist() == [
        0.0,
        0.0,
        pytest.approx(1.0, abs=1e-15),
    ]
    assert RunningScaler(ScalingConfig(transform="none")).transform(
        np.array([-3.0, 0.0, 2.5])
    ).tolist() == [-3.0, 0.0, 2.5]

    x = np.array([[E - 1.0], [E**2 - 1.0]])
    log_z = RunningScaler(ScalingConfig(limit=100.0)).scale_series(x)
    assert log_z[1, 0] == pytest.approx((2.0 - 1.0) / 0.25, abs=1e-12)
    raw_z = RunningScaler(ScalingConfig(transform="none", limit=100.0)).scale_series(x)
    assert raw_z[1, 0] == pytest.approx((E**2 - E) / 0.25, abs=1e-12)


def test_log1p_treats_negative_counts_as_zero() -> None:
    scaler = RunningScaler(ScalingConfig())
    s = state(10.0, math.log1p(4.0), 0.5)
    z_neg, _ = scaler.scale(np.array([[-5.0]]), s)
    z_zero, _ = scaler.scale(np.array([[0.0]]), s)
    assert z_neg[0, 0] == z_zero[0, 0] == pytest.approx(-math.log(5.0) / 0.5, abs=1e-12)


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_unscale_inverts_scale_inside_the_limit(transform: str) -> None:
    scaler = RunningScaler(ScalingConfig(transform=transform))  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    k, width = 40, 4
    low = 0.0 if transform == "log1p" else -50.0
    x = rng.uniform(low, 60.0, size=(k, width))
    centre = scaler.transform(rng.uniform(max(low, 0.0), 60.0, size=(k, width)))
    # some spreads below the floor on purpose
    spread = rng.uniform(0.0, 3.0 if transform == "log1p" else 20.0, size=(k, width))
    z, _ = scaler.scale(x, (rng.uniform(0, 500, size=k), centre, spread))
    inside = np.abs(z) < 8.0
    assert inside.mean() > 0.5
    back = scaler.unscale(z, centre, spread)
    np.testing.assert_allclose(back[inside], x[inside], rtol=1e-9, atol=1e-9)


def test_unscale_beyond_the_limit_gives_the_limit() -> None:
    scaler = RunningScaler(ScalingConfig(transform="none"))
    z, _ = scaler.scale(np.array([[100.0]]), state(9.0, 1.0, 1.0))
    assert z[0, 0] == 8.0
    assert scaler.unscale(z, np.array([[1.0]]), np.array([[1.0]]))[0, 0] == 9.0


def test_unscale_of_counts_never_goes_negative() -> None:
    scaler = RunningScaler(ScalingConfig())
    got = scaler.unscale(np.array([[-8.0, 0.0]]), np.array([[0.1, 1.0]]), np.array([[0.25, 0.1]]))
    assert got[0, 0] == 0.0  # log-space 0.1 - 2 < 0: clamped to a count of 0
    assert got[0, 1] == pytest.approx(E - 1.0, abs=1e-12)


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_scale_series_equals_stepping_scale_by_hand(transform: str) -> None:
    cfg = ScalingConfig(transform=transform, history=24)  # type: ignore[arg-type]
    scaler = RunningScaler(cfg)
    rng = np.random.default_rng(4)
    x = rng.poisson(8.0, size=(120, 3)).astype(float)
    x[50:55, 1] = 400.0  # an incident
    x[80:, 2] = 0.0  # a feature falling silent
    series = scaler.scale_series(x)

    s = scaler.initial(x[:1])
    stepped = np.empty_like(x)
    for t in range(len(x)):
        z, s = scaler.scale(x[t : t + 1], s)
        stepped[t] = z[0]
    np.testing.assert_array_equal(series, stepped)
    np.testing.assert_allclose(series, reference_series(x, cfg), rtol=0, atol=1e-9)


def test_streams_in_a_batch_scale_independently() -> None:
    scaler = RunningScaler(ScalingConfig())
    rng = np.random.default_rng(5)
    x = rng.poisson([[3.0, 30.0, 3000.0]] * 2, size=(30, 2, 3)).astype(float)
    s = scaler.initial(x[0])
    together = []
    for t in range(30):
        z, s = scaler.scale(x[t], s)
        together.append(z)
    got = np.stack(together)
    for i in range(2):
        np.testing.assert_allclose(got[:, i], reference_series(x[:, i], scaler.config), atol=1e-9)


def test_config_json_round_trip() -> None:
    cfg = ScalingConfig(transform="none", history=10, clip=2.0, floor=0.5, limit=4.0)
    data = cfg.to_json()
    assert data == {
        "transform": "none",
        "history": 10,
        "clip": 2.0,
        "floor": 0.5,
        "relative_floor": 0.01,
        "limit": 4.0,
    }
    assert ScalingConfig.from_json(data) == cfg
