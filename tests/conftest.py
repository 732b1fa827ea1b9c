"""Shared fixtures: a real Apache Kafka broker for the integration tests.

DESIGN.md ("Real parts"): no mock stands in for Kafka. The broker is, in order of preference,
``GRIDALARM_KAFKA`` from the environment, an ``apache/kafka`` container when a Docker engine
answers, or a local broker run from Maven Central jars (:mod:`gridalarm.localkafka`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from es_support import (  # noqa: F401
    es_client,
    es_index_prefix,
    es_url,
    local_es_jars,
    own_es_node,
)

from gridalarm.config import Settings
from gridalarm.javaserver import alive, flocked
from gridalarm.localkafka import LocalKafka, LocalKafkaConfig, LocalKafkaError

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_KAFKA_STATE = REPO_ROOT / ".state" / "test-kafka"
TEST_KAFKA_PORT = 39092
TEST_KAFKA_CONTROLLER_PORT = 39093
# Jars resolved once for every local broker the tests start (the session's and a test's own).
TEST_KAFKA_JARS = TEST_KAFKA_STATE / "kafka" / "jars"
KAFKA_IMAGE = os.environ.get("GRIDALARM_KAFKA_IMAGE", "apache/kafka:4.1.2")

# The stress loops run an hour or more: `make stress` sets GRIDALARM_STRESS; `make test` runs
# their one-run forms (the restart and scale-out tests) instead.
collect_ignore = [] if os.environ.get("GRIDALARM_STRESS") else ["stress"]


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas with importlib.resources APIs deprecated in
    # 3.11, warning ~200 times per import; the noise would bury our own warnings.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")
    # Keras 3 converts TensorFlow tensors with np.array(x, copy=False) and warns on numpy 2.
    config.addinivalue_line(
        "filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword"
    )


@pytest.fixture(scope="session")
def local_kafka_jars() -> Path:
    """Where local test brokers share their Maven-resolved jars (resolved on first start)."""
    return TEST_KAFKA_JARS


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping (quietly False without the SDK or an engine)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """An ``apache/kafka`` container in KRaft mode, started with testcontainers.

    testcontainers-python's KafkaContainer drives Confluent's image (its start script sources
    /etc/confluent/docker/*), so the official image is set up here the way testcontainers-java
    does it: the advertised listener needs the mapped host port, known only after the
    container starts, so the container waits for a start script that is copied in then.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    script = "/tmp/gridalarm-start.sh"
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_exposed_ports(9092)
        .with_envs(
            CLUSTER_ID="4L6g3nShT-eMCtK--X86sw",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,"
            "CONTROLLER://0.0.0.0:9094",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,"
            "CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="8",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_MESSAGE_MAX_BYTES="16777216",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
            KAFKA_NUM_PARTITIONS="8",
        )
        .with_command(["sh", "-c", f"while [ ! -f {script} ]; do sleep 0.1; done; sh {script}"])
    )
    container.start()
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(9092)
        start = (
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{host}:{port},"
            "BROKER://$(hostname):9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        container.copy_into_container(start.encode(), script, 0o755)
        wait = LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(180)
        wait.wait_until_ready(container)
        yield f"{host}:{port}"
    finally:
        container.stop()


@contextlib.contextmanager
def _local_kafka() -> Iterator[str]:
    """The local broker on the test ports, shared by concurrent pytest sessions in this tree.

    Each session registers its pid under ``users/``; the last one out stops the broker, so a
    session ending does not pull the broker from under another still running.
    """
    broker = LocalKafka(
        LocalKafkaConfig(
            state_dir=TEST_KAFKA_STATE,
            port=TEST_KAFKA_PORT,
            controller_port=TEST_KAFKA_CONTROLLER_PORT,
            jars_dir=TEST_KAFKA_JARS,
        )
    )
    users = TEST_KAFKA_STATE / "users"
    users.mkdir(parents=True, exist_ok=True)
    me = users / str(os.getpid())
    with flocked(TEST_KAFKA_STATE / "users.lock"):
        me.touch()
        try:
            broker.start()
        except LocalKafkaError as err:
            me.unlink(missing_ok=True)
            pytest.fail(f"local Kafka for the tests: {err}", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        with flocked(TEST_KAFKA_STATE / "users.lock"):
            me.unlink(missing_ok=True)
            for user in users.iterdir():  # sessions that died without a teardown
                if not (user.name.isdigit() and alive(int(user.name))):
                    user.unlink(missing_ok=True)
            if not any(users.iterdir()):
                broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a real Kafka broker, up for the whole session and stopped after it."""
    # Imported here, not at the top: unit-test runs then never import kafka-python.
    from gridalarm.topics import KafkaSetupError, wait_for_broker

    configured = os.environ.get("GRIDALARM_KAFKA")
    if configured:
        try:
            wait_for_broker(configured, timeout=60)
        except KafkaSetupError as err:
            pytest.fail(f"GRIDALARM_KAFKA: {err}", pytrace=False)
        yield configured
    elif _docker_answers():
        with _kafka_container() as bootstrap:
            yield bootstrap
    else:
        with _local_kafka() as bootstrap:
            yield bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the test broker with this test's own topics (a unique prefix), created."""
    from gridalarm.topics import ensure_topics

    settings = Settings(
        kafka=kafka_bootstrap,
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}",
        partitions=8,
        state_dir=tmp_path / "state",
    )
    ensure_topics(settings, kafka_bootstrap)
    yield settings
    _delete_topics(settings, kafka_bootstrap)


def _delete_topics(settings: Settings, bootstrap: str) -> None:
    """Best effort: keep a long session's broker (or a shared GRIDALARM_KAFKA one) lean."""
    from kafka.admin import KafkaAdminClient

    from gridalarm.topics import TOPIC_KINDS

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5000)
        try:
            admin.delete_topics([settings.topic(kind) for kind in TOPIC_KINDS])
        finally:
            admin.close()
