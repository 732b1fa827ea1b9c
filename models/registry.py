"""Detector names → constructors. The CLI and the worker build detectors only through here."""

from __future__ import annotations

from collections.abc import Callable

from gridalarm.models.baseline import BaselineConfig, RobustZBaseline
from gridalarm.models.detector import Detector, Threshold
from gridalarm.models.thresholds import RatioThreshold

# The baseline's evidence is a z-score of a count tail; 4.5 keeps false alarms near one per
# stream-week on the simulator at 1-minute windows (measured with open_after=2).
BASELINE_ALARM_Z = 4.5

# name -> (detector factory taking min_history and history, threshold factory)
_DETECTORS: dict[str, Callable[[int, int], tuple[Detector, Threshold]]] = {
    "baseline": lambda min_history, history: (
        RobustZBaseline(BaselineConfig(history=history, min_history=min_history)),
        RatioThreshold(alarm=BASELINE_ALARM_Z),
    ),
}


def detector_names() -> list[str]:
    """Names the ``detector`` setting accepts."""
    return sorted(_DETECTORS)


def build_detector(name: str, min_history: int, history: int) -> tuple[Detector, Threshold]:
    """The detector called ``name`` with its threshold; ValueError names the known ones."""
    try:
        factory = _DETECTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; known: {', '.join(detector_names())}"
        ) from None
    return factory(min_history, history)
