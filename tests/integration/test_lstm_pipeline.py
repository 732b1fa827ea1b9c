"""The LSTM detector in the real pipeline: replay through Kafka, worker, scores and alerts topics.

``gridalarm evaluate --via-kafka`` replays a simulated day with an outage through the broker
and a worker running the bundled lstm-forecast model, reads the scores and alerts topics back,
and compares them with the same evaluation run in process; then ``gridalarm train --topic``
learns a model from the windows history topic that run produced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_kit import gridalarm

from gridalarm.config import Settings

pytestmark = pytest.mark.integration


def test_lstm_worker_alerts_on_an_outage_and_matches_the_in_process_run(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    gridalarm(
        kafka_settings,
        "simulate", "--streams", "6", "--days", "1", "--window", "1m",
        "--incidents", "outage", "--seed", "31", "--out", str(sim),
    )  # fmt: skip
    out = gridalarm(
        kafka_settings,
        "evaluate", "--detector", "lstm-forecast", "--data", str(sim / "events.jsonl"),
        "--labels", str(sim / "labels.csv"), "--window", "1m", "--via-kafka",
        "--out", str(tmp_path / "report"),
        timeout=900,
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])

    assert result["model"].startswith("lstm-forecast@")
    assert result["events"] == 1 and result["detected"] == 1, result
    assert result["mean_time_to_detect_windows"] <= 2, result
    assert result["false_alarms"] == 0, result
    via = result["via_kafka"]
    assert via["windows"] == 6 * 1440
    assert via["max_score_difference_vs_in_process"] <= 0.01, via
    assert via["same_alerts_as_in_process"] is True, via
    assert (tmp_path / "report" / "index.html").is_file()
    assert len(list((tmp_path / "report" / "plots").glob("*.png"))) == 6

    # The windows topic that run left behind is history a model can learn from.
    topic = f"{via['topic_prefix']}.windows"
    gridalarm(
        kafka_settings,
        "train", "--topic", topic, "--out", str(tmp_path / "from-topic"),
        "--epochs", "2", "--sequence", "32", "--quiet",
        timeout=600,
    )  # fmt: skip
    meta = json.loads((tmp_path / "from-topic" / "metadata.json").read_text())
    assert meta["training"]["streams"] == 6
    assert meta["training"]["windows"] == 6 * 1440
    assert meta["window"] == 60.0
    assert meta["training"]["source"] == topic
