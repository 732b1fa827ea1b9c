"""Silences and feedback labels on a real broker: the CLI, the worker's feed, a whole pipeline.

simulate → silence add → replay → worker → alerts topic → notify → webhook: the incident inside
the silence is recorded as ``suppressed`` and notifies nobody; the other one is routed. Then
operators label both alerts, and ``evaluate`` and ``train`` take the labels as ground truth.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline_kit import (
    REPO_ROOT,
    delete_prefixed_topics,
    end_offsets,
    gridalarm,
    read_topic,
    settings_env,
    wait_for_worker,
    wait_until,
    worker_process,
)
from routing_kit import committed_offsets, notify_process, receiver

from gridalarm.compacted import write_compacted
from gridalarm.config import Settings
from gridalarm.labels import read_labels
from gridalarm.stream.silence_feed import SilenceFeed
from gridalarm.stream.silences import new_silence
from gridalarm.timeutil import format_time, parse_time
from gridalarm.topics import ensure_topics

pytestmark = pytest.mark.integration

T0 = 1_767_571_200.0


def test_silence_add_list_and_remove_from_the_command_line(kafka_settings: Settings) -> None:
    settings = kafka_settings
    added = gridalarm(
        settings, "silence", "add", "--stream", "schedd:fife*", "--from", "2030-01-01T00:00:00Z",
        "--until", "4h", "--reason", "schedd upgrade", "--id", "upgrade-1",
    )  # fmt: skip
    assert added.startswith("upgrade-1  planned  schedd:fife*  2030-01-01T00:00:00Z .. ")
    listed = gridalarm(settings, "silence", "list", "--json")
    (message,) = [orjson.loads(line) for line in listed.splitlines()]
    assert message["id"] == "upgrade-1" and message["until"] == "2030-01-01T04:00:00Z"
    assert message["reason"] == "schedd upgrade" and message["by"].startswith("cli")

    assert gridalarm(settings, "silence", "remove", "upgrade-1") == "silence upgrade-1 removed\n"
    assert gridalarm(settings, "silence", "list") == "no silences\n"
    again = subprocess.run(
        [sys.executable, "-m", "gridalarm", "silence", "remove", "upgrade-1"],
        env=settings_env(settings), capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "no silence 'upgrade-1'" in again.stderr


def test_the_worker_feed_reads_existing_silences_first_then_follows_the_topic(
    kafka_settings: Settings,
) -> None:
    bootstrap, topic = str(kafka_settings.kafka), kafka_settings.topic("silences")

    def put(sid: str, remove: bool = False) -> None:
        silence = new_silence(sid, "schedd:*", T0, T0 + 3600, "test", "test", T0)
        value = None if remove else orjson.dumps(silence.to_message())
        write_compacted(bootstrap, topic, sid.encode(), value)

    async def until(predicate: Callable[[], bool], what: str) -> None:
        for _ in range(200):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the feed did not see {what} within 10s")

    async def scenario() -> None:
        put("before-1")
        put("before-2")
        put("before-2", remove=True)
        feed = SilenceFeed(bootstrap, topic)
        task = asyncio.ensure_future(feed.run())
        try:
            await asyncio.wait_for(feed.ready.wait(), 30)
            # Ready means the whole topic as it was at the start, tombstone included.
            assert [s.id for s in feed.silences] == ["before-1"]
            await asyncio.to_thread(put, "live")
            await until(lambda: feed.silences.get("live") is not None, "a new silence")
            await asyncio.to_thread(put, "before-1", True)
            await until(lambda: feed.silences.get("before-1") is None, "a removal")
            assert [s.id for s in feed.silences] == ["live"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


@dataclass(frozen=True)
class PipelineRun:
    """One run of simulate → silence add → replay → worker → notify, and what came of it."""

    settings: Settings
    silenced: dict[str, str]  # the labels.csv row of the incident inside the silence
    routed: dict[str, str]  # ... and of the other one
    silence_span: tuple[float, float]
    alerts: list[dict[str, Any]]
    notified: list[dict[str, Any]]


@pytest.fixture(scope="module")
def pipeline_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipelineRun]:
    tmp = tmp_path_factory.mktemp("pipeline")
    settings = Settings(
        kafka=kafka_bootstrap, topic_prefix=f"t-{uuid.uuid4().hex[:8]}", partitions=8,
        window=60.0, state_dir=tmp / "state",
    )  # fmt: skip
    ensure_topics(settings, kafka_bootstrap)
    try:
        yield _run_pipeline(settings, tmp)
    finally:
        delete_prefixed_topics(settings)


def _run_pipeline(settings: Settings, tmp: Path) -> PipelineRun:
    gridalarm(
        settings, "simulate", "--streams", "4", "--days", "0.25", "--window", "1m",
        "--incidents", "hold_storm,outage", "--seed", "5", "--out", str(tmp / "sim"),
    )  # fmt: skip
    with (tmp / "sim" / "labels.csv").open() as handle:
        silenced, routed = list(csv.DictReader(handle))
    assert silenced["stream"] != routed["stream"]
    begin = parse_time(silenced["start"]) - 600
    until = parse_time(silenced["end"]) + 1800  # well past the incident's resolution
    # Added before the worker starts: it must have read the topic before it routes anything.
    gridalarm(
        settings, "silence", "add", "--stream", silenced["stream"], "--from", format_time(begin),
        "--until", format_time(until), "--reason", "planned test", "--id", "maint-a",
    )  # fmt: skip
    gridalarm(settings, "produce", "replay", str(tmp / "sim" / "events.jsonl"), "--quiet")
    group = "g-silence"
    with (
        receiver() as hook,
        notify_process(settings, tmp / "notify.log", "--to", f"webhook={hook.url}",
                       "--group", group),
        worker_process(settings, tmp / "worker.log", GRIDALARM_DETECTOR="baseline") as proc,
    ):  # fmt: skip
        wait_for_worker(settings, proc, timeout=300)
        total = end_offsets(settings, "alerts")
        assert total > 0, "the worker published no alert"
        wait_until(
            lambda: sum(c or 0 for c in committed_offsets(settings, group).values()) >= total,
            60, "notify to handle every alert",
        )  # fmt: skip
        notified = hook.accepted()
    return PipelineRun(
        settings, silenced, routed, (begin, until), read_topic(settings, "alerts"), notified
    )


def test_an_incident_inside_a_silence_is_recorded_suppressed_and_notifies_nobody(
    pipeline_run: PipelineRun,
) -> None:
    run = pipeline_run
    begin, until = run.silence_span
    in_silence = [a for a in run.alerts if a["stream"] == run.silenced["stream"]
                  and begin <= parse_time(a["start"]) < until]  # fmt: skip
    assert in_silence, f"no alert on {run.silenced['stream']} during its incident"
    assert {(a["state"], a.get("silence")) for a in in_silence} == {("suppressed", "maint-a")}
    quiet_ids = {a["alert_id"] for a in in_silence}
    assert not quiet_ids & {m["alert_id"] for m in run.notified}, "a silenced incident notified"
    assert all(m["state"] != "suppressed" for m in run.notified)
    # The other incident went out: notify was listening, and the silence is not everywhere.
    opened = [m for m in run.notified if m["stream"] == run.routed["stream"]
              and m["state"] == "open"]  # fmt: skip
    assert opened and parse_time(run.routed["start"]) <= parse_time(opened[0]["since"])


def test_feedback_labels_are_ground_truth_for_evaluate_and_train(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    run, settings = pipeline_run, pipeline_run.settings
    begin, end = parse_time(run.routed["start"]), parse_time(run.routed["end"])
    real = min(
        (a for a in run.alerts if a["stream"] == run.routed["stream"] and a["state"] == "open"
         and begin <= parse_time(a["since"]) < end),
        key=lambda a: a["since"],
    )["alert_id"]  # fmt: skip
    (false,) = {a["alert_id"] for a in run.alerts if a["state"] == "suppressed"}
    # A 12-character prefix, as `alerts tail` shows it, is enough for the CLI.
    said = gridalarm(settings, "label", real[:12], "confirmed", "--note", "schedd down")
    assert said.startswith(f"alert {real} ({run.routed['stream']}, since ")
    gridalarm(settings, "label", false, "false-positive")
    labels = read_labels(str(settings.kafka), settings.topic("labels"))
    assert {k: v["label"] for k, v in labels.items()} == {
        real: "confirmed",
        false: "false-positive",
    }
    assert labels[real]["stream"] == run.routed["stream"] and labels[real]["note"] == "schedd down"
    incident = next(a for a in run.alerts if a["alert_id"] == real)
    assert labels[real]["since"] == incident["since"]

    # The windows topic has no ground truth of its own: the labels are all there is. The
    # baseline finds the incidents again; the confirmed one is an event it detects, the
    # false-positive one is a false alarm (and so is any alert nobody confirmed).
    evaluated = gridalarm(
        settings, "evaluate", "--detector", "baseline", "--topic", settings.topic("windows"),
        "--labels-topic", settings.topic("labels"),
    )  # fmt: skip
    result = orjson.loads(evaluated)
    assert (result["events"], result["detected"]) == (1, 1)
    assert result["false_alarms"] >= 1

    # The classifier learns from labels; the topic's confirmed incident is its anomaly.
    model = tmp_path / "classifier"
    gridalarm(
        settings, "train", "--detector", "lstm-classifier", "--topic", settings.topic("windows"),
        "--labels-topic", settings.topic("labels"), "--out", str(model), "--epochs", "1",
        "--units", "8", "--sequence", "32", "--quiet",
    )  # fmt: skip
    assert (model / "metadata.json").is_file()
