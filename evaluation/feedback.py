"""Operators' feedback labels as ground truth for ``train`` and ``evaluate`` (``--labels-topic``).

A label is an operator's verdict on one alert (:mod:`gridalarm.labels`); its incident is the
alert's stream and span, [since, end of its last anomalous window). What each verdict means:

- ``confirmed``: the span is an anomaly interval, like a row of a labels CSV. ``evaluate``
  counts an alert there as a detection; ``train --detector lstm-classifier`` learns those
  windows as anomalies; ``train --detector lstm-forecast`` leaves them out of its training
  data (it learns what normal looks like).
- ``false-positive``: the span is normal. Nothing is added: an alert there counts as a false
  alarm in ``evaluate``, and the classifier learns those windows as normal.

With a labels CSV as well, the CSV stays the ground truth and confirmed spans are added to it;
a false-positive label does not remove a CSV interval. Without one, every alert outside the
confirmed spans counts as a false alarm, whether or not anybody labelled it.

Pure: the labels and alert messages are read by the CLI and passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridalarm.evaluation.datasets import Interval, LabelledSet, LabelledStream
from gridalarm.evaluation.evaluate import window_labels
from gridalarm.labels import Incident
from gridalarm.timeutil import parse_time


@dataclass(frozen=True, slots=True)
class Feedback:
    """Labelled spans per stream, by verdict."""

    confirmed: dict[str, tuple[Interval, ...]]
    false_positive: dict[str, tuple[Interval, ...]]
    unplaced: tuple[str, ...]  # alert ids whose stream or span is unknown (not used)

    def summary(self) -> str:
        """One line: how many labels of each kind were used."""
        confirmed = sum(len(v) for v in self.confirmed.values())
        false = sum(len(v) for v in self.false_positive.values())
        text = f"{confirmed} confirmed, {false} false-positive"
        if self.unplaced:
            text += f", {len(self.unplaced)} without a known span (not used)"
        return text


def feedback(labels: dict[str, dict[str, Any]], known: dict[str, Incident]) -> Feedback:
    """Spans of the labelled alerts: from their incidents on the alerts topic (``known``),
    else from what the label itself records."""
    spans: dict[str, dict[str, list[Interval]]] = {"confirmed": {}, "false-positive": {}}
    unplaced = []
    for alert_id, label in sorted(labels.items()):
        incident = known.get(alert_id)
        if incident is not None:
            stream, span = incident.stream, (incident.since, incident.end)
        elif {"stream", "since", "end"} <= label.keys():
            stream = label["stream"]
            span = (parse_time(label["since"]), parse_time(label["end"]))
        else:
            unplaced.append(alert_id)
            continue
        if span[1] > span[0]:
            spans[label["label"]].setdefault(stream, []).append(span)
        else:
            unplaced.append(alert_id)
    return Feedback(
        confirmed=_tuples(spans["confirmed"]),
        false_positive=_tuples(spans["false-positive"]),
        unplaced=tuple(unplaced),
    )


def _tuples(spans: dict[str, list[Interval]]) -> dict[str, tuple[Interval, ...]]:
    return {stream: tuple(sorted(items)) for stream, items in spans.items()}


def merged(intervals: list[Interval]) -> tuple[Interval, ...]:
    """The union of half-open intervals, as sorted disjoint intervals."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def with_feedback(data: LabelledSet, labelled: Feedback) -> LabelledSet:
    """``data`` with the confirmed spans added to its streams' anomaly intervals (streams the
    data does not hold are ignored: the labels cover a whole pool, the data may not)."""
    streams = []
    for stream in data.streams:
        added = labelled.confirmed.get(stream.name, ())
        labels = merged([*stream.labels, *added]) if added else stream.labels
        streams.append(
            LabelledStream(
                stream.name, stream.starts, stream.values, labels, stream.train_until,
                stream.group,
            )
        )  # fmt: skip
    return LabelledSet(data.name, data.window, data.features, tuple(streams))


def without_labelled(data: LabelledSet) -> LabelledSet:
    """``data`` without its windows that overlap an anomaly interval: each stream is cut into
    its runs of unlabelled windows (``name``, ``name~2``, ...), so that every run stays evenly
    spaced; runs shorter than 2 windows are dropped."""
    streams = []
    for stream in data.streams:
        flags = window_labels(stream)
        if not flags.any():
            streams.append(stream)
            continue
        keep = np.flatnonzero(~flags)
        runs = np.split(keep, np.flatnonzero(np.diff(keep) > 1) + 1) if len(keep) else []
        pieces = [run for run in runs if len(run) >= 2]
        for k, rows in enumerate(pieces, start=1):
            streams.append(
                LabelledStream(
                    stream.name if k == 1 else f"{stream.name}~{k}",
                    stream.starts[rows], stream.values[rows], (), stream.train_until,
                    stream.group,
                )
            )  # fmt: skip
    return LabelledSet(data.name, data.window, data.features, tuple(streams))
