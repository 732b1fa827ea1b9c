"""Event times of HTCondor event logs: stamps with and without a year, in UTC or a local zone.

The schedd writes one of three kinds of stamp (``EVENT_LOG_FORMAT_OPTIONS``):

* legacy ``MM/DD HH:MM:SS`` (text format, the default before 9.x): no year, local time;
* ISO ``YYYY-MM-DD HH:MM:SS[.fff]`` (text) or ``EventTime = "YYYY-MM-DDTHH:MM:SS"`` (JSON, XML):
  local time of the schedd;
* either of them ending in ``Z`` (the ``UTC`` option): UTC whatever zone is configured.

htcondor2 gives legacy stamps the *current* year, so an event of ``12/29`` read in November is
dated a month ahead, and ``JobEvent.timestamp`` drops the ``Z`` of UTC stamps (it reads them as
local time). The producer therefore reads stamps itself, from the event's own bytes.

Year inference: a legacy stamp gets the latest year that does not put it after a *reference*
time, the moment the file was last written (its mtime, never later than now). Every event in a
file was written at or before that moment, so the rule never dates an event in the future, keeps
a log that spans New Year in order (December of last year, then January), and reads an old log
copied with its mtime in the year it was written. What it cannot know is a log older than a year
whose mtime was lost: that is dated within the year before its mtime.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCAL = "local"
# A stamp as it appears in a text header or an EventTime value. Group names are the fields.
_STAMP = re.compile(
    r"^(?:(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})|(?P<lmonth>\d{1,2})/(?P<lday>\d{1,2}))"
    r"[T ](?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})(?P<fraction>\.\d+)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
# How many years back a legacy 02/29 may have to go to find a leap year that is not ahead.
_MAX_YEARS_BACK = 8


class StampError(ValueError):
    """A stamp that is not an HTCondor event time (or names a date that does not exist)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """The fields of one event stamp. ``year`` None: legacy, no year. ``offset`` is seconds east
    of UTC when the stamp says (``Z`` is 0), else None: the configured zone applies."""

    year: int | None
    month: int
    day: int
    hour: int
    minute: int
    second: int
    fraction: float = 0.0
    offset: int | None = None


def parse_stamp(text: str) -> Stamp:
    """The fields of ``MM/DD HH:MM:SS``, ``YYYY-MM-DD HH:MM:SS[.f][Z]`` or the ``T`` form."""
    match = _STAMP.match(text.strip())
    if match is None:
        raise StampError(f"{text[:40]!r} is not an HTCondor event time")
    g = match.groupdict()
    offset = None
    if g["zone"] == "Z":
        offset = 0
    elif g["zone"]:
        digits = g["zone"][1:].replace(":", "")
        sign = -1 if g["zone"][0] == "-" else 1
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    legacy = g["year"] is None
    return Stamp(
        year=None if legacy else int(g["year"]),
        month=int(g["lmonth"] if legacy else g["month"]),
        day=int(g["lday"] if legacy else g["day"]),
        hour=int(g["hour"]),
        minute=int(g["minute"]),
        second=int(g["second"]),
        fraction=float(g["fraction"]) if g["fraction"] else 0.0,
        offset=offset,
    )


def resolve_zone(name: str) -> tzinfo | None:
    """``local`` → None (the machine's zone, with its DST rules); else an IANA zone or UTC."""
    if name.strip().lower() == LOCAL:
        return None
    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise StampError(
            f"time zone {name!r} is unknown; use 'local', 'UTC' or an IANA name such as "
            "America/Chicago"
        ) from None


class EventTimes:
    """Turns stamps into epoch seconds: ``Z`` and offsets as given, others in ``zone``."""

    def __init__(self, zone: str = LOCAL) -> None:
        self.zone_name = zone
        self._zone = resolve_zone(zone)

    def epoch(self, stamp: Stamp, reference: float) -> float:
        """Epoch seconds of ``stamp``; a legacy stamp takes the latest year in which it is not
        after ``reference`` (see the module docstring). Raises :class:`StampError`."""
        if stamp.year is not None:
            return self._epoch(stamp.year, stamp)
        year = self._year_of(reference)
        for candidate in range(year, year - _MAX_YEARS_BACK, -1):
            try:
                ts = self._epoch(candidate, stamp)
            except StampError:
                continue  # 02/29 in a year that has none
            if ts <= reference:
                return ts
        raise StampError(
            f"{stamp.month:02d}/{stamp.day:02d} is not a date in the {_MAX_YEARS_BACK} years "
            "up to the log's last write"
        )

    def _year_of(self, ts: float) -> int:
        if self._zone is None:
            return time.localtime(ts).tm_year
        return datetime.fromtimestamp(ts, self._zone).year

    def _epoch(self, year: int, s: Stamp) -> float:
        try:
            if s.offset is not None or self._zone is UTC:
                base = calendar.timegm((year, s.month, s.day, s.hour, s.minute, s.second))
                datetime(year, s.month, s.day, s.hour, s.minute, s.second)  # validates
                return base - (s.offset or 0) + s.fraction
            if self._zone is None:
                datetime(year, s.month, s.day, s.hour, s.minute, s.second)  # validates
                # tm_isdst -1: the C library decides DST, as the schedd's own clock did.
                tm = (year, s.month, s.day, s.hour, s.minute, s.second, 0, 0, -1)
                return time.mktime(tm) + s.fraction
            local = datetime(year, s.month, s.day, s.hour, s.minute, s.second, tzinfo=self._zone)
            return local.timestamp() + s.fraction
        except (ValueError, OverflowError) as err:
            raise StampError(
                f"{year:04d}-{s.month:02d}-{s.day:02d} {s.hour:02d}:{s.minute:02d}:"
                f"{s.second:02d} is not a valid time ({err})"
            ) from None


__all__ = ["LOCAL", "EventTimes", "Stamp", "StampError", "parse_stamp", "resolve_zone"]
