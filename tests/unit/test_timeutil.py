"""Durations, RFC 3339 / epoch timestamps and their formatting (gridalarm.timeutil)."""

from __future__ import annotations

import pytest

from gridalarm.timeutil import format_time, parse_duration, parse_time

NEW_YEAR_2024 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600.0),
        ("5m", 300.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("10min", 600.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("1d", 86_400.0),
        ("1w", 604_800.0),
        (" 5m ", 300.0),
        (90, 90.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "5x", "-5s", "h1", "1h30m", True])
def test_parse_duration_rejects_with_examples(bad: object) -> None:
    with pytest.raises(ValueError, match=r"30s, 5m, 1h or 1d"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        (NEW_YEAR_2024, NEW_YEAR_2024),
        (1_704_067_200, NEW_YEAR_2024),
        ("1704067200", NEW_YEAR_2024),
        ("1704067200.5", NEW_YEAR_2024 + 0.5),
        ("2024-01-01T00:00:00Z", NEW_YEAR_2024),
        ("2024-01-01T00:00:00+00:00", NEW_YEAR_2024),
        ("2024-01-01T02:00:00+02:00", NEW_YEAR_2024),
        ("2024-01-01T00:00:00.250Z", NEW_YEAR_2024 + 0.25),
        ("2024-01-01T00:00:00", NEW_YEAR_2024),  # naive means UTC, never local time
        ("2024-01-01 00:00:00", NEW_YEAR_2024),
    ],
)
def test_parse_time(value: str | float, epoch: float) -> None:
    assert parse_time(value) == pytest.approx(epoch)


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01T00:00:00Z", "", True])
def test_parse_time_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_time(bad)  # type: ignore[arg-type]


def test_format_time_whole_seconds_have_no_fraction() -> None:
    assert format_time(NEW_YEAR_2024) == "2024-01-01T00:00:00Z"
    assert format_time(0) == "1970-01-01T00:00:00Z"


def test_format_time_fraction_in_milliseconds() -> None:
    assert format_time(NEW_YEAR_2024 + 0.5) == "2024-01-01T00:00:00.500Z"


@pytest.mark.parametrize("epoch", [0.0, NEW_YEAR_2024, NEW_YEAR_2024 + 0.125, 4_102_444_800.0])
def test_format_then_parse_round_trips(epoch: float) -> None:
    assert parse_time(format_time(epoch)) == pytest.approx(epoch)
