"""The local Elasticsearch node: its life cycle, and real traffic through the session fixture.

The life-cycle tests run their own node in a temporary state folder on a port the operating
system picks (read back from the node's output), so stopping it never disturbs the session's
node that ``es_url`` / ``es_client`` serve.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import typer
from es_support import delete_test_indices
from typer.testing import CliRunner

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.locales import (
    READY_RE,
    LocalElasticsearch,
    LocalElasticsearchConfig,
    LocalElasticsearchError,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="the local node needs Java 17+"),
]


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, local_es_jars: Path
) -> Iterator[LocalElasticsearch]:
    if shutil.which("mvn") is None and not (local_es_jars / ".jars-complete").is_file():
        pytest.skip("the local node needs Maven once to fetch its jars")
    config = LocalElasticsearchConfig(
        state_dir=tmp_path_factory.mktemp("own-es"), port=0, jars_dir=local_es_jars
    )
    es = LocalElasticsearch(config)
    began = time.monotonic()
    assert es.start() is True
    print(f"local node started in {time.monotonic() - began:.1f}s")
    try:
        yield es
    finally:
        es.stop()


def _client(url: str) -> Elasticsearch:
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=30)


def test_start_is_idempotent(node: LocalElasticsearch) -> None:
    pid = node.status().pid
    began = time.monotonic()
    assert node.start() is False
    # Another process (or a fresh object) on the same state dir finds the same node.
    assert LocalElasticsearch(node.config).start() is False
    assert time.monotonic() - began < 5
    assert node.status().pid == pid


def test_status_when_running(node: LocalElasticsearch) -> None:
    status = node.status()
    assert status.running
    assert status.pid is not None and status.pid > 0
    assert node.pid_path.read_text().strip() == str(status.pid)
    # Port 0 was asked for: the URL carries the port the node reported in its output.
    found = READY_RE.search(node.log_path.read_bytes())
    assert found is not None
    assert status.url == found.group(1).decode() == node.url
    host, port = status.url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert status.url in str(status)


def test_node_is_a_real_single_node_elasticsearch_8(node: LocalElasticsearch) -> None:
    client = _client(node.url)
    try:
        assert client.ping()
        info = client.info()
        assert info["version"]["number"].startswith("8.")
        assert info["cluster_name"] == "gridalarm"
        assert client.cluster.health(wait_for_status="green", timeout="30s")["number_of_nodes"] == 1
        (only,) = client.nodes.info(node_id="_local")["nodes"].values()
        settings = only["settings"]
        assert settings["discovery"]["type"] == "single-node"
        assert settings["cluster"]["routing"]["allocation"]["disk"]["threshold_enabled"] == "false"
        assert Path(settings["path"]["data"]).is_relative_to(node.root)
        assert only["http"]["publish_address"] == node.url.removeprefix("http://")
        modules = {module["name"] for module in only["modules"]}
        assert {"transport-netty4", "gridalarm-root"} <= modules
    finally:
        client.close()


def test_port_taken_by_another_process_is_a_one_line_error(
    node: LocalElasticsearch, tmp_path: Path, local_es_jars: Path
) -> None:
    port = int(node.url.rsplit(":", 1)[1])
    other = LocalElasticsearch(
        LocalElasticsearchConfig(state_dir=tmp_path, port=port, jars_dir=local_es_jars)
    )
    with pytest.raises(LocalElasticsearchError, match=f"port {port}") as caught:
        other.start()
    assert "\n" not in str(caught.value)


def test_cli_start_and_status(node: LocalElasticsearch) -> None:
    from gridalarm.cli import es as es_cli

    app = typer.Typer()
    es_cli.register(app)
    args = ["--state-dir", str(node.config.state_dir), "--port", "0"]
    runner = CliRunner()
    started = runner.invoke(app, ["es", "start", *args])
    assert started.exit_code == 0, started.output
    assert started.stdout.strip() == node.url
    assert "already running" in started.stderr
    status = runner.invoke(app, ["es", "status", *args])
    assert status.exit_code == 0
    assert "running" in status.stdout


def test_restart_keeps_the_data(node: LocalElasticsearch) -> None:
    client = _client(node.url)
    try:
        client.index(index="kept", id="1", document={"n": 1}, refresh=True)
    finally:
        client.close()
    assert node.stop() is True
    began = time.monotonic()
    assert node.start() is True
    print(f"local node restarted in {time.monotonic() - began:.1f}s")
    client = _client(node.url)  # a new port: 0 was asked for
    try:
        assert client.get(index="kept", id="1")["_source"] == {"n": 1}
    finally:
        client.close()


def _fake_java(folder: Path, script: str) -> Path:
    """A JAVA_HOME whose `java` is a shell script (the real launcher is compiled already)."""
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n" + script)
    java.chmod(0o755)
    return folder


def test_start_timeout_names_the_last_log_line(
    node: LocalElasticsearch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fake_java(tmp_path / "jdk", 'echo "loading the moon"\nexec sleep 60\n')
    monkeypatch.setenv("JAVA_HOME", str(home))
    slow = LocalElasticsearch(
        LocalElasticsearchConfig(
            state_dir=tmp_path / "state", port=0, jars_dir=node.home, start_timeout=1.0
        )
    )
    with pytest.raises(LocalElasticsearchError) as caught:
        slow.start()
    message = str(caught.value)
    assert "did not start within 1s; last log line: loading the moon" in message
    assert "\n" not in message
    assert not slow.pid_path.exists()
    assert slow.status().pid is None


def test_a_node_that_dies_while_starting_says_why(
    node: LocalElasticsearch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fake_java(
        tmp_path / "jdk",
        'echo "Exception in thread \\"main\\" java.lang.IllegalStateException: no disk"\n'
        'echo "\tat gridalarm.es.Launcher.main(Launcher.java:1)"\nexit 1\n',
    )
    monkeypatch.setenv("JAVA_HOME", str(home))
    dying = LocalElasticsearch(
        LocalElasticsearchConfig(state_dir=tmp_path / "state", port=0, jars_dir=node.home)
    )
    with pytest.raises(LocalElasticsearchError) as caught:
        dying.start()
    message = str(caught.value)
    assert "exited with code 1 while starting" in message
    assert "IllegalStateException: no disk" in message
    assert "\n" not in message


def test_missing_java_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    es = LocalElasticsearch(LocalElasticsearchConfig(state_dir=tmp_path, port=0))
    with pytest.raises(LocalElasticsearchError, match="`java` not found") as caught:
        es.start()
    assert "\n" not in str(caught.value)


def test_stop_is_clean(node: LocalElasticsearch) -> None:
    pid = node.status().pid
    assert pid is not None
    began = time.monotonic()
    assert node.stop() is True
    print(f"local node stopped in {time.monotonic() - began:.1f}s")
    status = node.status()
    assert not status.running
    assert status.pid is None
    assert not status.serving
    assert str(status) == "stopped"
    assert not node.pid_path.exists()
    assert not node.url_path.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert node.stop() is False  # stopping a stopped node is fine


def _stubborn_process(argument: str) -> subprocess.Popen[bytes]:
    """A process that ignores SIGTERM and carries ``argument`` on its command line."""
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, argument], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
    return proc


def test_stop_kills_a_node_that_ignores_sigterm(tmp_path: Path) -> None:
    es = LocalElasticsearch(LocalElasticsearchConfig(state_dir=tmp_path, stop_timeout=0.5))
    es.root.mkdir(parents=True)
    stubborn = _stubborn_process(str(es.config_dir))
    try:
        es.pid_path.write_text(f"{stubborn.pid}\n")
        assert es.status().pid == stubborn.pid
        began = time.monotonic()
        assert es.stop() is True
        assert time.monotonic() - began >= 0.5  # waited for SIGTERM first
        assert not es.pid_path.exists()
        with pytest.raises(ProcessLookupError):
            os.kill(stubborn.pid, 0)
    finally:
        stubborn.kill()
        stubborn.wait()


def test_stale_or_foreign_pid_file_is_not_our_node(tmp_path: Path) -> None:
    es = LocalElasticsearch(LocalElasticsearchConfig(state_dir=tmp_path))
    es.root.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    es.pid_path.write_text(f"{dead.pid}\n")
    assert es.status().pid is None
    assert es.stop() is False
    assert not es.pid_path.exists()

    # A live process that reused the pid but is not this node must never be signalled.
    foreign = _stubborn_process("not-a-node")
    try:
        es.pid_path.write_text(f"{foreign.pid}\n")
        assert es.status().pid is None
        assert es.stop() is False
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


# -- real traffic through the session fixture ------------------------------------------------

EVENT_TYPES = [name for name in DEFAULT_FEATURES if name != "other"]
DOCS = 1000
PAGE = 64


def _event_log(prefix: str) -> list[dict[str, object]]:
    """Logstash-like schedd events over three days, in daily indices.

    Every timestamp is shared by about seven events, so pages of a sorted scan end inside runs
    of equal timestamps: only the tiebreaker keeps the scan from skipping or repeating events.
    """
    actions: list[dict[str, object]] = []
    for seq in range(DOCS):
        day = seq % 3
        stamp = datetime(2017, 3, 1 + day, (seq // 3) % 24, 30 * ((seq // 72) % 2), tzinfo=UTC)
        actions.append(
            {
                "_index": f"{prefix}fifebatch-logs-2017.03.0{1 + day}",
                "_id": str(seq),
                "_source": {
                    "@timestamp": stamp.isoformat().replace("+00:00", "Z"),
                    "MyType": EVENT_TYPES[(seq * 7) % len(EVENT_TYPES)],
                    "schedd": f"fifebatch{1 + seq % 2}.fnal.gov",
                    "seq": seq,
                },
            }
        )
    return actions


def test_daily_indices_bulk_pit_scan_and_aggregations(
    es_client: Elasticsearch, es_index_prefix: str
) -> None:
    from elasticsearch import helpers

    pattern = f"{es_index_prefix}fifebatch-logs-*"
    # As Logstash does: a template, and daily indices made by the first write to each.
    es_client.indices.put_index_template(
        name=f"{es_index_prefix}fifebatch-logs",
        index_patterns=[pattern],
        template={
            "settings": {"number_of_shards": 2, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "MyType": {"type": "keyword"},
                    "schedd": {"type": "keyword"},
                    "seq": {"type": "integer"},
                }
            },
        },
    )
    actions = _event_log(es_index_prefix)
    assert helpers.bulk(es_client, actions, chunk_size=250) == (DOCS, [])
    es_client.indices.refresh(index=pattern)

    indices = {
        row["index"]: int(row["docs.count"])
        for row in es_client.cat.indices(index=pattern, format="json")
    }
    assert indices == {
        f"{es_index_prefix}fifebatch-logs-2017.03.01": 334,
        f"{es_index_prefix}fifebatch-logs-2017.03.02": 333,
        f"{es_index_prefix}fifebatch-logs-2017.03.03": 333,
    }
    assert es_client.count(index=pattern)["count"] == DOCS

    # A point-in-time scan, sorted by timestamp with the PIT's own tiebreaker.
    pit = es_client.open_point_in_time(index=pattern, keep_alive="1m")["id"]
    seqs: list[int] = []
    stamps: list[int] = []
    pages: list[list[int]] = []
    after: list[object] | None = None
    try:
        while True:
            page = es_client.search(
                pit={"id": pit, "keep_alive": "1m"},
                size=PAGE,
                sort=[{"@timestamp": "asc"}, {"_shard_doc": "asc"}],
                search_after=after,
                track_total_hits=False,
            )
            pit = page["pit_id"]
            hits = page["hits"]["hits"]
            if not hits:
                break
            pages.append([hit["sort"][0] for hit in hits])
            seqs += [hit["_source"]["seq"] for hit in hits]
            stamps += [hit["sort"][0] for hit in hits]
            after = hits[-1]["sort"]
    finally:
        assert es_client.close_point_in_time(id=pit)["succeeded"]
    assert len(seqs) == DOCS
    assert sorted(seqs) == list(range(DOCS))  # none skipped, none twice
    assert stamps == sorted(stamps)
    assert len(pages) == -(-DOCS // PAGE)
    # Some page ended inside a run of equal timestamps, where the tiebreaker carried the scan.
    assert any(left[-1] == right[0] for left, right in itertools.pairwise(pages))

    # Per-day counts of each event type: a date histogram with a terms aggregation inside.
    expected: Counter[tuple[str, str]] = Counter()
    for action in actions:
        source = action["_source"]
        assert isinstance(source, dict)
        expected[(source["@timestamp"][:10], source["MyType"])] += 1
    result = es_client.search(
        index=pattern,
        size=0,
        aggs={
            "per_day": {
                "date_histogram": {"field": "@timestamp", "calendar_interval": "1d"},
                "aggs": {"types": {"terms": {"field": "MyType", "size": 20}}},
            },
            "schedds": {"terms": {"field": "schedd"}},
        },
    )["aggregations"]
    days = result["per_day"]["buckets"]
    assert [(day["key_as_string"][:10], day["doc_count"]) for day in days] == [
        ("2017-03-01", 334),
        ("2017-03-02", 333),
        ("2017-03-03", 333),
    ]
    got = Counter(
        {
            (day["key_as_string"][:10], bucket["key"]): bucket["doc_count"]
            for day in days
            for bucket in day["types"]["buckets"]
        }
    )
    assert got == expected
    assert all(day["types"]["sum_other_doc_count"] == 0 for day in days)
    assert {b["key"]: b["doc_count"] for b in result["schedds"]["buckets"]} == {
        "fifebatch1.fnal.gov": 500,
        "fifebatch2.fnal.gov": 500,
    }


def test_cleanup_deletes_only_the_tests_own_indices(
    es_client: Elasticsearch, es_index_prefix: str
) -> None:
    other = f"x{es_index_prefix}"  # another test's prefix
    es_client.indices.put_index_template(
        name=f"{es_index_prefix}tpl", index_patterns=[f"{es_index_prefix}tpl-*"]
    )
    for name in (f"{es_index_prefix}a", f"{es_index_prefix}b", f"{other}c"):
        es_client.indices.create(index=name, settings={"number_of_replicas": 0})
    try:
        deleted = delete_test_indices(es_client, es_index_prefix)
        assert deleted == [f"{es_index_prefix}a", f"{es_index_prefix}b"]
        assert not es_client.indices.exists(index=f"{es_index_prefix}a")
        assert es_client.indices.exists(index=f"{other}c")
        assert not es_client.indices.exists_index_template(name=f"{es_index_prefix}tpl")
        assert delete_test_indices(es_client, es_index_prefix) == []
    finally:
        delete_test_indices(es_client, other)
