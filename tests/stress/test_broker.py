"""The broker SIGKILLed and restarted mid-stream, producer and worker running: nothing may change.

A broker of the test's own (one KRaft node on its own ports and folder) takes a replay of the
reference file paced to last about a minute, while one worker consumes it. Once the worker has
committed for ``SETTLE`` seconds, the broker is SIGKILLed, stays down for ``DOWN`` seconds and is
started again on the same data. The producer must finish its replay and the worker catch up by
itself: neither is restarted. Then every event of the file must be on the topic once, and every
window, score and alert message equal one worker's undisturbed run (issue 12: "the broker
killed (SIGKILL) and restarted mid-stream, with producers and workers running").

Recovery is timed from the restart to the worker's first commit past what it had committed
before the kill.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import (
    committed,
    end_offsets,
    wait_for_worker,
    wait_until,
    worker_group,
    worker_process,
)
from stress_kit import SESSION, WINDOW, Reference, compare_run, producing, replay_failure

from gridalarm.config import Settings
from gridalarm.localkafka import LocalKafka, LocalKafkaConfig
from gridalarm.topics import ensure_topics

pytestmark = pytest.mark.integration

PORT, CONTROLLER_PORT = 39196, 39197  # not the localkafka tests' 39192-39193
SPEED = 400.0  # times real time: the reference file's 0.3 day in about 65 s
SETTLE = 15.0  # seconds of the worker committing before the kill
DOWN = 15.0  # seconds the broker stays dead
RUNS = int(os.environ.get("GRIDALARM_STRESS_BROKER_RUNS", "1"))


@pytest.fixture
def own_broker(tmp_path: Path, local_kafka_jars: Path) -> Iterator[LocalKafka]:
    """A one-node broker that only this test uses, so that killing it harms nobody else."""
    broker = LocalKafka(
        LocalKafkaConfig(
            state_dir=tmp_path / "broker",
            port=PORT,
            controller_port=CONTROLLER_PORT,
            jars_dir=local_kafka_jars,
        )
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.timeout(1800)  # its waits add up to more than pytest's default 600 s
@pytest.mark.parametrize("run", range(RUNS))
def test_the_broker_killed_and_restarted_mid_stream_changes_nothing(
    run: int,
    reference: Reference,
    own_broker: LocalKafka,
    tmp_path: Path,
    stress_row: dict[str, Any],
) -> None:
    stress_row.update(fault=f"broker SIGKILLed, down {DOWN:.0f} s, restarted", run=run)
    settings = Settings(
        kafka=own_broker.bootstrap, topic_prefix=f"broker-{run}", partitions=8,
        state_dir=tmp_path / "state", window=WINDOW,
    )  # fmt: skip
    ensure_topics(settings, settings.kafka)
    group = worker_group(settings)
    producer_log = tmp_path / "producer.log"
    with (
        worker_process(settings, tmp_path / "worker-0.log", **SESSION) as worker,
        producing(settings, reference.events, SPEED, producer_log) as producer,
    ):

        def started() -> bool:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
            return committed(settings, group) > 0

        wait_until(started, 180, "the worker's first commit", 0.2)
        time.sleep(SETTLE)  # the fault's place in the replay, not a synchronisation
        assert producer.poll() is None, "the replay ended before the kill: slow it down"
        before = committed(settings, group)
        assert own_broker.kill()  # SIGKILL; returns once its ports are free
        killed = time.monotonic()
        time.sleep(DOWN)  # the outage itself
        own_broker.start()
        restarted = time.monotonic()

        def moved_on() -> bool:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
            return committed(settings, group) > before

        wait_until(moved_on, 300, "the worker's first commit after the restart", 0.2)
        stress_row["recovery s"] = time.monotonic() - restarted
        assert producer.wait(timeout=300) == 0, replay_failure(producer_log)
        wait_for_worker(settings, worker, timeout=300)
        stress_row["events"] = end_offsets(settings, "events")
    down = f"killed at {before} committed, restarted after {restarted - killed:.1f} s"
    compare_run(settings, reference, tmp_path, stress_row, down)
