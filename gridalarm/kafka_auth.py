"""How gridalarm's Kafka clients reach the broker: address, TLS and SASL in one frozen object.

Every client construction site (kafka-python, aiokafka, Faust) takes its security options from
a :class:`KafkaAccess`, built from the ``GRIDALARM_KAFKA*`` settings by
:meth:`KafkaAccess.from_settings`. A plain ``host:port`` string still works wherever a
:data:`KafkaTarget` is asked for: it means PLAINTEXT, as before security existed (tests and
benchmarks use that form).

:func:`failure_line` turns a failed first contact into the one line an operator needs: refused
credentials, an untrusted certificate, or a broker that speaks TLS to a plaintext client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gridalarm.localkafka import LocalKafkaConfig

if TYPE_CHECKING:
    from gridalarm.config import Settings

Security = Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
Mechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
SECURITIES: tuple[str, ...] = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
# The broker address when GRIDALARM_KAFKA is unset: the local broker's default port.
LOCAL_BOOTSTRAP = LocalKafkaConfig().bootstrap


@dataclass(frozen=True)
class KafkaAccess:
    """The broker address and how to authenticate to it. ``str()`` is the address alone, so
    messages that name the broker never show a secret; the password is left out of ``repr``."""

    bootstrap: str
    security: Security = "plaintext"
    mechanism: Mechanism = "SCRAM-SHA-256"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None  # PEM CA bundle to verify the broker with; None: the system's
    check_hostname: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaAccess:
        """The configured broker (GRIDALARM_KAFKA, else the local one) and its security."""
        password = settings.kafka_password
        return cls(
            bootstrap=settings.kafka or LOCAL_BOOTSTRAP,
            security=settings.kafka_security,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=None if password is None else password.get_secret_value(),
            ca=settings.kafka_ca,
            check_hostname=settings.kafka_check_hostname,
        )

    def __str__(self) -> str:
        return self.bootstrap

    @property
    def servers(self) -> list[str]:
        """The bootstrap list, one ``host:port`` per item."""
        return [item.strip() for item in self.bootstrap.split(",") if item.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security in ("ssl", "sasl_ssl")

    @property
    def uses_sasl(self) -> bool:
        return self.security in ("sasl_plaintext", "sasl_ssl")

    @property
    def protocol(self) -> str:
        """Kafka's name for the security protocol (``SASL_SSL`` ...)."""
        return self.security.upper()

    def describe(self) -> str:
        """How this connects, for log lines: never the password."""
        if self.uses_sasl:
            return f"{self.protocol} as {self.username!r} ({self.mechanism})"
        return self.protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client library is given (one shared object per CA file)."""
        if not self.uses_tls:
            return None
        return _context(None if self.ca is None else str(self.ca), self.check_hostname)

    # -- options per client library ---------------------------------------------------------

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaConsumer/KafkaProducer/KafkaAdminClient."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
            options["ssl_check_hostname"] = self.check_hostname
        if self.uses_sasl:
            options.update(self._sasl())
        return options

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer/Consumer/AdminClient."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options.update(self._sasl())
        return options

    def faust(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App``: its broker URL and ``broker_credentials``.

        Faust hands the credentials to each aiokafka client it makes (consumer, producer, the
        client that creates its changelog topics) through ``credentials_to_aiokafka_auth``.
        """
        import faust

        options: dict[str, Any] = {"broker": f"kafka://{self.bootstrap}"}
        if self.uses_sasl:
            options["broker_credentials"] = faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),  # None: SASL_PLAINTEXT
            )
        elif self.uses_tls:
            options["broker_credentials"] = faust.SSLCredentials(self.ssl_context())
        return options

    def _sasl(self) -> dict[str, Any]:
        return {
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


KafkaTarget = str | KafkaAccess


def access_of(target: KafkaTarget) -> KafkaAccess:
    """``target`` as a :class:`KafkaAccess`; a bare address string means PLAINTEXT."""
    return target if isinstance(target, KafkaAccess) else KafkaAccess(bootstrap=target)


@functools.cache
def _context(cafile: str | None, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.check_hostname = check_hostname
    return context


# -- telling the operator what went wrong ----------------------------------------------------


class KafkaAuthError(RuntimeError):
    """Credentials refused or TLS failed; the message is one line for the operator."""


def refused_line(access: KafkaAccess) -> str:
    """The broker said no to the credentials."""
    return (
        f"Kafka at {access.bootstrap} refused the credentials of user {access.username!r} "
        f"({access.mechanism}): check GRIDALARM_KAFKA_USERNAME and GRIDALARM_KAFKA_PASSWORD "
        "(and GRIDALARM_KAFKA_SASL_MECHANISM)"
    )


def is_auth_failure(err: BaseException) -> bool:
    """Whether a kafka-python or aiokafka error means "credentials refused"."""
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(
        names
        & {
            "SaslAuthenticationFailedError",  # kafka-python
            "SaslAuthenticationFailed",  # aiokafka (broker error code 58)
            "AuthenticationFailedError",  # aiokafka (connection-level SASL failure)
            "UnsupportedSaslMechanismError",
            "IllegalSaslStateError",
        }
    )


class _Refusals(logging.Handler):
    """Keeps the credential refusals a client library logs (as the arguments of its records)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refusals: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.refusals.extend(a for a in args if isinstance(a, BaseException) and is_auth_failure(a))


@contextlib.contextmanager
def captured_refusals(logger_name: str) -> Iterator[list[BaseException]]:
    """While inside: the records of ``logger_name`` (``kafka``, ``aiokafka``) are not shown;
    the credential refusals among them are collected in the yielded list.

    Both libraries retry or wrap a refused login and log the refusal itself; an unconfigured
    CLI would print those records as extra lines. The caller reports the failure, once.
    """
    logger = logging.getLogger(logger_name)
    handler = _Refusals()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield handler.refusals
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def failure_line(
    access: KafkaAccess, err: BaseException | None = None, timeout: float = 5.0
) -> str | None:
    """The one line that says why first contact with ``access`` failed, if it is a security
    matter: ``err`` itself (a refused login); else a probe of the first address that answers
    TCP: a TLS handshake that fails, a TLS port reached without TLS, a refused SASL login.
    None: not a security matter (or none found).
    """
    if err is not None and is_auth_failure(err):
        return refused_line(access)
    for server in access.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
                line = _probe(access, sock, host.strip("[]"))
        except (OSError, ValueError):
            continue
        if line is None and access.uses_sasl and _sasl_refused(access, timeout):
            return refused_line(access)
        return line
    return None


def _sasl_refused(access: KafkaAccess, timeout: float) -> bool:
    """Whether the broker refuses the login, asked with aiokafka: kafka-python over TLS often
    sees only the closed socket after a refusal (the broker closes right after its answer),
    while aiokafka reads the answer. Runs in a thread of its own: callers may be in a loop."""
    refused: list[bool] = []

    async def ask() -> None:
        from aiokafka import AIOKafkaClient

        client = AIOKafkaClient(**access.aiokafka(), request_timeout_ms=int(timeout * 1000))
        with captured_refusals("aiokafka") as refusals:
            try:
                await asyncio.wait_for(client.bootstrap(), timeout)
            except Exception as exc:  # any failure: only a refusal counts
                refused.append(is_auth_failure(exc) or bool(refusals))
            finally:
                await client.close()

    thread = threading.Thread(target=asyncio.run, args=(ask(),), daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return bool(refused and refused[0])


def _probe(access: KafkaAccess, sock: socket.socket, host: str) -> str | None:
    where = f"Kafka at {access.bootstrap}"
    sock.settimeout(5.0)
    if access.uses_tls:
        context = access.ssl_context()
        assert context is not None
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return None  # TLS is fine; whatever failed was not the handshake
        except ssl.SSLCertVerificationError as exc:
            return (
                f"{where}: its TLS certificate is not trusted ({exc.verify_message}): set "
                "GRIDALARM_KAFKA_CA to the CA file that signed it"
            )
        except (ssl.SSLError, OSError) as exc:
            return (
                f"{where} did not complete a TLS handshake ({_short(exc)}): is that port a TLS "
                "listener? check GRIDALARM_KAFKA_SECURITY"
            )
    # A plaintext client: does the port speak TLS? (A TLS listener drops Kafka's first request
    # without a word, which kafka clients report as "no broker".)
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    try:
        with loose.wrap_socket(sock, server_hostname=host):
            pass
    except (ssl.SSLError, OSError):
        return None
    return (
        f"{where} expects TLS but GRIDALARM_KAFKA_SECURITY is {access.security}: set it to "
        "ssl or sasl_ssl (and GRIDALARM_KAFKA_CA)"
    )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = [
    "LOCAL_BOOTSTRAP",
    "MECHANISMS",
    "SECURITIES",
    "KafkaAccess",
    "KafkaAuthError",
    "KafkaTarget",
    "Mechanism",
    "Security",
    "access_of",
    "captured_refusals",
    "failure_line",
    "is_auth_failure",
    "refused_line",
]
