"""Following a log (gridalarm.producers.eventlog.Tailer), no Kafka: half-written events, exact
resumption, rotation (also while behind), truncation, bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridalarm.producers.checkpoint import PathState
from gridalarm.producers.eventlog import (
    EventLogError,
    Item,
    LogFile,
    ReadConfig,
    Tailer,
    frame_end,
)

FOLLOW = ReadConfig(follow=True, timezone="UTC", rotate_grace=0.0, source="eventlog:test")
ONCE = ReadConfig(timezone="UTC", source="eventlog:test")
_BODIES = {
    0: "Job submitted from host: <10.0.0.1:9618?addrs=10.0.0.1-9618&alias=submit.example.org>\n",
    1: "Job executing on host: <10.0.0.2:9618?addrs=10.0.0.2-9618&noUDP>\n",
    12: "Job was held.\n\tReason unspecified\n\tCode 0 Subcode 0\n",
    9: "Job was aborted.\n\tvia condor_rm (by user alice)\n",
    6: "Image size of job updated: 100\n\t1  -  MemoryUsage of job (MB)\n"
    "\t100  -  ResidentSetSize of job (KB)\n",
}
_TYPES = {
    0: "SubmitEvent",
    1: "ExecuteEvent",
    12: "JobHeldEvent",
    9: "JobAbortedEvent",
    6: "JobImageSizeEvent",
}


def event(cluster: int, number: int = 1, minute: int = 0) -> bytes:
    """One text event of job ``cluster``.0 (distinct clusters make distinct events)."""
    stamp = f"2025-11-04 20:{minute % 60:02d}:{cluster % 60:02d}"
    return f"{number:03d} ({cluster}.000.000) {stamp} {_BODIES[number]}...\n".encode()


def events(first: int, count: int) -> bytes:
    numbers = list(_BODIES)
    return b"".join(event(c, numbers[c % len(numbers)]) for c in range(first, first + count))


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def jobs(items: list[Item]) -> list[int]:
    return [
        int(i.message["attrs"]["job"].split(".")[0])
        for i in items
        if i.message and "job" in i.message["attrs"]
    ]


def drain(tailer: Tailer, rounds: int = 20) -> list[Item]:
    """Poll until a few polls in a row bring nothing."""
    got: list[Item] = []
    quiet = 0
    while quiet < 3 and rounds:
        rounds -= 1
        batch = tailer.poll(limit=7)  # small batches: the tailer is often behind the writer
        got += batch
        quiet = 0 if batch else quiet + 1
    return got


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "EventLog"
    path.write_bytes(event(0, 0))  # a submit names the schedd
    yield path


def test_a_half_written_event_waits_for_its_end_line(log: Path) -> None:
    tailer = Tailer(log, FOLLOW)
    assert jobs(tailer.poll()) == [0]
    whole = event(1, 12)
    for cut in (10, len(whole) - 5, len(whole) - 2, len(whole) - 1):
        log.write_bytes(event(0, 0) + whole[:cut])  # the writer got this far
        assert tailer.poll() == [], cut
        assert tailer.file.offset == len(event(0, 0))
    append(log, whole[len(whole) - 1 :])
    got = tailer.poll()
    assert jobs(got) == [1] and got[0].message["type"] == "JobHeldEvent"
    assert got[0].end == log.stat().st_size == tailer.file.offset
    assert tailer.safe_time(1e10) == 1e10 - 2.0 or tailer.poll() == []


def test_every_event_type_and_stream_from_a_growing_file(log: Path) -> None:
    tailer = Tailer(log, FOLLOW)
    got = tailer.poll()
    for start in range(1, 60, 10):
        append(log, events(start, 10))
        got += drain(tailer)
    assert jobs(got) == list(range(61))
    assert {i.message["stream"] for i in got} == {"schedd:submit.example.org"}
    by_job = {int(i.message["attrs"]["job"].split(".")[0]): i.message["type"] for i in got}
    numbers = list(_BODIES)
    assert all(by_job[c] == _TYPES[numbers[c % len(numbers)]] for c in range(1, 61))


def test_a_restart_resumes_exactly_where_the_checkpoint_is(log: Path) -> None:
    append(log, events(1, 30))
    first = Tailer(log, FOLLOW)
    got = first.poll(limit=12)
    state = first.state(first.position)
    first.close()
    append(log, events(31, 5))
    second = Tailer(log, FOLLOW, state)
    rest = drain(second)
    assert jobs(got) + jobs(rest) == list(range(36))
    # The same event has the same id whichever run reads it.
    again = [i.eid for i in Tailer(log, ONCE).poll(limit=100) if i.eid]
    assert [i.eid for i in got + rest if i.eid] == again
    assert second.state().schedd == "submit.example.org"


def test_rotation_finishes_the_old_file_then_reads_the_new_one(log: Path) -> None:
    append(log, events(1, 5))
    tailer = Tailer(log, FOLLOW)
    got = drain(tailer)
    with log.open("ab") as writer:
        writer.write(events(6, 3))
        os.rename(log, log.with_name("EventLog.old"))
        writer.write(events(9, 2))  # a last write to the renamed file
    log.write_bytes(events(11, 4))
    got += drain(tailer)
    os.rename(log, log.with_name("EventLog.old"))  # second rotation: the first .old goes
    log.write_bytes(events(15, 3))
    got += drain(tailer)
    assert jobs(got) == list(range(18))
    assert tailer.rotations == 2
    assert [len(tailer.done), tailer.file.gen.ino] == [2, log.stat().st_ino]


def test_two_rotations_while_behind_lose_nothing(log: Path) -> None:
    append(log, events(1, 20))
    tailer = Tailer(log, FOLLOW)
    got = tailer.poll(limit=5)  # far behind when the log rotates twice
    os.rename(log, log.with_name("EventLog.old"))
    log.write_bytes(events(21, 10))
    os.rename(log, log.with_name("EventLog.old"))  # the first file is gone from the folder
    log.write_bytes(events(31, 10))
    got += drain(tailer, rounds=50)
    assert jobs(got) == list(range(41))
    assert tailer.rotations == 2


def test_numbered_rotations_are_read_oldest_first(log: Path) -> None:
    tailer = Tailer(log, FOLLOW)
    got = tailer.poll()
    # The schedd with EVENT_LOG_MAX_ROTATIONS > 1: .1 is the newest rotated file.
    os.rename(log, log.with_name("EventLog.1"))
    log.write_bytes(events(1, 3))
    os.rename(log.with_name("EventLog.1"), log.with_name("EventLog.2"))
    os.rename(log, log.with_name("EventLog.1"))
    log.write_bytes(events(4, 3))
    got += drain(tailer, rounds=50)
    assert jobs(got) == list(range(7))


def global_header(size: int, count: int, minute: int = 0, file_id: str = "a") -> bytes:
    """The schedd's global event log header: padded, so it can be rewritten in place."""
    info = (
        f"Global JobLog: ctime=1762286400 id=schedd.0.99.1762286400.{file_id} sequence=1 "
        f"size={size} events={count} offset=0 event_off=0 max_rotation=1 creator_name=<s>"
    )
    stamp = f"2025-11-04 20:{minute:02d}:00"
    return f"008 (-01.-01.-01) {stamp} {info:<256}\n...\n".encode()


def test_the_global_logs_header_rewritten_at_rotation_is_not_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    log.write_bytes(global_header(0, 0) + event(0, 0) + events(1, 5))
    first = Tailer(log, FOLLOW)
    got = drain(first)
    state = first.state()
    first.close()
    # The schedd rotates: it rewrites the header (new counts and stamp, same length) first.
    with log.open("r+b") as out:
        out.write(global_header(log.stat().st_size, 7, minute=5))
    append(log, events(6, 2))
    os.rename(log, log.with_name("EventLog.old"))
    log.write_bytes(global_header(0, 0, minute=6, file_id="b") + events(8, 3))
    second = Tailer(log, FOLLOW, state)  # restarted across the rewrite and the rotation
    got += drain(second)
    assert jobs(got) == list(range(11))
    assert sum(1 for i in got if i.message and i.message["type"] == "GenericEvent") == 2
    assert second.truncations == 0 and second.rotations == 1


def test_truncation_reads_the_file_again_from_its_start(log: Path) -> None:
    append(log, events(1, 9))
    tailer = Tailer(log, FOLLOW)
    got = drain(tailer)
    with log.open("r+b") as out:
        out.truncate(0)
    append(log, events(100, 2))  # shorter than before: the size shows it
    got += drain(tailer)
    with log.open("r+b") as out:
        out.truncate(0)
    append(log, events(200, 15))  # longer than before: only the first bytes show it
    got += drain(tailer)
    assert jobs(got) == [*range(10), 100, 101, *range(200, 215)]
    assert tailer.truncations == 2
    assert len({i.eid for i in got if i.eid}) == len(jobs(got))  # new content, new ids


def test_a_checkpointed_file_is_found_after_it_was_rotated(log: Path) -> None:
    append(log, events(1, 9))
    first = Tailer(log, FOLLOW)
    got = first.poll(limit=4)
    state = first.state()
    first.close()
    append(log, events(10, 2))
    os.rename(log, log.with_name("EventLog.old"))
    log.write_bytes(events(12, 3))
    second = Tailer(log, FOLLOW, state)
    got += drain(second)
    assert jobs(got) == list(range(15))
    assert second.resumed and second.rotations == 1


def test_a_checkpointed_file_that_is_gone_is_reported(log: Path) -> None:
    messages: list[str] = []
    first = Tailer(log, FOLLOW)
    first.poll()
    state = first.state()
    first.close()
    log.unlink()
    log.write_bytes(events(50, 2))
    second = Tailer(log, FOLLOW, state, warn=messages.append)
    assert jobs(drain(second)) == [50, 51]
    assert any("is gone" in m for m in messages)


def test_a_checkpoint_of_a_rewritten_file_starts_it_over(log: Path) -> None:
    append(log, events(1, 9))
    first = Tailer(log, FOLLOW)
    first.poll()
    state = first.state()
    first.close()
    log.write_bytes(events(60, 12))  # same inode, other content, longer than the offset
    assert jobs(drain(Tailer(log, FOLLOW, state))) == list(range(60, 72))


def test_a_damaged_event_is_dead_lettered_and_reading_goes_on(log: Path) -> None:
    append(log, events(1, 2))
    append(log, b"some text that is no event\nat all\n...\n")
    append(log, events(3, 2))
    append(log, b"005 (5.000.000) 2025-11-04 20:00:00 Job terminated.\n\tgarbage\n...\n")
    append(log, events(6, 2))
    append(log, b"001 (8.000.000) 2025-13-45 20:00:00 Job executing on host: <1.2.3.4:5>\n...\n")
    append(log, events(9, 1))
    # htcondor2 turns February 30 into March 2; a date that does not exist is bad input.
    append(log, b"001 (10.000.000) 2025-02-30 20:00:00 Job executing on host: <1.2.3.4:5>\n...\n")
    append(log, events(11, 1))
    got = list(Tailer(log, ONCE).poll(limit=100))
    assert jobs(got) == [0, 1, 2, 3, 4, 6, 7, 9, 11]
    bad = [i.bad for i in got if i.bad is not None]
    assert [b.reason for b in bad] == ["schema", "schema", "schema", "bad_time"]
    assert bad[0].data == b"some text that is no event\nat all\n...\n"
    assert b"garbage" in bad[1].data and "htcondor2" in bad[1].detail
    # Dead letters keep the position moving: the last item ends at the end of the file.
    assert got[-1].end == log.stat().st_size


def test_a_megabyte_without_an_end_marker_is_dead_lettered_as_too_large(log: Path) -> None:
    append(log, b"".join(b"%07d junk line of a runaway writer\n" % i for i in range(40_000)))
    append(log, b"...\n" + events(1, 2))
    got = drain(Tailer(log, ONCE))
    bad = [i.bad for i in got if i.bad is not None]
    assert [b.reason for b in bad] == ["too_large", "schema"]
    assert len(bad[0].data) <= 1 << 20 and bad[0].data.endswith(b"\n")
    assert bad[1].start == bad[0].end  # the rest of the junk, up to its "..." line
    assert jobs(got) == [0, 1, 2]


def test_an_incomplete_last_event_is_not_sent_by_a_one_shot_read(log: Path) -> None:
    append(log, events(1, 2) + event(3)[:30])
    messages: list[str] = []
    tailer = Tailer(log, ONCE, warn=messages.append)
    got = tailer.poll(limit=100) + tailer.poll()
    assert jobs(got) == [0, 1, 2] and tailer.finished
    assert tailer.file.offset == log.stat().st_size - 30
    assert any("incomplete event" in m for m in messages)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello world\nthis is not\n...\n", "starts with 'hello world'"),
        (b"1,2,3\n4,5,6\n", "first line is '1,2,3'"),
        (b"{not json at all\n}\n", "htcondor2"),
    ],
)
def test_a_file_that_is_no_event_log_is_a_one_line_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "not.log"
    path.write_bytes(content)
    with pytest.raises(EventLogError, match="not an HTCondor event log") as err:
        list(Tailer(path, ONCE).poll())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_paths_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="no such file"):
        Tailer(tmp_path / "missing", ONCE)
    with pytest.raises(EventLogError, match="is a directory"):
        Tailer(tmp_path, ONCE)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(EventLogError, match="not a regular file"):
        LogFile(tmp_path / "fifo")


def test_an_empty_log_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "EventLog"
    path.write_bytes(b"")
    tailer = Tailer(path, ReadConfig(follow=True, timezone="UTC", schedd="s1"))
    assert tailer.poll() == [] and tailer.poll() == []
    append(path, events(0, 3))
    got = drain(tailer)
    assert jobs(got) == [0, 1, 2] and got[0].message["stream"] == "schedd:s1"


def test_json_and_xml_events_also_wait_for_their_end(tmp_path: Path) -> None:
    one = b'{\n  "MyType": "SubmitEvent",\n  "EventTypeNumber": 0,\n  "Cluster": 7,\n'
    two = b'  "Proc": 0,\n  "Subproc": 0,\n  "EventTime": "2025-01-01T00:00:00Z",\n'
    three = b'  "SubmitHost": "<1.2.3.4:5>"\n}\n'
    path = tmp_path / "log.json"
    path.write_bytes(one)
    tailer = Tailer(path, ReadConfig(follow=True, timezone="America/Chicago", schedd="s"))
    assert tailer.poll() == []
    append(path, two)
    assert tailer.poll() == []
    append(path, three)
    got = tailer.poll()
    assert [i.message["ts"] for i in got] == ["2025-01-01T00:00:00Z"]  # Z: UTC, not Chicago
    xml = b"<c>\n    <a n='x'><i>1</i></a>\n</c>\n"
    assert frame_end(xml[:-2], 0, "xml") is None
    assert frame_end(xml + b"<c>\n", 0, "xml") == len(xml)
    assert frame_end(b'{"a": 1}\n{', 0, "json") == 9


def test_the_heartbeat_clock_of_a_followed_path(log: Path) -> None:
    tailer = Tailer(log, FOLLOW)
    assert tailer.safe_time(1e10) is None  # nothing read yet
    got = tailer.poll()
    assert tailer.safe_time(1e10) == got[-1].ts  # busy: the last event's time
    assert tailer.poll() == []
    assert tailer.safe_time(1e10) == 1e10 - 2.0  # caught up: wall clock, less a margin
    append(log, event(1)[:20])
    assert tailer.poll() == []
    assert tailer.safe_time(1e10) == got[-1].ts  # an event is being written: not past it


def test_state_carries_what_names_streams(log: Path) -> None:
    state = Tailer(log, FOLLOW).state()
    assert isinstance(state, PathState) and state.schedd == "submit.example.org"
    assert state.file is not None and state.file.offset == 0
