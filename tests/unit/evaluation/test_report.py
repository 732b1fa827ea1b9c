"""The evaluation report (gridalarm.evaluation.report): PNG per stream and index.html."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.evaluation.datasets import LabelledStream
from gridalarm.evaluation.report import MAX_POINTS, ReportEntry, _envelope, write_report

T0 = 1_767_571_200.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def entry(name: str, rows: int = 500, width: int = 1, seed: int = 0, **kw: object) -> ReportEntry:
    rng = np.random.default_rng(seed)
    starts = T0 + 60.0 * np.arange(rows)
    values = rng.poisson(20, (rows, width)).astype(float)
    middle = T0 + 60.0 * (rows // 2)
    labels = ((middle, middle + 600.0),)
    stream = LabelledStream(name, starts, values, labels, **kw)  # type: ignore[arg-type]
    scores = rng.random(rows) * 70
    alerts = ((middle + 120.0, middle + 480.0),)
    return ReportEntry(stream, scores, 50.0, scores >= 50, alerts)


@dataclass(frozen=True)
class Point:
    precision: float
    recall: float


def test_report_writes_a_png_per_stream_and_an_index(tmp_path: Path) -> None:
    entries = [
        entry("schedd:fifebatch1", width=13),
        entry("realKnownCause/nyc_taxi.csv", group="realKnownCause", train_until=T0 + 6000),
        entry("a<b>&'c\"", rows=3),
        entry("empty", rows=0),
    ]
    metrics = {
        "point": Point(0.5, np.float64(0.25)),
        "nab": {"standard": 12.34567, "low_fp": float("nan")},
        "false alarms per stream-day": 123456.7,
        "streams": 4,
        "thresholds": [40, 50.5],
    }
    index = write_report(tmp_path / "out", "Run <1>", entries, metrics, features=DEFAULT_FEATURES)
    assert index == tmp_path / "out" / "index.html"
    page = index.read_text()
    assert "<script" not in page and "Run &lt;1&gt;" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(set(images)) == 4
    for image, item in zip(images, entries, strict=True):
        path = index.parent / image
        assert path.parent == index.parent / "plots"
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert f"<figcaption>{html.escape(item.stream.name)}</figcaption>" in page
    for row in (
        '<td>point / precision</td><td class="n">0.5</td>',
        '<td>point / recall</td><td class="n">0.25</td>',
        '<td>nab / standard</td><td class="n">12.35</td>',
        '<td>nab / low_fp</td><td class="n">–</td>',
        '<td>false alarms per stream-day</td><td class="n">123,457</td>',
        '<td>streams</td><td class="n">4</td>',
        '<td>thresholds</td><td class="n">40, 50.5</td>',
    ):
        assert row in page


def test_report_without_metrics_or_streams(tmp_path: Path) -> None:
    page = write_report(tmp_path, "nothing", [], {}).read_text()
    assert "No metrics." in page and "Streams (0)" in page


def test_entry_checks_its_shapes_and_threshold() -> None:
    good = entry("s", rows=5)
    with pytest.raises(ValueError, match="one entry per window"):
        ReportEntry(good.stream, np.zeros(4), 50.0, np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        ReportEntry(good.stream, np.zeros(5), 150.0, np.zeros(5, dtype=bool))


def test_envelope_thins_long_series_but_keeps_the_extremes() -> None:
    x = np.arange(8000.0)
    y = np.sin(x / 50.0)
    y[1234], y[6789] = 5.0, -5.0
    tx, ty = _envelope(x, y)
    assert len(tx) <= MAX_POINTS and 5.0 in ty and -5.0 in ty
    assert (np.diff(tx) >= 0).all()
    assert ty.tolist() == y[tx.astype(int)].tolist()  # real points, not averages
    short = np.arange(10.0)
    assert _envelope(short, short)[1] is short


def test_plotting_8000_windows_stays_fast(tmp_path: Path) -> None:
    entries = [entry(f"schedd:s{i}", rows=8000, width=13, seed=i) for i in range(3)]
    started = time.perf_counter()
    write_report(tmp_path, "speed", entries, {})
    # About 0.3 s a stream here; the bound leaves room for a loaded machine.
    assert (time.perf_counter() - started) / len(entries) < 2.0
