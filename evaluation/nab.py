"""The Numenta Anomaly Benchmark (NAB) score, from NAB's published rules (Lavin & Ahmad 2015).

Reimplemented rather than imported so that an evaluation needs no NAB checkout, no pandas and
no Python 2 era code; the rules below follow NAB v1.1's sweeper, optimiser and normaliser, so
the numbers compare with NAB's scoreboard.

Rules, per file of ``n`` rows (indices from 0):

* Probation: rows ``i < min(floor(0.15 * n), 0.15 * 5000)`` (at most 750) are ignored: they are
  neither true nor false positives. A window counts (as a hit or a miss) only if at least one of
  its rows is past probation.
* A detection is a row whose score is ``>= threshold``.
* Scaled sigmoid: ``S(x) = 2 / (1 + exp(5 x)) - 1``, and ``S(x) = -1`` for ``x > 3``.
  ``S(-1) = 0.98661``, ``S(0) = 0``, ``S(1) = -0.98661``.
* A window ``[start, end]`` (inclusive) covers rows ``l..r``, width ``w = r - l + 1``. A
  detection at row ``i`` inside it sits at ``x = -(r - i + 1) / w`` (``-1`` at the first row)
  and is worth ``A_TP * S(x) / S(-1)``: exactly ``A_TP`` at the first row, towards 0 at the
  end. Only the earliest detection of a window counts; a window without one costs ``-A_FN``.
* A detection at row ``i`` outside every window, after a window with last row ``r`` and width
  ``w``, sits at ``x = (i - r) / (w - 1)`` and is worth ``A_FP * S(x)``: nearly free right
  after the window, ``-A_FP`` from 3 widths on. With no preceding window it costs ``-A_FP``.
  (NAB divides by zero after a one-row window; here that case costs ``-A_FP``.)
* Raw score: the sum of those values over the files. The threshold is optimised over the whole
  corpus: every distinct score is tried, plus 1.1 (no detections), and the best raw score wins;
  ties go to the highest threshold, as NAB's stable sort does.
* Normalised score: ``100 * (raw - null) / (perfect - null)``. ``null`` is the detector that
  never detects (``-A_FN`` per counted window; NAB's null detector, a constant 0.5, optimises to
  that), ``perfect`` is ``A_TP`` per labelled window (NAB counts the windows of the labels
  file), which a detection at each window's first row earns.

Profiles are NAB's ``config/profiles.json``. Timestamps are epoch seconds (float); NAB's
timestamp strings, naive and read as UTC, convert with :func:`gridalarm.timeutil.parse_time`.
Everything is by row in file order, as in NAB: its corpus has repeated and backward timestamps
(clock changes in ``ec2_request_latency_system_failure``, ``machine_temperature_system_failure``),
so they are not required to ascend. Past the previous window, a window starts at the first row
at or after its start and ends at the first later row equal to its end (NAB's exact match),
else just before the first later row past it; so it need not start or end exactly on a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15
PROBATION_ROWS_BASE = 5000  # NAB caps probation at PROBATION_PERCENT * 5000 = 750 rows
NO_DETECTION_THRESHOLD = 1.1  # above every [0, 1] score: NAB's first sweep threshold


@dataclass(frozen=True, slots=True)
class NabProfile:
    """One NAB application profile: the weights of true positives, false positives and misses.

    ``tn_weight`` is listed by NAB but never enters the score.
    """

    name: str
    tp_weight: float  # A_TP
    fp_weight: float  # A_FP
    fn_weight: float  # A_FN
    tn_weight: float = 1.0


PROFILES: dict[str, NabProfile] = {
    p.name: p
    for p in (
        NabProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
        NabProfile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
        NabProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
    )
}


@dataclass(frozen=True, slots=True)
class NabFile:
    """One NAB data file as the scorer needs it: row times, anomaly scores, label windows.

    ``timestamps`` are epoch seconds in file order (datetime64 arrays are converted); they may
    repeat or step back, as in NAB's corpus. ``scores`` are in ``[0, 1]``; ``windows`` are
    ``(start, end)`` epoch seconds, inclusive, in order, each covering at least one row and
    disjoint from the next.
    """

    name: str
    timestamps: np.ndarray
    scores: np.ndarray
    windows: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        times = np.asarray(self.timestamps)
        if times.dtype.kind == "M":
            times = times.astype("datetime64[us]").astype(np.int64) / 1e6
        times = times.astype(float)
        scores = np.asarray(self.scores, dtype=float)
        if times.ndim != 1 or scores.shape != times.shape:
            raise ValueError(f"{self.name}: timestamps and scores must be 1-D, same length")
        if not np.all(np.isfinite(times)):
            raise ValueError(f"{self.name}: timestamps must be finite")
        if not np.all((scores >= 0.0) & (scores <= 1.0)):
            raise ValueError(f"{self.name}: anomaly scores must be in [0, 1] (and not NaN)")
        windows = tuple((float(a), float(b)) for a, b in self.windows)
        # Frozen: coercion has to go around __setattr__.
        object.__setattr__(self, "timestamps", times)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "windows", windows)
        _window_rows(self)  # validates the windows against the rows


@dataclass(frozen=True, slots=True)
class NabResult:
    """A corpus score under one profile at the corpus-optimal threshold."""

    profile: str
    threshold: float  # NO_DETECTION_THRESHOLD when detecting nothing scores best
    raw: float
    null: float
    perfect: float
    score: float  # normalised: 0 = null detector, 100 = perfect detector


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's weight of a relative position: ``2 / (1 + exp(5 x)) - 1``, and -1 past ``x = 3``.

    >>> scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.5])).round(5).tolist()
    [0.98661, 0.0, -0.98661, -1.0]
    """
    x = np.asarray(x, dtype=float)
    # Clipping only keeps exp() finite; the clipped values are replaced by -1 anyway.
    value = 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0
    return np.where(x > 3.0, -1.0, value)


def probation_rows(n: int) -> int:
    """How many leading rows NAB ignores: ``min(floor(0.15 n), 750)``.

    >>> probation_rows(10), probation_rows(4032), probation_rows(22695)
    (1, 604, 750)
    """
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * PROBATION_ROWS_BASE))


def score_file(file: NabFile, threshold: float, profile: NabProfile) -> float:
    """The raw NAB score of one file when rows scoring ``>= threshold`` are detections.

    Ten rows, one window over rows 5-8; a detection at its first row earns exactly ``A_TP``,
    a second one in the window adds nothing, one before any window costs ``A_FP``:

    >>> f = NabFile("toy", np.arange(10.0), np.zeros(10), ((5.0, 8.0),))
    >>> score_file(f, 0.5, PROFILES["standard"])
    -1.0
    >>> hits = NabFile("toy", np.arange(10.0), np.isin(np.arange(10), [2, 5, 6]), ((5.0, 8.0),))
    >>> round(score_file(hits, 0.5, PROFILES["standard"]), 6)
    0.89
    """
    rows = _rows(file)
    detected = rows.scorable & (file.scores >= threshold)
    outside = detected & (rows.window < 0)
    total = profile.fp_weight * float(rows.fp_unit[outside].sum())
    inside = np.flatnonzero(detected & (rows.window >= 0))
    # Rows are in file order, so a window's first row among detections is its earliest.
    _, first = np.unique(rows.window[inside], return_index=True)
    total += profile.tp_weight * float(rows.tp_unit[inside[first]].sum())
    total -= profile.fn_weight * (rows.counted_windows - first.size)
    return total


def score_corpus(files: Sequence[NabFile], profile: NabProfile) -> NabResult:
    """Optimise one threshold over the corpus and score it, normalised like NAB.

    One sorted sweep: rows of all files go through in descending score order, and each changes
    the corpus score by its FP cost or by how much it improves its window's earliest detection;
    the cumulative sum at the last row of each distinct score is that threshold's score.

    >>> f = NabFile("toy", np.arange(10.0), np.isin(np.arange(10), [5]) * 0.9, ((5.0, 8.0),))
    >>> r = score_corpus([f], PROFILES["standard"])
    >>> r.threshold, r.raw, r.null, r.perfect, r.score
    (0.9, 1.0, -1.0, 1.0, 100.0)
    """
    all_rows = [_rows(f) for f in files]
    null = -profile.fn_weight * sum(r.counted_windows for r in all_rows)
    perfect = profile.tp_weight * sum(len(f.windows) for f in files)
    if perfect == null:
        raise ValueError("the corpus has no anomaly windows: its NAB score is undefined")

    scores, window, tp_value, fp_value = [], [], [], []
    window_offset = 0
    for f, r in zip(files, all_rows, strict=True):
        keep = r.scorable
        scores.append(f.scores[keep])
        # Window ids unique over the corpus; -1 stays "outside".
        window.append(np.where(r.window[keep] >= 0, r.window[keep] + window_offset, -1))
        tp_value.append(profile.tp_weight * r.tp_unit[keep])
        fp_value.append(profile.fp_weight * r.fp_unit[keep])
        window_offset += len(f.windows)
    score = np.concatenate(scores) if scores else np.zeros(0)
    win = np.concatenate(window) if window else np.zeros(0, dtype=np.int64)
    tp = np.concatenate(tp_value) if tp_value else np.zeros(0)
    fp = np.concatenate(fp_value) if fp_value else np.zeros(0)

    order = np.argsort(-score, kind="stable")
    win_sorted = win[order]
    delta = np.where(win_sorted < 0, fp[order], 0.0)
    inside = np.flatnonzero(win_sorted >= 0)
    if inside.size:
        # Group the in-window rows by window, keeping descending score order within each.
        grouped = inside[np.argsort(win_sorted[inside], kind="stable")]
        group = win_sorted[grouped].astype(np.int64)
        row = order[grouped].astype(np.int64)  # corpus row index: file order within a file
        # Earliest detected row so far per window, by one running minimum: offsetting each
        # window by -group * span puts every key below those of earlier windows, so the
        # minimum restarts at each window without a Python loop.
        span = np.int64(score.size + 1)
        earliest = np.minimum.accumulate(row - group * span) + group * span
        best = tp[earliest]
        starts = np.ones(group.size, dtype=bool)
        starts[1:] = group[1:] != group[:-1]
        before = np.empty_like(best)
        before[0] = 0.0
        before[1:] = best[:-1]
        delta[grouped] = best - np.where(starts, -profile.fn_weight, before)
    total = np.cumsum(delta)
    score_sorted = score[order]
    last = np.ones(score_sorted.size, dtype=bool)
    last[:-1] = score_sorted[1:] != score_sorted[:-1]
    thresholds = np.concatenate(([NO_DETECTION_THRESHOLD], score_sorted[last]))
    raws = null + np.concatenate(([0.0], total[last]))
    threshold = float(thresholds[int(np.argmax(raws))])  # first maximum: highest threshold
    # Rescored file by file so the reported raw does not carry the sweep's rounding.
    raw = sum(score_file(f, threshold, profile) for f in files)
    return NabResult(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        null=null,
        perfect=perfect,
        score=100.0 * (raw - null) / (perfect - null),
    )


def nab_scores(files: Sequence[NabFile]) -> dict[str, float]:
    """The normalised NAB score under each profile, each at its own optimal threshold."""
    return {name: score_corpus(files, profile).score for name, profile in PROFILES.items()}


def read_windows(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """NAB's ``combined_windows.json``: file key (``"realKnownCause/nyc_taxi.csv"``) to windows.

    Timestamps stay NAB's strings (``"2014-04-10 07:15:00.000000"``); convert them with
    :func:`gridalarm.timeutil.parse_time`.
    """
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of file -> windows")
    out: dict[str, list[tuple[str, str]]] = {}
    for key, windows in raw.items():
        pairs = []
        for window in windows:
            if not (isinstance(window, list) and len(window) == 2):
                raise ValueError(f"{path}: {key}: a window is [start, end], got {window!r}")
            pairs.append((str(window[0]), str(window[1])))
        out[str(key)] = pairs
    return out


@dataclass(frozen=True, slots=True)
class _Rows:
    """Per-row parts of a file's score, independent of threshold and profile weights."""

    scorable: np.ndarray  # bool: past probation
    window: np.ndarray  # int: index of the window holding the row, -1 outside
    tp_unit: np.ndarray  # S(x) / S(-1) in windows, 0 outside
    fp_unit: np.ndarray  # S(x) (negative) outside windows, 0 inside
    counted_windows: int  # windows with a row past probation


def _window_rows(file: NabFile) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of each window, checked to be non-empty, ordered and disjoint."""
    times = file.timestamps
    first = np.zeros(len(file.windows), dtype=np.int64)
    last = np.zeros(len(file.windows), dtype=np.int64)
    previous_end = -math.inf
    after = 0  # like NAB, look for a window only past the previous one
    for k, (start, end) in enumerate(file.windows):
        if not previous_end < start <= end:
            raise ValueError(f"{file.name}: windows must be in order, disjoint, start <= end")
        previous_end = end
        at_or_after = np.flatnonzero(times[after:] >= start)
        if at_or_after.size == 0:
            raise ValueError(f"{file.name}: window ({start}, {end}) holds no row")
        a = after + int(at_or_after[0])
        reached = np.flatnonzero(times[a:] >= end)
        if reached.size == 0:
            b = times.size - 1
        else:
            # NAB ends a window on the row equal to its end; else stop before the row past it.
            b = a + int(reached[0]) - (0 if times[a + reached[0]] == end else 1)
        if b < a:
            raise ValueError(f"{file.name}: window ({start}, {end}) holds no row")
        first[k], last[k] = a, b
        after = b + 1
    return first, last


def _rows(file: NabFile) -> _Rows:
    n = file.timestamps.size
    first, last = _window_rows(file)
    index = np.arange(n)
    window = np.full(n, -1, dtype=np.int64)
    tp_unit = np.zeros(n)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (a, b) in enumerate(zip(first, last, strict=True)):
        width = b - a + 1
        window[a : b + 1] = k
        tp_unit[a : b + 1] = scaled_sigmoid(-(b - index[a : b + 1] + 1) / width) / max_tp

    fp_unit = np.zeros(n)
    outside = window < 0
    # The window that precedes each row: the last one whose last row is before it.
    before = np.searchsorted(last, index, side="left") - 1
    has_before = outside & (before >= 0)
    fp_unit[outside] = -1.0
    if has_before.any():
        k = before[has_before]
        widths = (last - first + 1)[k]
        distance = (index[has_before] - last[k]).astype(float)
        position = np.where(widths > 1, distance / np.maximum(widths - 1, 1), np.inf)
        fp_unit[has_before] = scaled_sigmoid(position)

    probation = probation_rows(n)
    return _Rows(
        scorable=index >= probation,
        window=window,
        tp_unit=tp_unit,
        fp_unit=fp_unit,
        counted_windows=int(np.count_nonzero(last >= probation)),
    )
