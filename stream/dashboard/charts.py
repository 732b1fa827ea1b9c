"""Inline SVG charts for the stream page: plain functions from numbers to markup.

Server-side SVG needs no chart library in the browser (nothing to fetch from a CDN, nothing to
build) and is testable here. Times are window starts in epoch seconds; a window is drawn at
its middle. NaN values (a window with no score or no counts) break the line instead of being
drawn as zero, which would look like an outage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np


@dataclass(frozen=True, slots=True)
class Box:
    """Chart geometry in SVG user units (the SVG scales to its container)."""

    width: int = 720
    height: int = 120
    left: int = 48
    right: int = 8
    top: int = 8
    bottom: int = 18

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


@dataclass(frozen=True, slots=True)
class Span:
    """A shaded time range (an alert), with a CSS class saying what kind."""

    start: float
    end: float
    kind: str


@dataclass(frozen=True, slots=True)
class Axis:
    """Maps window times and values to SVG coordinates."""

    box: Box
    t0: float
    t1: float
    y_max: float

    def x(self, t: float) -> float:
        span = self.t1 - self.t0
        share = 0.5 if span <= 0 else (t - self.t0) / span
        return round(self.box.left + min(max(share, 0.0), 1.0) * self.box.plot_width, 1)

    def y(self, value: float) -> float:
        share = 0.0 if self.y_max <= 0 else value / self.y_max
        share = min(max(share, 0.0), 1.0)
        return round(self.box.top + (1.0 - share) * self.box.plot_height, 1)


def clock(t: float, with_date: bool = False) -> str:
    """``HH:MM`` (or ``YYYY-MM-DD HH:MM``) in UTC."""
    stamp = datetime.fromtimestamp(t, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def number(value: float) -> str:
    """A short label for a value: 12, 0.35, 1.2k, 3.4M."""
    if not math.isfinite(value):
        return "–"
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.1f}M"
    if size >= 1e4:
        return f"{value / 1e3:.1f}k"
    if size >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2g}" if size < 1 else f"{value:.1f}"


def path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """An SVG path through the points, broken where a y is NaN; "" when nothing is drawn."""
    parts: list[str] = []
    pen_down = False
    for x, y in zip(xs, ys, strict=True):
        if math.isnan(y):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:g},{y:g}")
        pen_down = True
    return " ".join(parts)


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (at least 1): a round axis top."""
    if not math.isfinite(value) or value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _frame(axis: Axis, label: str, y_label: str) -> list[str]:
    box = axis.box
    bottom = box.top + box.plot_height
    return [
        f'<svg class="chart" viewBox="0 0 {box.width} {box.height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="plot" x="{box.left}" y="{box.top}" width="{box.plot_width:g}" '
        f'height="{box.plot_height:g}"/>',
        f'<text class="tick" x="{box.left - 4}" y="{box.top + 8}" text-anchor="end">'
        f"{escape(y_label)}</text>",
        f'<text class="tick" x="{box.left - 4}" y="{bottom}" text-anchor="end">0</text>',
        f'<text class="tick" x="{box.left}" y="{box.height - 4}">'
        f"{clock(axis.t0, with_date=True)}</text>",
        f'<text class="tick" x="{box.width - box.right}" y="{box.height - 4}" '
        f'text-anchor="end">{clock(axis.t1)}</text>',
    ]


def _spans(axis: Axis, spans: Sequence[Span]) -> list[str]:
    out = []
    for span in spans:
        if span.end <= axis.t0 or span.start >= axis.t1:
            continue
        x0, x1 = axis.x(span.start), axis.x(span.end)
        out.append(
            f'<rect class="span {escape(span.kind)}" x="{x0:g}" y="{axis.box.top}" '
            f'width="{max(x1 - x0, 1.0):g}" height="{axis.box.plot_height:g}">'
            f"<title>alert {escape(span.kind)} {clock(span.start, True)}–{clock(span.end)}"
            "</title></rect>"
        )
    return out


def _axis(starts: np.ndarray, width: float, top: float, box: Box) -> Axis:
    t0 = float(starts[0]) if starts.size else 0.0
    t1 = float(starts[-1]) + width if starts.size else 1.0
    return Axis(box, t0, t1, top)


def score_chart(
    starts: np.ndarray,
    width: float,
    scores: np.ndarray,
    anomalous: np.ndarray,
    threshold: float,
    spans: Sequence[Span] = (),
    link: Callable[[float], str] | None = None,
    selected: float | None = None,
    box: Box | None = None,
) -> str:
    """Score (0..100) per window against the threshold; anomalous windows are dots that link
    to ``link(start)`` (the stream page with that window selected)."""
    axis = _axis(starts, width, 100.0, box or Box())
    centres = [axis.x(t + width / 2) for t in starts]
    out = _frame(axis, "score against threshold", "100")
    out += _spans(axis, spans)
    if selected is not None and starts.size and axis.t0 <= selected < axis.t1:
        x0, x1 = axis.x(selected), axis.x(selected + width)
        out.append(
            f'<rect class="selected" x="{x0:g}" y="{axis.box.top}" width="{max(x1 - x0, 2):g}" '
            f'height="{axis.box.plot_height:g}"/>'
        )
    ty = axis.y(threshold)
    out.append(
        f'<line class="threshold" x1="{axis.box.left}" y1="{ty:g}" '
        f'x2="{axis.box.width - axis.box.right}" y2="{ty:g}"><title>threshold '
        f"{number(threshold)}</title></line>"
    )
    line = path(centres, [axis.y(float(s)) if not math.isnan(s) else math.nan for s in scores])
    if line:
        out.append(f'<path class="score" d="{line}"/>')
    for i, t in enumerate(starts):
        if not anomalous[i] or math.isnan(scores[i]):
            continue
        dot = (
            f'<circle class="anom" cx="{centres[i]:g}" cy="{axis.y(float(scores[i])):g}" r="3.5">'
            f"<title>{clock(float(t), True)} score {float(scores[i]):.1f}</title></circle>"
        )
        if link is not None:
            dot = f'<a href="{escape(link(float(t)))}">{dot}</a>'
        out.append(dot)
    out.append("</svg>")
    return "".join(out)


def feature_chart(
    name: str,
    starts: np.ndarray,
    width: float,
    observed: np.ndarray,
    expected: np.ndarray,
    spans: Sequence[Span] = (),
    box: Box | None = None,
) -> str:
    """One feature's observed counts per window, with the model's expected values where it
    gave them (dots, joined where consecutive) and alert spans shaded."""
    finite = [float(v) for v in (*observed, *expected) if not math.isnan(v)]
    axis = _axis(starts, width, nice_max(max(finite, default=1.0)), box or Box(height=90))
    centres = [axis.x(t + width / 2) for t in starts]
    out = _frame(axis, f"{name}: observed and expected", number(axis.y_max))
    out += _spans(axis, spans)
    seen = path(centres, [axis.y(float(v)) if not math.isnan(v) else math.nan for v in observed])
    if seen:
        out.append(f'<path class="observed" d="{seen}"/>')
    ey = [axis.y(float(v)) if not math.isnan(v) else math.nan for v in expected]
    guess = path(centres, ey)
    if guess:
        out.append(f'<path class="expected" d="{guess}"/>')
    for i, y in enumerate(ey):
        if not math.isnan(y):
            out.append(
                f'<circle class="expected" cx="{centres[i]:g}" cy="{y:g}" r="2.5"><title>'
                f"{clock(float(starts[i]), True)} expected {number(float(expected[i]))}, "
                f"observed {number(float(observed[i]))}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)
