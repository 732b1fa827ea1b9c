"""A local Apache Kafka cluster of N KRaft nodes, each a :class:`~gridalarm.localkafka.LocalKafka`.

Every node is a combined broker and controller with its own state folder
(``<state dir>/node-<id>/kafka/``) and its own two ports, and all of them vote in one static
controller quorum. Their storage is formatted with one cluster id, kept in
``<state dir>/cluster.id``: nodes formatted with different ids refuse each other. Used by the
fault tests (a node SIGKILLed under load, then restarted); nothing here mocks Kafka.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gridalarm.localkafka import LocalKafka, LocalKafkaConfig, LocalKafkaError, new_cluster_id


@dataclass(frozen=True)
class LocalClusterConfig:
    """Where and how the cluster runs. Node ``i`` (from 1) listens on ``first_port + 2(i-1)``
    for clients and on the port after it for the controller quorum."""

    state_dir: Path
    first_port: int
    nodes: int = 3
    replication: int = 3
    min_isr: int = 2
    host: str = "127.0.0.1"
    # Three JVMs beside the workers on a small machine: each needs far less than a lone broker.
    heap: str = "448m"
    # A node waits for a quorum, i.e. for the other nodes' JVMs to come up as well.
    start_timeout: float = 180.0
    stop_timeout: float = 20.0
    jars_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1 or not 1 <= self.min_isr <= self.replication <= self.nodes:
            raise LocalKafkaError(
                f"a local cluster needs 1 <= min ISR ({self.min_isr}) <= replication "
                f"({self.replication}) <= nodes ({self.nodes})"
            )


class LocalKafkaCluster:
    """``nodes`` local KRaft nodes forming one cluster; see the module docstring."""

    def __init__(self, config: LocalClusterConfig) -> None:
        self.config = config
        self.root = Path(config.state_dir).resolve()
        c = config
        ids = range(1, c.nodes + 1)
        voters = tuple(f"{i}@{c.host}:{self._port(i) + 1}" for i in ids)
        cluster_id = self._cluster_id()
        self.nodes: dict[int, LocalKafka] = {
            i: LocalKafka(
                LocalKafkaConfig(
                    state_dir=self.root / f"node-{i}",
                    host=c.host,
                    port=self._port(i),
                    controller_port=self._port(i) + 1,
                    heap=c.heap,
                    start_timeout=c.start_timeout,
                    stop_timeout=c.stop_timeout,
                    jars_dir=c.jars_dir,
                    node_id=i,
                    voters=voters,
                    replication=c.replication,
                    min_isr=c.min_isr,
                    cluster_id=cluster_id,
                )
            )
            for i in ids
        }

    @property
    def bootstrap(self) -> str:
        """Every node's ``host:port``, comma-separated: clients find the cluster through any."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def start(self) -> None:
        """Start every node at once (each waits for the quorum of the others) and return when
        all serve; if one cannot start, stop the others and raise its error."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            futures = [pool.submit(node.start) for node in self.nodes.values()]
            errors = [err for f in futures if (err := f.exception()) is not None]
        if errors:
            self.stop()
            raise errors[0]

    def stop(self) -> None:
        """Stop every node at once (a node whose quorum is gone may hang in its shutdown: the
        stop timeout, then SIGKILL)."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes.values()))

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``: a node lost without warning."""
        if not self.nodes[node_id].kill():
            raise LocalKafkaError(f"node {node_id} of the local cluster was not running")

    def restart(self, node_id: int) -> None:
        """Start node ``node_id`` again on its own storage, once it serves."""
        self.nodes[node_id].start()

    def node_at(self, port: int) -> int:
        """The id of the node whose client port is ``port``."""
        return next(i for i, node in self.nodes.items() if node.config.port == port)

    def _port(self, node_id: int) -> int:
        return self.config.first_port + 2 * (node_id - 1)

    def _cluster_id(self) -> str:
        """One id for every node's storage, made once per state dir."""
        path = self.root / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        self.root.mkdir(parents=True, exist_ok=True)
        cid = new_cluster_id()
        path.write_text(cid + "\n")
        return cid


__all__ = ["LocalClusterConfig", "LocalKafkaCluster"]
