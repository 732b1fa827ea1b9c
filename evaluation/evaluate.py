"""One evaluation: a detector over a labelled set, its metrics, NAB scores and report folder.

Where a detector needs a trained model and none is given, it is trained here on the data's own
training part only (``LabelledStream.train_until``: NAB's probationary 15%, MSL's train split),
so nothing the evaluation scores was seen in training. Detectors that fit themselves while they
stream (:data:`SELF_FITTING`) are never trained here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gridalarm.evaluation.datasets import LabelledSet, LabelledStream
from gridalarm.evaluation.metrics import detection_metrics, mean_best_point_f1
from gridalarm.evaluation.runner import RunConfig, StreamRun, replay, window_of
from gridalarm.models.detector import ScoringModel
from gridalarm.models.registry import ModelOptions, build_model, bundled_model, open_after
from gridalarm.models.training import Series, TrainConfig, TrainingData
from gridalarm.stream.alerting import AlertPolicy

# Detectors that learn each stream as they score it: no artifact, nothing to train first.
SELF_FITTING = ("baseline", "novelty")

# Self-fitting detectors that learn a stream from its first ``warmup`` windows: on data with a
# split they warm up on exactly the split's training part (NAB's probation, MSL's train split),
# the protocol's own per-stream number rather than a tuned one.
WARMING = ("novelty",)
MIN_WARMUP = 16  # the warmup setting's own floor (gridalarm.config)

# What NAB is handed per row: the scorer's score, or only the rows where an alert opened.
NabSource = Literal["scores", "alerts"]


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """What to evaluate and how."""

    detector: str = "lstm-forecast"
    model: Path | None = None  # artifact (folder); None: see model_path
    run: RunConfig | None = None  # threshold and alert rule; None: the worker's defaults
    options: ModelOptions = field(default_factory=ModelOptions)
    train: TrainConfig = field(default_factory=TrainConfig)
    grace_windows: int = 2


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The figures and the per-stream runs behind them."""

    metrics: dict[str, Any]
    runs: list[StreamRun]
    model: str


def run_config(config: EvaluationConfig) -> RunConfig:
    """The threshold and alert rule to replay with: the config's, or what a worker running
    ``config.detector`` with default settings uses (its own ``open_after``)."""
    if config.run is not None:
        return config.run
    return RunConfig(policy=AlertPolicy(open_after=open_after(config.detector)))


def training_data(data: LabelledSet, labelled: bool) -> TrainingData:
    """The training part of each stream (all of it when the set has no split)."""
    series = []
    for stream in data.streams:
        stop = training_rows(stream)
        if stop < 2:
            continue
        labels = window_labels(stream)[:stop] if labelled else None
        series.append(Series(stream.name, stream.values[:stop], labels))
    window = data.window or float(np.median([window_of(s, 0.0) for s in data.streams]))
    return TrainingData(data.features, window, tuple(series), source=data.name)


def window_labels(stream: LabelledStream) -> np.ndarray:
    """Per window: does it overlap a labelled interval?"""
    size = window_of(stream, 0.0)
    flags = np.zeros(len(stream.starts), dtype=bool)
    for start, end in stream.labels:
        flags |= (stream.starts < end) & (stream.starts + size > start)
    return flags


def model_path(config: EvaluationConfig, data: LabelledSet, workdir: Path) -> Path | None:
    """The artifact to evaluate: the given one, one trained on the data's own training part
    (NAB's probation, MSL's train split), or else the bundled one for the data's window. Data
    without a split never trains the model that scores it: that would be look-ahead."""
    if config.detector in SELF_FITTING:
        return None
    if config.model is not None:
        return config.model
    if any(s.train_until is not None for s in data.streams):
        path = workdir / f"{config.detector}-model"
        if not path.exists():
            from gridalarm.models.training import train

            labelled = config.detector == "lstm-classifier"
            train(
                training_data(data, labelled),
                _with_detector(config.train, config.detector),
                path,
                progress=False,
            )
        return path
    return bundled_model(config.detector, data.window or None)


def scoring_model(config: EvaluationConfig, data: LabelledSet, workdir: Path) -> ScoringModel:
    """The scoring model to evaluate (see :func:`model_path`). Options the evaluation does not
    set itself (a detector's own, such as the baseline's history) pass through unchanged."""
    return build_model(
        config.detector,
        replace(
            config.options,
            model_path=model_path(config, data, workdir),
            poll=float("inf"),  # one model for the whole evaluation
            features=data.features,
            window=data.window or None,
        ),
    )


def _with_detector(train: TrainConfig, detector: str) -> TrainConfig:
    return replace(train, detector=detector)  # type: ignore[arg-type]


def evaluate(
    data: LabelledSet, config: EvaluationConfig, workdir: Path, model: ScoringModel | None = None
) -> Evaluation:
    """Score ``data`` and compute the detection metrics (scoring only the test part)."""
    started = time.perf_counter()
    if model is None and config.detector in WARMING and has_split(data):
        runs = []
        for warmup, part in warmup_groups(data):
            options = replace(config.options, warmup=warmup)
            model = scoring_model(replace(config, options=options), part, workdir)
            runs.extend(replay(model, part, run_config(config)))
        order = {s.name: k for k, s in enumerate(data.streams)}
        runs.sort(key=lambda run: order[run.stream.name])
    else:
        model = model or scoring_model(config, data, workdir)
        runs = replay(model, data, run_config(config))
    seconds = time.perf_counter() - started
    outcomes = [scored_part(run).outcome(window_of(run.stream, data.window)) for run in runs]
    metrics = detection_metrics(outcomes, grace_windows=config.grace_windows).to_dict()
    best_f1, best_streams = point_f1_best(runs)
    metrics = {
        "dataset": data.name,
        "detector": config.detector,
        "model": f"{model.name}@{model.version}",
        **metrics,
        "point_f1_best_mean": best_f1,
        "point_f1_best_streams": best_streams,
        "replay_seconds": round(seconds, 2),
    }
    return Evaluation(metrics, runs, f"{model.name}@{model.version}")


def has_split(data: LabelledSet) -> bool:
    return any(s.train_until is not None for s in data.streams)


def training_rows(stream: LabelledStream) -> int:
    """How many of the stream's rows come before its split (all of them when it has none)."""
    if stream.train_until is None:
        return len(stream.starts)
    return int(np.searchsorted(stream.starts, stream.train_until, side="left"))


def warmup_groups(data: LabelledSet) -> list[tuple[int, LabelledSet]]:
    """``data`` split by each stream's warm-up (its training rows, at least
    :data:`MIN_WARMUP`): one model per group, as a worker configured with that warmup would
    score those streams. Streams are independent, so the split changes no score."""
    groups: dict[int, list[LabelledStream]] = {}
    for stream in data.streams:
        groups.setdefault(max(MIN_WARMUP, training_rows(stream)), []).append(stream)
    return [
        (warmup, replace(data, streams=tuple(streams)))
        for warmup, streams in sorted(groups.items())
    ]


def scored_part(run: StreamRun) -> StreamRun:
    """The run without its training rows (NAB probation, MSL train split): those are not scored."""
    stream = run.stream
    if stream.train_until is None:
        return run
    k = training_rows(stream)
    part = LabelledStream(
        stream.name, stream.starts[k:], stream.values[k:], stream.labels, None, stream.group
    )
    return StreamRun(
        part,
        run.scores[k:],
        run.flagged[k:],
        tuple(a for a in run.alerts if a[1] > stream.train_until),
        run.models,
    )


def point_f1_best(runs: Sequence[StreamRun]) -> tuple[float | None, int]:
    """Mean over labelled streams of each one's best point F1 (scored part only), and how many.

    Each stream gets its own best threshold, as MSL is judged per channel; a row counts as
    anomalous when its start lies in a label (:meth:`LabelledStream.label_mask`). Training
    rows are dropped first, so the threshold is not credited for rows the model learned from.
    """
    parts = (scored_part(run) for run in runs)
    return mean_best_point_f1((part.scores, part.stream.label_mask()) for part in parts)


def row_scores(run: StreamRun) -> np.ndarray:
    """NAB's ``anomaly_score`` per row: every row's score / 100, clipped to [0, 1].

    This is NAB as NAB means it: the detector's continuous score on every row, with NAB's
    optimiser choosing the threshold per profile. A detector whose score stays high through an
    incident pays a false positive per row after the first; a sparse one (high only where it
    detects) does not.
    """
    return np.clip(np.asarray(run.scores, dtype=float) / 100.0, 0.0, 1.0)


def alert_scores(run: StreamRun) -> np.ndarray:
    """NAB's ``anomaly_score`` per row: the score / 100 where an alert opened, else 0.

    NAB counts every row at or over its threshold as a detection, so a detector whose score
    stays high through an incident is charged a false positive for each row after the first.
    Operators see one alert per incident, not one per window; this hands NAB exactly those.
    """
    out = np.zeros(len(run.scores))
    starts = run.stream.starts
    for began, _ in run.alerts:
        rows = np.flatnonzero(starts == began)
        if len(rows):
            out[rows[0]] = run.scores[rows[0]] / 100.0
    return np.clip(out, 0.0, 1.0)


def nab_files(
    runs: Sequence[StreamRun],
    windows: dict[str, list[tuple[str, str]]],
    source: NabSource = "scores",
) -> list[Any]:
    """The runs as the NAB scorer's files, with NAB's own label windows.

    ``source`` is what each row carries: ``"scores"`` every row's score (:func:`row_scores`,
    NAB's own protocol) or ``"alerts"`` the worker's alert openings (:func:`alert_scores`, what
    an operator is shown). Both are worth reporting: the first judges the detector, the second
    the detector together with the worker's threshold and alert rule.
    """
    from gridalarm.evaluation.nab import NabFile
    from gridalarm.timeutil import parse_time

    per_row = {"scores": row_scores, "alerts": alert_scores}.get(source)
    if per_row is None:
        raise ValueError(f"NAB source {source!r}: use 'scores' or 'alerts'")
    files = []
    for run in runs:
        spans = tuple((parse_time(a), parse_time(b)) for a, b in windows.get(run.stream.name, []))
        files.append(NabFile(run.stream.name, run.stream.starts, per_row(run), spans))
    return files


def write_results(out: Path, evaluation: Evaluation, title: str, threshold: float = 50.0) -> Path:
    """``metrics.json`` and the report (a PNG per stream and an index page) under ``out``."""
    from gridalarm.evaluation.report import ReportEntry, write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    entries = [
        ReportEntry(
            stream=run.stream, scores=run.scores, threshold=threshold, flagged=run.flagged,
            alerts=run.alerts,
        )
        for run in evaluation.runs
    ]  # fmt: skip
    return write_report(out, title, entries, evaluation.metrics)
