"""What the Elasticsearch producer tests share: documents built from the real event logs,
indexed as Logstash does, the producer CLI as a child process, and the once-only check.

Documents are built from the real event logs in ../shared/data/htcondor-eventlogs (one per
job event, Fermilab layout), indexed into daily ``fifebatch-logs-YYYY.MM.DD`` indices.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline_kit import REPO_ROOT, settings_env
from shared_data import event_logs
from topic_collector import event_ids, tally

from gridalarm.config import Settings
from gridalarm.producers.eventlog import ReadConfig, read_events
from gridalarm.timeutil import format_time

LOGS = event_logs()  # fails the collection when the logs are missing
CLI = [sys.executable, "-m", "gridalarm", "produce", "es"]  # `gridalarm produce es`


def log_documents() -> list[dict[str, Any]]:
    """One Fermilab-style document per event of the real logs, in log order."""
    docs = []
    items = read_events(LOGS, ReadConfig(timezone="UTC", source="test"))
    for seq, item in enumerate(i for i in items if i.message is not None):
        message = item.message
        assert message is not None and item.ts is not None
        cluster, _, proc = message.get("attrs", {}).get("job", "0.0").partition(".")
        stamp = format_time(item.ts)
        docs.append(
            {
                "@timestamp": stamp,
                "EventTime": stamp,
                "MyType" if seq % 5 else "TriggerEventTypeName": message["type"],
                "host": message["stream"].removeprefix("schedd:"),
                "Cluster": int(cluster),
                "Proc": int(proc or 0),
                "Owner": f"user{seq % 7}",
                "pool": "test",
                "seq": seq,
            }
        )
    return docs


DOCS = log_documents()


def index_name(prefix: str, doc: dict[str, Any]) -> str:
    return f"{prefix}fifebatch-logs-{doc['@timestamp'][:10].replace('-', '.')}"


def index_documents(client: Any, prefix: str, docs: list[dict[str, Any]]) -> None:
    """As Logstash does: a template, daily indices made by the first write, then a refresh."""
    from elasticsearch import helpers

    put_template(client, prefix)
    ok, errors = helpers.bulk(
        client, bulk_actions(prefix, docs), chunk_size=2000, refresh="wait_for"
    )
    assert (ok, errors) == (len(docs), [])


def bulk_actions(prefix: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index actions for ``docs``, each under the id ``doc-<seq>`` in its daily index."""
    return [{"_index": index_name(prefix, d), "_id": f"doc-{d['seq']}", "_source": d} for d in docs]


def put_template(client: Any, prefix: str) -> None:
    """The index template of the daily ``<prefix>fifebatch-logs-*`` indices."""
    client.indices.put_index_template(
        name=f"{prefix}fifebatch-logs",
        index_patterns=[f"{prefix}fifebatch-logs-*"],
        template={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic_templates": [
                    {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}
                ],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "EventTime": {"type": "keyword"},
                    "Cluster": {"type": "keyword"},
                    "Proc": {"type": "keyword"},
                },
            },
        },
    )


def expected_counts(docs: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter(
        (f"schedd:{d['host']}", d.get("MyType") or d["TriggerEventTypeName"]) for d in docs
    )


def assert_once(events: list[dict[str, Any]], docs: list[dict[str, Any]]) -> None:
    eids = Counter(eid for m in events for eid in event_ids(m))
    twice = [e for e, n in eids.items() if n > 1]
    assert not twice, f"{len(twice)} documents sent more than once, e.g. {twice[:3]}"
    assert len(eids) == len(docs) == sum(m.get("n", 1) for m in events)
    assert tally(events, "stream", "type") == expected_counts(docs)


def cli(
    settings: Settings, url: str, prefix: str, *args: str, stderr: Path | None = None
) -> subprocess.Popen[str]:
    """The producer CLI as a child process; its stderr piped, or written to ``stderr`` (a file
    a test can read while the producer runs)."""
    err = None if stderr is None else stderr.open("w")
    try:
        return subprocess.Popen(
            [*CLI, "--url", url, "--index", f"{prefix}fifebatch-logs-*", *args],
            env=settings_env(settings),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if err is None else err,
            text=True,
        )
    finally:
        if err is not None:
            err.close()  # the child has its own copy


def wait_for_text(
    path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 60.0
) -> None:
    """Until ``text`` appears in the file ``path`` while ``proc`` keeps running."""
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, f"the producer exited: {path.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"no {text!r} in {path.name} after {timeout} s"
        time.sleep(0.05)
