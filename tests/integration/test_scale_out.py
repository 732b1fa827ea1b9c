"""Scale-out on a real broker: a second worker joins mid-stream, and the two match one worker.

A `gridalarm worker` consumes a replayed simulated file from an events topic of 8 partitions;
once it has committed a fifth of the file, a second process with the same settings (same worker
id: one consumer group, one set of tables) joins. Kafka's group hands some partitions over
mid-stream, with their state through the changelog. Together the two must publish what a single
worker publishes for the same file on other topics.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient
from pipeline_kit import (
    assert_same_outputs,
    committed,
    end_offsets,
    gridalarm,
    log_tail,
    partition_progress,
    published,
    second_prefix,
    wait_for_worker,
    wait_until,
    worker_group,
    worker_process,
)

from gridalarm.config import Settings

pytestmark = pytest.mark.integration

WINDOW = 60.0


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    assert kafka_settings.partitions == 8
    return kafka_settings.model_copy(update={"window": WINDOW})


@pytest.fixture
def single_settings(settings: Settings) -> Iterator[Settings]:
    """The same settings on a second topic prefix (its own topics and worker group)."""
    with second_prefix(settings, "single") as other:
        yield other


# -- who has which partitions ------------------------------------------------------------------


def group_shares(settings: Settings) -> list[set[int]]:
    """Events partitions of each member of the worker group, as the broker describes it."""
    group = worker_group(settings)
    topic = settings.topic("events")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka, bootstrap_timeout_ms=10_000)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if described.get("error") or described.get("group_state") != "Stable":
        return []
    shares = []
    for member in described["members"]:
        assignment = member["member_assignment"]
        if isinstance(assignment, dict):
            pairs = [(tp["topic"], tp["partitions"]) for tp in assignment["assigned_partitions"]]
        else:
            pairs = [(tp.topic, tp.partitions) for tp in assignment.assigned_partitions]
        shares.append({p for name, parts in pairs if name == topic for p in parts})
    return shares


_ASSIGNED = "Setting newly assigned partitions"


def logged_share(log: Path, topic: str) -> set[int]:
    """Events partitions of a worker's last assignment, from its info-level log.

    aiokafka logs each assignment as ``Setting newly assigned partitions`` followed by Faust's
    table of topics and partition sets (``{0-3}``, ``{1, 4, 6-7}``), ended by ``for group``.
    """
    text = log.read_text(errors="replace")
    at = text.rfind(_ASSIGNED)
    assert at >= 0, f"{log.name}: no assignment logged"
    block = text[at : text.find("for group", at)]
    row = re.search(rf"^\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}", block, re.MULTILINE)
    if row is None:
        return set()
    share: set[int] = set()
    for part in row.group(1).split(","):
        low, _, high = part.strip().partition("-")
        share.update(range(int(low), int(high or low) + 1))
    return share


# -- comparing outputs -------------------------------------------------------------------------


def test_a_worker_joining_mid_stream_takes_partitions_over_and_the_two_match_one_worker(
    settings: Settings, single_settings: Settings, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    gridalarm(
        settings,
        "simulate", "--streams", "16", "--days", "0.25", "--window", "1m",
        "--incidents", "outage,hold_storm,disconnect_storm", "--seed", "31", "--out", str(sim),
    )  # fmt: skip
    events = sim / "events.jsonl"
    group = worker_group(settings)
    topic = settings.topic("events")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]

    gridalarm(settings, "produce", "replay", str(events), "--speed", "max", "--quiet")
    total = end_offsets(settings, "events")
    assert 20_000 < total < 100_000
    with worker_process(settings, logs[0]) as first:

        def some_committed() -> bool:
            assert first.poll() is None, f"the first worker exited with {first.returncode}"
            return committed(settings, group) >= total // 5

        wait_until(some_committed, 180, "the first worker to commit a fifth of the events", 0.1)
        with worker_process(settings, logs[1]) as second:

            def second_ready() -> bool:
                assert second.poll() is None, f"the second worker exited with {second.returncode}"
                return "Worker ready" in logs[1].read_text(errors="replace")

            wait_until(second_ready, 120, "the second worker to take its partitions", 0.1)
            at_handover = committed(settings, group)

            def caught_up() -> bool:
                for proc in (first, second):
                    assert proc.poll() is None, f"a worker exited with {proc.returncode}"
                return committed(settings, group) >= total

            try:
                wait_until(caught_up, 300, f"the two workers to consume {total} events")
            except AssertionError as err:
                tails = "\n".join(log_tail(proc) for proc in (first, second))
                raise AssertionError(f"{err}\n{partition_progress(settings)}\n{tails}") from None
            assert at_handover < total, (
                f"{at_handover} of {total} events were committed before the hand-over: "
                "make the data larger"
            )
            # Both members of one group, each with a share; the shares split the 8 partitions.
            wait_until(lambda: len(group_shares(settings)) == 2, 60, "a stable group of two")
            shares = group_shares(settings)
            assert all(shares), f"a worker has no events partition: {shares}"
            assert not shares[0] & shares[1], f"a partition is assigned twice: {shares}"
            assert shares[0] | shares[1] == set(range(8))
            # The same split seen from the processes: each one's log names its own share.
            logged = [logged_share(log, topic) for log in logs]
            assert all(logged), f"a worker's log shows no events partition: {logged}"
            assert sorted(map(sorted, logged)) == sorted(map(sorted, shares))

    gridalarm(single_settings, "produce", "replay", str(events), "--speed", "max", "--quiet")
    with worker_process(single_settings, tmp_path / "worker-single.log") as single:
        wait_for_worker(single_settings, single, timeout=300)

    ours, reference = published(settings), published(single_settings)
    assert reference.windows and reference.opened, (
        "the single worker has no windows or no alerts to compare"
    )
    assert_same_outputs(ours, reference)
