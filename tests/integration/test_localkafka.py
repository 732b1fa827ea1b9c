"""The local broker's life cycle: start (idempotent), status, real traffic, clean stop.

It runs its own broker on ports 39192/39193 so that stopping it here never disturbs the session
broker that the other integration tests share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gridalarm.config import Settings
from gridalarm.localkafka import LocalKafka, LocalKafkaConfig, LocalKafkaError

PORT = 39192
CONTROLLER_PORT = 39193

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="the local broker needs Java 17+"),
]


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, local_kafka_jars: Path
) -> Iterator[LocalKafka]:
    if shutil.which("mvn") is None and not (local_kafka_jars / ".complete").is_file():
        pytest.skip("the local broker needs Maven once to fetch its jars")
    config = LocalKafkaConfig(
        state_dir=tmp_path_factory.mktemp("own-kafka"),
        port=PORT,
        controller_port=CONTROLLER_PORT,
        jars_dir=local_kafka_jars,
    )
    kafka = LocalKafka(config)
    began = time.monotonic()
    assert kafka.start() is True
    print(f"local broker started in {time.monotonic() - began:.1f}s")
    try:
        yield kafka
    finally:
        kafka.stop()


def test_start_is_idempotent(broker: LocalKafka) -> None:
    pid = broker.status().pid
    began = time.monotonic()
    assert broker.start() is False
    # Another process (or a fresh object) on the same state dir finds the same broker.
    assert LocalKafka(broker.config).start() is False
    assert time.monotonic() - began < 5
    assert broker.status().pid == pid


def test_status_when_running(broker: LocalKafka) -> None:
    status = broker.status()
    assert status.running
    assert status.pid is not None and status.pid > 0
    assert broker.bootstrap == f"127.0.0.1:{PORT}"
    assert broker.bootstrap in str(status)
    assert broker.pid_path.read_text().strip() == str(status.pid)
    assert b"Kafka Server started" in broker.log_path.read_bytes()


def test_server_properties(broker: LocalKafka) -> None:
    props = dict(
        line.split("=", 1)
        for line in broker.properties_path.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{CONTROLLER_PORT}"
    assert (
        props["listeners"]
        == f"PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{CONTROLLER_PORT}"
    )
    assert props["auto.create.topics.enable"] == "false"
    assert props["message.max.bytes"] == "16777216"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert Path(props["log.dirs"]).is_relative_to(broker.root)


def test_produce_and_consume(broker: LocalKafka) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from gridalarm.topics import ensure_topics

    settings = Settings(kafka=broker.bootstrap, topic_prefix=f"lk-{uuid.uuid4().hex[:8]}")
    ensure_topics(settings, broker.bootstrap)
    topic = settings.topic("events")
    big = os.urandom(5 * 1024 * 1024)  # the bad-input tests send a 5 MB message

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=16 * 1024 * 1024)
    try:
        producer.send(topic, key=b"schedd:a", value=b'{"v":1}').get(timeout=30)
        producer.send(topic, key=b"schedd:a", value=big).get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 2:
                break
    finally:
        consumer.close()
    assert values == [b'{"v":1}', big]


def test_port_taken_by_another_process_is_a_one_line_error(
    broker: LocalKafka, tmp_path: Path
) -> None:
    other = LocalKafka(
        LocalKafkaConfig(state_dir=tmp_path, port=PORT, controller_port=CONTROLLER_PORT + 100)
    )
    with pytest.raises(LocalKafkaError, match=f"port {PORT}") as caught:
        other.start()
    assert "\n" not in str(caught.value)


def test_cli_start_and_status(broker: LocalKafka) -> None:
    from gridalarm.cli import kafka as kafka_cli

    app = typer.Typer()
    kafka_cli.register(app)
    args = [
        "--state-dir",
        str(broker.config.state_dir),
        "--port",
        str(PORT),
        "--controller-port",
        str(CONTROLLER_PORT),
    ]
    runner = CliRunner()
    started = runner.invoke(app, ["kafka", "start", *args])
    assert started.exit_code == 0, started.output
    assert started.stdout.strip() == broker.bootstrap
    status = runner.invoke(app, ["kafka", "status", *args])
    assert status.exit_code == 0
    assert "running" in status.stdout


def test_stop_is_clean(broker: LocalKafka) -> None:
    pid = broker.status().pid
    assert pid is not None
    began = time.monotonic()
    assert broker.stop() is True
    print(f"local broker stopped in {time.monotonic() - began:.1f}s")
    status = broker.status()
    assert not status.running
    assert status.pid is None
    assert not status.serving
    assert str(status) == "stopped"
    assert not broker.pid_path.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert broker.stop() is False  # stopping a stopped broker is fine


def _stubborn_process(argument: str) -> subprocess.Popen[bytes]:
    """A process that ignores SIGTERM and carries ``argument`` on its command line."""
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, argument], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
    return proc


def test_stop_kills_a_broker_that_ignores_sigterm(tmp_path: Path) -> None:
    kafka = LocalKafka(LocalKafkaConfig(state_dir=tmp_path, stop_timeout=0.5))
    kafka.root.mkdir(parents=True)
    stubborn = _stubborn_process(str(kafka.properties_path))
    try:
        kafka.pid_path.write_text(f"{stubborn.pid}\n")
        assert kafka.status().pid == stubborn.pid
        began = time.monotonic()
        assert kafka.stop() is True
        assert time.monotonic() - began >= 0.5  # waited for SIGTERM first
        assert not kafka.pid_path.exists()
        with pytest.raises(ProcessLookupError):
            os.kill(stubborn.pid, 0)
    finally:
        stubborn.kill()
        stubborn.wait()


def test_stale_or_foreign_pid_file_is_not_our_broker(tmp_path: Path) -> None:
    kafka = LocalKafka(LocalKafkaConfig(state_dir=tmp_path))
    kafka.root.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    kafka.pid_path.write_text(f"{dead.pid}\n")
    assert kafka.status().pid is None
    assert kafka.stop() is False
    assert not kafka.pid_path.exists()

    # A live process that reused the pid but is not this broker must never be signalled.
    foreign = _stubborn_process("not-a-broker")
    try:
        kafka.pid_path.write_text(f"{foreign.pid}\n")
        assert kafka.status().pid is None
        assert kafka.stop() is False
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()
