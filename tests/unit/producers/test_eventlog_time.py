"""Event-log stamps (gridalarm.producers.eventlog_time): formats, zones, year inference."""

from __future__ import annotations

import random

import pytest

from gridalarm.producers.eventlog_time import EventTimes, Stamp, StampError, parse_stamp
from gridalarm.timeutil import parse_time

NOW = parse_time("2026-11-29T07:00:00Z")


def test_the_three_kinds_of_stamp() -> None:
    assert parse_stamp("03/20 21:04:58") == Stamp(None, 3, 20, 21, 4, 58)
    assert parse_stamp("2025-11-04 20:29:03") == Stamp(2025, 11, 4, 20, 29, 3)
    assert parse_stamp("2025-11-04 20:29:03.250Z") == Stamp(2025, 11, 4, 20, 29, 3, 0.25, 0)
    assert parse_stamp("2025-11-04T20:29:03") == Stamp(2025, 11, 4, 20, 29, 3)  # EventTime
    assert parse_stamp("2025-11-04T20:29:03-05:00").offset == -5 * 3600
    for bad in ("", "yesterday", "2025-11-04", "11/04", "2025-11-04 20:29"):
        with pytest.raises(StampError):
            parse_stamp(bad)


def test_z_stamps_are_utc_whatever_the_zone() -> None:
    for zone in ("UTC", "America/Chicago", "Asia/Tokyo", "local"):
        times = EventTimes(zone)
        assert times.epoch(parse_stamp("2025-01-01 00:00:00Z"), NOW) == parse_time(
            "2025-01-01T00:00:00Z"
        )


def test_other_stamps_take_the_configured_zone_with_its_dst() -> None:
    chicago = EventTimes("America/Chicago")
    winter = chicago.epoch(parse_stamp("2025-01-15 12:00:00"), NOW)
    summer = chicago.epoch(parse_stamp("2025-07-15 12:00:00"), NOW)
    assert winter == parse_time("2025-01-15T18:00:00Z")  # CST, UTC-6
    assert summer == parse_time("2025-07-15T17:00:00Z")  # CDT, UTC-5
    assert EventTimes("UTC").epoch(parse_stamp("2025-07-15T12:00:00"), NOW) == parse_time(
        "2025-07-15T12:00:00Z"
    )


def test_local_zone_follows_the_tz_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert EventTimes("local").epoch(parse_stamp("2025-07-01 12:00:00"), NOW) == parse_time(
            "2025-07-01T10:00:00Z"
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_unknown_zone_is_one_line() -> None:
    with pytest.raises(StampError, match="Mars/Olympus"):
        EventTimes("Mars/Olympus")


def test_legacy_stamps_get_the_latest_year_not_after_the_reference() -> None:
    utc = EventTimes("UTC")
    # htcondor2 would say 2026-12-29: a month in the future.
    assert utc.epoch(parse_stamp("12/29 22:12:32"), NOW) == parse_time("2025-12-29T22:12:32Z")
    # Earlier today and earlier this year: this year.
    assert utc.epoch(parse_stamp("11/29 06:59:59"), NOW) == parse_time("2026-11-29T06:59:59Z")
    assert utc.epoch(parse_stamp("03/20 21:04:58"), NOW) == parse_time("2026-03-20T21:04:58Z")
    # A second after the reference: last year.
    assert utc.epoch(parse_stamp("11/29 07:00:01"), NOW) == parse_time("2025-11-29T07:00:01Z")
    # Exactly the reference is not the future.
    assert utc.epoch(parse_stamp("11/29 07:00:00"), NOW) == NOW


def test_a_log_across_new_year_stays_in_order() -> None:
    utc = EventTimes("UTC")
    written = parse_time("2027-01-01T00:10:00Z")
    december = utc.epoch(parse_stamp("12/31 23:59:00"), written)
    january = utc.epoch(parse_stamp("01/01 00:05:00"), written)
    assert december == parse_time("2026-12-31T23:59:00Z")
    assert january == parse_time("2027-01-01T00:05:00Z")
    assert december < january <= written


def test_february_29_goes_back_to_a_leap_year() -> None:
    utc = EventTimes("UTC")
    assert utc.epoch(parse_stamp("02/29 12:00:00"), NOW) == parse_time("2024-02-29T12:00:00Z")
    with pytest.raises(StampError):
        utc.epoch(parse_stamp("02/30 12:00:00"), NOW)
    with pytest.raises(StampError):
        utc.epoch(parse_stamp("13/01 12:00:00"), NOW)


def test_the_reference_year_is_the_year_in_the_configured_zone() -> None:
    # 2027-01-01 03:00 UTC is still 2026-12-31 in Chicago: "12/31 20:00" is hours ago.
    reference = parse_time("2027-01-01T03:00:00Z")
    got = EventTimes("America/Chicago").epoch(parse_stamp("12/31 20:00:00"), reference)
    assert got == parse_time("2027-01-01T02:00:00Z")


@pytest.mark.parametrize("zone", ["UTC", "America/Chicago", "Pacific/Kiritimati", "local"])
def test_legacy_years_are_never_in_the_future(zone: str) -> None:
    rng = random.Random(7)
    times = EventTimes(zone)
    for _ in range(2000):
        reference = NOW - rng.uniform(0, 5 * 365 * 86400)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        stamp = Stamp(None, month, day, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
        ts = times.epoch(stamp, reference)
        assert reference - 366 * 86400 - 2 * 3600 < ts <= reference
