"""NAB results files (gridalarm.evaluation.nab_results): layout, columns, formatting."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_DATA, require

from gridalarm.evaluation.datasets import LabelledStream, load_nab, safe_stem
from gridalarm.evaluation.nab_results import nab_result_path, nab_timestamps, write_nab_results
from gridalarm.timeutil import parse_time

NAB_DEV = SHARED_DATA / "nab-dev"
T0 = parse_time("2014-07-01T00:00:00Z")


def nab_stream(name: str = "realKnownCause/nyc_taxi.csv", rows: int = 6) -> LabelledStream:
    starts = T0 + 1800.0 * np.arange(rows)
    values = np.array([10844, 8127.5, 0.1, 3, 4, 5][:rows], dtype=float).reshape(-1, 1)
    # Rows 1 and 2 labelled: [start of row 1, end of row 2).
    return LabelledStream(name, starts, values, ((T0 + 1800, T0 + 5400),), group="realKnownCause")


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_results_file_has_nabs_layout_and_columns(tmp_path: Path) -> None:
    stream = nab_stream()
    scores = np.array([0.0, 0.25, 1.0, 0.5, 0.125, 1e-9])
    path = write_nab_results(tmp_path, "gridalarm", stream, scores)
    assert path == tmp_path / "gridalarm" / "realKnownCause" / "gridalarm_nyc_taxi.csv"
    rows = read_rows(path)
    assert rows[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert rows[1] == ["2014-07-01 00:00:00", "10844.0", "0.0", "0"]
    assert rows[2] == ["2014-07-01 00:30:00", "8127.5", "0.25", "1"]
    assert rows[3] == ["2014-07-01 01:00:00", "0.1", "1.0", "1"]
    assert [row[3] for row in rows[1:]] == ["0", "1", "1", "0", "0", "0"]
    assert [float(row[2]) for row in rows[1:]] == scores.tolist()
    assert not list(path.parent.glob("*.tmp"))


def test_other_streams_go_to_their_group_under_a_safe_name(tmp_path: Path) -> None:
    starts = 1_700_000_000.0 + 60.0 * np.arange(3)
    values = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    stream = LabelledStream("schedd:fifebatch1", starts, values, ())
    path = write_nab_results(tmp_path, "baseline", stream, np.zeros(3))
    assert path == tmp_path / "baseline" / "streams" / f"baseline_{safe_stem(stream.name)}.csv"
    assert [row[1] for row in read_rows(path)[1:]] == ["3.0", "7.0", "0.0"]  # sum of features
    grouped = LabelledStream("../../etc/x.csv", starts, values, (), group="pool")
    assert nab_result_path(tmp_path, "baseline", grouped).parent == tmp_path / "baseline" / "pool"


@pytest.mark.parametrize(
    "scores",
    [np.array([0.5] * 5), np.array([0.5] * 5 + [1.5]), np.array([0.5] * 5 + [np.nan])],
)
def test_scores_must_be_one_per_row_and_within_0_1(tmp_path: Path, scores: np.ndarray) -> None:
    with pytest.raises(ValueError, match="nyc_taxi"):
        write_nab_results(tmp_path, "gridalarm", nab_stream(), scores)


def test_detector_name_must_be_a_plain_folder_name(tmp_path: Path) -> None:
    for detector in ("", "a/b", "..", "with space"):
        with pytest.raises(ValueError, match="detector name"):
            write_nab_results(tmp_path, detector, nab_stream(), np.zeros(6))


def test_timestamps_are_whole_utc_seconds() -> None:
    stamps = nab_timestamps(np.array([0.0, 1_404_172_800.9, 951_782_400.0]))
    assert stamps == ["1970-01-01 00:00:00", "2014-07-01 00:00:00", "2000-02-29 00:00:00"]


def test_results_rows_match_the_nab_data_rows() -> None:
    data = load_nab(require(NAB_DEV / "data").parent)
    stream = data.stream("realKnownCause/ec2_request_latency_system_failure.csv")
    source = read_rows(NAB_DEV / "data" / stream.name)
    stamps = nab_timestamps(stream.starts)
    assert stamps == [row[0] for row in source[1:]]
    assert [float(v) for v in stream.values[:, 0]] == [float(row[1]) for row in source[1:]]


def test_results_for_a_real_nab_file(tmp_path: Path) -> None:
    stream = load_nab(require(NAB_DEV / "data").parent).stream("realKnownCause/nyc_taxi.csv")
    path = write_nab_results(tmp_path, "null", stream, np.full(len(stream), 0.5))
    rows = read_rows(path)
    source = read_rows(NAB_DEV / "data" / stream.name)
    assert [row[0] for row in rows] == [row[0] for row in source]
    assert sum(row[3] == "1" for row in rows[1:]) == stream.label_mask().sum() > 0
