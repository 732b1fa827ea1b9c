"""The evaluation report: one PNG per stream and a plain ``index.html`` that shows them.

A number says how good a detector is; a plot says why: what the series did, when the labels
were, where the score crossed the threshold and which alerts followed. Each plot has the
series on top (shaded orange where labelled, grey over training or probation rows, a red strip
where alerted) and the score below with the threshold line (red marks under flagged windows).

Plots are drawn with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``), never pyplot,
so a report selects no backend and leaves no figures behind in the caller's process. Long
series are thinned to the minimum and maximum of each pixel-wide bucket: a spike survives, and
a stream of 8,000 windows draws as fast as one of 1,500.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gridalarm.evaluation.datasets import LabelledStream, safe_stem

__all__ = ["MAX_POINTS", "TOP_FEATURES", "ReportEntry", "plot_stream", "write_report"]

MAX_POINTS = 1600  # points drawn per line; about the plot's width in pixels
TOP_FEATURES = 3  # features drawn for a multi-feature stream, by variance
PLOTS_DIR = "plots"
_LABEL_COLOUR = "#f4a340"
_ALERT_COLOUR = "#d62728"
_SCORE_COLOUR = "#1f4e9a"
_TRAIN_COLOUR = "#b0b0b0"
_DAY = 86_400.0


@dataclass(frozen=True, slots=True, eq=False)
class ReportEntry:
    """What the report shows of one stream: its data, the detector's scores (0..100, one per
    window), the score cut, which windows were flagged, and the alerts as [start, end) epoch
    seconds. Equality is identity (the fields are arrays)."""

    stream: LabelledStream
    scores: np.ndarray
    threshold: float
    flagged: np.ndarray
    alerts: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.stream)
        scores = np.asarray(self.scores, dtype=np.float64)
        flagged = np.asarray(self.flagged, dtype=bool)
        if scores.shape != (n,) or flagged.shape != (n,):
            raise ValueError(
                f"stream {self.stream.name!r}: scores {scores.shape} and flagged {flagged.shape}"
                f" must both have one entry per window ({n})"
            )
        if not 0.0 <= self.threshold <= 100.0:
            raise ValueError(f"threshold must be within 0..100, got {self.threshold!r}")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "flagged", flagged)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "alerts", tuple((float(a), float(b)) for a, b in self.alerts))


def write_report(
    out_dir: Path | str,
    title: str,
    entries: Sequence[ReportEntry],
    metrics: Mapping[str, Any],
    *,
    features: Sequence[str] = (),
) -> Path:
    """Write ``out_dir/plots/<stream>.png`` for every entry and ``out_dir/index.html``; return
    the index's path.

    ``metrics`` become a two-column table; nested mappings (and dataclasses) are flattened
    into ``outer / inner`` rows. ``features`` names the value columns for the plot legends.
    Image names are file-safe whatever the stream name (see
    :func:`~gridalarm.evaluation.datasets.safe_stem`).
    """
    out = Path(out_dir)
    (out / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    images = []
    for entry in entries:
        image = Path(PLOTS_DIR) / f"{safe_stem(entry.stream.name)}.png"
        plot_stream(entry, out / image, features)
        images.append(image.as_posix())
    index = out / "index.html"
    partial = index.with_name(index.name + ".tmp")
    partial.write_text(_html(title, entries, images, metrics), encoding="utf-8")
    os.replace(partial, index)
    return index


# -- plots -----------------------------------------------------------------------------------


def plot_stream(entry: ReportEntry, path: Path | str, features: Sequence[str] = ()) -> Path:
    """Draw one stream's plot to ``path`` (PNG) and return the path."""
    stream = entry.stream
    names = list(features) if len(features) == stream.values.shape[1] else []
    figure = Figure(figsize=(12, 5.2), dpi=100)
    FigureCanvasAgg(figure)
    # Fixed margins: a layout engine would draw the figure twice, doubling the cost of a plot.
    figure.subplots_adjust(left=0.055, right=0.985, top=0.94, bottom=0.1, hspace=0.08)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    x = _date_numbers(stream.starts)
    step = stream.step if math.isfinite(stream.step) and stream.step > 0 else 1.0

    columns, description = _series(stream.values, names)
    for column, label in columns:
        top.plot(*_envelope(x, stream.values[:, column]), linewidth=0.8, label=label)
    top.set_title(f"{stream.name}{f'  [{stream.group}]' if stream.group else ''}: {description}")
    top.margins(x=0)

    bottom.plot(*_envelope(x, entry.scores), color=_SCORE_COLOUR, linewidth=0.8)
    bottom.axhline(entry.threshold, color=_ALERT_COLOUR, linestyle="--", linewidth=1.0)
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("score")
    bottom.margins(x=0)

    labels = _to_days(stream.labels)
    alerts = _to_days(entry.alerts)
    flagged = _to_days(_runs(stream.starts, entry.flagged, step))
    training = []
    if stream.train_until is not None and len(stream):
        training = [(float(stream.starts.min()), stream.train_until)]
    for axes in (top, bottom):
        _spans(axes, _to_days(training), 0.0, 1.0, _TRAIN_COLOUR, 0.25)
        _spans(axes, labels, 0.0, 1.0, _LABEL_COLOUR, 0.3)
        _spans(axes, alerts, 0.93, 1.0, _ALERT_COLOUR, 0.9)
    _spans(bottom, flagged, 0.0, 0.05, _ALERT_COLOUR, 0.9)

    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if len(x):
        bottom.set_xlim(x.min(), x.max() + step / _DAY)
    handles = [
        Patch(color=_LABEL_COLOUR, alpha=0.3, label=f"label ({len(stream.labels)})"),
        Patch(color=_ALERT_COLOUR, alpha=0.9, label=f"alert ({len(entry.alerts)})"),
        Line2D([], [], color=_ALERT_COLOUR, linestyle="--", label=f"threshold {entry.threshold:g}"),
        Patch(color=_ALERT_COLOUR, label=f"flagged ({int(entry.flagged.sum())} windows)"),
    ]
    if training:
        handles.append(Patch(color=_TRAIN_COLOUR, alpha=0.25, label="training / probation"))
    bottom.legend(handles=handles, loc="upper left", fontsize=8, ncols=5, framealpha=0.8)
    if columns and columns[0][1]:
        top.legend(loc="upper left", fontsize=8, framealpha=0.8)
    figure.savefig(path, format="png")
    return Path(path)


def _series(values: np.ndarray, names: list[str]) -> tuple[list[tuple[int, str]], str]:
    """Which columns to draw, with legend labels, and how the title describes them."""
    width = values.shape[1]
    if width == 0 or values.shape[0] == 0:
        return [], "no data"
    if width == 1:
        return [(0, "")], names[0] if names else "value"
    spread = values.var(axis=0)
    chosen = sorted(np.argsort(-spread, kind="stable")[:TOP_FEATURES].tolist())
    label = [(i, names[i] if names else f"feature {i}") for i in chosen]
    return label, f"top {len(chosen)} of {width} features by variance"


def _date_numbers(seconds: np.ndarray) -> np.ndarray:
    """Matplotlib date numbers (days since its epoch) of epoch seconds."""
    return np.asarray(seconds, dtype=np.float64) / _DAY + _epoch_offset()


def _epoch_offset() -> float:
    return float(mdates.date2num(np.datetime64("1970-01-01T00:00:00")))


def _to_days(intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    if not len(intervals):
        return np.empty((0, 2))
    return _date_numbers(np.asarray(intervals, dtype=np.float64))


def _runs(starts: np.ndarray, mask: np.ndarray, step: float) -> list[tuple[float, float]]:
    """[first start, last start + step) of every run of consecutive True rows."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1) - 1
    return list(zip(starts[first].tolist(), (starts[last] + step).tolist(), strict=True))


def _spans(axes: Axes, days: np.ndarray, y0: float, y1: float, colour: str, alpha: float) -> None:
    """Vertical bands over [start, end) in data x, from y0 to y1 of the axes' height; one
    collection for all of them (hundreds of ``axvspan`` calls would dominate the drawing)."""
    if not len(days):
        return
    a, b = days[:, 0], days[:, 1]
    verts = np.empty((len(days), 4, 2))
    verts[:, :, 0] = np.stack([a, a, b, b], axis=1)
    verts[:, :, 1] = (y0, y1, y1, y0)
    collection = PolyCollection(
        verts,
        facecolors=colour,
        edgecolors=colour,
        linewidths=0.5,  # a band narrower than a pixel still shows
        alpha=alpha,
        transform=axes.get_xaxis_transform(),
    )
    axes.add_collection(collection, autolim=False)


def _envelope(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """At most ``limit`` points of (x, y): for long series, the minimum and the maximum of each
    bucket of consecutive points, in time order, so peaks and dips survive the thinning."""
    n = len(y)
    if n <= limit:
        return x, y
    buckets = limit // 2
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    padded = np.pad(np.asarray(y, dtype=np.float64), (0, buckets * size - n), mode="edge")
    blocks = padded.reshape(buckets, size)
    base = np.arange(buckets) * size
    low = np.minimum(base + blocks.argmin(axis=1), n - 1)
    high = np.minimum(base + blocks.argmax(axis=1), n - 1)
    order = np.stack([np.minimum(low, high), np.maximum(low, high)], axis=1).ravel()
    return x[order], y[order]


# -- index.html ------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0 0 2em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
"""


def _html(
    title: str, entries: Sequence[ReportEntry], images: Sequence[str], metrics: Mapping[str, Any]
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<h2>Metrics</h2>",
    ]
    rows = list(_flatten(metrics))
    if rows:
        parts.append("<table><tr><th>metric</th><th>value</th></tr>")
        parts.extend(
            f'<tr><td>{esc(key)}</td><td class="n">{esc(value)}</td></tr>' for key, value in rows
        )
        parts.append("</table>")
    else:
        parts.append("<p>No metrics.</p>")
    parts.append(f"<h2>Streams ({len(entries)})</h2>")
    if entries:
        parts.append(
            "<table><tr><th>stream</th><th>group</th><th>windows</th><th>label intervals</th>"
            "<th>flagged windows</th><th>alerts</th><th>max score</th></tr>"
        )
        for i, entry in enumerate(entries):
            stream = entry.stream
            top = f"{entry.scores.max():.1f}" if len(stream) else "–"
            parts.append(
                f'<tr><td><a href="#s{i}">{esc(stream.name)}</a></td><td>{esc(stream.group)}</td>'
                f'<td class="n">{len(stream)}</td><td class="n">{len(stream.labels)}</td>'
                f'<td class="n">{int(entry.flagged.sum())}</td>'
                f'<td class="n">{len(entry.alerts)}</td><td class="n">{top}</td></tr>'
            )
        parts.append("</table>")
    for i, (entry, image) in enumerate(zip(entries, images, strict=True)):
        name = esc(entry.stream.name)
        parts.append(
            f'<figure id="s{i}"><figcaption>{name}</figcaption>'
            f'<img src="{esc(image)}" alt="{name}" loading="lazy"></figure>'
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in metrics.items():
        label = f"{prefix} / {key}" if prefix else str(key)
        if is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        if isinstance(value, Mapping):
            yield from _flatten(value, label)
        else:
            yield label, _format(value)


def _format(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–" if math.isnan(value) else str(value)
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_format(item) for item in value)
    return str(value)
