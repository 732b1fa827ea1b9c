"""A three-node KRaft cluster losing a node under load: no event lost, no output changed.

A local cluster of three combined broker+controller nodes (:mod:`gridalarm.localcluster`;
replication factor 3, min.insync.replicas 2, the internal topics too) gets the simulated file
of the other loops, replayed at a pace that makes it last about a minute, while one worker
consumes it. A third of the way in, one node is SIGKILLed (:data:`MODES`): the node that
coordinates the worker's consumer group, started again on its own storage two thirds of the
way in while the replay still runs; or a node that neither coordinates the group nor leads the
controller quorum, left dead to the end. Producer and worker carry on. Then the events topic
must hold every event of the file exactly once, and every window, score and alert message must
be what one worker's undisturbed run on the session broker published (issue 12: "a three-node
local KRaft cluster with one node killed").

Recovery: from the kill until the worker has committed past its kill-time offset on every
events partition (those the dead node led included); the first commit after the kill is
printed too. The cluster takes the client ports from ``GRIDALARM_STRESS_CLUSTER_PORT``
(default 39094) on: 39094, 39096, 39098, the port after each for its controller.
``GRIDALARM_STRESS_CLUSTER_RUNS`` (default 1) runs of each mode.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from pipeline_kit import (
    committed,
    committed_offsets,
    end_offsets,
    partition_progress,
    wait_for_worker,
    wait_until,
    worker_group,
    worker_process,
)
from stress_kit import SESSION, WINDOW, Reference, compare_run, producing, replay_failure

from gridalarm.config import Settings
from gridalarm.localcluster import LocalClusterConfig, LocalKafkaCluster
from gridalarm.timeutil import parse_time
from gridalarm.topics import ensure_topics

pytestmark = pytest.mark.integration

FIRST_PORT = int(os.environ.get("GRIDALARM_STRESS_CLUSTER_PORT", "39094"))
REPLAY_SECONDS = 60.0  # wall time the paced replay takes (without CPU contention)
RUNS = int(os.environ.get("GRIDALARM_STRESS_CLUSTER_RUNS", "1"))
OFFSETS_PARTITIONS = 8  # offsets.topic.num.partitions of the local broker


@pytest.fixture
def cluster(local_kafka_jars: Path, tmp_path: Path) -> Iterator[LocalKafkaCluster]:
    """Three nodes, replication 3, min ISR 2; stopped at the end whatever happened."""
    config = LocalClusterConfig(
        state_dir=tmp_path / "cluster", first_port=FIRST_PORT, jars_dir=local_kafka_jars
    )
    cluster = LocalKafkaCluster(config)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# Which node dies, and whether it comes back: the group coordinator (the worker's commits and
# heartbeats stop until another node takes the group over), started again two thirds of the
# way in; or a node that neither coordinates the group nor leads the controller quorum, left
# dead to the end (two nodes still make min ISR 2).
MODES = {
    "coordinator": ("group coordinator SIGKILLed, restarted", True),
    "other": ("a non-coordinator SIGKILLed, left down", False),
}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("mode", list(MODES))
def test_a_cluster_losing_a_node_under_load_loses_nothing(
    mode: str,
    run: int,
    reference: Reference,
    cluster: LocalKafkaCluster,
    tmp_path: Path,
    stress_row: dict[str, Any],
) -> None:
    what, restart = MODES[mode]
    stress_row.update(fault=f"3-node cluster (RF 3, min ISR 2): {what}", run=run)
    settings = Settings(
        kafka=cluster.bootstrap, topic_prefix=f"cluster-{uuid.uuid4().hex[:8]}", partitions=8,
        replication=3, state_dir=tmp_path / "state", window=WINDOW,
    )  # fmt: skip
    ensure_topics(settings)
    assert replication(settings, settings.topic("events")) == [3] * settings.partitions
    group = worker_group(settings)

    speed = event_span(reference.events) / REPLAY_SECONDS
    with (
        worker_process(settings, tmp_path / "worker-0.log", **SESSION) as worker,
        producing(settings, reference.events, speed, tmp_path / "replay.log") as producer,
    ):
        started = time.monotonic()
        wait_until(lambda: committed_or_none(settings) or 0, 300, "the worker's first commit")
        wait_until(lambda: time.monotonic() - started >= REPLAY_SECONDS / 3, 60, "a third")
        assert producer.poll() is None, "the replay ended before the kill: slow it down"

        victim, roles = choose(settings, group, mode)
        stress_row["fault"] += f" (node {victim}: {roles})"
        before = [offset or 0 for offset, _ in committed_offsets(settings, group)]
        cluster.kill(victim)
        killed = time.monotonic()
        print(f"\nkilled node {victim} ({roles}) at {killed - started:.1f}s")

        first: list[float] = []  # when the group's commit first moved after the kill

        def every_partition_moved_on() -> bool:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
            try:
                now = [offset or 0 for offset, _ in committed_offsets(settings, group)]
            except KafkaError:
                return False  # no coordinator to ask yet
            if not first and sum(now) > sum(before):
                first.append(time.monotonic() - killed)
            return all(n > b for n, b in zip(now, before, strict=True))

        wait_until(every_partition_moved_on, 300, "every partition's commit to move on", 0.05)
        stress_row["recovery s"] = time.monotonic() - killed
        print(
            f"the worker's commit moved {first[0]:.1f}s after the kill, every partition's "
            f"{stress_row['recovery s']:.1f}s after it"
        )

        if restart:
            wait_until(lambda: time.monotonic() - started >= 2 * REPLAY_SECONDS / 3, 120, "2/3")
            running, at = producer.poll() is None, time.monotonic()
            cluster.restart(victim)
            print(
                f"restarted node {victim} at {at - started:.1f}s "
                f"({'while' if running else 'after'} the replay ran), serving "
                f"{time.monotonic() - at:.1f}s later"
            )
        assert producer.wait(timeout=600) == 0, replay_failure(tmp_path / "replay.log")
        print(f"replay done at {time.monotonic() - started:.1f}s")
        stress_row["events"] = end_offsets(settings, "events")
        wait_for_worker(settings, worker, timeout=600)
        print(f"worker done at {time.monotonic() - started:.1f}s")
        at_end = partition_progress(settings)

    # A restarted node catches up; without it, the two others still hold every partition.
    in_sync = 3 if restart else 2
    wait_until(lambda: all_in_sync(settings, in_sync), 120, f"{in_sync} replicas in sync", 1.0)
    # The worker's changelog topic (its state) is replicated like the project's topics.
    changelog = f"{group}-state-changelog"
    assert replication(settings, changelog) == [3] * settings.partitions
    # Every event of the file on the topic once, then every output as the reference's.
    compare_run(settings, reference, tmp_path, stress_row, f"node {victim} killed; {at_end}")


def choose(settings: Settings, group: str, mode: str) -> tuple[int, str]:
    """The node to kill for ``mode`` and what it does in the cluster, for the table."""
    boss, quorum = coordinator(settings, group), quorum_leader(settings)
    events = leaders(settings, settings.topic("events"))
    # Of three nodes, at least one neither coordinates the group nor leads the quorum.
    victim = boss if mode == "coordinator" else min({1, 2, 3} - {boss, quorum})
    roles = [f"leads {len(events.get(victim, []))}/8 events partitions"]
    roles += ["group coordinator"] if victim == boss else []
    roles += ["quorum leader"] if victim == quorum else []
    return victim, ", ".join(roles)


def event_span(path: Path) -> float:
    """Seconds of event time from the file's first event to its last."""
    lines = path.read_bytes().splitlines()
    times = [parse_time(orjson.loads(line)["ts"]) for line in lines if line.strip()]
    return max(times) - min(times)


def committed_or_none(settings: Settings) -> int | None:
    """What the worker group committed, or None while the cluster cannot say (no coordinator)."""
    try:
        return committed(settings, worker_group(settings))
    except KafkaError:
        return None


def admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=str(settings.kafka).split(","))


def partitions(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The cluster's description of each partition of ``topic`` (leader, replicas, ISR)."""
    client = admin(settings)
    try:
        (described,) = client.describe_topics([topic])
    finally:
        client.close()
    return described["partitions"]


def leaders(settings: Settings, topic: str) -> dict[int, list[int]]:
    """Node id → the partitions of ``topic`` it leads."""
    out: dict[int, list[int]] = {}
    for part in partitions(settings, topic):
        out.setdefault(part["leader_id"], []).append(part["partition_index"])
    return {node: sorted(parts) for node, parts in out.items()}


def replication(settings: Settings, topic: str) -> list[int]:
    """Each partition's number of replicas, in partition order."""
    parts = sorted(partitions(settings, topic), key=lambda p: p["partition_index"])
    return [len(p["replica_nodes"]) for p in parts]


def all_in_sync(settings: Settings, replicas: int) -> bool:
    """Every partition of the run's events topic has ``replicas`` replicas in sync."""
    try:
        parts = partitions(settings, settings.topic("events"))
    except KafkaError:
        return False
    return all(len(p["isr_nodes"]) == replicas for p in parts)


def coordinator(settings: Settings, group: str) -> int:
    """The node coordinating ``group``: the leader of its ``__consumer_offsets`` partition,
    which Kafka picks as the group id's Java ``hashCode`` (sign bit cleared) modulo the
    partition count."""
    units = group.encode("utf-16-be")
    code = 0
    for i in range(0, len(units), 2):
        code = (31 * code + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    partition = (code & 0x7FFFFFFF) % OFFSETS_PARTITIONS
    for node, parts in leaders(settings, "__consumer_offsets").items():
        if partition in parts:
            return node
    raise AssertionError(f"__consumer_offsets partition {partition} has no leader")


def quorum_leader(settings: Settings) -> int:
    """The node leading the KRaft controller quorum (the active controller)."""
    client = admin(settings)
    try:
        quorum = client.describe_metadata_quorum()
    finally:
        client.close()
    return quorum["topics"][0]["partitions"][0]["leader_id"]
