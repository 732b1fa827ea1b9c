"""The standard suite (gridalarm.evaluation.standard): NAB's two views, the README table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gridalarm.evaluation.evaluate import EvaluationConfig, row_scores
from gridalarm.evaluation.nab_results import nab_result_path, nab_timestamps
from gridalarm.evaluation.standard import (
    GAUGE_DETECTORS,
    check_detectors,
    evaluate_nab,
    markdown,
    summary,
    write_readme,
)

STEP = 300.0
T0 = 1_420_070_400.0  # 2015-01-01 00:00:00 UTC


def tiny_nab(root: Path, rows: int = 400, spike: int = 300) -> Path:
    """A one-file NAB corpus: steady noise, a spike of six rows, one window around it."""
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 1.0, size=rows)
    values[spike : spike + 6] += 30.0
    stamps = nab_timestamps(T0 + STEP * np.arange(rows))
    (root / "data" / "cat").mkdir(parents=True)
    lines = ["timestamp,value"] + [f"{t},{v:.3f}" for t, v in zip(stamps, values, strict=True)]
    (root / "data" / "cat" / "toy.csv").write_text("\n".join(lines) + "\n")
    window = [f"{stamps[spike - 5]}.000000", f"{stamps[spike + 10]}.000000"]
    (root / "combined_windows.json").write_text(json.dumps({"cat/toy.csv": [window]}))
    return root


ROW = {
    "dataset": "d", "model": "m@1", "detector": "baseline", "event_recall": 0.5,
    "event_precision": 0.25, "mean_time_to_detect_windows": None,
    "false_alarms_per_stream_week": 1.5, "point_f1": 0.125,
}  # fmt: skip


def test_gauge_suites_evaluate_baseline_lstm_and_novelty() -> None:
    assert GAUGE_DETECTORS == ("baseline", "lstm-forecast", "novelty")


def test_an_unregistered_detector_stops_the_suite_before_it_starts() -> None:
    check_detectors(("baseline", "lstm-forecast"))
    with pytest.raises(ValueError, match=r"not registered in gridalarm\.models\.registry: nope"):
        check_detectors(("baseline", "nope"))


def test_summary_carries_the_best_point_f1() -> None:
    metrics = {**ROW, "point_f1_best_mean": 0.123456, "point_f1_best_streams": 7}
    out = summary(metrics)
    assert out["point_f1_best_mean"] == 0.1235 and out["point_f1_best_streams"] == 7


def test_markdown_has_the_best_point_f1_and_both_nab_views() -> None:
    nab = {"standard": 61.24, "reward_low_FP_rate": 55.0, "reward_low_FN_rate": 66.76}
    results = {
        "NAB": [ROW | {"point_f1_best_mean": 0.5, "nab": nab, "nab_alerts": {"standard": 12.5}}],
        "MSL": [ROW | {"detector": "novelty", "point_f1_best_mean": None}],
        "old": [ROW],  # a results.json from before the best point F1
    }
    header, rule, nab_row, msl_row, old_row = markdown(results).splitlines()
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[-3:] == [
        "best point F1 (mean per stream)",
        "NAB standard / low FP / low FN",
        "NAB with alert rule (standard)",
    ]
    assert rule.count("|") == header.count("|")
    assert nab_row.endswith("| 0.125 | 0.500 | 61.2 / 55.0 / 66.8 | 12.5 |")
    assert msl_row.startswith("| MSL | novelty |") and msl_row.endswith("| 0.125 |  |  |  |")
    assert old_row.count("|") == header.count("|")


def test_write_readme_replaces_the_table_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- evaluate:begin -->\nold\n<!-- evaluate:end -->\nafter\n")
    write_readme({"NAB": [ROW | {"point_f1_best_mean": 0.5}]}, readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "best point F1 (mean per stream)" in text and "| NAB | baseline |" in text


def test_evaluate_nab_reports_row_scores_and_alerts_and_writes_row_scores(
    tmp_path: Path,
) -> None:
    root = tiny_nab(tmp_path / "nab")
    out = tmp_path / "out"
    result, evaluation = evaluate_nab(
        root, EvaluationConfig(detector="baseline"), tmp_path / "work", out
    )
    profiles = {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert set(result["nab"]) == profiles and set(result["nab_alerts"]) == profiles
    assert result["point_f1_best_streams"] == 1
    (run,) = evaluation.runs
    path = nab_result_path(out / "nab-results", "baseline", run.stream)
    with path.open() as handle:
        written = [float(row["anomaly_score"]) for row in csv.DictReader(handle)]
    np.testing.assert_array_equal(written, row_scores(run))
    assert np.count_nonzero(written) > len(run.alerts)  # every row, not the alert openings
