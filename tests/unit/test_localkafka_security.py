"""The local broker's secured listener: server properties and SCRAM users (no JVM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridalarm.localkafka_security import (
    BrokerSecurity,
    BrokerSecurityError,
    ScramUser,
    scram_format_args,
    secured_properties,
    tls_of,
)

SECURITY = BrokerSecurity(users=(ScramUser("alice", "alice-pw"),), internal_port=39294)


def test_clients_get_sasl_ssl_and_the_broker_keeps_plaintext_on_loopback(tmp_path: Path) -> None:
    tls = tls_of(tmp_path)
    tls.root.mkdir()
    tls.password_file.write_text("store-pw\n")
    props = secured_properties(SECURITY, tls, "127.0.0.1", 39292, 39293)
    assert props["listeners"] == (
        "SASL_SSL://127.0.0.1:39292,INTERNAL://127.0.0.1:39294,CONTROLLER://127.0.0.1:39293"
    )
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:39292,INTERNAL://127.0.0.1:39294"
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["listener.security.protocol.map"] == (
        "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    for mechanism in ("scram-sha-256", "scram-sha-512"):
        assert (
            "ScramLoginModule required;"
            in props[f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config"]
        )
    assert props["ssl.keystore.location"] == str(tmp_path / "tls" / "broker.p12")
    assert props["ssl.keystore.password"] == props["ssl.key.password"] == "store-pw"
    assert tls.ca_pem == tmp_path / "tls" / "ca.pem"


def test_every_user_gets_both_scram_mechanisms_at_format_time() -> None:
    two = BrokerSecurity(
        users=(ScramUser("alice", "a-pw"), ScramUser("bob", "b-pw")), internal_port=1
    )
    assert scram_format_args(two) == [
        "--add-scram", "SCRAM-SHA-256=[name=alice,password=a-pw]",
        "--add-scram", "SCRAM-SHA-512=[name=alice,password=a-pw]",
        "--add-scram", "SCRAM-SHA-256=[name=bob,password=b-pw]",
        "--add-scram", "SCRAM-SHA-512=[name=bob,password=b-pw]",
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "password"), [("a,b", "pw"), ("alice", "p=w"), ("", "pw")])
def test_names_and_passwords_the_format_tool_would_misparse_are_refused(
    name: str, password: str
) -> None:
    with pytest.raises(BrokerSecurityError) as caught:
        ScramUser(name, password)
    assert "\n" not in str(caught.value)
    assert password not in str(caught.value)


def test_a_user_repr_hides_the_password() -> None:
    assert "alice-pw" not in repr(SECURITY)
