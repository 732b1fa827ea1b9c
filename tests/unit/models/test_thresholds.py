"""Thresholds: raw evidence → a 0..100 score where 50 is the alarm level."""

from __future__ import annotations

import numpy as np
import pytest

from gridalarm.models.registry import baseline_parts, build_model, detector_names
from gridalarm.models.thresholds import RatioThreshold


def test_ratio_threshold_maps_zero_alarm_and_beyond() -> None:
    scores, _ = RatioThreshold(alarm=4.0).apply(np.array([0.0, 4.0, 12.0, 1e9]), [None] * 4)
    assert scores[:3].tolist() == [0.0, 50.0, 75.0]
    assert 99.9 < scores[3] <= 100.0


def test_ratio_threshold_is_monotone_and_bounded() -> None:
    raw = np.linspace(0.0, 100.0, 501)
    scores, _ = RatioThreshold(alarm=3.0).apply(raw, [None] * len(raw))
    assert np.all(np.diff(scores) > 0)
    assert scores.min() >= 0.0 and scores.max() <= 100.0


def test_ratio_threshold_treats_negative_evidence_as_none() -> None:
    scores, _ = RatioThreshold(alarm=4.0).apply(np.array([-5.0]), [None])
    assert scores.tolist() == [0.0]


def test_ratio_threshold_passes_states_through() -> None:
    states = [{"a": 1}, None, [2]]
    _, new = RatioThreshold().apply(np.zeros(3), states)
    assert new == states


def test_registry_lists_baseline_and_rejects_unknown_names() -> None:
    assert "baseline" in detector_names()
    with pytest.raises(ValueError, match="baseline"):
        build_model("no-such-model")


def test_registry_baseline_threshold_scores_no_evidence_as_zero() -> None:
    _, threshold = baseline_parts(12, 168)
    scores, _ = threshold.apply(np.array([0.0]), [None])
    assert scores.tolist() == [0.0]
