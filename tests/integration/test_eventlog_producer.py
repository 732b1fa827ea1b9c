"""The EventLog producer against a real broker.

- Every real log in ../shared/data/htcondor-eventlogs, sent by one producer: the events topic
  holds exactly the job events htcondor2.JobEventLog reads (count per type per stream), each
  once (by default a JobAdInformation event, 028, is not sent: it copies a job event).
- `gridalarm produce eventlog --follow` on a log written live, rotated twice and truncated once,
  with the producer killed (SIGKILL) mid-stream twice and restarted: every event arrives
  exactly once.
- Bad input: missing files and files that are no event log are one-line errors and send
  nothing; a damaged event in a log is a dead-letter record and the rest is delivered once.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import htcondor2
import pytest
from pipeline_kit import REPO_ROOT, read_topic, settings_env
from shared_data import event_logs
from topic_collector import TopicCollector, event_ids, tally

from gridalarm.config import Settings
from gridalarm.producers.checkpoint import load_checkpoint
from gridalarm.producers.eventlog import ReadConfig, Tailer, schedd_name
from gridalarm.producers.eventlog_producer import EventLogProducer, ProduceConfig
from gridalarm.producers.sink import EventSink, SinkConfig

pytestmark = pytest.mark.integration

LOGS = event_logs()  # fails the collection when the logs are missing
CLI = [sys.executable, "-m", "gridalarm", "produce", "eventlog"]


# -- helpers -----------------------------------------------------------------------------------


def data_events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if not m.get("heartbeat")]


def event(cluster: int, kind: int) -> bytes:
    """One text event of job ``cluster``.0: submit, execute, image size, held or terminated."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 60))
    body = {
        0: "Job submitted from host: <10.1.2.3:9618?addrs=10.1.2.3-9618&alias=live.example>\n",
        1: "Job executing on host: <10.9.9.9:9618?addrs=10.9.9.9-9618&noUDP>\n",
        6: "Image size of job updated: 12\n\t1  -  MemoryUsage of job (MB)\n",
        12: "Job was held.\n\tReason unspecified\n\tCode 0 Subcode 0\n",
        5: "Job terminated.\n\t(1) Normal termination (return value 0)\n"
        "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage\n"
        "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage\n"
        "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage\n"
        "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage\n"
        "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n"
        "\t0  -  Total Bytes Sent By Job\n\t0  -  Total Bytes Received By Job\n",
    }[kind]
    return f"{kind:03d} ({cluster}.000.000) {stamp}Z {body}...\n".encode()


class Writer:
    """Writes distinct events to a log the way the schedd does, in bursts, some split."""

    KINDS = (0, 1, 6, 12, 5)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next = 0
        self.written: list[int] = []

    def burst(self, count: int, pause: float = 0.01) -> None:
        with self.path.open("ab") as out:
            for _ in range(count):
                data = event(self.next, self.KINDS[self.next % len(self.KINDS)])
                if self.next % 7 == 0:  # half an event now, the rest a moment later
                    out.write(data[: len(data) // 2])
                    out.flush()
                    time.sleep(pause)
                    out.write(data[len(data) // 2 :])
                else:
                    out.write(data)
                out.flush()
                self.written.append(self.next)
                self.next += 1
            time.sleep(pause)

    def rotate(self) -> None:
        os.replace(self.path, self.path.with_name(self.path.name + ".old"))
        self.path.touch()

    def truncate(self) -> None:
        with self.path.open("r+b") as out:
            out.truncate(0)


@contextmanager
def producer(settings: Settings, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*CLI, *args],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


# -- every real log ----------------------------------------------------------------------------


def test_every_real_log_arrives_as_htcondor2_reads_it(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    expected: Counter[tuple[str, str]] = Counter()
    ad_info = 0
    for log in LOGS:
        events = list(htcondor2.JobEventLog(str(log)).events(0))
        host = next(schedd_name(e["SubmitHost"]) for e in events if "SubmitHost" in e)
        for e in events:
            if e["EventTypeNumber"] == 28:
                ad_info += 1
            else:
                expected[(f"schedd:{host}", e["MyType"])] += 1
    checkpoint = tmp_path / "ck.json"

    async def run() -> Any:
        read = ReadConfig(timezone="UTC", source="eventlog:test")
        tailers = [Tailer(log, read) for log in LOGS]
        config = SinkConfig.from_settings(kafka_settings, kafka_settings.kafka or "", "test")
        async with EventSink(config) as sink:
            producer = EventLogProducer(
                tailers, ProduceConfig(settings=kafka_settings), sink, checkpoint_path=checkpoint
            )
            return await producer.run()

    stats = asyncio.run(run())
    assert stats.events == sum(expected.values()) and stats.deadletters == 0
    assert stats.skipped == ad_info > 0
    messages = read_topic(kafka_settings, "events")
    events = data_events(messages)
    assert tally(events, "stream", "type") == expected
    eids = [eid for m in events for eid in event_ids(m)]
    assert len(set(eids)) == len(eids) == sum(expected.values())  # each once
    # The run ends with a heartbeat on every partition, past the last event.
    beats = [m for m in messages if m.get("heartbeat")]
    assert len(beats) >= kafka_settings.partitions
    saved = load_checkpoint(checkpoint, kafka_settings.topic("events"))
    assert saved is not None and saved.kafka_ends is not None
    assert {Path(p).name for p in saved.paths} == {log.name for log in LOGS}
    assert all(s.file and s.file.offset == Path(p).stat().st_size for p, s in saved.paths.items())


# -- a live log: rotations, a truncation, a crash ----------------------------------------------


def test_follow_a_live_log_through_rotations_truncation_and_a_crash(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "EventLog"
    log.touch()
    writer = Writer(log)
    checkpoint = tmp_path / "ck.json"
    args = (str(log), "--follow", "--timezone", "UTC", "--poll", "0.05s")
    args += ("--checkpoint", str(checkpoint), "--source", "eventlog:live")
    topic = TopicCollector(kafka_settings)
    try:
        # The first producer checkpoints only when it starts: all it sends before it is
        # killed is delivered but not checkpointed, the worst case for a restart.
        with producer(kafka_settings, *args, "--checkpoint-interval", "1h") as first:
            writer.burst(150)
            topic.wait_for(150)
            writer.rotate()  # rotation 1, with the producer following
            writer.burst(100)
            topic.wait_for(250)
            writer.burst(60, pause=0.002)
            topic.wait_for(260)
            first.send_signal(signal.SIGKILL)  # a crash mid-stream
            first.wait()
        writer.burst(40)  # written while no producer runs
        # The second one skips what the first delivered, sends the rest, and crashes too
        # before any periodic checkpoint: the third must still skip all of it.
        with producer(kafka_settings, *args, "--checkpoint-interval", "1h") as second:
            topic.wait_for(len(writer.written))
            second.send_signal(signal.SIGKILL)
            second.wait()
        with producer(kafka_settings, *args) as third:
            writer.burst(10)
            topic.wait_for(len(writer.written))
            writer.rotate()  # rotation 2
            writer.burst(80)
            topic.wait_for(len(writer.written))
            writer.truncate()  # the truncation
            writer.burst(70)
            got = topic.wait_for(len(writer.written))
            third.send_signal(signal.SIGTERM)
            out, err = third.communicate(timeout=60)
        assert third.returncode == 0, err
        got = topic.read_to_end()  # all the producers sent, a repeat included
    finally:
        topic.close()
    # Each event once: coalesced messages carry the ids (log file and position) of the events
    # they count, so ids and counts show a repeat or a loss.
    ids = Counter(eid for m in got for eid in event_ids(m))
    assert [eid for eid, n in ids.items() if n > 1] == []  # nothing twice
    assert len(ids) == sum(m.get("n", 1) for m in got) == len(writer.written)  # nothing lost
    assert {m["stream"] for m in got} == {"schedd:live.example"}
    assert {m["source"] for m in got} == {"eventlog:live"}
    assert "2 rotations" in out and "1 truncation" in out and "stopped" in out
    assert "resumed from a checkpoint" in out
    # All the first two producers delivered was found on the topic and not sent again.
    skipped = re.search(r"(\d+) already delivered, not sent again", out)
    assert skipped is not None and int(skipped[1]) >= 300, out
    assert read_topic(kafka_settings, "deadletter") == []


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_a_one_line_error_or_a_dead_letter(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    missing = run_cli(kafka_settings, str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"gridalarm: {tmp_path / 'nope'}: no such file"]
    not_a_log = tmp_path / "StarterLog"
    not_a_log.write_text("11/29/26 07:00:01 (pid:123) Starting up\n" * 3)
    done = run_cli(kafka_settings, str(not_a_log))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "not an HTCondor event log" in done.stderr
    assert data_events(read_topic(kafka_settings, "events")) == []

    log = tmp_path / "EventLog"
    damaged = b"001 (2.000.000) 2025-11-04 20:00:05 Job executing, or so it says\n\tjunk\n...\n"
    log.write_bytes(event(1, 0) + damaged + event(3, 12) + b"not an event\n...\n" + event(4, 5))
    checkpoint = ("--checkpoint", str(tmp_path / "ck.json"))
    done = run_cli(kafka_settings, str(log), "--schedd", "s1", *checkpoint)
    assert done.returncode == 0, done.stderr
    assert "2 dead-lettered" in done.stdout
    events = data_events(read_topic(kafka_settings, "events"))
    assert sorted(m["attrs"]["job"] for m in events) == ["1.0", "3.0", "4.0"]
    letters = read_topic(kafka_settings, "deadletter")
    assert [(d["reason"], d["offset"]) for d in letters] == [
        ("schema", len(event(1, 0))),
        ("schema", len(event(1, 0) + damaged + event(3, 12))),
    ]
    assert all(d["topic"] == f"file:{log}" and d["stream"] == "schedd:s1" for d in letters)
    # Nothing is read twice: a second run has nothing to send.
    again = run_cli(kafka_settings, str(log), "--schedd", "s1", *checkpoint)
    assert again.returncode == 0 and "sent 0 events" in again.stdout
    assert len(data_events(read_topic(kafka_settings, "events"))) == 3
