"""How the nodes of a local cluster are configured (no JVM started: tests/stress runs one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridalarm.localcluster import LocalClusterConfig, LocalKafkaCluster
from gridalarm.localkafka import LocalKafkaConfig, LocalKafkaError, node_properties


def test_a_lone_broker_keeps_its_single_node_settings() -> None:
    props = node_properties(LocalKafkaConfig(controller_port=9093))
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    replication = {k: v for k, v in props.items() if "replication" in k or "isr" in k}
    assert set(replication.values()) == {"1"}


def test_every_node_votes_in_one_quorum_with_its_own_ports(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster(LocalClusterConfig(state_dir=tmp_path, first_port=40000))
    voters = "1@127.0.0.1:40001,2@127.0.0.1:40003,3@127.0.0.1:40005"
    assert cluster.bootstrap == "127.0.0.1:40000,127.0.0.1:40002,127.0.0.1:40004"
    for node_id, node in cluster.nodes.items():
        props = node_properties(node.config)
        assert props["node.id"] == str(node_id)
        assert props["controller.quorum.voters"] == voters
        assert props["default.replication.factor"] == "3"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["transaction.state.log.min.isr"] == "2"
        assert node.root == tmp_path.resolve() / f"node-{node_id}" / "kafka"
    assert cluster.node_at(40002) == 2


def test_all_nodes_share_one_cluster_id_kept_across_runs(tmp_path: Path) -> None:
    first = LocalKafkaCluster(LocalClusterConfig(state_dir=tmp_path, first_port=40000))
    again = LocalKafkaCluster(LocalClusterConfig(state_dir=tmp_path, first_port=40000))
    ids = {node.config.cluster_id for c in (first, again) for node in c.nodes.values()}
    assert len(ids) == 1
    assert (tmp_path / "cluster.id").read_text().strip() in ids


def test_a_replication_the_cluster_cannot_hold_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="min ISR"):
        LocalClusterConfig(state_dir=tmp_path, first_port=40000, nodes=2, replication=3)
