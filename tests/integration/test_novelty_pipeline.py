"""The ``novelty`` detector in the real pipeline, on a gauge file in NAB's own layout.

``gridalarm evaluate --via-kafka`` replays a ``timestamp,value`` file (a daily cycle at
5-minute rows with a jump in level, as NAB's artificial files) through the broker and a worker
running ``novelty`` with the file's warm-up, and compares the scores and alerts topics with the
same evaluation in process: the worker's code and the evaluation's are the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline_kit import gridalarm

from gridalarm.config import Settings
from gridalarm.timeutil import format_time, parse_time

pytestmark = pytest.mark.integration

ROWS = 2016  # a week of 5-minute rows
WARMUP = 302  # NAB's probation: 15 % of the file


def test_novelty_worker_scores_a_nab_style_file_as_the_in_process_run(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    start = parse_time("2014-04-01T00:00:00Z")
    times = start + 300.0 * np.arange(ROWS)
    hours = (times - start) / 3600.0
    values = 40.0 + 20.0 * np.sin(2 * np.pi * hours / 24.0) + rng.normal(0.0, 1.0, ROWS)
    values[1500:1560] += 45.0  # five hours far above anything seen
    data = tmp_path / "gauge.csv"
    data.write_text(
        "timestamp,value\n"
        + "".join(f"{format_time(t)},{v:.4f}\n" for t, v in zip(times, values, strict=True))
    )
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"stream,start,end\ncsv:gauge,{format_time(times[1490])},{format_time(times[1570])}\n"
    )
    out = gridalarm(
        kafka_settings,
        "evaluate", "--detector", "novelty", "--data", str(data), "--labels", str(labels),
        "--window", "5m", "--via-kafka",
        timeout=900,
        GRIDALARM_FEATURES="value", GRIDALARM_WARMUP=str(WARMUP),
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])

    assert result["model"] == "novelty@1"
    via = result["via_kafka"]
    assert via["windows"] == ROWS
    assert via["max_score_difference_vs_in_process"] == 0.0, via
    assert via["same_alerts_as_in_process"] is True, via
    assert result["detected"] == 1, result  # novelty's one-window alarm opens an alert
    assert result["point_f1_best_streams"] == 1, result
