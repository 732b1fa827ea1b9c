"""The Elasticsearch producer against a real node and a real broker.

Documents are built from the real event logs in ../shared/data/htcondor-eventlogs (one per
job event, Fermilab layout) and indexed into daily ``fifebatch-logs-YYYY.MM.DD`` indices, many
events sharing a second (so paging leans on the tiebreaker).

- Backfill delivers every document once; so does a CLI run SIGKILLed mid-backfill and restarted.
- ``--aggregate`` sends counts per window, stream and type that add up to the documents, also
  across a kill and restart.
- ``--follow`` on a node of the test's own, stopped and started while it follows, with
  documents indexed after: every document once.
- Bad input: documents with missing or ill-typed fields are dead-lettered with a reason; an
  unreachable node is a one-line error after the retries.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from elastic_kit import (
    CLI,
    DOCS,
    assert_once,
    cli,
    expected_counts,
    index_documents,
    index_name,
    wait_for_text,
)
from pipeline_kit import REPO_ROOT, settings_env
from topic_collector import TopicCollector, event_ids, tally

from gridalarm.config import Settings
from gridalarm.producers.elastic import (
    Connection,
    FieldMap,
    Retrying,
    RetryPolicy,
    load_checkpoint,
    load_mapping,
)
from gridalarm.producers.elastic_producer import ElasticConfig, ElasticProducer
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.timeutil import format_time, parse_time

pytestmark = pytest.mark.integration


# -- Kafka ------------------------------------------------------------------------------------


@pytest.fixture
def collector(kafka_settings: Settings) -> Iterator[TopicCollector]:
    c = TopicCollector(kafka_settings)
    yield c
    c.close()


def run_producer(
    settings: Settings, url: str, config: ElasticConfig, checkpoint: Path | None
) -> Any:
    async def main() -> Any:
        call = Retrying(Connection((url,)).client(), url, RetryPolicy(give_up=30), print)
        sink_config = SinkConfig.from_settings(settings, settings.kafka, source=config.source)
        dead_config = SinkConfig.deadletters_of(settings, settings.kafka, config.source)
        previous = (
            load_checkpoint(checkpoint, settings.topic("events"), config.mode)
            if checkpoint
            else None
        )
        try:
            async with EventSink(sink_config) as sink, EventSink(dead_config) as dead:
                producer = ElasticProducer(call, config, sink, dead, checkpoint, previous)
                return await producer.run()
        finally:
            call.client.close()

    return asyncio.run(main())


def kill_after_checkpoint(proc: subprocess.Popen[str], path: Path, field: str) -> None:
    """SIGKILL the producer once it has checkpointed some progress (mid-backfill)."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        if path.exists() and orjson.loads(path.read_bytes()).get(field) is not None:
            break
        assert time.monotonic() < deadline, "no checkpoint with progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


# -- tests ------------------------------------------------------------------------------------


def test_backfill_delivers_every_document_once(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
    tmp_path: Path,
) -> None:
    index_documents(es_client, es_index_prefix, DOCS)
    days = {index_name(es_index_prefix, d) for d in DOCS}
    assert len(days) > 10  # several daily indices
    config = ElasticConfig(
        settings=kafka_settings,
        index=f"{es_index_prefix}fifebatch-logs-*",
        fields=FieldMap(),
        source="es:test",
        page_size=500,
    )
    checkpoint = tmp_path / "es.json"
    stats = run_producer(kafka_settings, es_url, config, checkpoint)
    assert stats.events == len(DOCS) and stats.deadletters == 0
    events = collector.wait_for(len(DOCS))
    assert_once(events, DOCS)
    # A message sent alone keeps the document's attributes (a coalesced one keeps the ids).
    sample = next(m for m in events if "eid" in m["attrs"])
    assert sample["attrs"]["owner"].startswith("user") and sample["attrs"]["pool"] == "test"
    assert "job" in sample["attrs"] and sample["source"] == "es:test"
    # A second run from the checkpoint finds nothing new.
    again = run_producer(kafka_settings, es_url, config, checkpoint)
    assert again.events == 0 and again.resumed


def test_cli_killed_mid_backfill_then_restarted_sends_each_document_once(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
    tmp_path: Path,
) -> None:
    index_documents(es_client, es_index_prefix, DOCS)
    checkpoint = tmp_path / "cp.json"
    args = ["--page-size", "50", "--checkpoint", str(checkpoint), "--checkpoint-interval", "0.1s"]
    first = cli(kafka_settings, es_url, es_index_prefix, *args)
    kill_after_checkpoint(first, checkpoint, "ts_ms")
    sent_before = len(collector.events())
    assert 0 < sent_before < len(DOCS)
    second = cli(kafka_settings, es_url, es_index_prefix, *args)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "resumed from a checkpoint" in out
    assert_once(collector.wait_for(len(DOCS)), DOCS)


def test_aggregate_counts_add_up_across_a_kill_and_restart(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
    tmp_path: Path,
) -> None:
    index_documents(es_client, es_index_prefix, DOCS)
    checkpoint = tmp_path / "agg.json"
    args = ["--aggregate", "--window", "1h", "--page-size", "5", "--checkpoint", str(checkpoint)]
    args += ["--checkpoint-interval", "0.05s"]
    first = cli(kafka_settings, es_url, es_index_prefix, *args)
    kill_after_checkpoint(first, checkpoint, "agg_after")
    second = cli(kafka_settings, es_url, es_index_prefix, *args)
    _out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    events = collector.wait_for(len(DOCS))
    keys = Counter(eid for m in events for eid in event_ids(m))
    assert max(keys.values()) == 1, "a window's count was sent twice"
    got: Counter[tuple[str, str]] = Counter()
    for m in events:
        got[(m["stream"], m["type"])] += m.get("n", 1)
        assert m["ts"].endswith(":00:00Z")  # window starts
    assert got == expected_counts(DOCS)
    assert any(m.get("n", 1) > 1 for m in events)
    assert len(events) < len(DOCS) / 3  # pre-counted: far fewer messages


def test_bad_documents_are_dead_lettered_with_a_reason(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
) -> None:
    good = DOCS[:200]
    bad = [
        {"@timestamp": "2025-11-05T00:00:00Z", "host": "h", "seq": 100_001},  # no type
        {"@timestamp": "2025-11-05T00:00:01Z", "MyType": "ExecuteEvent", "host": "h",
         "EventTime": "yesterday", "seq": 100_002},  # ill-typed time
        {"@timestamp": "2025-11-05T00:00:02Z", "MyType": "ExecuteEvent", "host": "h",
         "Cluster": "abc", "seq": 100_003},  # ill-typed job number
        {"@timestamp": "2025-11-05T00:00:03Z", "MyType": "ExecuteEvent", "seq": 100_004},
    ]  # fmt: skip
    index_documents(es_client, es_index_prefix, good + bad)
    config = ElasticConfig(
        settings=kafka_settings,
        index=f"{es_index_prefix}fifebatch-logs-*",
        fields=FieldMap(),
        source="es:test",
    )
    stats = run_producer(kafka_settings, es_url, config, None)
    assert stats.deadletters == 4
    assert_once(collector.wait_for(len(good)), good)
    dead = TopicCollector(kafka_settings, "deadletter")
    try:
        deadline = time.monotonic() + 30
        while len(dead.events()) < 4:
            assert time.monotonic() < deadline
    finally:
        dead.close()
    reasons = sorted((m["reason"], m["detail"]) for m in dead.messages)
    assert [r for r, _ in reasons] == ["bad_time", "schema", "schema", "schema"]
    details = " | ".join(d for _, d in reasons)
    assert "no event type" in details and "Cluster 'abc'" in details
    assert "stream field" in details and "EventTime" in details


def test_unreachable_elasticsearch_is_a_one_line_error(kafka_settings: Settings) -> None:
    proc = subprocess.run(
        [*CLI, "--url", "http://127.0.0.1:1", "--index", "x-*", "--retry-for", "1s"],
        env=settings_env(kafka_settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gridalarm: ")]
    assert lines and "cannot reach Elasticsearch at http://127.0.0.1:1" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_follow_survives_an_elasticsearch_stop_and_start(
    own_es_node: Any, kafka_settings: Settings, collector: TopicCollector, tmp_path: Path
) -> None:
    from elasticsearch import Elasticsearch

    prefix = "follow-"
    url = own_es_node.url
    half = len(DOCS) // 2
    ordered = sorted(DOCS, key=lambda d: d["@timestamp"])
    early = ordered[:half]
    with Elasticsearch(url, request_timeout=60) as client:
        index_documents(client, prefix, early)
    args = ["--follow", "--lag", "10s", "--poll", "0.3s", "--retry-for", "0"]
    args += ["--checkpoint", str(tmp_path / "follow.json")]
    log = tmp_path / "producer.err"
    proc = cli(kafka_settings, url, prefix, *args, stderr=log)
    try:
        collector.wait_for(len(early))
        own_es_node.stop()
        wait_for_text(log, "retrying", proc)  # the producer met the dead node and keeps on
        own_es_node.start()
        url = own_es_node.url
        # New documents, as a live schedd writes them: stamped just now (several per ms),
        # visible after the refresh, well within the lag.
        now = time.time()
        late = [
            {**d, "@timestamp": format_time(now - 2 + i / 2000), "EventTime": None}
            for i, d in enumerate(ordered[half:])
        ]
        late = [{k: v for k, v in d.items() if v is not None} for d in late]
        with Elasticsearch(url, request_timeout=60) as client:
            index_documents(client, prefix, late)
        collector.wait_for(len(DOCS), timeout=180)
        # Passes until the producer has read a second past the newest document: had it read
        # anything twice (across the node's restart), it would be in hand by then.
        newest = max(parse_time(d["@timestamp"]) for d in late)
        events = collector.wait_for_heartbeats(newest + 1.0)
        assert_once(events, early + late)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    err = log.read_text(errors="replace")
    assert proc.returncode == 0, err
    assert "answers again" in err


def test_cms_documents_through_the_mapping_file(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
) -> None:
    from elasticsearch import helpers

    index = f"{es_index_prefix}cms-jobs"
    es_client.indices.create(
        index=index,
        settings={"number_of_shards": 2, "number_of_replicas": 0},
        mappings={
            "properties": {
                "RecordTime": {"type": "date", "format": "epoch_second"},
                "Status": {"type": "keyword"},
                "ScheddName": {"type": "keyword"},
                "Site": {"type": "keyword"},
            }
        },
    )
    statuses = ("Running", "Completed", "Held", "Removed")
    docs = [
        {
            "RecordTime": 1_700_000_000 + seq // 4,  # four documents per second: ties
            "Status": statuses[seq % 4],
            "ScheddName": f"crab3@vocms0{seq % 3}",
            "Site": f"T2_US_{seq % 5}",
        }
        for seq in range(300)
    ]
    actions = [{"_index": index, "_id": str(i), "_source": d} for i, d in enumerate(docs)]
    assert helpers.bulk(es_client, actions, refresh="wait_for") == (300, [])
    for aggregate in (False, True):
        config = ElasticConfig(
            settings=kafka_settings,
            index=index,
            fields=load_mapping("cms"),
            source="es:cms",
            aggregate=aggregate,
            window=60,
            page_size=7,
        )
        stats = run_producer(kafka_settings, es_url, config, None)
        assert stats.documents == 300 and stats.deadletters == 0
    events = collector.wait_for(300 + 300)
    expected = Counter((f"schedd:{d['ScheddName']}", d["Status"]) for d in docs)
    per_doc = [m for m in events if event_ids(m)[0].startswith("es:")]
    counted = [m for m in events if event_ids(m)[0].startswith("agg:")]
    assert len({eid for m in per_doc for eid in event_ids(m)}) == 300
    assert tally(per_doc, "stream", "type") == expected
    assert tally(counted, "stream", "type") == expected
    assert any(m["attrs"].get("site", "").startswith("T2_US_") for m in per_doc)


def test_follow_with_aggregate_counts_each_window_once(
    es_client: Any,
    es_url: str,
    es_index_prefix: str,
    kafka_settings: Settings,
    collector: TopicCollector,
    tmp_path: Path,
) -> None:
    """Live counts: windows are sent once they are older than the lag, each exactly once,
    also for documents that arrive while the producer follows."""

    def stamped(docs: list[dict[str, Any]], start: float) -> list[dict[str, Any]]:
        out = [{**d, "@timestamp": format_time(start + i / 500)} for i, d in enumerate(docs)]
        return [{k: v for k, v in d.items() if k != "EventTime"} for d in out]

    ordered = sorted(DOCS, key=lambda d: d["@timestamp"])[:600]
    first = stamped(ordered[:300], time.time() - 1.0)
    index_documents(es_client, es_index_prefix, first)
    args = ["--aggregate", "--follow", "--window", "1s", "--lag", "2s", "--poll", "0.3s"]
    args += ["--checkpoint", str(tmp_path / "agg-follow.json")]
    proc = cli(kafka_settings, es_url, es_index_prefix, *args)
    try:
        collector.wait_for(len(first))
        second = stamped(ordered[300:], time.time())
        index_documents(es_client, es_index_prefix, second)
        collector.wait_for(len(first) + len(second), timeout=60)
        # Several windows past the newest document's: a window counted twice would be in
        # hand by then.
        newest = max(parse_time(d["@timestamp"]) for d in second)
        events = collector.wait_for_heartbeats(newest + 3.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    keys = Counter(eid for m in events for eid in event_ids(m))
    assert max(keys.values()) == 1, "a window's count was sent twice"
    assert tally(events, "stream", "type") == expected_counts(first + second)
