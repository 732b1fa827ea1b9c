"""Silences as data (gridalarm.stream.silences): messages, the topic's latest-per-key, matching."""

from __future__ import annotations

import orjson
import pytest

from gridalarm.messages import validate
from gridalarm.stream.silences import Silence, SilenceError, Silences, new_silence, parse_silence
from gridalarm.timeutil import format_time

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
HOUR = 3600.0


def silence(
    sid: str = "m1", glob: str = "schedd:fife*", start: float = T0, hours: float = 2
) -> Silence:
    return new_silence(sid, glob, start, start + hours * HOUR, "upgrade", "cli:alice", T0 - HOUR)


def wire(s: Silence) -> tuple[bytes, bytes]:
    return s.id.encode(), orjson.dumps(s.to_message())


def test_a_silence_goes_on_the_wire_as_its_schema_says_and_comes_back_the_same() -> None:
    s = silence()
    message = s.to_message()
    validate("silence", message)
    assert message["from"] == format_time(T0) and message["until"] == format_time(T0 + 2 * HOUR)
    assert parse_silence(orjson.dumps(message)) == s


def test_it_covers_windows_of_matching_streams_that_start_in_from_until() -> None:
    s = silence()
    assert s.covers("schedd:fifebatch1", T0)
    assert s.covers("schedd:fifebatch2", T0 + 2 * HOUR - 60)
    assert not s.covers("schedd:fifebatch1", T0 + 2 * HOUR)  # until is exclusive
    assert not s.covers("schedd:fifebatch1", T0 - 60)  # a window starting before it
    assert not s.covers("schedd:cms1", T0)
    assert not s.covers("SCHEDD:FIFEBATCH1", T0)  # case-sensitive, like stream ids


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": 0}, "is not after from"),
        ({"hours": -1}, "is not after from"),
        ({"sid": "has space"}, "id must match pattern"),
        ({"sid": ""}, "id must match pattern"),
        ({"glob": ""}, "stream must be longer"),
    ],
)
def test_bad_silences_are_refused_with_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(SilenceError, match=message) as caught:
        silence(**kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("raw", [b"{oops", b"[1]", b'{"v": 1, "id": "x"}'])
def test_what_is_not_a_silence_does_not_parse(raw: bytes) -> None:
    with pytest.raises(SilenceError):
        parse_silence(raw)


def test_the_latest_message_per_key_wins_and_a_tombstone_removes_it() -> None:
    silences = Silences()
    silences.apply(*wire(silence("m1", hours=1)))
    silences.apply(*wire(silence("m2", glob="site:*")))
    assert silences.matching("schedd:fifebatch1", T0 + 1.5 * HOUR) is None  # m1 is 1 hour
    silences.apply(*wire(silence("m1", hours=3)))  # replaced under the same id
    assert len(silences) == 2
    found = silences.matching("schedd:fifebatch1", T0 + 1.5 * HOUR)
    assert found is not None and found.id == "m1"
    assert silences.apply(b"m1", None) is None
    assert silences.matching("schedd:fifebatch1", T0 + 1.5 * HOUR) is None
    assert [s.id for s in silences] == ["m2"]
    silences.apply(b"never-there", None)  # a tombstone for an unknown id changes nothing
    assert len(silences) == 1


def test_a_message_whose_id_is_not_its_key_or_that_has_no_key_is_refused() -> None:
    silences = Silences()
    _, value = wire(silence("m1"))
    with pytest.raises(SilenceError, match="under key"):
        silences.apply(b"other", value)
    with pytest.raises(SilenceError, match="without a key"):
        silences.apply(None, value)
    assert len(silences) == 0


def test_overlapping_silences_name_the_same_one_whatever_their_order() -> None:
    early = silence("zz-early", start=T0)
    late = silence("aa-late", start=T0 + HOUR)
    tie = silence("bb-tie", start=T0)
    one, other = Silences([early, late, tie]), Silences([tie, late, early])
    for start in (T0, T0 + HOUR, T0 + 2.5 * HOUR):
        a, b = one.matching("schedd:fife1", start), other.matching("schedd:fife1", start)
        assert (a and a.id) == (b and b.id)
    assert one.matching("schedd:fife1", T0 + HOUR).id == "bb-tie"  # earliest start, then id
    assert one.matching("schedd:fife1", T0 + 2.5 * HOUR).id == "aa-late"


def test_current_lists_active_and_planned_not_ended() -> None:
    past = silence("past", start=T0 - 5 * HOUR)
    now_on = silence("now", start=T0 - HOUR)
    planned = silence("planned", start=T0 + HOUR)
    assert [s.id for s in Silences([planned, past, now_on]).current(T0)] == ["now", "planned"]
