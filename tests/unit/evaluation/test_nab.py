"""The NAB scorer (gridalarm.evaluation.nab) against hand-computed values and NAB's rules.

Expected numbers come from the scaled sigmoid written out here (``S``) and from the values NAB
documents (S(-1) = 0.98661, S(-0.5) = 0.84828), never from the module under test. The
brute-force checks use a plain-loop transcription of the rules (``reference_score``) that
shares no code with the module.
"""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_DATA, require

from gridalarm.evaluation import nab
from gridalarm.evaluation.nab import (
    NO_DETECTION_THRESHOLD,
    PROFILES,
    NabFile,
    NabProfile,
    nab_scores,
    probation_rows,
    read_windows,
    scaled_sigmoid,
    score_corpus,
    score_file,
)
from gridalarm.timeutil import parse_time

STEP = 300.0  # NAB's files are mostly 5-minute series
STANDARD = PROFILES["standard"]
NAB_DEV = SHARED_DATA / "nab-dev"


def S(x: float) -> float:
    """NAB's scaled sigmoid, written out independently of the module."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def make_file(
    n: int, windows: list[tuple[int, int]], hits: dict[int, float] | list[int], name: str = "f"
) -> NabFile:
    """``n`` rows STEP apart; windows as inclusive (first row, last row); hits row -> score."""
    scores = np.zeros(n)
    for row, value in hits.items() if isinstance(hits, dict) else ((r, 1.0) for r in hits):
        scores[row] = value
    times = np.arange(n) * STEP
    return NabFile(name, times, scores, tuple((a * STEP, b * STEP) for a, b in windows))


def reference_score(file: NabFile, threshold: float, profile: NabProfile) -> float:
    """NAB's rules as plain loops over rows: the brute force the sweep must agree with."""
    times, scores = file.timestamps.tolist(), file.scores.tolist()
    n = len(times)
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    spans = []
    for start, end in file.windows:
        rows = [i for i, t in enumerate(times) if start <= t <= end]
        spans.append((rows[0], rows[-1]))
    total = 0.0
    for a, b in spans:
        if b < probation:
            continue
        hits = [i for i in range(a, b + 1) if i >= probation and scores[i] >= threshold]
        if hits:
            total += profile.tp_weight * S(-(b - hits[0] + 1) / (b - a + 1)) / S(-1.0)
        else:
            total -= profile.fn_weight
    for i in range(n):
        if i < probation or scores[i] < threshold or any(a <= i <= b for a, b in spans):
            continue
        before = [(a, b) for a, b in spans if b < i]
        if not before:
            total -= profile.fp_weight
            continue
        a, b = before[-1]
        total += profile.fp_weight * (S((i - b) / (b - a)) if b > a else -1.0)
    return total


def counted_windows(file: NabFile) -> int:
    """Windows with a row past probation: the ones a null detector misses."""
    probation = min(math.floor(0.15 * file.timestamps.size), 750)
    return sum(1 for _, end in file.windows if end >= file.timestamps[probation])


# --- the rules, one at a time -------------------------------------------------------------------


def test_profiles_are_nabs() -> None:
    weights = {p.name: (p.tp_weight, p.fp_weight, p.fn_weight) for p in PROFILES.values()}
    assert weights == {
        "standard": (1.0, 0.11, 1.0),
        "reward_low_FP_rate": (1.0, 0.22, 1.0),
        "reward_low_FN_rate": (1.0, 0.11, 2.0),
    }


def test_scaled_sigmoid_matches_nabs_documented_values() -> None:
    got = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0, 3.0001, 50.0]))
    assert got[:4] == pytest.approx([0.98661, 0.84828, 0.0, -0.98661], abs=5e-6)
    assert got[4] == pytest.approx(2.0 / (1.0 + math.exp(15.0)) - 1.0, abs=1e-12)
    assert got[4] > -1.0
    assert got[5:].tolist() == [-1.0, -1.0]


@pytest.mark.parametrize(
    ("rows", "probation"),
    [(10, 1), (19, 2), (20, 3), (100, 15), (4032, 604), (5000, 750), (7267, 750), (22695, 750)],
)
def test_probation_is_15_percent_capped_at_750_rows(rows: int, probation: int) -> None:
    assert probation_rows(rows) == probation


def test_detection_at_first_row_of_window_earns_a_tp() -> None:
    # 10 rows: probation is row 0; the window covers rows 5..8 (width 4).
    assert score_file(make_file(10, [(5, 8)], [5]), 0.5, STANDARD) == pytest.approx(1.0)


@pytest.mark.parametrize(("row", "position"), [(6, -0.75), (7, -0.5), (8, -0.25)])
def test_later_detection_in_window_earns_the_scaled_sigmoid(row: int, position: float) -> None:
    expected = S(position) / S(-1.0)
    got = score_file(make_file(10, [(5, 8)], [row]), 0.5, STANDARD)
    assert got == pytest.approx(expected, rel=1e-12)
    if row == 7:  # halfway: NAB's documented 0.84828, normalised by 0.98661
        assert got == pytest.approx(0.84828 / 0.98661, abs=1e-5)


def test_a_window_of_any_width_pays_tp_weight_at_its_first_row() -> None:
    for width in (1, 2, 3, 50):
        file = make_file(200, [(100, 99 + width)], [100])
        assert score_file(file, 0.5, STANDARD) == pytest.approx(1.0)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    one = score_file(make_file(10, [(5, 8)], [6]), 0.5, STANDARD)
    two = score_file(make_file(10, [(5, 8)], [6, 7, 8]), 0.5, STANDARD)
    assert one == two == pytest.approx(S(-0.75) / S(-1.0))


def test_detections_in_probation_are_ignored() -> None:
    # 20 rows: probation is rows 0..2. Outside every window, a counted detection costs A_FP.
    assert score_file(make_file(20, [], [0, 1, 2]), 0.5, STANDARD) == 0.0
    assert score_file(make_file(20, [], [3]), 0.5, STANDARD) == pytest.approx(-0.11)


def test_window_inside_probation_is_not_counted_and_one_across_it_counts_past_it() -> None:
    # Window rows 1..2 lies wholly in probation: no miss, and its detection earns nothing.
    assert score_file(make_file(20, [(1, 2)], []), 0.5, STANDARD) == 0.0
    assert score_file(make_file(20, [(1, 2)], [1]), 0.5, STANDARD) == 0.0
    # Window rows 2..5 straddles it: row 2 is ignored, row 3 scores by its place in the window.
    assert score_file(make_file(20, [(2, 5)], [2]), 0.5, STANDARD) == pytest.approx(-1.0)
    got = score_file(make_file(20, [(2, 5)], [2, 3]), 0.5, STANDARD)
    assert got == pytest.approx(S(-0.75) / S(-1.0))


def test_missed_window_costs_fn_weight() -> None:
    file = make_file(40, [(10, 13), (25, 28)], [25])
    assert score_file(file, 0.5, STANDARD) == pytest.approx(1.0 - 1.0)
    assert score_file(file, 0.5, PROFILES["reward_low_FN_rate"]) == pytest.approx(1.0 - 2.0)
    assert score_file(make_file(40, [(10, 13), (25, 28)], []), 0.5, STANDARD) == -2.0


def test_fp_right_after_a_window_costs_less_than_a_far_one() -> None:
    # 40 rows, window rows 10..13 (width 4, so positions past it are distance / 3).
    near = score_file(make_file(40, [(10, 13)], [14]), 0.5, STANDARD)
    mid = score_file(make_file(40, [(10, 13)], [16]), 0.5, STANDARD)
    far = score_file(make_file(40, [(10, 13)], [30]), 0.5, STANDARD)
    assert near == pytest.approx(-1.0 + 0.11 * S(1.0 / 3.0))  # -1: the window was missed
    assert mid == pytest.approx(-1.0 + 0.11 * -0.98661, abs=1e-6)  # one width past: S(1)
    assert far == pytest.approx(-1.0 - 0.11)  # 17/3 > 3 widths: full cost
    assert near > mid > far
    assert -1.0 - 0.11 < near < -1.0


def test_fp_with_no_preceding_window_costs_full_weight() -> None:
    # Rows 7 and 9 lie before the only window: each costs the whole A_FP, near it or not.
    file = make_file(40, [(10, 13)], [7, 9, 10])
    assert score_file(file, 0.5, STANDARD) == pytest.approx(1.0 - 2 * 0.11)
    assert score_file(file, 0.5, PROFILES["reward_low_FP_rate"]) == pytest.approx(1.0 - 2 * 0.22)


def test_fp_counts_from_the_nearest_preceding_window() -> None:
    # Windows rows 10..13 (width 4) and 20..29 (width 10): row 31 is 2/9 past the second.
    file = make_file(60, [(10, 13), (20, 29)], [10, 20, 31])
    assert score_file(file, 0.5, STANDARD) == pytest.approx(2.0 + 0.11 * S(2.0 / 9.0))


def test_fp_after_a_one_row_window_costs_full_weight() -> None:
    file = make_file(40, [(10, 10)], [10, 11])
    assert score_file(file, 0.5, STANDARD) == pytest.approx(1.0 - 0.11)


def test_tp_at_right_edge_and_fp_just_after_nearly_cancel() -> None:
    # NAB's own check: the scaled sigmoid crosses zero between a window's last row and the next.
    even = NabProfile("even", tp_weight=1.0, fp_weight=1.0, fn_weight=1.0)
    tp_at_edge = score_file(make_file(1000, [(500, 599)], [599]), 0.5, even)
    fp_after = score_file(make_file(1000, [(500, 599)], [600]), 0.5, even)
    assert tp_at_edge + fp_after + 1.0 == pytest.approx(0.0, abs=1e-3)
    assert tp_at_edge > 0.0


def test_detection_is_score_at_or_above_threshold() -> None:
    file = make_file(10, [(5, 8)], {5: 0.7, 6: 0.8})
    assert score_file(file, 0.7, STANDARD) == pytest.approx(1.0)
    assert score_file(file, 0.7000001, STANDARD) == pytest.approx(S(-0.75) / S(-1.0))
    assert score_file(file, NO_DETECTION_THRESHOLD, STANDARD) == -1.0


def test_windows_are_matched_to_rows_by_time() -> None:
    times = np.arange(10) * STEP
    scores = np.zeros(10)
    scores[5] = 1.0
    # (1450, 2450] covers rows 5..8 (1500..2400): row 5 is the window's first row.
    file = NabFile("f", times, scores, ((1450.0, 2450.0),))
    assert score_file(file, 0.5, STANDARD) == pytest.approx(1.0)


def test_rows_count_in_file_order_even_when_timestamps_repeat_or_step_back() -> None:
    # NAB's corpus has both (clock changes). Rows 0..19 STEP apart, but rows 5-7 all read 1500
    # and from row 15 on the clock is 2000 s behind. The window (2400, 3300) is rows 8..11;
    # row 16 reads 2800, inside the window's times, yet is a false positive 5 rows past it.
    times = np.arange(20) * STEP
    times[5:8] = 1500.0
    times[15:] -= 2000.0
    scores = np.zeros(20)
    scores[[10, 14, 16]] = 1.0
    file = NabFile("clock", times, scores, ((2400.0, 3300.0),))
    expected = S(-0.5) / S(-1.0) + 0.11 * S(3 / 3) + 0.11 * S(5 / 3)
    assert score_file(file, 0.5, STANDARD) == pytest.approx(expected)


def test_window_ending_on_a_repeated_timestamp_ends_at_its_first_occurrence() -> None:
    # As NAB's timestamps.index(end): rows 10..12 all read 3000, the window (2700, 3000) is
    # rows 9..10, so a detection at row 11 is a false positive one row past it.
    times = np.arange(20) * STEP
    times[10:13] = 3000.0
    scores = np.zeros(20)
    scores[11] = 1.0
    file = NabFile("repeat", times, scores, ((2700.0, 3000.0),))
    assert score_file(file, 0.5, STANDARD) == pytest.approx(-1.0 + 0.11 * S(1.0))


def test_datetime64_timestamps_become_epoch_seconds() -> None:
    stamps = np.array(["2014-04-01 00:00:00", "2014-04-01 00:05:00"], dtype="datetime64[s]")
    file = NabFile("f", stamps, np.zeros(2), ())
    assert file.timestamps.tolist() == [1396310400.0, 1396310700.0]


@pytest.mark.parametrize(
    ("times", "scores", "windows", "match"),
    [
        ([0.0, 1.0, 2.0], [0.0, 1.5, 0.0], (), "in \\[0, 1\\]"),
        ([0.0, 1.0, 2.0], [0.0, float("nan"), 0.0], (), "in \\[0, 1\\]"),
        ([0.0, float("inf"), 1.0], [0.0, 0.0, 0.0], (), "finite"),
        ([0.0, 1.0, 2.0], [0.0, 0.0], (), "same length"),
        ([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], ((1.2, 1.8),), "holds no row"),
        ([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], ((0.0, 1.0), (1.0, 2.0)), "disjoint"),
        ([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], ((2.0, 2.0), (0.0, 0.0)), "in order"),
        ([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], ((2.0, 1.0),), "start <= end"),
        ([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], ((2.5, 3.0),), "holds no row"),
    ],
)
def test_bad_files_are_rejected(
    times: list[float], scores: list[float], windows: tuple, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        NabFile("bad", np.array(times), np.array(scores), windows)


# --- corpus: threshold sweep and normalisation -------------------------------------------------


def small_corpus() -> list[tuple[int, list[tuple[int, int]]]]:
    return [(40, [(10, 13), (25, 28)]), (60, []), (50, [(30, 39)])]


def test_null_and_perfect_detectors_normalise_to_0_and_100() -> None:
    null_files = [make_file(n, w, [], f"f{i}") for i, (n, w) in enumerate(small_corpus())]
    perfect_files = [
        make_file(n, w, [a for a, _ in w], f"f{i}") for i, (n, w) in enumerate(small_corpus())
    ]
    for name, profile in PROFILES.items():
        null = score_corpus(null_files, profile)
        assert null.null == -3.0 * profile.fn_weight
        assert null.perfect == 3.0 * profile.tp_weight
        assert null.threshold == NO_DETECTION_THRESHOLD
        assert (null.raw, null.score) == (null.null, 0.0), name
        perfect = score_corpus(perfect_files, profile)
        assert perfect.threshold == 1.0
        assert perfect.raw == pytest.approx(3.0)
        assert perfect.score == pytest.approx(100.0), name
    assert nab_scores(null_files) == dict.fromkeys(PROFILES, 0.0)
    assert nab_scores(perfect_files) == pytest.approx(dict.fromkeys(PROFILES, 100.0))


def test_normalised_score_of_a_late_detection() -> None:
    # One window missed, one caught at its second of four rows, no false positives.
    files = [make_file(40, [(10, 13), (25, 28)], {26: 0.8})]
    result = score_corpus(files, STANDARD)
    raw = -1.0 + S(-0.75) / S(-1.0)
    assert result.threshold == 0.8
    assert result.raw == pytest.approx(raw)
    assert result.score == pytest.approx(100.0 * (raw + 2.0) / (2.0 + 2.0))


def test_sweep_finds_the_best_threshold_past_a_worse_one() -> None:
    # At 0.9 the first window is caught; 0.5 adds only 4 far false positives (worse); 0.3 also
    # catches the second window late (~0.56 plus its -1 miss back), which outweighs one more FP.
    hits = {12: 0.9, 30: 0.5, 31: 0.5, 32: 0.5, 33: 0.5, 48: 0.3, 55: 0.3}
    file = make_file(80, [(12, 15), (45, 48)], hits)
    result = score_corpus([file], STANDARD)
    by_threshold = {t: score_file(file, t, STANDARD) for t in (1.1, 0.9, 0.5, 0.3, 0.0)}
    assert by_threshold[0.9] == pytest.approx(1.0 - 1.0)
    assert by_threshold[0.3] == pytest.approx(
        1.0 + S(-0.25) / S(-1.0) + 4 * 0.11 * S(15 / 3) + 0.11 * S(7 / 3)
    )
    assert max(by_threshold, key=by_threshold.__getitem__) == result.threshold == 0.3
    assert result.raw == pytest.approx(by_threshold[0.3])


def test_equal_scores_prefer_the_highest_threshold() -> None:
    # Row 11 only repeats the window's hit at row 10: thresholds 0.9 and 0.6 score the same,
    # and NAB keeps the higher one.
    file = make_file(40, [(10, 13)], {10: 0.9, 11: 0.6})
    assert score_file(file, 0.9, STANDARD) == score_file(file, 0.6, STANDARD) == 1.0
    assert score_corpus([file], STANDARD).threshold == 0.9


def test_corpus_without_windows_has_no_nab_score() -> None:
    with pytest.raises(ValueError, match="no anomaly windows"):
        score_corpus([make_file(30, [], [5])], STANDARD)


def random_corpus(rng: np.random.Generator) -> list[NabFile]:
    files = []
    for k in range(int(rng.integers(1, 5))):
        n = int(rng.integers(30, 160))
        windows: list[tuple[int, int]] = []
        row = int(rng.integers(0, 12))
        for _ in range(int(rng.integers(1 if k == 0 else 0, 4))):
            width = int(rng.integers(1, 15))
            if row + width > n:
                break
            windows.append((row, row + width - 1))
            row += width + int(rng.integers(0, 30))
        # Coarse scores make ties; spikes inside windows give the sweep something to find.
        scores = np.round(rng.random(n) ** 3, 1)
        for a, b in windows:
            if rng.random() < 0.7:
                scores[int(rng.integers(a, b + 1))] = np.round(rng.uniform(0.5, 1.0), 2)
        times = 1.4e9 + np.arange(n) * STEP
        files.append(
            NabFile(f"r{k}", times, scores, tuple((times[a], times[b]) for a, b in windows))
        )
    return files


@pytest.mark.parametrize("seed", range(30))
def test_score_file_agrees_with_the_plain_loop_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for file in random_corpus(rng):
        for threshold in (0.0, 0.1, 0.35, 0.5, 0.9, 1.0, 1.1):
            for profile in PROFILES.values():
                expected = reference_score(file, threshold, profile)
                assert score_file(file, threshold, profile) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(30))
def test_sweep_picks_the_brute_force_threshold(seed: int) -> None:
    files = random_corpus(np.random.default_rng(1000 + seed))
    candidates = sorted({NO_DETECTION_THRESHOLD, *np.concatenate([f.scores for f in files])})
    for profile in PROFILES.values():
        raws = {t: sum(reference_score(f, t, profile) for f in files) for t in candidates}
        best = max(raws.values())
        # Ties go to the highest threshold, as in NAB.
        threshold = max(t for t, raw in raws.items() if raw == best)
        result = score_corpus(files, profile)
        assert result.threshold == threshold, profile.name
        assert result.raw == pytest.approx(best, abs=1e-12)
        null = -profile.fn_weight * sum(counted_windows(f) for f in files)
        perfect = profile.tp_weight * sum(len(f.windows) for f in files)
        assert result.null == pytest.approx(null)
        assert result.perfect == perfect
        assert result.score == pytest.approx(100.0 * (best - null) / (perfect - null))


def test_sweep_is_fast_on_nab_sized_files() -> None:
    # 20 files of 22,000 rows with 4 windows each, scored under three profiles.
    import time

    rng = np.random.default_rng(7)
    files = []
    for k in range(20):
        n = 22_000
        starts = np.sort(rng.choice(np.arange(1000, n - 600, 600), 4, replace=False))
        times = np.arange(n) * STEP
        windows = tuple((times[s], times[s + 500]) for s in starts)
        files.append(NabFile(f"big{k}", times, rng.random(n), windows))
    began = time.perf_counter()
    scores = nab_scores(files)
    assert time.perf_counter() - began < 20.0
    assert set(scores) == set(PROFILES)


# --- reading NAB's files, and NAB's own corpus -----------------------------------------------


def test_read_windows_keeps_keys_and_timestamp_strings(tmp_path: Path) -> None:
    path = tmp_path / "combined_windows.json"
    path.write_text(
        json.dumps(
            {
                "artificialNoAnomaly/art_flatline.csv": [],
                "realKnownCause/nyc_taxi.csv": [
                    ["2014-10-30 15:30:00.000000", "2014-11-03 22:30:00.000000"],
                    ["2014-11-25 12:00:00.000000", "2014-11-29 19:00:00.000000"],
                ],
            }
        )
    )
    windows = read_windows(path)
    assert windows == {
        "artificialNoAnomaly/art_flatline.csv": [],
        "realKnownCause/nyc_taxi.csv": [
            ("2014-10-30 15:30:00.000000", "2014-11-03 22:30:00.000000"),
            ("2014-11-25 12:00:00.000000", "2014-11-29 19:00:00.000000"),
        ],
    }
    assert parse_time(windows["realKnownCause/nyc_taxi.csv"][0][0]) == 1414683000.0


def test_read_windows_rejects_a_malformed_window(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"a.csv": [["2014-01-01 00:00:00"]]}))
    with pytest.raises(ValueError, match=r"a\.csv"):
        read_windows(path)


def load_nab_dev(scores_for: str) -> list[NabFile]:
    """NAB's dev corpus with a null ("null") or perfect ("perfect") detector's scores."""
    files = []
    for key, windows in sorted(read_windows(NAB_DEV / "combined_windows.json").items()):
        with (NAB_DEV / "data" / key).open() as handle:
            next(handle)
            stamps = [line.split(",", 1)[0] for line in handle if line.strip()]
        times = np.array(stamps, dtype="datetime64[us]")
        limits = tuple((parse_time(a), parse_time(b)) for a, b in windows)
        scores = np.zeros(times.size)
        if scores_for == "perfect":
            epoch = times.astype(np.int64) / 1e6
            for start, _ in limits:
                scores[np.searchsorted(epoch, start)] = 1.0
        files.append(NabFile(key, times, scores, limits))
    return files


def test_nab_dev_corpus_null_scores_0_and_perfect_scores_100() -> None:
    require(NAB_DEV / "combined_windows.json")
    null_files = load_nab_dev("null")
    assert len(null_files) == 18
    assert sum(len(f.windows) for f in null_files) == 25
    assert nab_scores(null_files) == dict.fromkeys(PROFILES, 0.0)
    perfect = nab_scores(load_nab_dev("perfect"))
    assert perfect == pytest.approx(dict.fromkeys(PROFILES, 100.0), abs=1e-9)


def test_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(nab)
    assert tried > 0 and failures == 0
