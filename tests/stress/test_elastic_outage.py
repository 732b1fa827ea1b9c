"""Elasticsearch down for a minute under ``produce es --follow``: nothing lost, nothing changed.

A node of the test's own takes live documents, stamped with the moment they happen, at a
steady rate, as Logstash ships a schedd's log; while the node is down the writer keeps what it
could not index and sends it again, with its original stamps, once the node is back (so
documents stamped during the outage become visible only after it). ``produce es --follow``
reads the node and a worker consumes what it sends. After ``BEFORE`` seconds the node is
stopped for ``DOWN`` seconds, then started; ``AFTER`` seconds later the writer stops.

Checks (issue 12: "Elasticsearch stopped for a minute during `produce es --follow`"): every
document written is on the events topic exactly once, and every window, score and alert
message up to the newest document's window equals those of one worker fed by a plain backfill
of the same index (read once the outage is over). Recovery is timed from the node answering
again to the producer's first heartbeat past the time the node went down.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from elastic_kit import DOCS, bulk_actions, cli, put_template, wait_for_text
from pipeline_kit import (
    committed,
    end_offsets,
    gridalarm,
    published,
    second_prefix,
    wait_for_worker,
    wait_until,
    worker_group,
    worker_process,
)
from stress_kit import SESSION, WINDOW, before, compare_outputs
from topic_collector import TopicCollector, event_ids

from gridalarm.config import Settings
from gridalarm.producers.elastic import quiet_transport_log
from gridalarm.timeutil import format_time, parse_time

pytestmark = pytest.mark.integration

RATE = 40.0  # documents per second
BEFORE, DOWN, AFTER = 30.0, 60.0, 30.0  # seconds: the writer's life around the outage
LAG = 10.0  # the producer's --lag


class LiveWriter(threading.Thread):
    """Indexes ``RATE`` documents a second, each stamped with the moment it is made; a batch
    the node refuses is kept and sent again (same ids, same stamps) until it lands."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(name="live-writer", daemon=True)
        self.url, self.prefix = url, prefix
        self.written: list[dict[str, Any]] = []  # indexed, in the order made
        self.refused = 0  # bulk requests that failed while the node was down
        self._backlog: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from elasticsearch import Elasticsearch

        with Elasticsearch(self.url, request_timeout=5, max_retries=0) as client:
            due, seq = time.time(), 0
            while not self._halt.is_set():
                while due <= time.time():
                    template = {k: v for k, v in DOCS[seq % len(DOCS)].items() if k != "EventTime"}
                    self._backlog.append({**template, "@timestamp": format_time(due), "seq": seq})
                    seq, due = seq + 1, due + 1.0 / RATE
                self._flush(client)
                self._halt.wait(0.25)
            while self._backlog:  # the node is up by now: what is left must land
                self._flush(client)

    def _flush(self, client: Any) -> None:
        from elasticsearch import helpers

        if not self._backlog:
            return
        try:
            helpers.bulk(client, bulk_actions(self.prefix, self._backlog), chunk_size=2000)
        except Exception:  # the node is down or starting: keep the batch, as Logstash does
            self.refused += 1
            time.sleep(0.5)
            return
        self.written.extend(self._backlog)
        self._backlog = []

    def finish(self) -> list[dict[str, Any]]:
        """Stop making documents, send what is held, and return every document written."""
        self._halt.set()
        self.join(timeout=120)
        assert not self.is_alive(), "the writer could not deliver its backlog"
        return self.written


# About 7 minutes on a busy machine; its waits add up to more than pytest's default 600 s.
@pytest.mark.timeout(1800)
def test_elasticsearch_down_a_minute_under_follow_changes_nothing(
    own_es_node: Any, kafka_settings: Settings, tmp_path: Path, stress_row: dict[str, Any]
) -> None:
    from elasticsearch import Elasticsearch

    quiet_transport_log()  # the writer's client would log each refused request
    stress_row.update(fault=f"Elasticsearch stopped {DOWN:.0f} s under es --follow", run=0)
    settings = kafka_settings.model_copy(update={"window": WINDOW})
    url, prefix = own_es_node.url, "live-"
    with Elasticsearch(url, request_timeout=60) as client:
        put_template(client, prefix)
    writer = LiveWriter(url, prefix)
    writer.start()
    log = tmp_path / "producer.err"
    args = ["--follow", "--lag", f"{LAG:.0f}s", "--poll", "0.5s", "--retry-for", "0"]
    producer = cli(
        settings, url, prefix, *args, "--checkpoint", str(tmp_path / "cp.json"), stderr=log
    )
    collector = TopicCollector(settings)
    try:
        with worker_process(settings, tmp_path / "worker-0.log", **SESSION) as worker:
            group = worker_group(settings)
            wait_until(lambda: committed(settings, group) > 0, 120, "the worker's first commit")
            time.sleep(BEFORE)  # the fault's place, not a synchronisation
            went_down = time.time()
            own_es_node.stop()
            wait_for_text(log, "retrying", producer, timeout=DOWN)
            time.sleep(max(0.0, went_down + DOWN - time.time()))  # the outage itself
            own_es_node.start()
            answered = time.monotonic()
            stress_row["fault"] = (
                f"Elasticsearch down {time.time() - went_down:.0f} s under es --follow"
            )
            wait_for_text(log, "answers again", producer, timeout=120)
            collector.wait_for_heartbeats(went_down, timeout=120)
            stress_row["recovery s"] = time.monotonic() - answered
            time.sleep(AFTER)  # live writing goes on after the outage
            docs = writer.finish()
            newest = max(parse_time(d["@timestamp"]) for d in docs)
            horizon = (newest // WINDOW + 1) * WINDOW  # the end of the newest document's window
            # The windows up to the horizon close once the watermark passes it by the lateness.
            collector.wait_for_heartbeats(horizon + settings.lateness + 1, timeout=300)
            wait_for_worker(settings, worker, timeout=300)
    finally:
        producer.send_signal(signal.SIGTERM)
        producer.communicate(timeout=60)
        collector.close()
    assert producer.returncode == 0, log.read_text(errors="replace")[-3000:]
    stress_row["events"] = end_offsets(settings, "events")

    events = [m for m in collector.messages if not m.get("heartbeat")]
    # An event id is es:<index>/<document _id>.
    delivered = Counter(eid.rpartition("/")[2] for m in events for eid in event_ids(m))
    stress_row["events lost"] = len({f"doc-{d['seq']}" for d in docs} - set(delivered))
    stress_row["events twice"] = sum(n - 1 for n in delivered.values())
    assert sum(m.get("n", 1) for m in events) == len(delivered) + stress_row["events twice"]

    # The reference: one worker fed by a backfill of the same index, read after the outage.
    with second_prefix(settings, "ref") as ref:
        until = format_time(horizon + settings.lateness + 1)
        gridalarm(
            ref, "produce", "es", "--url", url, "--index", f"{prefix}fifebatch-logs-*",
            "--until", until, "--quiet",
        )  # fmt: skip
        with worker_process(ref, tmp_path / "ref.log") as ref_worker:
            wait_for_worker(ref, ref_worker, timeout=300)
        reference = before(published(ref), horizon)
        ours = before(published(settings), horizon)
    context = f"{len(docs)} documents, {writer.refused} bulk requests refused while down"
    compare_outputs(ours, reference, tmp_path, stress_row, context)
