"""Kafka security settings (gridalarm.config) and their client options (gridalarm.kafka_auth)."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import certifi
import pytest

from gridalarm.config import ConfigError, load_settings
from gridalarm.kafka_auth import (
    KafkaAccess,
    access_of,
    failure_line,
    is_auth_failure,
    refused_line,
)

# A real PEM CA bundle that is always there (certifi is a dependency of httpx).
CA = Path(certifi.where())
SECRET = "s3cret-Pa55"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the GRIDALARM_* variables it sets itself."""
    for name in list(os.environ):
        if name.startswith("GRIDALARM_"):
            monkeypatch.delenv(name)


def _sasl_ssl(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    env = {
        "GRIDALARM_KAFKA": "broker-1:9094,broker-2:9094",
        "GRIDALARM_KAFKA_SECURITY": "sasl_ssl",
        "GRIDALARM_KAFKA_USERNAME": "alice",
        "GRIDALARM_KAFKA_PASSWORD": SECRET,
        "GRIDALARM_KAFKA_CA": str(CA),
        **extra,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


# -- settings ---------------------------------------------------------------------------------


def test_defaults_are_plaintext() -> None:
    settings = load_settings()
    assert settings.kafka_security == "plaintext"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert (settings.kafka_username, settings.kafka_password, settings.kafka_ca) == (None,) * 3
    assert settings.kafka_check_hostname is True


def test_security_from_the_environment_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_ssl(monkeypatch, GRIDALARM_KAFKA_SECURITY="SASL_SSL")
    monkeypatch.setenv("GRIDALARM_KAFKA_SASL_MECHANISM", "scram-sha-512")
    settings = load_settings()
    assert settings.kafka_security == "sasl_ssl"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_password is not None
    assert settings.kafka_password.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GRIDALARM_KAFKA_SECURITY": "tls"}, "use one of plaintext, ssl, sasl_plaintext"),
        ({"GRIDALARM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SCRAM-SHA-256, SCRAM-SHA-512, PLAIN"),
        ({"GRIDALARM_KAFKA_USERNAME": ""}, "set GRIDALARM_KAFKA_USERNAME"),
        ({"GRIDALARM_KAFKA_PASSWORD": ""}, "set GRIDALARM_KAFKA_PASSWORD"),
        ({"GRIDALARM_KAFKA_CA": "/no/such/ca.pem"}, "kafka_ca: no such file '/no/such/ca.pem'"),
        (
            {"GRIDALARM_KAFKA_SECURITY": "plaintext", "GRIDALARM_KAFKA_CA": ""},
            "GRIDALARM_KAFKA_SECURITY is plaintext, which sends no credentials",
        ),
        ({"GRIDALARM_KAFKA_SECURITY": "sasl_plaintext"}, "kafka_ca: set, but"),
    ],
)
def test_incomplete_or_contradictory_security_is_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    _sasl_ssl(monkeypatch, **env)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert expected in text
    assert "\n" not in text
    assert SECRET not in text


def test_a_bad_password_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_ssl(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        load_settings(kafka_password=["not", "a", "string", SECRET])
    assert "kafka_password" in str(caught.value)
    assert SECRET not in str(caught.value)


# -- client options ---------------------------------------------------------------------------


def test_from_settings_and_what_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_ssl(monkeypatch)
    access = KafkaAccess.from_settings(load_settings())
    assert access.servers == ["broker-1:9094", "broker-2:9094"]
    assert (access.username, access.password, access.ca) == ("alice", SECRET, CA)
    assert str(access) == "broker-1:9094,broker-2:9094"
    assert SECRET not in repr(access)
    assert access.describe() == "SASL_SSL as 'alice' (SCRAM-SHA-256)"


def test_unset_kafka_means_the_local_broker() -> None:
    assert KafkaAccess.from_settings(load_settings()).bootstrap == "127.0.0.1:9092"


def test_a_bare_address_is_plaintext() -> None:
    access = access_of("h:1")
    assert access == KafkaAccess("h:1")
    assert access.kafka_python() == {"bootstrap_servers": ["h:1"], "security_protocol": "PLAINTEXT"}
    assert access.aiokafka() == {"bootstrap_servers": ["h:1"], "security_protocol": "PLAINTEXT"}
    assert access.faust() == {"broker": "kafka://h:1"}
    assert access_of(access) is access


def test_sasl_ssl_options_for_kafka_python() -> None:
    access = KafkaAccess("h:1", "sasl_ssl", "SCRAM-SHA-512", "alice", SECRET, CA)
    options = access.kafka_python()
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["h:1"],
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # the CA file was loaded
    # Every option is one kafka-python's clients know (they reject unknown ones).
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    for client in (KafkaConsumer, KafkaProducer, KafkaAdminClient):
        assert set(access.kafka_python()) <= set(client.DEFAULT_CONFIG), client


def test_the_tls_context_is_shared_and_hostname_checks_can_be_turned_off() -> None:
    strict = KafkaAccess("h:1", "ssl", ca=CA)
    assert strict.ssl_context() is KafkaAccess("h:2", "ssl", ca=CA).ssl_context()
    loose = KafkaAccess("h:1", "ssl", ca=CA, check_hostname=False)
    context = loose.ssl_context()
    assert context is not None and not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified
    assert loose.kafka_python()["ssl_check_hostname"] is False


@pytest.mark.parametrize(
    ("security", "tls", "sasl"),
    [("ssl", True, False), ("sasl_plaintext", False, True), ("sasl_ssl", True, True)],
)
def test_aiokafka_clients_accept_the_options(security: str, tls: bool, sasl: bool) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    access = KafkaAccess("127.0.0.1:1", security, "PLAIN", "alice", SECRET)  # type: ignore[arg-type]
    options = access.aiokafka()
    assert options["security_protocol"] == security.upper()
    assert ("ssl_context" in options) == tls
    assert (options.get("sasl_plain_username") == "alice") == sasl

    async def build() -> None:  # constructing checks the options; nothing connects
        producer = AIOKafkaProducer(**access.aiokafka())
        consumer = AIOKafkaConsumer(**access.aiokafka())
        admin = AIOKafkaAdminClient(**access.aiokafka())
        await producer.stop()
        await consumer.stop()
        await admin.close()

    asyncio.run(build())


def test_faust_gets_credentials_it_hands_to_aiokafka() -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    sasl = KafkaAccess("h:1", "sasl_ssl", "SCRAM-SHA-256", "alice", SECRET, CA).faust()
    assert sasl["broker"] == "kafka://h:1"
    auth = credentials_to_aiokafka_auth(sasl["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("alice", SECRET)
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert SECRET not in repr(sasl["broker_credentials"])

    plain_sasl = KafkaAccess("h:1", "sasl_plaintext", "PLAIN", "bob", SECRET).faust()
    auth = credentials_to_aiokafka_auth(plain_sasl["broker_credentials"])
    assert (auth["security_protocol"], auth["ssl_context"]) == ("SASL_PLAINTEXT", None)

    tls = KafkaAccess("h:1", "ssl", ca=CA).faust()
    assert credentials_to_aiokafka_auth(tls["broker_credentials"])["security_protocol"] == "SSL"

    app = faust.App("kafka-auth-test", **sasl)
    assert app.conf.broker_credentials is sasl["broker_credentials"]


# -- failure lines ----------------------------------------------------------------------------


def test_auth_errors_of_both_libraries_are_recognised() -> None:
    import aiokafka.errors as aio
    import kafka.errors as kp

    assert is_auth_failure(kp.SaslAuthenticationFailedError("no"))
    assert is_auth_failure(aio.SaslAuthenticationFailed("no"))
    assert is_auth_failure(aio.AuthenticationFailedError("no"))
    assert not is_auth_failure(kp.KafkaTimeoutError("Unable to bootstrap"))
    assert not is_auth_failure(aio.KafkaConnectionError("refused"))


def test_a_refusal_names_the_user_mechanism_and_variables_but_not_the_password() -> None:
    import kafka.errors as kp

    access = KafkaAccess("h:1", "sasl_ssl", "SCRAM-SHA-512", "alice", SECRET)
    line = failure_line(access, kp.SaslAuthenticationFailedError("bad"))
    assert line == refused_line(access)
    assert line == (
        "Kafka at h:1 refused the credentials of user 'alice' (SCRAM-SHA-512): check "
        "GRIDALARM_KAFKA_USERNAME and GRIDALARM_KAFKA_PASSWORD (and "
        "GRIDALARM_KAFKA_SASL_MECHANISM)"
    )
    assert SECRET not in line


def test_nothing_listening_is_not_a_security_matter() -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert failure_line(KafkaAccess(f"127.0.0.1:{port}", "ssl"), timeout=1.0) is None
