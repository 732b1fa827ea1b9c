"""Thresholded, Ensemble, ColdStart, HotSwap (models/compose.py) and artifacts (models/artifact.py).

Compositions are checked with tiny hand-written detectors, thresholds and models; HotSwap and
the artifact folder with real ``lstm-forecast`` artifacts of small random networks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridalarm.models.artifact import (
    METADATA,
    STEP_ARRAYS,
    Artifact,
    ArtifactError,
    ArtifactWatcher,
    find_artifacts,
    latest_artifact,
    load_artifact,
    save_artifact,
)
from gridalarm.models.compose import ColdStart, Ensemble, HotSwap, Thresholded
from gridalarm.models.detector import DetectorOutput, Scored, ScoringModel
from gridalarm.models.lstm_cell import Dense, LSTMLayer, LSTMStack
from gridalarm.models.lstm_forecast import ForecastSettings
from gridalarm.models.registry import ModelOptions, build_model, lstm_model
from gridalarm.models.scaling import ScalingConfig
from gridalarm.models.thresholds import QuantileThreshold, QuantileThresholdConfig

FEATURES = ("ExecuteEvent", "JobHeldEvent", "other")
BASELINE_TAG = "baseline@2"
Breakage = Callable[[Path], None]  # spoils an artifact folder in place


# --- tiny hand-written parts -----------------------------------------------------------------


class CountingDetector:
    """raw = x[:, 0]; a stream is ready from its third window; state = windows seen."""

    name = "fake"
    version = "7"

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        seen = np.array([0 if s is None else s for s in states])
        share = np.zeros_like(x)
        share[:, 0] = 1.0
        return DetectorOutput(
            raw=x[:, 0].copy(),
            expected=x + 1.0,
            share=share,
            states=[int(k) + 1 for k in seen],
            ready=seen >= 2,
        )


class RecordingThreshold:
    """score = 10 * raw + offset; state gains a "t" per call; remembers what it was given."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.calls: list[tuple[list[float], list[Any]]] = []

    def apply(self, raw: np.ndarray, states: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
        self.calls.append((np.asarray(raw).tolist(), list(states)))
        return 10.0 * np.asarray(raw) + self.offset, [(s or "") + "t" for s in states]


class LearningDetector(CountingDetector):
    """CountingDetector that also says which windows the threshold may learn from."""

    def __init__(self, learn: Any) -> None:
        self.learn = learn

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        out = super().step(x, states)
        return DetectorOutput(
            raw=out.raw, expected=out.expected, share=out.share, states=out.states,
            ready=out.ready, learn=self.learn,
        )  # fmt: skip


class MaskThreshold:
    """A threshold with the three-argument ``apply``: records the mask it was given."""

    NOT_GIVEN = "not given"

    def __init__(self) -> None:
        self.calls: list[tuple[list[float], Any]] = []

    def apply(
        self, raw: np.ndarray, states: Sequence[Any], learn: Any = NOT_GIVEN
    ) -> tuple[np.ndarray, list[Any]]:
        given = learn if isinstance(learn, str) else (learn.dtype, learn.tolist())
        self.calls.append((np.asarray(raw).tolist(), given))
        return np.asarray(raw, dtype=float), list(states)


class FakeModel:
    """A scoring model ready from its ``ready_after``-th window; every output tells its rows."""

    def __init__(self, name: str, ready_after: int, base: float) -> None:
        self.name = name
        self.version = "1"
        self.ready_after = ready_after
        self.base = base

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        seen = np.array([0 if s is None else s for s in states])
        n, width = x.shape
        share = np.zeros((n, width))
        share[:, 0 if self.base < 20 else width - 1] = 1.0
        return Scored(
            scores=self.base + np.arange(n, dtype=float),
            expected=x * self.base,
            share=share,
            states=[int(k) + 1 for k in seen],
            ready=seen >= self.ready_after,
            models=[f"{self.name}@{self.version}"] * n,
        )


# --- Thresholded ---------------------------------------------------------------------------


def test_thresholded_passes_only_ready_rows_to_the_threshold() -> None:
    threshold = RecordingThreshold()
    model = Thresholded(CountingDetector(), threshold)
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [20.0, 0.0], [5.0, 0.0]])
    states: list[Any] = [None, [1, "a"], [2, "b"], [3, None], [0, "c"]]
    out = model.score(x, states)

    # detector counts [0, 1, 2, 3, 0]: rows 2 and 3 are ready
    assert threshold.calls == [([3.0, 20.0], ["b", None])]
    assert out.ready.tolist() == [False, False, True, True, False]
    assert out.ready.dtype == bool
    assert out.scores.tolist() == [0.0, 0.0, 30.0, 100.0, 0.0]  # 200 clipped to 100
    assert out.states == [[1, None], [2, "a"], [3, "bt"], [4, "t"], [1, "c"]]
    assert out.models == ["fake@7"] * 5
    np.testing.assert_array_equal(out.expected, x + 1.0)
    assert out.share[:, 0].tolist() == [1.0] * 5
    assert model.name == "fake" and model.version == "7"


def test_thresholded_without_ready_rows_never_calls_the_threshold() -> None:
    threshold = RecordingThreshold()
    out = Thresholded(CountingDetector(), threshold).score(np.ones((3, 2)), [None, [1, "k"], []])
    assert threshold.calls == []
    assert out.scores.tolist() == [0.0, 0.0, 0.0]
    assert out.states == [[1, None], [2, "k"], [1, None]]


def test_thresholded_clips_scores_below_zero() -> None:
    out = Thresholded(CountingDetector(), RecordingThreshold(offset=-50.0)).score(
        np.array([[1.0], [9.0]]), [[2, None], [2, None]]
    )
    assert out.scores.tolist() == [0.0, 40.0]


def test_thresholded_over_windows_teaches_the_threshold_only_when_ready() -> None:
    threshold = RecordingThreshold()
    model = Thresholded(CountingDetector(), threshold)
    states: list[Any] = [None]
    for t in range(5):
        out = model.score(np.array([[float(t)]]), states)
        states = out.states
    assert [call[0] for call in threshold.calls] == [[2.0], [3.0], [4.0]]
    assert states == [[5, "ttt"]]


def test_detector_output_learn_defaults_to_none() -> None:
    out = CountingDetector().step(np.ones((2, 1)), [None, None])
    assert out.learn is None


def test_thresholded_passes_the_learn_mask_of_the_ready_rows() -> None:
    threshold = MaskThreshold()
    detector = LearningDetector(np.array([1, 0, 0, 1, 1]))  # any truthy values: cast to bool
    model = Thresholded(detector, threshold)
    x = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    out = model.score(x, [[2, None], [0, None], [2, None], [5, None], [1, None]])
    # ready rows 0, 2 and 3 (detector counts 2, 2, 5): the mask of those rows only
    assert threshold.calls == [([1.0, 3.0, 4.0], (np.dtype(bool), [True, False, True]))]
    assert out.scores.tolist() == [1.0, 0.0, 3.0, 4.0, 0.0]


def test_thresholded_without_a_learn_mask_calls_apply_with_two_arguments() -> None:
    threshold = MaskThreshold()
    Thresholded(CountingDetector(), threshold).score(np.array([[7.0]]), [[2, None]])
    assert threshold.calls == [([7.0], MaskThreshold.NOT_GIVEN)]
    # and a threshold whose apply takes only two arguments still works
    recording = RecordingThreshold()
    out = Thresholded(CountingDetector(), recording).score(np.array([[7.0]]), [[2, None]])
    assert recording.calls == [([7.0], [None])] and out.scores.tolist() == [70.0]


def test_thresholded_with_a_quantile_threshold_learns_only_where_allowed() -> None:
    model = Thresholded(
        LearningDetector(np.array([True, False])),
        QuantileThreshold(QuantileThresholdConfig(size=4, min_samples=2)),
    )
    out = model.score(np.array([[1.0], [1.0]]), [[2, None], [2, None]])
    # both judged by the priors (median 1, alarm 4.5): score 0; only row 0 keeps its value
    assert out.scores.tolist() == [0.0, 0.0]
    counts = [np.frombuffer(base64.b64decode(s[1]), dtype="<f2")[-1] for s in out.states]
    assert counts == [1.0, 0.0]  # the ring's count, read without the module's unpacking


# --- Ensemble --------------------------------------------------------------------------------


def test_ensemble_scores_each_window_with_its_most_alarmed_ready_member() -> None:
    # "low" scores 10, 11, 12 and is ready at once; "high" scores 30, 31, 32 from its second
    # window. Window one: only "low" is ready; window two: "high" is higher everywhere.
    ensemble = Ensemble([FakeModel("low", 0, 10.0), FakeModel("high", 1, 30.0)])
    x = np.ones((3, 2))
    first = ensemble.score(x, [None] * 3)
    assert first.scores.tolist() == [10.0, 11.0, 12.0]
    assert first.models == ["low@1"] * 3
    assert first.states == [[1, 1]] * 3
    second = ensemble.score(x, first.states)
    assert second.scores.tolist() == [30.0, 31.0, 32.0]
    assert second.models == ["high@1"] * 3
    assert second.expected.tolist() == (x * 30.0).tolist()  # the winner's expectation
    assert second.share[:, -1].tolist() == [1.0] * 3  # and its explanation
    assert second.states == [[2, 2]] * 3
    assert ensemble.name == "low+high" and ensemble.version == "1+1"


def test_ensemble_is_not_ready_until_a_member_is_and_scores_zero_meanwhile() -> None:
    ensemble = Ensemble([FakeModel("a", 2, 10.0), FakeModel("b", 3, 30.0)])
    out = ensemble.score(np.ones((2, 1)), [None, [1, 2]])
    assert out.ready.tolist() == [False, False]
    assert out.scores.tolist() == [0.0, 0.0]
    later = ensemble.score(np.ones((2, 1)), out.states)
    assert later.ready.tolist() == [False, True]


def test_ensemble_starts_members_afresh_from_a_state_of_another_shape() -> None:
    ensemble = Ensemble([FakeModel("a", 0, 10.0), FakeModel("b", 0, 30.0)])
    out = ensemble.score(np.ones((1, 1)), [[5]])  # one member's state: not this ensemble's
    assert out.states == [[1, 1]]
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


# --- ColdStart -----------------------------------------------------------------------------


def test_cold_start_picks_the_primary_where_it_is_ready() -> None:
    model = ColdStart(FakeModel("main", 2, 10.0), FakeModel("spare", 1, 20.0))
    x = np.arange(12, dtype=float).reshape(4, 3) + 1.0
    states: list[Any] = [None, [1, 7], [2, 0], [5, None]]
    out = model.score(x, states)

    # primary counts [0, 1, 2, 5] -> ready [F, F, T, T]; fallback [0, 7, 0, 0] -> [F, T, F, F]
    assert out.scores.tolist() == [20.0, 21.0, 12.0, 13.0]
    np.testing.assert_array_equal(out.expected, x * np.array([[20.0], [20.0], [10.0], [10.0]]))
    np.testing.assert_array_equal(out.share[:, 0], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.share[:, 2], [1.0, 1.0, 0.0, 0.0])
    assert out.models == ["spare@1", "spare@1", "main@1", "main@1"]
    assert out.ready.tolist() == [False, True, True, True]
    # both parts advance on every window, ready or not
    assert out.states == [[1, 1], [2, 8], [3, 1], [6, 1]]
    assert model.name == "main" and model.version == "1"


def test_cold_start_hands_over_when_the_primary_warms_up() -> None:
    model = ColdStart(FakeModel("main", 3, 10.0), FakeModel("spare", 0, 20.0))
    states: list[Any] = [None]
    used = []
    for _ in range(5):
        out = model.score(np.ones((1, 2)), states)
        states = out.states
        used.append(out.models[0])
    assert used == ["spare@1"] * 3 + ["main@1"] * 2
    assert states == [[5, 5]]


# --- artifacts of small random lstm-forecast networks --------------------------------------


def random_stack(seed: int, inputs: int, units: int = 4) -> LSTMStack:
    rng = np.random.default_rng(seed)
    layer = LSTMLayer(
        w=rng.normal(0.0, 0.4, (inputs + units, 4 * units)).astype(np.float32),
        b=rng.normal(0.0, 0.1, 4 * units).astype(np.float32),
    )
    head = Dense(
        rng.normal(0.0, 0.4, (units, inputs)).astype(np.float32),
        rng.normal(0.0, 0.1, inputs).astype(np.float32),
        "linear",
    )
    return LSTMStack(layers=(layer,), head=head)


def network_width(features: int = len(FEATURES), streaming: dict[str, Any] | None = None) -> int:
    """The network's inputs and outputs: the features, plus their total for counts."""
    settings = ForecastSettings(**(streaming or {})).resolved(ScalingConfig().transform)
    return features + (1 if settings.total else 0)


def forecast_metadata(
    features: Sequence[str] = FEATURES, units: int = 4, streaming: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Metadata as models/training.py writes it (without the training record)."""
    return {
        "detector": "lstm-forecast",
        "features": list(features),
        "window": 60.0,
        "scaling": ScalingConfig().to_json(),
        "network": {"units": units, "layers": 1, "dropout": 0.0},
        "streaming": streaming or {},
        "threshold": {"prior_median": 1.0, "prior_high": 2.0},
    }


def save_forecast(
    folder: Path, seed: int, features: Sequence[str] = FEATURES, **meta: Any
) -> Artifact:
    metadata = forecast_metadata(features) | meta
    stack = random_stack(seed, network_width(streaming=metadata["streaming"]))
    return save_artifact(folder, metadata, stack.to_arrays())


def rewrite_metadata(path: Path, **changes: Any) -> None:
    meta = json.loads((path / METADATA).read_text())
    meta.update(changes)
    (path / METADATA).write_text(json.dumps(meta))


def windows(count: int, streams: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson([30.0, 2.0, 5.0], size=(count, streams, len(FEATURES))).astype(float)


def forecast_options(root: Path, poll: float = 0.0) -> ModelOptions:
    return ModelOptions(model_path=root, poll=poll, features=FEATURES)


def run(model: ScoringModel, xs: np.ndarray, states: list[Any]) -> tuple[list[Scored], list[Any]]:
    outs = []
    for x in xs:
        out = model.score(x, states)
        states = out.states
        outs.append(out)
    return outs, states


def tag(artifact: Artifact) -> str:
    return f"lstm-forecast@{artifact.version}"


# --- HotSwap -------------------------------------------------------------------------------


def test_hot_swap_scores_with_a_newer_artifact_once_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = save_forecast(root / "first", seed=1)
    model = build_model("lstm-forecast", forecast_options(root))
    xs = windows(40)
    outs, states = run(model, xs[:15], [None] * 3)
    # warmup and min_history both default to 12: the LSTM scores from the 13th window
    assert [o.models for o in outs] == [[BASELINE_TAG] * 3] * 12 + [[tag(first)] * 3] * 3
    assert model.version == first.version
    assert {s[0][0]["m"] for s in states} == {first.version[-16:]}

    second = save_forecast(root / "second", seed=2)
    assert second.version != first.version
    outs, states = run(model, xs[15:], states)
    assert model.version == second.version
    assert {s[0][0]["m"] for s in states} == {second.version[-16:]}
    # the new version's LSTM takes over after its own warmup
    assert [o.models for o in outs] == [[BASELINE_TAG] * 3] * 12 + [[tag(second)] * 3] * 13


def test_after_a_swap_old_streams_wait_warmup_windows_on_the_baseline(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_forecast(root / "a", seed=1)
    model = build_model("lstm-forecast", forecast_options(root))
    alone = build_model("baseline", ModelOptions())
    xs = windows(30, seed=3)
    states: list[Any] = [None] * 3
    base_states: list[Any] = [None] * 3
    for x in xs[:20]:
        states = model.score(x, states).states
        base_states = alone.score(x, base_states).states

    new = save_forecast(root / "b", seed=2, streaming={"warmup": 5})
    for k, x in enumerate(xs[20:]):
        out = model.score(x, states)
        base = alone.score(x, base_states)
        states, base_states = out.states, base.states
        if k < 5:
            assert out.models == [BASELINE_TAG] * 3
            np.testing.assert_array_equal(out.ready, base.ready)
            np.testing.assert_array_equal(out.scores, base.scores)
            np.testing.assert_array_equal(out.expected, base.expected)
        else:
            assert out.models == [tag(new)] * 3
    # the baseline part of the state is the baseline's own, unaffected by the swap
    assert [s[1] for s in states] == base_states


def test_a_new_stream_after_a_swap_also_waits(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_forecast(root / "a", seed=1)
    model = build_model("lstm-forecast", forecast_options(root))
    xs = windows(20, streams=1)
    _, states = run(model, xs[:13], [None])
    new = save_forecast(root / "b", seed=2, streaming={"warmup": 2, "min_history": 2})
    outs, _ = run(model, xs[13:17], states)
    assert [o.models[0] for o in outs] == [BASELINE_TAG] * 2 + [tag(new)] * 2


def break_wrong_features(path: Path) -> None:
    rewrite_metadata(path, features=["a", "b", "c"])


def break_missing_step_arrays(path: Path) -> None:
    (path / STEP_ARRAYS).unlink()


def break_format(path: Path) -> None:
    rewrite_metadata(path, format=99)


def break_json(path: Path) -> None:
    (path / METADATA).write_text('{"detector": "lstm-forecast", ')


def break_truncated_step_arrays(path: Path) -> None:
    data = (path / STEP_ARRAYS).read_bytes()
    (path / STEP_ARRAYS).write_bytes(data[: len(data) // 2])  # a copy still in progress


def break_unknown_streaming_setting(path: Path) -> None:
    rewrite_metadata(path, streaming={"warmup": 12, "horizon": 3})  # from a newer gridalarm


def break_missing_head_arrays(path: Path) -> None:
    with np.load(path / STEP_ARRAYS) as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("head")}
    np.savez(path / STEP_ARRAYS, **arrays)


def break_missing_created(path: Path) -> None:
    meta = json.loads((path / METADATA).read_text())
    del meta["created"]
    (path / METADATA).write_text(json.dumps(meta))


def break_metadata_list(path: Path) -> None:
    (path / METADATA).write_text("[1, 2]")


# breakage -> the warning it leaves: skipped by find_artifacts (load_artifact refuses it) or
# refused by HotSwap (the artifact loads, building its model fails)
BREAKAGES = [
    (break_wrong_features, "not switching to model"),
    (break_missing_step_arrays, "skipping"),
    (break_format, "skipping"),
    (break_json, "skipping"),
    (break_truncated_step_arrays, "not switching to model"),
    (break_unknown_streaming_setting, "not switching to model"),
    (break_missing_head_arrays, "not switching to model"),
    (break_missing_created, "skipping"),
    (break_metadata_list, "skipping"),
]


@pytest.mark.parametrize(("breakage", "warning"), BREAKAGES)
def test_a_broken_newer_artifact_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, breakage: Breakage, warning: str
) -> None:
    root = tmp_path / "models"
    good = save_forecast(root / "good", seed=1)
    twin_root = tmp_path / "twin"
    shutil.copytree(root / "good", twin_root / "good")
    model = build_model("lstm-forecast", forecast_options(root))
    twin = build_model("lstm-forecast", forecast_options(twin_root))
    xs = windows(20)
    _, states = run(model, xs[:14], [None] * 3)
    _, twin_states = run(twin, xs[:14], [None] * 3)

    bad = tmp_path / "staging"
    save_forecast(bad, seed=2)
    breakage(bad)
    bad.rename(root / "newer")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gridalarm.models"):
        for x in xs[14:]:
            out = model.score(x, states)  # never raises
            expected = twin.score(x, twin_states)
            states, twin_states = out.states, expected.states
            assert out.models == [tag(good)] * 3
            np.testing.assert_array_equal(out.scores, expected.scores)
    assert model.version == good.version
    assert states == twin_states
    # the operator is told, naming the broken artifact
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(warning in w and str(root / "newer") in w for w in warnings)
    if warning == "not switching to model":
        assert len(warnings) == 1  # a refused version is not built again at every poll


def test_hot_swap_keeps_its_model_whatever_building_a_new_one_raises(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = save_forecast(root / "a", seed=1)
    watcher = ArtifactWatcher(root, "lstm-forecast", poll=0.0)

    def build(artifact: Artifact) -> ScoringModel:
        if artifact.path.name == "b":
            raise ZeroDivisionError("a bug in some newer model code")
        return lstm_model(artifact, FEATURES)

    swap = HotSwap(watcher, build)
    save_forecast(root / "b", seed=2)
    x = windows(1)[0]
    assert swap.refresh() is False
    assert swap.score(x, [None] * 3).models == [tag(first)] * 3
    assert swap.version == first.version and swap.artifact.path.name == "a"


def test_hot_swap_raises_if_even_the_first_model_cannot_be_built(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_forecast(root / "a", seed=1, features=("x", "y", "z"))
    with pytest.raises(ArtifactError, match="trained on features x,y,z"):
        build_model("lstm-forecast", forecast_options(root))


def test_an_artifact_mended_after_a_failed_build_is_switched_to(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_forecast(root / "good", seed=1)
    model = build_model("lstm-forecast", forecast_options(root))
    xs = windows(17)
    _, states = run(model, xs[:14], [None] * 3)
    staging = tmp_path / "staging"
    newer = save_forecast(staging, seed=2)
    complete = (staging / STEP_ARRAYS).read_bytes()
    break_truncated_step_arrays(staging)
    staging.rename(root / "newer")
    _, states = run(model, xs[14:15], states)  # the copy is still in progress: refused
    (root / "newer" / STEP_ARRAYS).write_bytes(complete)  # the copy completes
    run(model, xs[15:17], states)
    assert model.version == newer.version


def test_a_refused_version_is_not_rebuilt_but_a_later_good_one_is(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_forecast(root / "a", seed=1)
    now = [0.0]
    watcher = ArtifactWatcher(root, "lstm-forecast", poll=0.0, clock=lambda: now[0])
    built: list[str] = []

    def build(artifact: Artifact) -> ScoringModel:
        built.append(artifact.path.name)
        return lstm_model(artifact, FEATURES)

    swap = HotSwap(watcher, build)
    save_forecast(root / "b", seed=2, features=("x", "y", "z"))
    x = windows(1)[0]
    states: list[Any] = [None] * 3
    for _ in range(3):
        states = swap.score(x, states).states
    assert built == ["a", "b"]
    assert swap.artifact.path.name == "a"
    assert swap.refresh() is False

    c = save_forecast(root / "c", seed=3)
    assert swap.refresh() is True
    assert built == ["a", "b", "c"]
    assert swap.version == c.version and swap.name == "lstm-forecast"


def test_hot_swap_looks_again_only_after_poll_seconds(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = save_forecast(root / "a", seed=1)
    now = [100.0]
    watcher = ArtifactWatcher(root, "lstm-forecast", poll=30.0, clock=lambda: now[0])
    swap = HotSwap(watcher, lambda a: lstm_model(a, FEATURES))
    second = save_forecast(root / "b", seed=2)
    x = windows(1)[0]
    now[0] = 129.9
    assert swap.score(x, [None] * 3).models == [tag(first)] * 3
    assert swap.version == first.version
    now[0] = 130.0
    swap.score(x, [None] * 3)
    assert swap.version == second.version


# --- artifacts -----------------------------------------------------------------------------


def small_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    return random_stack(seed, 3, units=2).to_arrays()


def bare(detector: str = "lstm-forecast", **more: Any) -> dict[str, Any]:
    """The least metadata an artifact needs (save_artifact adds version and created)."""
    return {"detector": detector, "features": list(FEATURES), **more}


def test_save_artifact_writes_metadata_and_arrays(tmp_path: Path) -> None:
    arrays = small_arrays()
    before = time.time()
    artifact = save_artifact(tmp_path / "m", bare(x=1), arrays)
    after = time.time()

    h = hashlib.sha256()
    for key in sorted(arrays):
        a = arrays[key]
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    digest = h.hexdigest()
    meta = artifact.metadata
    assert before <= meta["created"] <= after
    assert meta["format"] == 1 and meta["x"] == 1
    assert meta["weights_digest"] == digest
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(meta["created"]))
    assert meta["version"] == f"{stamp}-{digest[:8]}"
    assert json.loads((tmp_path / "m" / METADATA).read_text()) == meta

    loaded = load_artifact(tmp_path / "m")
    assert loaded.version == artifact.version and loaded.detector == "lstm-forecast"
    got = loaded.arrays()
    assert sorted(got) == sorted(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(got[key], value)
        assert got[key].dtype == np.float32


def test_save_artifact_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(ArtifactError, match="exists already") as info:
        save_artifact(tmp_path / "m", bare(), small_arrays())
    assert "\n" not in str(info.value)
    assert list((tmp_path / "m").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_half_written_artifact_never_appears(tmp_path: Path) -> None:
    root = tmp_path / "models"
    old = save_artifact(root / "old", bare(), small_arrays(1))
    seen: dict[str, Any] = {}

    def extra(tmp: Path) -> None:
        # Even a temporary folder that already looks complete must stay invisible.
        (tmp / METADATA).write_text(json.dumps({**old.metadata, "created": 1e12}))
        seen["tmp"] = tmp
        seen["found"] = [a.path.name for a in find_artifacts(root)]
        seen["latest"] = latest_artifact(root).path.name
        seen["out_exists"] = (root / "new").exists()

    new = save_artifact(root / "new", bare(), small_arrays(2), extra)
    assert seen["tmp"].parent == root and seen["tmp"].name.startswith(".")
    assert seen["found"] == ["old"] and seen["latest"] == "old"
    assert seen["out_exists"] is False
    assert not seen["tmp"].exists()
    assert sorted(p.name for p in root.iterdir()) == ["new", "old"]
    assert latest_artifact(root).version == new.version


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()

    def extra(tmp: Path) -> None:
        (tmp / "training.png").write_bytes(b"x")
        raise RuntimeError("plot failed")

    with pytest.raises(RuntimeError, match="plot failed"):
        save_artifact(root / "m", bare(), small_arrays(), extra)
    assert list(root.iterdir()) == []


def test_find_artifacts_skips_dot_folders_and_non_artifacts(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_artifact(root / "real", bare(), small_arrays())
    shutil.copytree(root / "real", root / ".real-partial")
    rewrite_metadata(root / ".real-partial", created=1e12)
    (root / "notes").mkdir()
    (root / "README").write_text("not an artifact")
    assert [a.path.name for a in find_artifacts(root)] == ["real"]
    # a model folder may also be one artifact itself
    assert [a.path for a in find_artifacts(root / "real")] == [root / "real"]


def test_latest_artifact_picks_the_newest_by_created(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for name, created in (("a-newest", 300.0), ("m-oldest", 100.0), ("z-middle", 200.0)):
        save_artifact(root / name, bare(), small_arrays(int(created)))
        rewrite_metadata(root / name, created=created)
    assert [a.path.name for a in find_artifacts(root)] == ["m-oldest", "z-middle", "a-newest"]
    assert latest_artifact(root).path.name == "a-newest"

    save_artifact(root / "classifier", bare("lstm-classifier"), small_arrays(9))
    rewrite_metadata(root / "classifier", created=400.0)
    assert latest_artifact(root).path.name == "classifier"
    assert latest_artifact(root, "lstm-forecast").path.name == "a-newest"
    with pytest.raises(ArtifactError, match="no baseline model artifact") as info:
        latest_artifact(root, "baseline")
    assert "gridalarm train" in str(info.value) and "\n" not in str(info.value)


def test_missing_model_folder_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist") as info:
        find_artifacts(tmp_path / "nowhere")
    assert "gridalarm train --out" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no model artifact in") as info:
        latest_artifact(tmp_path / "empty")
    assert "gridalarm train --out" in str(info.value)


def no_metadata(path: Path) -> None:
    (path / METADATA).unlink()


def other_format(path: Path) -> None:
    rewrite_metadata(path, format=2)


def no_step_arrays(path: Path) -> None:
    (path / STEP_ARRAYS).unlink()


def metadata_text(text: str | bytes) -> Breakage:
    def breakage(path: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (path / METADATA).write_bytes(data)

    return breakage


def without(*keys: str) -> Breakage:
    def breakage(path: Path) -> None:
        meta = json.loads((path / METADATA).read_text())
        for key in keys:
            del meta[key]
        (path / METADATA).write_text(json.dumps(meta))

    return breakage


UNREADABLE = "unreadable"
COPY_OR_RETRAIN = "copy the artifact again or retrain"


@pytest.mark.parametrize(
    ("breakage", "what", "todo"),
    [
        (no_metadata, "no metadata.json", "make one with `gridalarm train`"),
        (other_format, "artifact format 2, this gridalarm reads 1", "retrain it"),
        (no_step_arrays, "step.npz is missing", "retrain the model"),
        (metadata_text("{not json"), UNREADABLE, COPY_OR_RETRAIN),
        (metadata_text(""), UNREADABLE, COPY_OR_RETRAIN),  # a copy not yet written
        (metadata_text(b'{"detector": "\xff\xfe"}'), UNREADABLE, COPY_OR_RETRAIN),  # no UTF-8
        (metadata_text("[1, 2]"), "not a JSON object", COPY_OR_RETRAIN),
        (metadata_text('"lstm-forecast"'), "not a JSON object", COPY_OR_RETRAIN),
        (metadata_text("null"), "not a JSON object", COPY_OR_RETRAIN),
        (without("detector"), "lacks detector", "retrain the model"),
        (without("version"), "lacks version", "retrain the model"),
        (without("created"), "lacks created", "retrain the model"),
        (without("features"), "lacks features", "retrain the model"),
        (without("created", "features"), "lacks created, features", "retrain the model"),
    ],
)
def test_load_artifact_errors_are_one_line_and_say_what_to_do(
    tmp_path: Path, breakage: Breakage, what: str, todo: str
) -> None:
    save_artifact(tmp_path / "m", bare(), small_arrays())
    breakage(tmp_path / "m")
    with pytest.raises(ArtifactError) as info:
        load_artifact(tmp_path / "m")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "m") in message
    assert what in message and todo in message
    # no chained JSON or decoding traceback under the one line
    error = info.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_find_artifacts_skips_a_broken_artifact_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "models"
    good = save_artifact(root / "b-good", bare(), small_arrays(1))
    save_artifact(root / "a-list", bare(), small_arrays(2))
    (root / "a-list" / METADATA).write_text("[1, 2]")
    save_artifact(root / "c-no-created", bare(), small_arrays(3))
    without("created")(root / "c-no-created")
    with caplog.at_level(logging.WARNING, logger="gridalarm.models.artifact"):
        found = find_artifacts(root)
        latest = latest_artifact(root)
    assert [a.path.name for a in found] == ["b-good"]
    assert latest.version == good.version
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warnings) == 4  # each broken artifact, at each of the two scans
    assert all(w.startswith("skipping ") and "\n" not in w for w in warnings)
    assert sum(str(root / "a-list") in w and "not a JSON object" in w for w in warnings) == 2
    assert sum(str(root / "c-no-created") in w and "lacks created" in w for w in warnings) == 2


def test_only_broken_artifacts_mean_no_artifact(tmp_path: Path) -> None:
    root = tmp_path / "models"
    save_artifact(root / "a", bare(), small_arrays())
    (root / "a" / METADATA).write_text("{")
    assert find_artifacts(root) == []
    with pytest.raises(ArtifactError, match="no model artifact in"):
        latest_artifact(root)
    # a folder that is itself one broken artifact: its own error, not an empty list
    with pytest.raises(ArtifactError, match="unreadable"):
        find_artifacts(root / "a")


def test_artifact_watcher_looks_again_only_after_poll_seconds(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = save_forecast(root / "a", seed=1)
    now = [1000.0]
    watcher = ArtifactWatcher(root, "lstm-forecast", poll=30.0, clock=lambda: now[0])
    assert watcher.current().version == first.version

    second = save_forecast(root / "b", seed=2)
    for t in (1000.0, 1010.0, 1029.999):
        now[0] = t
        assert watcher.current().version == first.version
    now[0] = 1030.0
    assert watcher.current().version == second.version

    # a broken newer artifact: ignored, and the next look is again poll seconds later
    save_forecast(root / "c", seed=3)
    (root / "c" / STEP_ARRAYS).unlink()
    now[0] = 1060.0
    assert watcher.current().version == second.version
    third = save_forecast(root / "d", seed=4)
    shutil.rmtree(root / "c")
    now[0] = 1089.0
    assert watcher.current().version == second.version
    now[0] = 1090.0
    assert watcher.current().version == third.version


def test_artifact_watcher_without_any_artifact_raises_and_retries(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    now = [0.0]
    watcher = ArtifactWatcher(root, "lstm-forecast", poll=30.0, clock=lambda: now[0])
    with pytest.raises(ArtifactError, match="no lstm-forecast model artifact"):
        watcher.current()
    first = save_forecast(root / "a", seed=1)
    now[0] = 1.0  # nothing loaded yet: it looks again at once
    assert watcher.current().version == first.version
