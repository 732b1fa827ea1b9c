"""Detection metrics over labelled windows of many streams: point-wise, event-wise, false alarms.

Two views, because they answer different questions. Point-wise precision/recall/F1 count windows
(flagged vs labelled) with no point adjustment, so a long incident caught late still loses most
of its windows. Event-wise metrics count what an operator sees: an incident (label interval) is
caught when some alert overlaps it, alerts that overlap no incident are false alarms, and the
false-alarm rate is per stream-day so that pools of different sizes and lengths compare.

Intervals are half-open, ``[start, end)`` in epoch seconds; window ``i`` of a stream covers
``[starts[i], starts[i] + window)``. An empty label (``start == end``) marks an instant and
overlaps the interval that contains it. Alerts may trail an incident a little (the alert machine
needs ``open_after`` windows), so an event also counts alerts that start within ``grace_windows``
windows after its end.

Precision, recall and F1 define 0/0 as 0.0 (no flags, no labels, no alerts: nothing was found).

A third view judges the scores rather than the worker's threshold: :func:`best_point_f1` is the
best point-wise F1 of one stream over every threshold of its own scores, as MSL results are
usually reported per channel (without point adjustment here, which would credit a whole
incident for one hit). It says how separable a detector's scores are, not how it alerts.

Pure numpy over plain data; the caller runs the detector and the alert machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

SECONDS_PER_DAY = 86400.0
DAYS_PER_WEEK = 7.0


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """One stream's evaluated run: per-window scores and flags, its alerts and its labels.

    ``alerts`` are ``(start, end)`` intervals: the start of the window that opened the alert and
    the end of the window that resolved it (or of the last window when it never resolved).
    ``labels`` are the labelled anomaly intervals ``[start, end)``. Arrays are coerced to float
    and bool, so lists are accepted. Starts are expected ascending, but no metric depends on
    their order, so a replayed file whose clock steps back (NAB has some) is accepted as is.
    """

    stream: str
    starts: np.ndarray  # (n,) window start times, epoch seconds, ascending
    window: float  # seconds
    scores: np.ndarray  # (n,) 0..100
    flagged: np.ndarray  # (n,) bool: windows the detector called anomalous
    alerts: tuple[tuple[float, float], ...]
    labels: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        starts = np.asarray(self.starts, dtype=float)
        scores = np.asarray(self.scores, dtype=float)
        flagged = np.asarray(self.flagged, dtype=bool)
        if starts.ndim != 1 or scores.shape != starts.shape or flagged.shape != starts.shape:
            raise ValueError(f"{self.stream}: starts, scores and flagged must be 1-D, same length")
        if not np.all(np.isfinite(starts)):
            raise ValueError(f"{self.stream}: window starts must be finite")
        if not self.window > 0:
            raise ValueError(f"{self.stream}: window must be positive seconds, got {self.window}")
        for kind, intervals in (("alert", self.alerts), ("label", self.labels)):
            for start, end in intervals:
                if not end >= start:
                    raise ValueError(f"{self.stream}: {kind} ({start}, {end}) ends before start")
        # Frozen: coercion has to go around __setattr__.
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "flagged", flagged)
        object.__setattr__(self, "window", float(self.window))
        object.__setattr__(self, "alerts", tuple((float(a), float(b)) for a, b in self.alerts))
        object.__setattr__(self, "labels", tuple((float(a), float(b)) for a, b in self.labels))


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """One label interval (an event) and when it was caught, in windows after its start."""

    stream: str
    start: float
    end: float
    time_to_detect_windows: float | None  # None: missed

    @property
    def detected(self) -> bool:
        return self.time_to_detect_windows is not None


@dataclass(frozen=True, slots=True)
class DetectionMetrics:
    """Point-wise and event-wise detection quality of a run over many streams."""

    windows: int
    labelled_windows: int
    flagged_windows: int
    point_precision: float
    point_recall: float
    point_f1: float
    events: int
    detected: int
    event_precision: float
    event_recall: float
    event_f1: float
    mean_time_to_detect_windows: float | None  # None when no event was detected
    alerts: int
    false_alarms: int
    stream_days: float
    false_alarms_per_stream_day: float
    false_alarms_per_stream_week: float
    event_outcomes: tuple[EventOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-ready dict: the scalars, plus the per-event time to detect as a list.

        ``time_to_detect_windows`` follows the events in input order, ``None`` for a miss.
        """
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "event_outcomes"
        }
        out["time_to_detect_windows"] = [e.time_to_detect_windows for e in self.event_outcomes]
        return out


def detection_metrics(
    outcomes: Sequence[StreamOutcome], grace_windows: int = 2
) -> DetectionMetrics:
    """Point-wise and event-wise metrics of labelled runs over many streams.

    A window is labelled anomalous when it overlaps a label. Events are the label intervals; an
    event is detected when an alert overlaps ``[label.start, label.end + grace)`` with
    ``grace = grace_windows * window``. Its time to detect is ``(start of the earliest such
    alert - label.start) / window``, floored at 0 (an alert already open counts as immediate).
    An alert overlapping no grace-extended label is a false alarm. Stream-days are the summed
    ``n * window / 86400`` over streams; rates over zero stream-days are 0.0. Precision, recall
    and F1 define 0/0 as 0.0.

    One stream, ten hourly windows, one incident over windows 3-5 caught by an alert opened at
    window 4, and one stray alert at window 8:

    >>> H = 3600.0
    >>> run = StreamOutcome(
    ...     stream="schedd:a", starts=np.arange(10) * H, window=H, scores=np.zeros(10),
    ...     flagged=np.isin(np.arange(10), [4, 5, 8]),
    ...     alerts=((4 * H, 7 * H), (8 * H, 10 * H)), labels=((3 * H, 6 * H),))
    >>> m = detection_metrics([run])
    >>> round(m.point_precision, 3), round(m.point_recall, 3), m.detected, m.false_alarms
    (0.667, 0.667, 1, 1)
    >>> m.event_precision, m.mean_time_to_detect_windows
    (0.5, 1.0)
    """
    if grace_windows < 0:
        raise ValueError(f"grace_windows must be >= 0, got {grace_windows}")
    windows = labelled = flagged = hits = 0
    alerts = true_alerts = 0
    stream_days = 0.0
    events: list[EventOutcome] = []
    for run in outcomes:
        ends = run.starts + run.window
        is_labelled = np.zeros(run.starts.shape, dtype=bool)
        for start, end in run.labels:
            is_labelled |= _overlaps(run.starts, ends, start, end)
        windows += run.starts.size
        labelled += int(is_labelled.sum())
        flagged += int(run.flagged.sum())
        hits += int((is_labelled & run.flagged).sum())
        stream_days += run.starts.size * run.window / SECONDS_PER_DAY

        grace = grace_windows * run.window
        alert_starts = np.array([a for a, _ in run.alerts], dtype=float)
        alert_ends = np.array([b for _, b in run.alerts], dtype=float)
        explained = np.zeros(alert_starts.shape, dtype=bool)
        for start, end in run.labels:
            hit = _overlaps(alert_starts, alert_ends, start, end + grace)
            explained |= hit
            ttd = None
            if hit.any():
                ttd = max(0.0, (float(alert_starts[hit].min()) - start) / run.window)
            events.append(EventOutcome(run.stream, start, end, ttd))
        alerts += alert_starts.size
        true_alerts += int(explained.sum())

    point_precision = _ratio(hits, flagged)
    point_recall = _ratio(hits, labelled)
    detected_ttd = [e.time_to_detect_windows for e in events if e.detected]
    event_precision = _ratio(true_alerts, alerts)
    event_recall = _ratio(len(detected_ttd), len(events))
    false_alarms = alerts - true_alerts
    per_day = _ratio(false_alarms, stream_days)
    return DetectionMetrics(
        windows=windows,
        labelled_windows=labelled,
        flagged_windows=flagged,
        point_precision=point_precision,
        point_recall=point_recall,
        point_f1=_f1(point_precision, point_recall),
        events=len(events),
        detected=len(detected_ttd),
        event_precision=event_precision,
        event_recall=event_recall,
        event_f1=_f1(event_precision, event_recall),
        mean_time_to_detect_windows=(float(np.mean(detected_ttd)) if detected_ttd else None),
        alerts=alerts,
        false_alarms=false_alarms,
        stream_days=stream_days,
        false_alarms_per_stream_day=per_day,
        false_alarms_per_stream_week=per_day * DAYS_PER_WEEK,
        event_outcomes=tuple(events),
    )


def best_point_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The best point-wise F1 of one stream over all thresholds, and the threshold achieving it.

    Rows with ``score >= threshold`` are flagged; ``F1 = 2 TP / (2 TP + FP + FN)``, with no
    point adjustment. Every distinct score is tried as a threshold (any other flags the same
    rows as one of them). When several reach the best F1 the highest wins: the fewest flags for
    the same quality, as NAB's optimiser breaks its ties. A stream without positive labels has
    no F1 to optimise (any threshold flagging nothing is perfect) and gives ``(nan, nan)``, so
    that callers leave it out of a mean rather than count it as 0 or 1.

    >>> best_point_f1(np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0, 0], dtype=bool))
    (1.0, 0.9)
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError("scores and labels must be 1-D, same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    positives = int(labels.sum())
    if positives == 0:
        return math.nan, math.nan
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    hits = np.cumsum(labels[order])
    # The last row of each run of equal scores: a threshold flags all of a tie or none of it.
    last = np.ones(ranked.size, dtype=bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    flagged = np.flatnonzero(last) + 1  # rows at or over each distinct score
    # 2TP + FP + FN = 2TP + (flagged - TP) + (positives - TP) = flagged + positives.
    f1 = 2.0 * hits[last] / (flagged + positives)
    best = int(np.argmax(f1))  # first maximum: the highest threshold
    return float(f1[best]), float(ranked[last][best])


def mean_best_point_f1(
    streams: Iterable[tuple[np.ndarray, np.ndarray]],
) -> tuple[float | None, int]:
    """The mean of :func:`best_point_f1` over ``(scores, labels)`` streams, and how many counted.

    Streams without positive labels are left out (their F1 is undefined); with none left the
    mean is None, like ``mean_time_to_detect_windows`` without a detection, so JSON stays valid.
    """
    found = [best_point_f1(scores, labels)[0] for scores, labels in streams]
    kept = [f1 for f1 in found if not math.isnan(f1)]
    return (float(np.mean(kept)) if kept else None), len(kept)


def _overlaps(starts: np.ndarray, ends: np.ndarray, start: float, end: float) -> np.ndarray:
    """Which ``[starts, ends)`` intervals overlap ``[start, end)``; an empty one is an instant."""
    if end > start:
        return (starts < end) & (start < ends)
    return (starts <= start) & (start < ends)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2.0 * precision * recall, precision + recall)
