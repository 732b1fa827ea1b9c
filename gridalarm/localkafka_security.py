"""Security for the local broker: a SASL_SSL client listener with SCRAM users and a test CA.

What ``gridalarm kafka start --secure`` and the secured-Kafka tests run against. The clients'
listener (``LocalKafkaConfig.port``) speaks SASL_SSL; the broker's own traffic stays PLAINTEXT
on loopback (the KRaft controller listener, and an inter-broker listener on
:attr:`BrokerSecurity.internal_port`), so the broker needs no credentials of its own.

The key material is a throw-away CA and a broker certificate made with the JDK's ``keytool``
(no Python crypto package needed) under ``<state dir>/kafka/tls/``, once: the CA's PEM file is
what clients are given (``GRIDALARM_KAFKA_CA``). SCRAM users are created when the storage is
formatted (KRaft keeps them in the cluster metadata), so users added to the config later need a
fresh state dir.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SCRAM_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# The format tool parses `name=...,password=...` itself: keep those characters out of both.
_SAFE = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
# keytool runs seven times; a JVM that skips the optimising compiler starts in about half the
# time on a busy machine, and these runs are too short to profit from it.
_QUICK_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")


class BrokerSecurityError(ValueError):
    """The broker's security setup cannot be made; the message is one line."""


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM user the broker accepts (with every mechanism in :data:`SCRAM_MECHANISMS`)."""

    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("password", self.password)):
            if not _SAFE.match(value):
                raise BrokerSecurityError(
                    f"SCRAM user {what} {value if what == 'name' else '***'!r}: use 1-64 of "
                    "letters, digits and . _ @ + -"
                )


@dataclass(frozen=True)
class BrokerSecurity:
    """Turns the local broker's client port into a SASL_SSL listener."""

    users: tuple[ScramUser, ...]
    internal_port: int  # PLAINTEXT inter-broker listener, on the broker's (loopback) host
    validity_days: int = 3650


@dataclass(frozen=True)
class BrokerTls:
    """Where the broker's key material lives (see :func:`ensure_tls`)."""

    root: Path

    @property
    def ca_pem(self) -> Path:
        """The CA certificate clients verify the broker with (GRIDALARM_KAFKA_CA)."""
        return self.root / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.p12"

    @property
    def password_file(self) -> Path:
        return self.root / "keystore.password"

    def password(self) -> str:
        return self.password_file.read_text().strip()


def tls_of(kafka_root: Path) -> BrokerTls:
    """The key material of the broker whose files live in ``kafka_root``."""
    return BrokerTls(kafka_root / "tls")


def ensure_tls(tls: BrokerTls, host: str, java: str, validity_days: int = 3650) -> None:
    """Make the CA and the broker's PKCS12 keystore once (the CA stays valid across restarts)."""
    if tls.keystore.is_file() and tls.ca_pem.is_file() and tls.password_file.is_file():
        return
    tls.root.mkdir(parents=True, exist_ok=True)
    for stale in tls.root.iterdir():  # a run cut short must not leave a mixed set
        stale.unlink()
    password = secrets.token_urlsafe(18)
    keytool = str(Path(java).resolve().parent / "keytool")
    ca_store, csr, cert = tls.root / "ca.p12", tls.root / "broker.csr", tls.root / "broker.pem"
    store = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    days = ["-validity", str(validity_days)]
    # EC keys: generated in a fraction of RSA-2048's time; Kafka's JSSE and Python's OpenSSL
    # both speak ECDSA.
    key = ["-keyalg", "EC", "-groupname", "secp256r1"]
    steps = [
        ["-genkeypair", "-alias", "ca", *key, "-dname", "CN=gridalarm local test CA",
         "-ext", "bc:c", "-ext", "ku=keyCertSign,cRLSign", *days, "-keystore", str(ca_store),
         *store],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass",
         password, "-file", str(tls.ca_pem)],
        ["-genkeypair", "-alias", "broker", *key, "-dname", f"CN={host}", *days, "-keystore",
         str(tls.keystore), *store],
        ["-certreq", "-alias", "broker", "-keystore", str(tls.keystore), "-storepass", password,
         "-file", str(csr)],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", password,
         "-infile", str(csr), "-outfile", str(cert), "-ext", f"SAN={_san(host)}",
         "-ext", "ku=digitalSignature", "-ext", "eku=serverAuth", *days],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(tls.ca_pem), "-keystore",
         str(tls.keystore), "-storepass", password],
        ["-importcert", "-alias", "broker", "-file", str(cert), "-keystore", str(tls.keystore),
         "-storepass", password],
    ]  # fmt: skip
    for args in steps:
        done = subprocess.run(
            [keytool, *_QUICK_JVM, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            raise BrokerSecurityError(
                f"keytool {args[0]} failed (exit {done.returncode})"
                f"{': ' + detail[-1] if detail else ''}; is a full JDK 17+ installed?"
            )
    # Written last: its presence says the set is complete.
    tls.password_file.write_text(password + "\n")
    tls.password_file.chmod(0o600)


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def secured_properties(
    security: BrokerSecurity, tls: BrokerTls, host: str, port: int, controller_port: int
) -> dict[str, str]:
    """server.properties entries that replace the PLAINTEXT client listener with SASL_SSL."""
    internal = f"INTERNAL://{host}:{security.internal_port}"
    props = {
        "listeners": f"SASL_SSL://{host}:{port},{internal},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_SSL://{host}:{port},{internal}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": (
            "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.keystore.password": tls.password(),
        "ssl.key.password": tls.password(),
        "ssl.client.auth": "none",
    }
    for mechanism in SCRAM_MECHANISMS:
        props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = _SCRAM_LOGIN
    return props


def scram_format_args(security: BrokerSecurity) -> list[str]:
    """``kafka.tools.StorageTool format`` arguments that create every user's credentials."""
    args: list[str] = []
    for user in security.users:
        for mechanism in SCRAM_MECHANISMS:
            args += ["--add-scram", f"{mechanism}=[name={user.name},password={user.password}]"]
    return args


__all__ = [
    "SCRAM_MECHANISMS",
    "BrokerSecurity",
    "BrokerSecurityError",
    "BrokerTls",
    "ScramUser",
    "ensure_tls",
    "scram_format_args",
    "secured_properties",
    "tls_of",
]
