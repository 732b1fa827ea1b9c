"""Time parsing and formatting shared by every module: durations, RFC 3339, epoch seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``; a bare number is seconds.

    >>> parse_duration("5m"), parse_duration(2.5), parse_duration("1h")
    (300.0, 2.5, 3600.0)
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 1d")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or 1d")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from epoch seconds or an RFC 3339 / ISO 8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise ValueError("a time is an RFC 3339 string or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    # A date ("2017-03-01...") goes straight to the ISO parser: trying float() first would
    # raise and catch an exception per stamp, the costliest part of parsing one (the worker
    # and the producers parse a stamp per event).
    if len(text) < 10 or text[4] != "-":
        try:
            return float(text)
        except ValueError:
            pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is neither RFC 3339 nor epoch seconds") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with a ``Z``; whole seconds print without a fraction."""
    stamp = datetime.fromtimestamp(epoch, tz=UTC)
    if stamp.microsecond:
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
