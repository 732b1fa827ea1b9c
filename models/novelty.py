"""``novelty``: a streaming detector for gauges that learns each stream from its own warm-up.

No training job, no labels: every stream fits itself on its first ``warmup`` windows (NAB's
probationary period in the NAB evaluation, the train split for NASA MSL, a setting in the
worker) and keeps learning while it streams. Built after ARTime (M. Hampton, the best detector
on NAB's scoreboard) with Numenta HTM's out-of-range rule added, reimplemented in batched
numpy so that every stream of a worker steps in one call.

Per window, for one series per stream (a ``target`` feature, or the total of all features):

1. **Patterns.** Windows are gathered ``stride`` at a time, ``stride = warmup // (8·13)``, so
   that a warm-up is always about 104 patterns long whatever the window size. Each block gives
   one value: its extreme on the side away from the running level (a spike survives), or its
   mean when the extreme is within 10 % of it. Values are scaled by the range seen in the
   warm-up, quantised to 80 levels and pulled to the running median when within 0.075 of it
   (noise around a level is not a pattern). The last 8 values, as a min-max normalised Haar
   transform (shape at every scale) beside the values themselves (level), are the pattern.
2. **Memory.** A fuzzy ART memory per stream (:mod:`gridalarm.models.fuzzy_art`, 64
   categories) with two vigilances: a pattern no category matches at the lower one is novel.
3. **Fit.** At the end of the warm-up the vigilance is set from the warm-up itself (a fresh
   memory learns its patterns least typical first; the mean match of its second half), then
   the warm-up patterns are replayed through the live step, so a stream is scored from the
   next window on without having scored anything it was fitted on.
4. **Adaptation.** Every half warm-up (and 12 patterns after an alarm) the upper vigilance
   moves to the mean match so far and the lower one towards the lowest recent match, or down
   by the typical shortfall, but never below the matches of the alarms raised so far.
5. **Alarms.** A novel pattern raises an alarm, with a confidence that grows with how far its
   match fell below both vigilances and how badly its level matched: ``min(1, 0.35·u + 0.65·l
   + 1.5·(1 − es))``. After an alarm or any new kind of pattern, further alarms need a clearly
   worse match (0.9 or 0.7 of the last alarm's) until 12 quiet patterns have passed: one
   incident, one alarm. A value more than 5 % outside the range seen so far is an alarm of
   confidence 1 (HTM's spatial rule).
6. **Deviation tier.** Below the alarm level, every window carries how far its value lies
   from the warm-up's median in robust spreads, smoothed over the last pattern's span of
   windows (an exponential average), as ``0.49·z / (z + 4)``: never an alarm by itself,
   it ranks the windows between alarms (what a per-point evaluation and a dashboard read)
   and gives the explanation its expected value.

Evidence is in [0, 1]: :class:`~gridalarm.models.thresholds.ProbabilityThreshold` makes it the
0..100 score, so an alarm of confidence 0.5 or more is an anomalous window.

State per stream is one packed record (a numpy structured dtype, base64): 2.9 KB at the
defaults (3.9 KB as JSON text), most of it the 64 categories of 32 bytes. Before the fit, the
bytes of the category memory hold the warm-up's block values (there is no memory yet, and they
are not needed after).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pybase64

from gridalarm.models import fuzzy_art
from gridalarm.models.detector import DetectorOutput

NAME = "novelty"
VERSION = "1"


@dataclass(frozen=True, slots=True)
class NoveltyConfig:
    """Tuning of :class:`NoveltyDetector`. ``warmup`` and ``target`` are the usual settings;
    the rest are ARTime's constants (tuned on NAB's whole corpus by its author, not here)."""

    warmup: int = 104  # windows a stream fits on before it is scored
    target: int | None = None  # feature index judged; None: the total of all features
    pattern: int = 8  # block values per pattern (a power of two: the Haar transform)
    patterns_per_warmup: int = 13  # warm-up length in patterns: stride = warmup // (8 * 13)
    levels: int = 80  # quantisation of the scaled value
    snap: float = 0.075  # values this close to the running median become the median
    categories: int = 64  # fuzzy ART categories per stream
    initial_vigilance: float = 0.80
    mask: int = 12  # patterns after an alarm or a new kind in which alarms need a worse match
    spatial: float = 0.05  # out of the seen range by this share of it: an alarm
    deviation_half: float = 4.0  # z at which the deviation tier is half way to its cap
    deviation_cap: float = 0.49  # the deviation tier stays below the alarm level (0.5)

    def __post_init__(self) -> None:
        if self.warmup < 2 * self.pattern:
            raise ValueError(f"warmup must be at least {2 * self.pattern} windows")
        if self.pattern < 2 or self.pattern & (self.pattern - 1):
            raise ValueError("pattern must be a power of two")

    @property
    def stride(self) -> int:
        """Windows per block value."""
        return max(1, self._even_warmup // (self.pattern * self.patterns_per_warmup))

    @property
    def fit_at(self) -> int:
        """Block values in the warm-up; the fit runs when the last of them arrives."""
        return self._even_warmup // self.stride

    @property
    def _even_warmup(self) -> int:
        return self.warmup - self.warmup % 2


def haar_matrix(size: int) -> np.ndarray:
    """The orthonormal Haar analysis matrix of ``size`` points (a power of two), full depth.

    >>> h = haar_matrix(8); bool(np.allclose(h @ h.T, np.eye(8)))
    True
    """
    if size == 1:
        return np.ones((1, 1))
    half = haar_matrix(size // 2)
    averages = np.kron(half, [1.0, 1.0])
    details = np.kron(np.eye(size // 2), [1.0, -1.0])
    return np.vstack([averages, details]) / np.sqrt(2.0)


def _minmax(a: np.ndarray) -> np.ndarray:
    """Each row shifted to start at 0 and scaled to end at 1 (rows that are flat stay 0)."""
    a = a - a.min(axis=1, keepdims=True)
    top = a.max(axis=1, keepdims=True)
    return np.divide(a, top, out=np.zeros_like(a), where=top > 0)


class NoveltyDetector:
    """The ``novelty`` detector (see the module text). State: one packed record per stream."""

    name = NAME
    version = VERSION

    def __init__(self, config: NoveltyConfig | None = None) -> None:
        self.config = config or NoveltyConfig()
        cfg = self.config
        self._haar = haar_matrix(cfg.pattern)
        self._dim = 4 * cfg.pattern  # (wavelet + values) and their complements
        # The newest value and its complement: the "energy" of a pattern.
        self._energy = (2 * cfg.pattern - 1, 4 * cfg.pattern - 1)
        self._sims = cfg.fit_at // 2 + 1  # recent matches the lower vigilance looks at
        self._diffs = cfg.fit_at + 1  # recent shortfalls below the upper vigilance

    @cached_property
    def dtype(self) -> np.dtype:
        """The packed record of one stream's state (its size a multiple of 3: base64 without
        padding)."""
        cfg = self.config
        fields = [
            ("windows", "<u4"), ("blocks", "<u4"), ("block_sum", "<f8"), ("block_min", "<f8"),
            ("block_max", "<f8"), ("level", "<f8"), ("lo", "<f8"), ("hi", "<f8"),
            ("seen_lo", "<f8"), ("seen_hi", "<f8"), ("median", "<f8"), ("spread", "<f8"),
            ("lower", "<f4"), ("upper", "<f4"), ("match_sum", "<f8"), ("last_alarm", "<u4"),
            ("last_alarm_match", "<f4"), ("last_update", "<u4"), ("masked", "u1"),
            ("quiet", "<u4"), ("alarm_sum", "<f4"), ("alarm_count", "<u4"),
            ("alarm_last", "<f4"), ("count", "u1"), ("median_level", "u1"), ("above", "<u4"),
            ("below", "<u4"), ("deviation", "<f4"), ("recent", "u1", (cfg.pattern,)),
            ("histogram", "<u2", (cfg.levels + 1,)), ("sims", "<f2", (self._sims,)),
            ("diffs", "<f2", (self._diffs,)), ("used", "<u2", (cfg.categories,)),
            ("sizes", "<u2", (cfg.categories,)),
            ("weights", "u1", (cfg.categories, self._dim)),
        ]  # fmt: skip
        size = np.dtype(fields).itemsize
        if size % 3:
            fields.append(("pad", "u1", (3 - size % 3,)))
        return np.dtype(fields)

    # -- state ---------------------------------------------------------------------------------

    @cached_property
    def _fresh_record(self) -> bytes:
        return self._fresh(1).tobytes()

    def _fresh(self, n: int) -> np.ndarray:
        s = np.zeros(n, dtype=self.dtype)
        s["lower"] = s["upper"] = self.config.initial_vigilance
        s["sims"] = 1.0  # no low match seen yet
        return s

    def _decode(self, states: Sequence[Any]) -> np.ndarray:
        """Records of ``states``; a missing one, one of other settings or a damaged one starts
        afresh."""
        width = 4 * self.dtype.itemsize // 3
        decode, fresh = pybase64.b64decode, self._fresh_record
        try:
            # validate=True is pybase64's fast path (about a third faster than without).
            data = b"".join([
                decode(st, validate=True) if isinstance(st, str) and len(st) == width else fresh
                for st in states
            ])  # fmt: skip
        except ValueError:  # binascii.Error: some record is not base64; find it the slow way
            data = b"".join([self._decode_one(st, width) for st in states])
        return np.frombuffer(bytearray(data), dtype=self.dtype)

    def _decode_one(self, state: Any, width: int) -> bytes:
        if isinstance(state, str) and len(state) == width:
            try:
                return pybase64.b64decode(state, validate=True)
            except ValueError:
                pass
        return self._fresh_record

    def _encode(self, s: np.ndarray) -> list[str]:
        data = memoryview(s.tobytes())
        size = self.dtype.itemsize
        encode = pybase64.b64encode_as_string
        return [encode(data[k : k + size]) for k in range(0, len(data), size)]

    # -- the step --------------------------------------------------------------------------------

    def step(self, x: np.ndarray, states: Sequence[Any]) -> DetectorOutput:
        cfg = self.config
        x = np.asarray(x, dtype=float)
        n, width = x.shape
        value = x[:, cfg.target] if cfg.target is not None else x.sum(axis=1)
        s = self._decode(states)
        fitted_before = s["windows"] >= cfg.warmup
        alarm = np.zeros(n)

        s["windows"] += 1
        warming = ~fitted_before  # the range is the warm-up's: every one of its windows
        first_window = s["windows"] == 1
        lo = np.where(first_window, value, s["lo"])
        hi = np.where(first_window, value, s["hi"])
        s["lo"] = np.where(warming, np.minimum(lo, value), s["lo"])
        s["hi"] = np.where(warming, np.maximum(hi, value), s["hi"])
        first = (s["windows"] - 1) % cfg.stride == 0
        s["block_sum"] = np.where(first, value, s["block_sum"] + value)
        s["block_min"] = np.where(first, value, np.minimum(s["block_min"], value))
        s["block_max"] = np.where(first, value, np.maximum(s["block_max"], value))

        tick = np.flatnonzero(s["windows"] % cfg.stride == 0)
        every = tick.size == n
        block = np.zeros(0)
        if tick.size:
            # Streams whose block ended work on a copy of their records (no copy at all when
            # every stream's block ended, as with a stride of 1), written back after.
            r = s if every else s[tick]
            block = self._block_values(r)
            r["blocks"] += 1
            store = r["blocks"] <= cfg.fit_at
            if store.any():
                self._store(r, store, block)
            if not every:
                s[tick] = r
        # The fit runs at the warm-up's last window, whether a block ends there or not: after
        # the blocks it stores (the last whole one ends at or before it), before a block that
        # is already past it.
        fit = s["windows"] == cfg.warmup
        if fit.any():
            s[fit] = self._fit(s[fit])
        if tick.size:
            live = s["blocks"][tick] > cfg.fit_at
            if every and live.all():
                alarm = self._live(s, block)
            elif live.any():
                rows = tick[live]
                part = s[rows]
                alarm[rows] = self._live(part, block[live])
                s[rows] = part
        # Streams fitted at this very window: their fit is too fresh to score it.
        fitted = s["windows"] > cfg.warmup
        z = np.minimum(np.abs(value - s["median"]) / np.maximum(s["spread"], 1e-12), 1e6)
        # Smoothed over one pattern's span of windows, as Telemanom smooths its errors: a run
        # of deviating windows outranks a lone one (NASA MSL, mean best point F1 0.388 ->
        # 0.416; NAB 66.2 either way), and a single wild value is the alarms' business.
        smooth = 2.0 / (cfg.pattern * cfg.stride + 1.0)
        deviation = s["deviation"] + smooth * (z - s["deviation"])
        s["deviation"] = np.where(fitted, deviation, 0.0)
        z = s["deviation"].astype(float)
        tier = np.where(fitted, cfg.deviation_cap * z / (z + cfg.deviation_half), 0.0)
        raw = np.where(fitted, np.maximum(alarm, tier), 0.0)
        expected = np.zeros((n, width))
        share = np.zeros((n, width))
        if cfg.target is not None:
            expected[:, cfg.target] = s["median"]
            share[:, cfg.target] = np.where(raw > 0, 1.0, 0.0)
        return DetectorOutput(
            raw=raw, expected=expected, share=share, states=self._encode(s), ready=fitted
        )

    def _warmup_values(self, r: np.ndarray) -> np.ndarray:
        """The block values kept in the memory's bytes before the fit: (len(r), fit_at)."""
        flat = r["weights"].reshape(len(r), -1)
        return flat[:, : 8 * self.config.fit_at].copy().view("<f8")

    def _store(self, r: np.ndarray, rows: np.ndarray, value: np.ndarray) -> None:
        """Keep warm-up block values in the (still empty) memory's bytes until the fit."""
        part = r[rows]
        values = self._warmup_values(part)
        values[np.arange(len(part)), part["blocks"] - 1] = value[rows]
        flat = part["weights"].reshape(len(part), -1)
        flat[:, : 8 * self.config.fit_at] = values.view(np.uint8)
        r[rows] = part

    def _block_values(self, r: np.ndarray) -> np.ndarray:
        """One value per finished block: its extreme away from the running level, or its mean."""
        mean = r["block_sum"] / self.config.stride
        top, bottom = r["block_max"], r["block_min"]
        level = np.where(r["blocks"] == 0, mean, (r["level"] + mean) / 2.0)
        r["level"] = level
        value = np.where(np.abs(top - level) >= np.abs(bottom - level), top, bottom)
        return np.where(np.abs(value - mean) < 0.1 * np.abs(mean), mean, value)

    def _pattern(self, r: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Scale, quantise, de-noise and append ``value``; the complement-coded pattern."""
        cfg = self.config
        span = r["hi"] - r["lo"]
        offset = value - r["lo"]
        scaled = np.where(span > 0, offset / np.where(span > 0, span, 1.0), offset)
        level = np.rint(np.clip(scaled, 0.0, 1.0) * cfg.levels).astype(np.int64)
        median = self._track_median(r, level)
        # Compared as scaled values, not levels: a difference of exactly ``snap`` must fall on
        # the same side of it as it does in ARTime (0.075 * 80 is 6 in floats, 43/80 - 37/80
        # is not 0.075).
        near = np.abs(level / cfg.levels - median / cfg.levels) < cfg.snap
        level = np.where(near, median, level)
        recent = np.concatenate([r["recent"][:, 1:], level[:, None]], axis=1)
        r["recent"] = recent
        values = recent / cfg.levels
        # Products summed in a fixed order rather than by BLAS (whose kernels differ with the
        # number of rows): a stream's pattern must not depend on which streams share its batch.
        wavelet = (_minmax(values)[:, None, :] * self._haar[None, :, :]).sum(axis=2)
        features = np.concatenate([_minmax(wavelet), values], axis=1)
        features[r["blocks"] < cfg.pattern] = 0.0  # not a whole pattern yet
        return fuzzy_art.encode(features)

    def _track_median(self, r: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Add ``level`` to each stream's histogram of levels; its running median level.

        The median moves at most one occupied level per value, with counts of the values above
        and below it (ARTime's tracker): it lags a sudden change of level by design, and
        measured on NAB an exact median instead cost about 4 points of score.
        """
        hist = r["histogram"].astype(np.int64)
        index = np.arange(len(r))
        hist[index, level] += 1
        total = hist.sum(axis=1, dtype=np.int64)
        median = np.where(total == 1, level, r["median_level"].astype(np.int64))
        above = r["above"].astype(np.int64) + (median < level)
        below = r["below"].astype(np.int64) + (median > level)
        bins = np.arange(hist.shape[1])[None, :]
        full = hist.max(axis=1) >= 60000  # keep the proportions, stay in uint16
        if full.any():
            hist[full] = np.where(hist[full] > 0, np.maximum(hist[full] // 2, 1), 0)
            above[full] = (hist[full] * (bins > median[full, None])).sum(axis=1, dtype=np.int64)
            below[full] = (hist[full] * (bins < median[full, None])).sum(axis=1, dtype=np.int64)
            total[full] = hist[full].sum(axis=1, dtype=np.int64)
        middle = total // 2
        up = middle < above
        down = ~up & (middle < below)
        if up.any():
            k = np.flatnonzero(up)
            below[k] += hist[k, median[k]]
            median[k] = np.argmax((bins > median[k, None]) & (hist[k] > 0), axis=1)
            above[k] -= hist[k, median[k]]
        if down.any():
            k = np.flatnonzero(down)
            above[k] += hist[k, median[k]]
            occupied = (bins < median[k, None]) & (hist[k] > 0)
            median[k] = hist.shape[1] - 1 - np.argmax(occupied[:, ::-1], axis=1)
            below[k] -= hist[k, median[k]]
        r["histogram"] = hist
        r["median_level"] = median
        r["above"] = above
        r["below"] = below
        return median

    def _fit(self, r: np.ndarray) -> np.ndarray:
        """The records ``r`` fitted on their stored warm-up (see the module text, step 3)."""
        cfg = self.config
        values = self._warmup_values(r)
        r["weights"] = 0
        r["median"] = np.median(values, axis=1)
        mad = np.median(np.abs(values - r["median"][:, None]), axis=1)
        r["spread"] = np.maximum(1.4826 * mad, 1e-3 * (r["hi"] - r["lo"]))
        r["seen_lo"], r["seen_hi"] = r["lo"], r["hi"]
        blocks = r["blocks"].copy()
        patterns = []
        for k in range(cfg.fit_at):
            r["blocks"] = k + 1
            patterns.append(self._pattern(r, values[:, k]))
        r["blocks"] = blocks
        stacked = np.stack(patterns, axis=1)  # (m, fit_at, dim)
        r["lower"] = r["upper"] = self._initial_vigilance(stacked[:, cfg.pattern - 1 :])
        for k in range(cfg.fit_at):
            self._detect(r, stacked[:, k], np.full(len(r), k + 1))
        return r

    def _initial_vigilance(self, patterns: np.ndarray) -> np.ndarray:
        """Mean best match over the second half of the warm-up patterns, learned by a fresh
        memory in order of typicality (least typical first), at the initial vigilance."""
        cfg = self.config
        m, count, dim = patterns.shape
        feats = patterns[:, :, : dim // 2].astype(float)
        norms = np.linalg.norm(feats, axis=2)
        sims = np.einsum("mid,mjd->mij", feats, feats) / np.maximum(
            norms[:, :, None] * norms[:, None, :], 1e-12
        )
        order = np.argsort(sims.sum(axis=1), axis=1, kind="stable")
        memory = fuzzy_art.Memory.empty(m, cfg.categories, dim)
        vigilance = np.full(m, cfg.initial_vigilance)
        best = np.zeros((m, count))
        rows = np.arange(m)
        for k in range(count):
            x = patterns[rows, order[:, k]]
            _, best[:, k], _ = fuzzy_art.learn(memory, x, np.full(m, k), vigilance, vigilance,
                                               self._energy)  # fmt: skip
        return best[:, count // 2 - 1 :].mean(axis=1)

    def _live(self, r: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Alarm confidence of the block values of fitted streams ``r``."""
        cfg = self.config
        lo, hi = r["seen_lo"], r["seen_hi"]
        span = hi - lo
        outside = (span > 0) & (
            (value > hi + cfg.spatial * span) | (value < lo - cfg.spatial * span)
        )
        r["seen_lo"], r["seen_hi"] = np.minimum(lo, value), np.maximum(hi, value)
        x = self._pattern(r, value)
        confidence = self._detect(r, x, r["blocks"].astype(np.int64))
        return np.maximum(confidence, np.where(outside, 1.0, 0.0))

    def _detect(self, r: np.ndarray, x: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Learn pattern ``x`` as the ``i``-th pattern of the streams ``r``; alarm confidence."""
        cfg = self.config
        fit_at, mask = cfg.fit_at, cfg.mask
        m = len(r)
        since = i - r["last_alarm"].astype(np.int64)
        after_alarm = since == mask
        due = (i - r["last_update"].astype(np.int64)) >= fit_at // 2
        near_alarm = since <= mask
        masked = r["masked"].astype(bool)
        masked &= ~((i > fit_at + mask) & (r["quiet"] >= mask))

        lower, upper = r["lower"].astype(float), r["upper"].astype(float)
        memory = fuzzy_art.Memory(
            r["weights"], r["used"], r["sizes"], r["count"].astype(np.int64)
        )  # views into the records, but for the count
        # Every memory starts from the all-ones box, also while its patterns are not whole yet
        # (ARTime's start), so learn() never takes its own empty-memory path here.
        fuzzy_art.seed(memory, i)
        novel = np.ones(m, bool)
        best = np.zeros(m)
        energy = np.zeros(m)
        learning = i >= cfg.pattern  # the first patterns are not whole: never learned
        if learning.all():
            novel, best, energy = fuzzy_art.learn(memory, x, i, lower, upper, self._energy)
        elif learning.any():
            k = np.flatnonzero(learning)
            part = memory.subset(k)
            novel[k], best[k], energy[k] = fuzzy_art.learn(
                part, x[k], i[k], lower[k], upper[k], self._energy
            )
            memory.put(k, part)
        r["count"] = memory.count

        quiet = np.where(novel, 0, r["quiet"] + 1)
        match_sum = r["match_sum"] + best
        index = np.arange(m)
        sims = r["sims"]
        sims[index, i % self._sims] = best
        diffs = r["diffs"]
        diffs[index, i % self._diffs] = upper - best
        alarm_last = r["alarm_last"].astype(float)
        has_alarms = r["alarm_count"] > 0
        alarm_last = np.where((since < mask) & has_alarms, np.minimum(alarm_last, best), alarm_last)

        factor = np.where(near_alarm, 0.90, 0.70)
        worse = best < r["last_alarm_match"] * factor
        fire = (i > fit_at) & novel & (~(masked | near_alarm) | worse)
        fs = np.minimum(0.999, best)
        over_upper = ((1 - fs) - (1 - upper)) / (1 - fs)
        over_lower = ((1 - fs) - (1 - lower)) / (1 - fs)
        confidence = np.minimum(1.0, 0.35 * over_upper + 0.65 * over_lower + 1.5 * (1 - energy))
        confidence = np.where(fire, np.round(confidence, 6), 0.0)

        alarm_sum = r["alarm_sum"] + np.where(fire & has_alarms, alarm_last, 0.0)
        alarm_count = r["alarm_count"] + fire
        alarm_last = np.where(fire, best, alarm_last)
        r["last_alarm_match"] = np.where(fire, best, r["last_alarm_match"])
        r["last_alarm"] = np.where(fire, i, r["last_alarm"])
        masked |= novel

        # Vigilance adaptation (module text, step 4), on the rows due for it only: a stream
        # updates every half warm-up, so most steps have few such rows, and widening their
        # float16 histories of matches is a tenth of the step's cost when done for all.
        update = (i > fit_at) & (after_alarm | due)
        if update.any():
            u = np.flatnonzero(update)
            r["lower"][u], r["upper"][u] = self._adapted(
                lower[u], match_sum[u] / i[u], sims[u], diffs[u], i[u],
                alarm_sum[u] + alarm_last[u], alarm_count[u],
            )  # fmt: skip
            r["last_update"][u] = i[u]
        masked |= update

        r["masked"] = masked
        r["quiet"] = quiet
        r["match_sum"] = match_sum
        r["alarm_sum"] = alarm_sum
        r["alarm_count"] = alarm_count
        r["alarm_last"] = alarm_last
        return confidence

    def _adapted(
        self,
        lower: np.ndarray,
        mean_match: np.ndarray,
        sims: np.ndarray,
        diffs: np.ndarray,
        i: np.ndarray,
        alarm_total: np.ndarray,
        alarm_count: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """New ``(lower, upper)`` vigilances of the streams due for an update."""
        fit_at = self.config.fit_at
        new_upper = np.minimum(0.97, mean_match)
        lowest = sims.astype(float).min(axis=1)
        raise_lower = lower <= lowest
        shortfall = diffs.astype(float)
        big = shortfall > 0.05
        typical = np.divide(
            np.where(big, np.minimum(0.37, shortfall), 0.0).sum(axis=1), big.sum(axis=1),
            out=np.zeros(len(lower)), where=big.any(axis=1),
        )  # fmt: skip
        typical = np.where(i > 2 * fit_at, typical, 0.0)
        lowered = lower - np.maximum(0.01, typical) / 2
        alarm_mean = np.divide(alarm_total, alarm_count,
                               out=np.zeros(len(lower)), where=alarm_count > 0)  # fmt: skip
        lowered = np.where(alarm_count > 0, np.maximum(alarm_mean, lowered), lowered)
        new_lower = np.where(raise_lower, lower + 0.19 * (lowest - lower), lowered)
        return np.minimum(new_upper, new_lower), new_upper
