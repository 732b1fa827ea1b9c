"""The project's Kafka topics: where the broker is, waiting for it, and creating the topics.

Producers, the worker, the CLI and the tests all call :func:`ensure_topics` before they use a
topic, because the local broker runs with ``auto.create.topics.enable=false``: topics must get
their partition count (the unit of scale-out) and size limits from here, not from broker
defaults. Errors an operator can mend raise :class:`KafkaSetupError` with a one-line message.
"""

from __future__ import annotations

import socket
import time

import kafka.errors as kafka_errors
from kafka.admin import KafkaAdminClient

from gridalarm.config import Settings
from gridalarm.kafka_auth import (
    KafkaAccess,
    KafkaTarget,
    access_of,
    captured_refusals,
    failure_line,
)

TOPIC_KINDS: tuple[str, ...] = (
    "events",
    "windows",
    "scores",
    "alerts",
    "deadletter",
    "silences",
    "labels",
)

# Per-kind topic configs; kinds not listed take the broker's defaults.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    # A malformed 5 MB message must still reach the worker, so it can be dead-lettered with a
    # reason instead of being refused at the producer and lost.
    "events": {"max.message.bytes": "8388608"},
    # A dead letter carries the raw bytes base64-encoded (4/3 larger) plus provenance.
    "deadletter": {"max.message.bytes": "16777216"},
    # Control topics: the latest message per key (silence id, alert id) is the state; a
    # removed silence is a tombstone.
    "silences": {"cleanup.policy": "compact"},
    "labels": {"cleanup.policy": "compact"},
}

# Kinds whose partition count is fixed: every worker reads all of the silences, and one
# partition keeps their order total.
TOPIC_PARTITIONS: dict[str, int] = {"silences": 1}

_ADMIN_CLIENT_ID = "gridalarm-admin"
# Seconds of the first bootstrap try, after which a security failure ends the wait.
FIRST_TRY = 3.0


class KafkaSetupError(RuntimeError):
    """Topics could not be set up; the message is one line meant for an operator."""


class BrokerUnavailableError(KafkaSetupError):
    """No broker answers at the configured address."""


class KafkaAccessError(KafkaSetupError):
    """The broker answers but refuses the credentials, or TLS fails (see gridalarm.kafka_auth)."""


def resolve_kafka(settings: Settings) -> KafkaAccess:
    """The broker address (``settings.kafka``, GRIDALARM_KAFKA, else the local broker's) and
    its security settings (GRIDALARM_KAFKA*): what clients get."""
    return KafkaAccess.from_settings(settings)


def wait_for_broker(kafka: KafkaTarget, timeout: float = 30.0) -> None:
    """Return once a broker at ``kafka`` answers a metadata request, or raise after timeout.

    Wrong credentials or a TLS mismatch raise :class:`KafkaAccessError` with one line that says
    which setting to mend, instead of a long wait for "no broker".
    """
    access = access_of(kafka)
    admin = _connect(access, timeout)
    try:
        with captured_refusals("kafka"):
            admin.list_topics()
    except kafka_errors.KafkaError as err:
        raise _contact_error(access, err) from None
    finally:
        admin.close()


def wait_for_group_coordinator(kafka: KafkaTarget, group: str, timeout: float = 30.0) -> None:
    """Return once the broker can coordinate consumer group ``group``.

    On a fresh broker the offsets topic is created on the first request for a coordinator; a
    worker that starts before then logs a burst of GroupCoordinatorNotAvailable errors that
    mean nothing. Asking first keeps a newcomer's screen clean.
    """
    bootstrap = access_of(kafka)
    admin = _connect(bootstrap, timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                admin.describe_groups([group])
                return
            except kafka_errors.KafkaError:
                if time.monotonic() >= deadline:
                    raise KafkaSetupError(
                        f"the broker at {bootstrap} cannot coordinate consumer groups after "
                        f"{timeout:.0f}s; check its log (offsets topic replication settings)"
                    ) from None
                time.sleep(0.5)
    finally:
        admin.close()


def topic_specs(settings: Settings) -> dict[str, dict[str, object]]:
    """Name → kafka-python ``create_topics`` spec for every topic the project uses."""
    return {
        settings.topic(kind): {
            "num_partitions": TOPIC_PARTITIONS.get(kind, settings.partitions),
            "replication_factor": settings.replication,
            "configs": dict(TOPIC_CONFIGS.get(kind, {})),
        }
        for kind in TOPIC_KINDS
    }


def ensure_topics(
    settings: Settings, kafka: KafkaTarget | None = None, timeout: float = 30.0
) -> None:
    """Create the missing ``<prefix>.<kind>`` topics, one per :data:`TOPIC_KINDS`.

    Existing topics are left exactly as they are (their partition counts and configs are the
    operator's business once created). Another process creating the same topics at the same
    moment is fine: "already exists" counts as success.
    """
    bootstrap = access_of(kafka) if kafka else resolve_kafka(settings)
    admin = _connect(bootstrap, timeout)
    try:
        specs = topic_specs(settings)
        existing = set(admin.list_topics())
        missing = {name: spec for name, spec in specs.items() if name not in existing}
        if not missing:
            return
        result = admin.create_topics(missing, timeout_ms=int(timeout * 1000), raise_errors=False)
        for topic in result["topics"]:
            error = kafka_errors.for_code(topic["error_code"])
            if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                continue
            detail = " ".join((topic.get("error_message") or error.__name__).split())
            raise KafkaSetupError(
                f"cannot create topic {topic['name']!r} at {bootstrap}: {detail}{_hint(error)}"
            )
        # CreateTopics returns before every partition has a leader; a producer or consumer
        # starting right away would otherwise see UnknownTopicOrPartition for a moment.
        admin.wait_for_topics(list(missing), timeout_ms=int(timeout * 1000))
    except kafka_errors.KafkaTimeoutError:
        raise KafkaSetupError(
            f"topics with prefix {settings.topic_prefix!r} not ready at {bootstrap} "
            f"within {timeout:.0f}s"
        ) from None
    except kafka_errors.KafkaError as err:
        raise KafkaSetupError(f"cannot create topics at {bootstrap}: {err}") from None
    finally:
        admin.close()


def _connect(access: KafkaAccess, timeout: float) -> KafkaAdminClient:
    """An admin client bootstrapped from ``access``, waiting up to ``timeout`` for a broker."""
    deadline = time.monotonic() + timeout
    addresses = _parse_bootstrap(access.bootstrap)
    # Probe with plain TCP first: kafka-python's admin client leaks an I/O thread per failed
    # bootstrap, so it is built once, when something is listening.
    while not any(_tcp_open(host, port) for host, port in addresses):
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(_unreachable(access.bootstrap))
        time.sleep(0.25)
    # kafka-python retries refused credentials (and a TLS port it cannot talk to) until its
    # bootstrap times out, then says only "unable to bootstrap"; a refusal shows in its log
    # records. So the first try is short, and a security failure found after it ends the wait
    # at once: a wrong password or a missing CA does not mend itself.
    for limit in (FIRST_TRY, None):
        left = deadline - time.monotonic()
        wait = max(min(left, limit) if limit else left, 1.0)
        with captured_refusals("kafka") as refusals:
            try:
                return KafkaAdminClient(
                    **access.kafka_python(),
                    client_id=_ADMIN_CLIENT_ID,
                    bootstrap_timeout_ms=int(wait * 1000),
                )
            except (kafka_errors.KafkaError, OSError) as err:
                failure = refusals[0] if refusals else err
        line = failure_line(access, failure)
        if line is not None:
            raise KafkaAccessError(line)
        if time.monotonic() >= deadline:
            break
    raise BrokerUnavailableError(_unreachable(access.bootstrap))


def _contact_error(access: KafkaAccess, err: BaseException) -> KafkaSetupError:
    """Why first contact failed: a security matter in one line, else "no broker answers"."""
    line = failure_line(access, err)
    if line is not None:
        return KafkaAccessError(line)
    return BrokerUnavailableError(_unreachable(access.bootstrap))


def _unreachable(bootstrap: str) -> str:
    return (
        f"no Kafka broker answers at {bootstrap}; start one with `gridalarm kafka start` "
        "or set GRIDALARM_KAFKA"
    )


def _hint(error: type[Exception]) -> str:
    if error is kafka_errors.InvalidReplicationFactorError:
        return "; lower GRIDALARM_REPLICATION to at most the number of brokers"
    if error is kafka_errors.InvalidPartitionsError:
        return "; check GRIDALARM_PARTITIONS"
    return ""


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port[,host:port]`` (``[v6]:port`` too) → pairs; a bad address is a setup error."""
    addresses = []
    for item in bootstrap.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KafkaSetupError(
                f"Kafka address {bootstrap!r} is not host:port[,host:port] (GRIDALARM_KAFKA)"
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
