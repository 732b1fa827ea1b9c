"""Detector names → scoring models. The CLI, the worker and the evaluator build models here only.

``baseline`` needs no training, and ``novelty`` fits each stream on its own first ``warmup``
windows while streaming (:mod:`gridalarm.models.novelty`). The LSTM detectors read the newest
artifact of a model folder (``gridalarm train`` makes one; one small ``lstm-forecast``
artifact ships inside the package for the demo), follow new versions in that folder, and
leave a stream to the baseline until it has warmed up
(:class:`~gridalarm.models.compose.ColdStart`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gridalarm.models.artifact import Artifact, ArtifactError, ArtifactWatcher
from gridalarm.models.baseline import BaselineConfig, RobustZBaseline
from gridalarm.models.compose import ColdStart, HotSwap, Thresholded
from gridalarm.models.detector import ScoringModel
from gridalarm.models.lstm_classifier import ClassifierDetector
from gridalarm.models.lstm_forecast import ForecastDetector
from gridalarm.models.novelty import NoveltyConfig, NoveltyDetector
from gridalarm.models.thresholds import (
    ProbabilityThreshold,
    QuantileThreshold,
    QuantileThresholdConfig,
    RatioThreshold,
)

# The baseline's evidence is a z-score of a count tail; 4.5 keeps false alarms near one per
# stream-week on the simulator at 1-minute windows (measured with open_after=2).
BASELINE_ALARM_Z = 4.5

# Artifacts that ship with the package: lstm-forecast trained on simulated pools, one per
# window size (``artifacts/lstm-forecast-60s``, ``-3600s``; ``make bundled-models``).
BUNDLED_MODELS = Path(__file__).resolve().parent / "artifacts"

DETECTORS = ("baseline", "lstm-classifier", "lstm-forecast", "novelty")

# Anomalous windows in a row that open an alert when GRIDALARM_OPEN_AFTER is not set. novelty
# raises one alarm per incident by design (after an alarm it needs a clearly worse match), so a
# second anomalous window in a row would rarely come; the others score an incident high window
# after window, and two in a row filter one-window blips.
OPEN_AFTER = {"novelty": 1}
DEFAULT_OPEN_AFTER = 2


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """What a scoring model is built from (the settings' model part)."""

    min_history: int = 12  # windows before the baseline scores a stream
    history: int = 168  # windows: the baseline's memory
    model_path: Path | None = None  # artifact or folder of artifacts; None: the bundled one
    poll: float = 30.0  # seconds between looks for a newer artifact
    features: tuple[str, ...] | None = None  # the worker's features: an artifact must match
    window: float | None = None  # the worker's window: picks the bundled artifact
    warmup: int = 104  # windows a self-fitting detector (novelty) learns a stream from
    target: str | None = None  # feature novelty judges (None: the total of all features)


def detector_names() -> list[str]:
    """Names the ``detector`` setting accepts."""
    return list(DETECTORS)


def open_after(detector: str, setting: int | None = None) -> int:
    """Anomalous windows that open an alert: the setting, else the detector's own default."""
    return setting if setting is not None else OPEN_AFTER.get(detector, DEFAULT_OPEN_AFTER)


def baseline_parts(min_history: int, history: int) -> tuple[RobustZBaseline, RatioThreshold]:
    """The baseline detector and its threshold."""
    return (
        RobustZBaseline(BaselineConfig(history=history, min_history=min_history)),
        RatioThreshold(alarm=BASELINE_ALARM_Z),
    )


def lstm_model(artifact: Artifact, features: tuple[str, ...] | None = None) -> ScoringModel:
    """The thresholded streaming detector of one LSTM artifact (for windows of ``features``)."""
    trained = tuple(artifact.metadata["features"])
    if features is not None and trained != tuple(features):
        raise ArtifactError(
            f"{artifact.path} was trained on features {','.join(trained)}, but the features "
            f"setting is {','.join(features)}; set GRIDALARM_FEATURES to match, retrain, or "
            "use GRIDALARM_DETECTOR=baseline"
        )
    if artifact.detector == "lstm-forecast":
        levels = artifact.metadata.get("threshold", {})
        return Thresholded(
            ForecastDetector.from_artifact(artifact),
            QuantileThreshold(QuantileThresholdConfig(**levels)),
        )
    if artifact.detector == "lstm-classifier":
        return Thresholded(ClassifierDetector.from_artifact(artifact), ProbabilityThreshold())
    raise ValueError(f"{artifact.path}: unknown detector {artifact.detector!r} in its metadata")


def novelty_model(options: ModelOptions) -> ScoringModel:
    """The ``novelty`` detector for ``options``: its evidence is already an alarm confidence
    in [0, 1], so the score is 100 times it (anomalous from 50)."""
    target = None
    if options.target is not None:
        if options.features is None or options.target not in options.features:
            known = ", ".join(options.features or ())
            raise ValueError(f"target {options.target!r} is not one of the features ({known})")
        target = options.features.index(options.target)
    return Thresholded(
        NoveltyDetector(NoveltyConfig(warmup=options.warmup, target=target)),
        ProbabilityThreshold(),
    )


def bundled_model(name: str, window: float | None) -> Path:
    """The bundled artifact of ``name`` trained at the window size nearest ``window``."""
    prefix = f"{name}-"
    found = {
        float(p.name[len(prefix) : -1]): p
        for p in BUNDLED_MODELS.glob(f"{prefix}*s")
        if (p / "metadata.json").is_file()
    }
    if not found:
        raise ArtifactError(
            f"no bundled {name} model; train one with `gridalarm train --detector {name} "
            "--out DIR` and set GRIDALARM_MODEL=DIR"
        )
    target = window or 3600.0
    # Nearest on a log scale: a 5-minute pool is closer to 1-minute than to hourly dynamics.
    best = min(found, key=lambda w: abs(math.log(w / target)))
    return found[best]


def build_model(name: str, options: ModelOptions | None = None) -> ScoringModel:
    """The scoring model called ``name``; ValueError (one line) names the known ones."""
    options = options or ModelOptions()
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    baseline = Thresholded(*baseline_parts(options.min_history, options.history))
    if name == "baseline":
        return baseline
    if name == "novelty":
        return novelty_model(options)
    root = options.model_path or bundled_model(name, options.window)
    watcher = ArtifactWatcher(Path(root), name, options.poll)
    return ColdStart(
        HotSwap(watcher, lambda artifact: lstm_model(artifact, options.features)), baseline
    )
