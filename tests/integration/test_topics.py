"""Topic setup against the real test broker (gridalarm.topics)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from gridalarm.config import Settings
from gridalarm.kafka_auth import LOCAL_BOOTSTRAP
from gridalarm.topics import (
    TOPIC_KINDS,
    TOPIC_PARTITIONS,
    BrokerUnavailableError,
    KafkaSetupError,
    ensure_topics,
    resolve_kafka,
    wait_for_broker,
)


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        yield client
    finally:
        client.close()


def _settings(bootstrap: str, **overrides: object) -> Settings:
    return Settings(kafka=bootstrap, topic_prefix=f"tt-{uuid.uuid4().hex[:8]}", **overrides)


def _partitions(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


def _expected(settings: Settings, partitions: int) -> dict[str, int]:
    """Every topic's partition count: ``partitions``, but the fixed ones (silences: 1)."""
    return {settings.topic(k): TOPIC_PARTITIONS.get(k, partitions) for k in TOPIC_KINDS}


def _config(admin: KafkaAdminClient, topic: str, name: str) -> str:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, [name])
    configs = admin.describe_configs([resource], config_filter="all")
    return configs["topic"][topic][name]["value"]


@pytest.mark.integration
def test_ensure_topics_creates_every_topic(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    settings = _settings(kafka_bootstrap, partitions=8)
    ensure_topics(settings, kafka_bootstrap)
    names = [settings.topic(kind) for kind in TOPIC_KINDS]
    assert len(names) == 7
    assert set(names) <= set(admin.list_topics())
    assert _partitions(admin, names) == _expected(settings, 8)
    assert _partitions(admin, [settings.topic("silences")]) == {settings.topic("silences"): 1}
    assert _config(admin, settings.topic("events"), "max.message.bytes") == "8388608"
    assert _config(admin, settings.topic("deadletter"), "max.message.bytes") == "16777216"
    # Control topics keep the latest message per key: the silences and labels as they stand.
    for kind in ("silences", "labels"):
        assert _config(admin, settings.topic(kind), "cleanup.policy") == "compact"
    assert _config(admin, settings.topic("alerts"), "cleanup.policy") == "delete"


@pytest.mark.integration
def test_partition_count_comes_from_settings(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    settings = _settings(kafka_bootstrap, partitions=3)
    ensure_topics(settings, kafka_bootstrap)
    names = [settings.topic(kind) for kind in TOPIC_KINDS]
    assert _partitions(admin, names) == _expected(settings, 3)


@pytest.mark.integration
def test_ensure_topics_is_idempotent(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    settings = _settings(kafka_bootstrap)
    ensure_topics(settings, kafka_bootstrap)
    ensure_topics(settings, kafka_bootstrap)
    names = [settings.topic(kind) for kind in TOPIC_KINDS]
    assert _partitions(admin, names) == _expected(settings, 8)


@pytest.mark.integration
def test_existing_topics_are_left_alone(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    settings = _settings(kafka_bootstrap)
    alerts = settings.topic("alerts")
    admin.create_topics({alerts: {"num_partitions": 2, "replication_factor": 1}})
    ensure_topics(settings, kafka_bootstrap)
    names = [settings.topic(kind) for kind in TOPIC_KINDS]
    assert _partitions(admin, names) == {**_expected(settings, 8), alerts: 2}


@pytest.mark.integration
def test_concurrent_creators_both_succeed(kafka_bootstrap: str, admin: KafkaAdminClient) -> None:
    # A producer and a worker starting together both create the topics: "already exists" is
    # success for whichever loses the race.
    settings = _settings(kafka_bootstrap)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ensure_topics(settings, kafka_bootstrap)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = [settings.topic(kind) for kind in TOPIC_KINDS]
    assert _partitions(admin, names) == _expected(settings, 8)


@pytest.mark.integration
def test_impossible_replication_is_a_one_line_error(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap, replication=3)
    with pytest.raises(KafkaSetupError, match="GRIDALARM_REPLICATION") as caught:
        ensure_topics(settings, kafka_bootstrap)
    assert "\n" not in str(caught.value)


@pytest.mark.integration
def test_kafka_settings_fixture_made_the_topics(
    kafka_settings: Settings, admin: KafkaAdminClient
) -> None:
    assert kafka_settings.topic_prefix.startswith("t-")
    names = [kafka_settings.topic(kind) for kind in TOPIC_KINDS]
    assert set(names) <= set(admin.list_topics())


@pytest.mark.integration
def test_wait_for_broker_returns_when_up(kafka_bootstrap: str) -> None:
    wait_for_broker(kafka_bootstrap, timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wait_for_broker_gives_up_with_one_line() -> None:
    address = f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as caught:
        wait_for_broker(address, timeout=1.0)
    assert time.monotonic() - began < 5
    text = str(caught.value)
    assert "\n" not in text
    assert f"no Kafka broker answers at {address}" in text
    assert "gridalarm kafka start" in text
    assert "GRIDALARM_KAFKA" in text


def test_ensure_topics_without_broker_is_the_same_error() -> None:
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(BrokerUnavailableError, match="no Kafka broker answers"):
        ensure_topics(_settings(address), address, timeout=1.0)


@pytest.mark.parametrize("bad", ["localhost", "host:port", "host:0", ":9092"])
def test_malformed_address_is_a_setup_error(bad: str) -> None:
    with pytest.raises(KafkaSetupError, match="host:port"):
        wait_for_broker(bad, timeout=0.1)


def test_resolve_kafka_address() -> None:
    assert resolve_kafka(Settings(kafka="kafka-1:9092")).bootstrap == "kafka-1:9092"
    assert resolve_kafka(Settings(kafka=None)).bootstrap == LOCAL_BOOTSTRAP == "127.0.0.1:9092"
