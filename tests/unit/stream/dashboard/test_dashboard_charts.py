"""SVG charts: paths that break on gaps, axes, the threshold, anomalous dots and alert spans."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from gridalarm.stream.dashboard import charts

W = 60.0
T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
SVG = "{http://www.w3.org/2000/svg}"


def test_a_path_breaks_where_a_value_is_missing() -> None:
    assert charts.path([0, 1, 2, 3], [5, math.nan, 7, 8]) == "M0,5 M2,7 L3,8"
    assert charts.path([0, 1], [math.nan, math.nan]) == ""


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.4, 1), (1, 1), (1.5, 2), (3, 5), (7, 10), (11, 20), (480, 500)]
)
def test_axis_tops_are_round(value: float, top: float) -> None:
    assert charts.nice_max(value) == top


@pytest.mark.parametrize(
    ("value", "text"),
    [(12, "12"), (0.35, "0.35"), (4.5, "4.5"), (150.4, "150"), (12_345, "12.3k"),
     (3_400_000, "3.4M"), (math.nan, "–")],
)  # fmt: skip
def test_numbers(value: float, text: str) -> None:
    assert charts.number(value) == text


def test_axis_maps_times_and_values_into_the_plot_and_clamps() -> None:
    box = charts.Box(width=120, height=60, left=20, right=0, top=0, bottom=10)
    axis = charts.Axis(box, T0, T0 + 100, 50.0)
    assert axis.x(T0) == 20 and axis.x(T0 + 100) == 120 and axis.x(T0 + 500) == 120
    assert axis.y(0) == 50 and axis.y(50) == 0 and axis.y(25) == 25 and axis.y(99) == 0


def _score_svg(**kwargs) -> ET.Element:
    starts = T0 + W * np.arange(4)
    scores = np.array([10.0, np.nan, 80.0, 20.0], dtype=np.float32)
    anomalous = np.array([False, False, True, False])
    text = charts.score_chart(starts, W, scores, anomalous, 50.0, **kwargs)
    return ET.fromstring(text)


def test_score_chart_draws_the_threshold_at_its_height_and_the_score_with_its_gap() -> None:
    box = charts.Box()
    svg = _score_svg()
    line = svg.find(f"{SVG}line")
    assert line is not None and line.get("class") == "threshold"
    assert float(line.get("y1", "0")) == pytest.approx(box.top + box.plot_height / 2)
    score = svg.find(f"{SVG}path")
    assert score is not None and score.get("d", "").count("M") == 2  # broken at the gap
    assert svg.findall(f".//{SVG}circle")[0].get("class") == "anom"


def test_anomalous_windows_link_to_their_selection_and_links_are_escaped() -> None:
    svg = _score_svg(link=lambda t: f"/stream?name=a&at={t:.0f}", selected=T0 + 2 * W)
    anchors = svg.findall(f"{SVG}a")
    assert [a.get("href") for a in anchors] == [f"/stream?name=a&at={T0 + 2 * W:.0f}"]
    assert svg.find(f"{SVG}rect[@class='selected']") is not None


def test_alert_spans_are_clipped_to_the_chart_and_outside_ones_dropped() -> None:
    svg = _score_svg(spans=[
        charts.Span(T0 - 3600, T0 + W, "open"),  # starts before the chart
        charts.Span(T0 - 7200, T0 - 3600, "resolved"),  # wholly before
    ])  # fmt: skip
    spans = [r for r in svg.findall(f"{SVG}rect") if "span" in (r.get("class") or "")]
    assert len(spans) == 1
    assert float(spans[0].get("x", "0")) == charts.Box().left


def test_feature_chart_shows_expected_values_where_the_model_gave_them() -> None:
    starts = T0 + W * np.arange(5)
    observed = np.array([3, 4, 40, 45, 5], dtype=np.float32)
    expected = np.array([np.nan, np.nan, 4.5, 5.0, np.nan], dtype=np.float32)
    svg = ET.fromstring(charts.feature_chart("JobHeld<Event>", starts, W, observed, expected))
    assert len(svg.findall(f"{SVG}circle")) == 2
    assert {p.get("class") for p in svg.findall(f"{SVG}path")} == {"observed", "expected"}
    assert "50" in [t.text for t in svg.findall(f"{SVG}text")]  # the axis top above 45
    assert svg.get("aria-label") == "JobHeld<Event>: observed and expected"  # escaped, parsed


def test_an_empty_series_still_renders_a_valid_chart() -> None:
    empty = np.array([], dtype=float)
    text = charts.score_chart(empty, W, empty, empty.astype(bool), 50.0)
    assert ET.fromstring(text).tag == f"{SVG}svg"
    assert not re.search(r"nan", text, re.IGNORECASE)
