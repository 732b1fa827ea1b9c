"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars.

Used by ``gridalarm kafka start|stop|status``, ``gridalarm demo`` and the test fixtures when no
broker address is configured and no Docker engine answers. Nothing here mocks Kafka: it resolves
``org.apache.kafka:kafka_2.13`` (plus a log4j2 binding) with Maven once, formats KRaft storage
and runs ``kafka.Kafka`` as a detached process whose data, pid, log and config all live under
``<state dir>/kafka/``.

Every failure an operator can mend raises :class:`LocalKafkaError` with a one-line message.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from gridalarm.javaserver import (
    JavaServer,
    check_port_free,
    find_java,
    flocked,
    port_open,
    shorten,
)
from gridalarm.localkafka_security import (
    BrokerSecurity,
    BrokerSecurityError,
    ensure_tls,
    scram_format_args,
    secured_properties,
    tls_of,
)

READY_LINE = b"Kafka Server started"
POM_ENV = "GRIDALARM_KAFKA_POM"
INSTALL_HINT = "install Java 17+ and Maven, or set GRIDALARM_KAFKA to the address of a broker"

# The repo root is the parent of the `gridalarm` package dir (editable installs and checkouts).
DEFAULT_POM = Path(__file__).resolve().parent.parent / "tools" / "kafka" / "pom.xml"

# Console only: the JVM's stdout is already redirected to kafka.log. `kafka.*` at INFO keeps the
# "Kafka Server started" line we wait for; the chatty client/server internals stay at WARN.
LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = WARN
"""


class LocalKafkaError(RuntimeError):
    """The local broker could not be set up, started or stopped; the message is one line."""


@dataclass(frozen=True)
class LocalKafkaConfig:
    """Where and how the local broker runs. Paths may be relative; they are resolved on use."""

    state_dir: Path = Path(".state")
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    start_timeout: float = 120.0
    stop_timeout: float = 30.0
    # Several brokers (e.g. the test session's and a test's own) may share one resolved jar set.
    jars_dir: Path | None = None
    # Set: the client port speaks SASL_SSL with SCRAM users (gridalarm.localkafka_security).
    security: BrokerSecurity | None = None
    # A node of a local cluster (gridalarm.localcluster): its id, the controller quorum as
    # ``id@host:port`` of every node (None: this node alone), the replication every internal
    # topic gets and the topics' default, min.insync.replicas, and the cluster id every node's
    # storage is formatted with (None: made once per state dir).
    node_id: int = 1
    voters: tuple[str, ...] | None = None
    replication: int = 1
    min_isr: int = 1
    cluster_id: str | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LocalKafkaStatus:
    """What :meth:`LocalKafka.status` found."""

    pid: int | None  # our broker's pid if that process is alive
    serving: bool  # the broker port accepts connections
    bootstrap: str
    log: Path

    @property
    def running(self) -> bool:
        """Our process is alive and answers on its port."""
        return self.pid is not None and self.serving

    def __str__(self) -> str:
        if self.running:
            return f"running (pid {self.pid}) at {self.bootstrap}; log: {self.log}"
        if self.pid is not None:
            return (
                f"starting or stuck (pid {self.pid}), not answering at {self.bootstrap}; "
                f"log: {self.log}"
            )
        return "stopped"


class LocalKafka(JavaServer):
    """One combined broker+controller on ``host``; see the module docstring."""

    error = LocalKafkaError
    what = "the local Kafka broker"

    def __init__(self, config: LocalKafkaConfig | None = None) -> None:
        super().__init__()
        self.config = config or LocalKafkaConfig()
        self.stop_timeout = self.config.stop_timeout
        # Absolute paths: the pid file and the JVM's arguments must not depend on the cwd.
        self.root = Path(self.config.state_dir).resolve() / "kafka"
        self.jars_dir = Path(self.config.jars_dir or self.root / "jars").resolve()
        self.data_dir = self.root / "data"
        self.properties_path = self.root / "server.properties"
        self.log4j_path = self.root / "log4j2.properties"
        self.log_path = self.root / "kafka.log"
        self.pid_path = self.root / "kafka.pid"
        self.cluster_id_path = self.root / "cluster.id"

    def _marker(self) -> Path:
        return self.properties_path

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return self.config.bootstrap

    # -- public operations ------------------------------------------------------------------

    def start(self) -> bool:
        """Start the broker and wait until it serves; True if started, False if already running.

        Idempotent: when the pid file names a live broker of ours that answers on the port,
        nothing happens. A lock file serialises concurrent starts (two test sessions, the demo).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            pid = self._live_pid()
            if pid is not None:
                if port_open(self.config.host, self.config.port):
                    return False
                raise LocalKafkaError(
                    f"the local Kafka broker (pid {pid}) runs but does not answer at "
                    f"{self.bootstrap}; see {self.log_path} or run `gridalarm kafka stop`"
                )
            self.pid_path.unlink(missing_ok=True)
            for port in (self.config.port, self.config.controller_port):
                _check_port_free(self.config.host, port)
            java = _find_java()
            self._prepare_security(java)
            with flocked(self.jars_dir.with_name(self.jars_dir.name + ".lock")):
                jars = self._ensure_jars()
            self._write_configs()
            self._format_storage(java, jars)
            proc = self._launch(java, jars)
            self._wait_ready(proc)
            return True

    def kill(self) -> bool:
        """SIGKILL the broker, as a crash or a power cut would: no controlled shutdown, nothing
        handed over. True if one was running. Fault tests lose a cluster node this way."""
        if not self._end(self._kill):
            return False
        # The main thread of a killed JVM is a zombie while its other threads still exit and
        # hold its sockets: a start right away would find the ports taken.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                for port in (self.config.port, self.config.controller_port):
                    _check_port_free(self.config.host, port)
                return True
            except LocalKafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def status(self) -> LocalKafkaStatus:
        """Whether our broker process is alive and answering. Takes no lock: never blocks."""
        return LocalKafkaStatus(
            pid=self._live_pid(),
            serving=port_open(self.config.host, self.config.port),
            bootstrap=self.bootstrap,
            log=self.log_path,
        )

    # -- setup ------------------------------------------------------------------------------

    def _ensure_jars(self) -> Path:
        """Resolve the broker's jars with Maven once; a marker file proves a complete copy."""
        marker = self.jars_dir / ".complete"
        pom = Path(os.environ.get(POM_ENV) or DEFAULT_POM)
        digest = hashlib.sha256(pom.read_bytes()).hexdigest() if pom.is_file() else None
        if marker.is_file() and (digest is None or marker.read_text().strip() == digest):
            return self.jars_dir
        if digest is None:
            raise LocalKafkaError(
                f"no Maven pom for the local Kafka at {pom}; set {POM_ENV} to tools/kafka/pom.xml "
                "of a gridalarm checkout, or set GRIDALARM_KAFKA to the address of a broker"
            )
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(f"`mvn` not found: the local Kafka needs it once; {INSTALL_HINT}")
        # Several brokers may share a jars dir (see LocalKafkaConfig.jars_dir), hence its own
        # lock, taken by start(). Start from empty: a copy cut short (Ctrl-C, network) must
        # not leave a mixed jar set.
        if self.jars_dir.exists():
            shutil.rmtree(self.jars_dir)
        self.jars_dir.mkdir(parents=True)
        mvn_log = self.root / "mvn.log"
        with mvn_log.open("wb") as out:
            done = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-Dstyle.color=never",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.jars_dir}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0 or not any(self.jars_dir.glob("kafka_2.13-*.jar")):
            raise LocalKafkaError(
                f"Maven could not fetch the Kafka jars (exit {done.returncode}); see {mvn_log}"
            )
        marker.write_text(digest + "\n")
        return self.jars_dir

    def _cluster_id(self) -> str:
        """The KRaft cluster id, made once and kept: storage formatted with it must match."""
        if self.config.cluster_id is not None:
            return self.config.cluster_id
        if self.cluster_id_path.is_file():
            return self.cluster_id_path.read_text().strip()
        cid = new_cluster_id()
        self.cluster_id_path.write_text(cid + "\n")
        return cid

    def _write_configs(self) -> None:
        """server.properties and log4j2.properties, rewritten on every start (ports may change)."""
        c = self.config
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static voters (not `--standalone`): the quorum is this one node, fixed by config.
            "controller.quorum.voters": f"1@{c.host}:{c.controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "8",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer offsets partitions: the first consumer group of a fresh broker waits for
            # all of them to be created, and one node gains nothing from 50.
            "offsets.topic.num.partitions": "8",
            # Consumer groups (Faust workers, tests) start at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Tests send a 5 MB message that must reach the worker to be dead-lettered.
            "message.max.bytes": "16777216",
            # Topics are created by gridalarm with their partition counts and configs; a typo'd
            # topic name must fail, not silently make a new topic.
            "auto.create.topics.enable": "false",
            # The log cleaner (compacted changelog topics) allocates this on the heap; 128 MB
            # by default is too much for a small-heap broker.
            "log.cleaner.dedupe.buffer.size": "33554432",
        }
        props.update(node_properties(c))
        props.update(self._security_properties())
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        self.properties_path.write_text("# written by gridalarm; edits are overwritten\n" + text)
        self.log4j_path.write_text(LOG4J2_PROPERTIES)

    def _format_storage(self, java: str, jars: Path) -> None:
        """Format KRaft storage once; meta.properties in the data dir marks it done."""
        if (self.data_dir / "meta.properties").is_file():
            return
        format_log = self.root / "format.log"
        with format_log.open("wb") as out:
            done = subprocess.run(
                [
                    java,
                    f"-Dlog4j2.configurationFile={self.log4j_path}",
                    "-cp",
                    f"{jars}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self._cluster_id(),
                    "-c",
                    str(self.properties_path),
                    "--ignore-formatted",
                    *self._security_format_args(),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise LocalKafkaError(
                f"formatting the local Kafka storage failed (exit {done.returncode})"
                f"{_last_error(format_log)}; see {format_log}"
            )

    # -- security (see gridalarm.localkafka_security) ----------------------------------------

    @property
    def ca_pem(self) -> Path | None:
        """The CA file clients verify a secured broker with (GRIDALARM_KAFKA_CA); else None."""
        return tls_of(self.root).ca_pem if self.config.security else None

    def _prepare_security(self, java: str) -> None:
        security = self.config.security
        if security is None:
            return
        _check_port_free(self.config.host, security.internal_port)
        # SCRAM users are made only when the storage is formatted: a state dir formatted with
        # other users (or none) would refuse these, so say so rather than start.
        names = ",".join(sorted(user.name for user in security.users))
        marker = self.root / "scram-users"
        if (self.data_dir / "meta.properties").is_file():
            made = marker.read_text().strip() if marker.is_file() else "(none)"
            if made != names:
                raise LocalKafkaError(
                    f"the local Kafka in {self.root} was formatted with SCRAM users {made}, not "
                    f"{names}; use a fresh --state-dir for other users"
                )
        else:
            marker.write_text(names + "\n")
        try:
            ensure_tls(tls_of(self.root), self.config.host, java, security.validity_days)
        except BrokerSecurityError as err:
            raise LocalKafkaError(str(err)) from None

    def _security_properties(self) -> dict[str, str]:
        c = self.config
        if c.security is None:
            return {}
        return secured_properties(c.security, tls_of(self.root), c.host, c.port,
                                  c.controller_port)  # fmt: skip

    def _security_format_args(self) -> list[str]:
        return scram_format_args(self.config.security) if self.config.security else []

    # -- process ----------------------------------------------------------------------------

    def _launch(self, java: str, jars: Path) -> subprocess.Popen[bytes]:
        """Start kafka.Kafka detached, so it outlives the command that started it."""
        if self.log_path.exists():
            # Keep one previous log for post-mortems; a fresh file means an old
            # "Kafka Server started" line cannot pass for this start's.
            os.replace(self.log_path, self.log_path.with_name("kafka.log.1"))
        with self.log_path.open("wb") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{self.config.heap}",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self.log4j_path}",
                    "-cp",
                    f"{jars}/*",
                    "kafka.Kafka",
                    str(self.properties_path),
                ],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the starting terminal must not reach the broker.
                start_new_session=True,
            )
        self.pid_path.write_text(f"{proc.pid}\n")
        self._proc = proc
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the ready line; on death or timeout clean up and say where the log is."""
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._forget()
                raise LocalKafkaError(
                    f"the local Kafka broker exited with code {code} while starting"
                    f"{_last_error(self.log_path)}; see {self.log_path}"
                )
            if READY_LINE in self.log_path.read_bytes() and port_open(
                self.config.host, self.config.port
            ):
                return
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                self._forget()
                raise LocalKafkaError(
                    f"the local Kafka broker did not start within "
                    f"{self.config.start_timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.2)


def new_cluster_id() -> str:
    """A fresh KRaft cluster id in Kafka's own Uuid format: 16 random bytes, URL-safe base64
    without padding. Like Kafka we avoid a leading '-', which the format tool would take for an
    option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def node_properties(config: LocalKafkaConfig) -> dict[str, str]:
    """What makes the broker one node of a cluster: its id, the quorum and replication.

    With the defaults (node 1, no voters, replication 1) these are a single node's values. The
    internal topics (consumer offsets, transactions, share groups) get ``replication`` and
    ``min_isr`` too: an offsets topic on one node would take the group coordinator down with
    that node."""
    c = config
    voters = c.voters or (f"{c.node_id}@{c.host}:{c.controller_port}",)
    replication, min_isr = str(c.replication), str(c.min_isr)
    return {
        "node.id": str(c.node_id),
        # Static voters (not `--standalone`): the quorum is fixed by config.
        "controller.quorum.voters": ",".join(voters),
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
    }


def _check_port_free(host: str, port: int) -> None:
    check_port_free(
        host, port, LocalKafkaError, "stop it or choose other ports (--port / --controller-port)"
    )


def _find_java() -> str:
    return find_java(LocalKafkaError, "the local Kafka", INSTALL_HINT)


def _last_error(log: Path) -> str:
    """``": <last error line>"`` from a log, shortened, so one line says what went wrong."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if "ERROR" in line or "Exception" in line or line.startswith("Error"):
            text = line.strip()
            if "UnsupportedClassVersionError" in text:
                return ": the Java runtime is too old (Kafka 4.1 needs Java 17+)"
            return ": " + shorten(text)
    return ""
