"""Elasticsearch producer rate: backfill and --aggregate beside a raw read of the same indices.

One data set, indexed once into a real Elasticsearch node: ``--docs`` documents shaped like the
Fermilab Logstash EventLog documents (``@timestamp``, ``EventTime``, ``MyType`` or
``TriggerEventTypeName``, ``host``, ``Cluster``, ``Proc``, ``Owner``, ...) spread over ``--days``
daily indices ``<prefix>fifebatch-logs-YYYY.MM.dd`` (a month by default), ``--streams`` schedds
with a day-night rhythm. Indexing (bulk, one refresh, then a force-merge so that no merge runs
during the timed reads) is not measured. Then, in the same run, against a real broker:

- raw scroll (the issue's baseline): ``helpers.scan``, the scroll API in index order, no
  sort, the same page size, counting the hits;
- raw PIT read (a stricter baseline): the plain official client paging the indices as the
  producer does (point-in-time, sort by ``@timestamp`` then ``_shard_doc``, ``search_after``,
  the same page size), counting the hits and nothing else. Both baselines decode with orjson,
  as the producer's client does, and are untimed until the node is warm (a PIT pass no more
  than 10% faster than the one before, then one untimed scroll);
- backfill: :class:`ElasticProducer` in docs mode (default Fermilab mapping, checkpoints every
  second, each waiting for the broker's acks) producing one event per document to a fresh
  events topic, to its final flush. The topic's end offsets must hold exactly one message per
  document plus the heartbeats, or the run fails. ``--rounds`` backfills, each between two
  reads of each baseline and compared with their mean rate (the machine's load drifts); the
  median ratio is the figure;
- --aggregate: the same producer counting per hour, stream and type in Elasticsearch and
  sending pre-counted events, ``--rounds`` times (median); the ``n`` read back from its topic
  must add up to the documents. Compared with the docs-mode backfill of the same days. As the
  raw read is warmed up, its composite aggregation runs once before with the plain client:
  the first aggregation over fresh indices is the slowest, and its time is printed as what a
  cold start costs.

The target is backfill >= 0.5 × the raw scroll; the ratio to the PIT read is printed beside it.

Run: ``python -m benchmarks.elastic_rate --docs 200000 --days 30``. ``GRIDALARM_KAFKA`` names the
broker (without it one is started under ``.state/bench-kafka``); ``GRIDALARM_ES`` names the
Elasticsearch node (without it a local one is started in a temporary folder on a free port and
stopped afterwards; its jars are kept in ``GRIDALARM_ES_JARS`` or ``.state/bench-es/jars``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from benchmarks.broker import broker
from gridalarm.config import Settings
from gridalarm.locales import LocalElasticsearch, LocalElasticsearchConfig
from gridalarm.producers.elastic import (
    Connection,
    FieldMap,
    Retrying,
    RetryPolicy,
    quiet_transport_log,
)
from gridalarm.producers.elastic_producer import (
    AGG_PAGE,
    DOC_PAGE,
    ElasticConfig,
    ElasticProducer,
    ElasticStats,
)
from gridalarm.producers.sink import EventSink, SinkConfig
from gridalarm.timeutil import format_time
from gridalarm.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
ES_JARS = REPO / ".state" / "bench-es" / "jars"
START = 1_488_326_400  # 2017-03-01T00:00:00Z, the Fermilab study's time
PAGE_SIZE = DOC_PAGE  # the producer's default pages, for the baselines too
WINDOW = 3600.0  # --aggregate window
SOURCE = "es:bench"

# Event types with HTCondor's event codes and a share of a busy schedd's log; the last two are
# outside the default features (the worker counts them as `other`).
TYPES = (
    ("JobImageSizeEvent", "006", 24),
    ("ExecuteEvent", "001", 18),
    ("SubmitEvent", "000", 16),
    ("JobTerminatedEvent", "005", 15),
    ("JobEvictedEvent", "004", 5),
    ("ShadowExceptionEvent", "007", 4),
    ("JobHeldEvent", "012", 4),
    ("JobAbortedEvent", "009", 4),
    ("JobReleaseEvent", "013", 3),
    ("JobDisconnectedEvent", "022", 2),
    ("JobReconnectedEvent", "023", 2),
    ("JobReconnectFailedEvent", "024", 1),
    ("JobSuspendedEvent", "010", 1),
    ("JobUnsuspendedEvent", "011", 1),
)
GROUPS = ("group_nova", "group_minerva", "group_dune", "group_mu2e", "group_uboone")
SITES = ("FNAL", "Nebraska", "UCSD", "Wisconsin", "MIT", "Caltech")


class BenchmarkFailed(RuntimeError):
    """A measured run did not deliver what it read: the figures would mean nothing."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise BenchmarkFailed(message)


# -- the documents ----------------------------------------------------------------------------


def make_documents(count: int, days: int, streams: int, seed: int = 2017) -> list[dict[str, Any]]:
    """``count`` Fermilab-style EventLog documents over ``days`` days from 2017-03-01, in time
    order: busier schedds and busier afternoons, every fifth typed by ``TriggerEventTypeName``
    (as in the integration tests)."""
    rng = random.Random(seed)
    hosts = [f"fifebatch{i + 1}.fnal.gov" for i in range(streams)]
    host_weights = [1.0 / (i + 1) for i in range(streams)]
    # Day-night rhythm: the busiest hour (15:00 UTC) has 3 times the rate of the quietest.
    hour_weights = [3.0 - min(abs(h - 15), 24 - abs(h - 15)) / 6.0 for h in range(24)]
    kinds = [(name, code) for name, code, _ in TYPES]
    kind_weights = [share for _, _, share in TYPES]
    stamps = sorted(
        START + day * 86_400 + hour * 3600 + rng.randrange(3600)
        for day, hour in zip(
            (rng.randrange(days) for _ in range(count)),
            rng.choices(range(24), hour_weights, k=count),
            strict=True,
        )
    )
    next_cluster = {host: 10_000_000 + 1_000_000 * i for i, host in enumerate(hosts)}
    docs = []
    for seq, (ts, host, (kind, code)) in enumerate(
        zip(
            stamps,
            rng.choices(hosts, host_weights, k=count),
            rng.choices(kinds, kind_weights, k=count),
            strict=True,
        )
    ):
        cluster = next_cluster[host] + rng.randrange(50)
        next_cluster[host] += rng.random() < 0.1
        proc = rng.randrange(20)
        stamp = format_time(ts)
        docs.append(
            {
                "@timestamp": stamp,
                "@version": "1",
                "EventTime": stamp,
                "TriggerEventTypeName" if seq % 5 == 0 else "MyType": kind,
                "host": host,
                "Cluster": cluster,
                "Proc": proc,
                "Owner": f"user{rng.randrange(40)}",
                "Jobsub_Group": rng.choice(GROUPS),
                "MachineAttrGLIDEIN_Site0": rng.choice(SITES),
                "pool": "fifebatch",
                "type": "condor_eventlog",
                "message": f"{code} ({cluster:09d}.{proc:03d}.000) {stamp} {kind}",
            }
        )
    return docs


def index_name(prefix: str, doc: dict[str, Any]) -> str:
    """The Logstash daily index of a document: ``<prefix>fifebatch-logs-YYYY.MM.dd``."""
    return f"{prefix}fifebatch-logs-{doc['@timestamp'][:10].replace('-', '.')}"


def index_documents(client: Any, prefix: str, docs: list[dict[str, Any]]) -> list[str]:
    """As Logstash does: a template, daily indices made by the first write (ids chosen by
    Elasticsearch); then one refresh and a force-merge. Returns the index names."""
    from elasticsearch import helpers

    client.indices.put_index_template(
        name=f"{prefix}fifebatch-logs",
        index_patterns=[f"{prefix}fifebatch-logs-*"],
        template={
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "refresh_interval": "-1",  # one refresh at the end
            },
            "mappings": {
                "dynamic_templates": [
                    {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}
                ],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "EventTime": {"type": "keyword"},
                    "message": {"type": "text"},
                },
            },
        },
    )
    names = sorted({index_name(prefix, d) for d in docs})
    actions = ({"_index": index_name(prefix, d), "_source": d} for d in docs)
    ok, errors = helpers.bulk(client, actions, chunk_size=5000, max_chunk_bytes=20 * 2**20)
    require(not errors and ok == len(docs), f"indexed {ok} of {len(docs)}: {errors[:3]}")
    pattern = f"{prefix}fifebatch-logs-*"
    client.indices.refresh(index=pattern)
    counted = client.count(index=pattern)["count"]
    require(counted == len(docs), f"{counted} documents searchable of {len(docs)} indexed")
    # Settled, as past daily indices are: merges that would run during the timed reads are
    # done now (the call returns when they are).
    client.indices.forcemerge(index=pattern, max_num_segments=1)
    return names


def delete_indices(client: Any, prefix: str) -> None:
    """The run's indices and template. By concrete names: Elasticsearch 8 refuses wildcard
    deletes by default."""
    names = sorted(client.indices.get(index=f"{prefix}fifebatch-logs-*").body)
    for start in range(0, len(names), 50):
        client.indices.delete(index=",".join(names[start : start + 50]))
    client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}fifebatch-logs")


# -- reading: the baselines -------------------------------------------------------------------


def scan_read(client: Any, pattern: str) -> tuple[int, float]:
    """``helpers.scan``: a scroll in index order; counts the hits."""
    from elasticsearch import helpers

    started = time.perf_counter()
    count = sum(1 for _ in helpers.scan(client, index=pattern, size=PAGE_SIZE))
    return count, time.perf_counter() - started


SORT = [
    {"@timestamp": {"order": "asc", "unmapped_type": "date", "numeric_type": "date"}},
    {"_shard_doc": "asc"},
]


def raw_read(client: Any, pattern: str, upper_ms: int) -> tuple[int, float]:
    """Point-in-time and ``search_after`` in time order, as the producer pages; counts the hits.

    The request is the producer's (sort with its options, the range of the pass, page size,
    no total hits), written out with the plain client: the work Elasticsearch does is the same.
    """
    started = time.perf_counter()
    pit = client.open_point_in_time(index=pattern, keep_alive="5m")["id"]
    count = 0
    after: list[Any] | None = None
    try:
        while True:
            body = client.search(
                pit={"id": pit, "keep_alive": "5m"},
                size=PAGE_SIZE,
                sort=[
                    {
                        "@timestamp": {
                            "order": "asc",
                            "unmapped_type": "date",
                            "numeric_type": "date",
                        }
                    },
                    {"_shard_doc": "asc"},
                ],
                query={"range": {"@timestamp": {"format": "epoch_millis", "lt": upper_ms}}},
                search_after=after,
                track_total_hits=False,
            )
            pit = body.get("pit_id", pit)
            hits = body["hits"]["hits"]
            if not hits:
                break
            count += len(hits)
            after = hits[-1]["sort"]
    finally:
        client.close_point_in_time(id=pit)
    return count, time.perf_counter() - started


def warm_up(client: Any, pattern: str, upper_ms: int, most: int = 4) -> int:
    """Raw reads until one is no more than 10% faster than the one before (a fresh node, its
    JIT and caches, gets faster over the first passes, which would flatter the backfill), at
    most ``most``; returns how many."""
    best = 0.0
    for done in range(1, most + 1):
        count, seconds = raw_read(client, pattern, upper_ms)
        if count / seconds < best * 1.1:
            return done
        best = max(best, count / seconds)
    return most


def composite_read(client: Any, pattern: str, upper_ms: int) -> tuple[int, float]:
    """The composite aggregation ``--aggregate`` pages through (hour, stream, type fields),
    by ``after_key`` with the producer's bucket page; counts the buckets."""
    started = time.perf_counter()
    window_ms = int(WINDOW * 1000)
    composite: dict[str, Any] = {
        "size": AGG_PAGE,
        "sources": [
            {"w": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{window_ms}ms"}}},
            {"s": {"terms": {"field": "host", "missing_bucket": True}}},
            {"t0": {"terms": {"field": "MyType", "missing_bucket": True}}},
            {"t1": {"terms": {"field": "TriggerEventTypeName", "missing_bucket": True}}},
        ],
    }
    buckets = 0
    while True:
        body = client.search(
            index=pattern,
            size=0,
            query={"range": {"@timestamp": {"format": "epoch_millis", "lt": upper_ms}}},
            aggs={"counts": {"composite": composite}},
            track_total_hits=False,
        )
        result = body["aggregations"]["counts"]
        if not result["buckets"]:
            break
        buckets += len(result["buckets"])
        composite["after"] = result["after_key"]
    return buckets, time.perf_counter() - started


# -- producing --------------------------------------------------------------------------------


def warn(message: str) -> None:
    print(f"  warning: {message}", file=sys.stderr, flush=True)


async def produce(
    url: str, settings: Settings, pattern: str, aggregate: bool, checkpoint: Path
) -> tuple[ElasticStats, float]:
    """One producer run as ``gridalarm produce es`` makes it, timed from the first request to
    the broker's last ack (the run's final checkpoint waits for it)."""
    bootstrap = settings.kafka or ""
    config = ElasticConfig(
        settings=settings,
        index=pattern,
        fields=FieldMap(),
        source=SOURCE,
        aggregate=aggregate,
        window=WINDOW,
    )
    call = Retrying(Connection((url,)).client(), url, RetryPolicy(give_up=60.0), warn)
    events = SinkConfig.from_settings(settings, bootstrap, source=SOURCE)
    dead = SinkConfig.deadletters_of(settings, bootstrap, SOURCE)
    try:
        async with EventSink(events) as sink, EventSink(dead) as deadletters:
            started = time.perf_counter()
            producer = ElasticProducer(
                call, config, sink, deadletters, checkpoint_path=checkpoint, warn=warn
            )
            stats = await producer.run()
            seconds = time.perf_counter() - started
    finally:
        call.client.close()
    return stats, seconds


def end_offsets(settings: Settings, kind: str) -> int:
    """Messages in the ``kind`` topic: the sum of its partitions' end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka)
    try:
        topic = settings.topic(kind)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def read_counts(settings: Settings) -> tuple[int, int, int]:
    """Events, distinct ``attrs.eid`` and the sum of ``n`` in the events topic (heartbeats
    left out), read back from its beginning to its end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False)
    try:
        topic = settings.topic("events")
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        events, total, eids = 0, 0, set()
        deadline = time.monotonic() + 300
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            require(time.monotonic() < deadline, f"reading {topic} back timed out")
            for records in consumer.poll(timeout_ms=500, max_records=50_000).values():
                for record in records:
                    message = orjson.loads(record.value)
                    if message.get("heartbeat"):
                        continue
                    events += 1
                    total += message.get("n", 1)
                    eids.add(message["attrs"]["eid"])
        return events, len(eids), total
    finally:
        consumer.close()


def delete_topics(settings: Settings) -> None:
    """The run's own topics (fresh prefix): best effort, a shared broker keeps no leftovers."""
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
        try:
            prefix = settings.topic_prefix + "."
            admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
        finally:
            admin.close()


# -- the node ---------------------------------------------------------------------------------


@contextlib.contextmanager
def elasticsearch_node() -> Iterator[str]:
    """GRIDALARM_ES, else a local node in a temporary folder on a free port, stopped after."""
    given = os.environ.get("GRIDALARM_ES")
    if given:
        yield given
        return
    jars = Path(os.environ.get("GRIDALARM_ES_JARS") or ES_JARS)
    with tempfile.TemporaryDirectory(prefix="bench-es-") as tmp:
        node = LocalElasticsearch(
            LocalElasticsearchConfig(state_dir=Path(tmp), port=0, jars_dir=jars)
        )
        node.start()
        try:
            yield node.url
        finally:
            node.stop()


def wait_healthy(client: Any, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            client.cluster.health(wait_for_status="yellow", timeout="5s")
            return
        except Exception as err:
            require(time.monotonic() < deadline, f"no healthy Elasticsearch at {url}: {err}")
            time.sleep(1.0)


# -- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000, help="documents to index")
    parser.add_argument("--days", type=int, default=30, help="daily indices they spread over")
    parser.add_argument("--streams", type=int, default=8, help="schedds (hosts)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode (median)")
    args = parser.parse_args(argv)
    if min(args.docs, args.days, args.streams, args.rounds) < 1:
        parser.error("--docs, --days, --streams and --rounds must be >= 1")
    with broker() as bootstrap, elasticsearch_node() as url:
        measure(url, bootstrap, args.docs, args.days, args.streams, args.rounds)


def measure(url: str, bootstrap: str, count: int, days: int, streams: int, rounds: int) -> None:
    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    quiet_transport_log()
    run = uuid.uuid4().hex[:6]
    prefix = f"bench-{run}-"
    pattern = f"{prefix}fifebatch-logs-*"
    # The loader uses orjson to index faster; the raw reader is the plain client.
    loader = Elasticsearch(url, request_timeout=600, serializer=OrjsonSerializer())
    # The baseline decodes with orjson too, as the producer's client does: the ratio is about
    # what the producer adds, not about JSON libraries.
    reader = Elasticsearch(url, request_timeout=60, serializer=OrjsonSerializer())
    topics: list[Settings] = []
    checkpoints = Path(tempfile.mkdtemp(prefix="gridalarm-bench-es-"))

    def fresh_topics(name: str) -> Settings:
        settings = Settings(kafka=bootstrap, topic_prefix=f"bench-es-{run}-{name}")
        topics.append(settings)
        ensure_topics(settings, bootstrap)
        return settings

    try:
        wait_healthy(reader, url)
        started = time.perf_counter()
        docs = make_documents(count, days, streams)
        indices = index_documents(loader, prefix, docs)
        del docs
        size = reader.indices.stats(index=pattern, metric="store")["_all"]["total"]["store"]
        print(
            f"indexed {count:,} documents ({streams} schedds) into {len(indices)} daily indices "
            f"({size['size_in_bytes'] / 1e6:.0f} MB) in {time.perf_counter() - started:.0f}s, "
            "not measured"
        )
        load = os.getloadavg()[0]
        upper_ms = int((time.time() - 60) * 1000)  # the producer's pass: now - its lag
        warm_passes = warm_up(reader, pattern, upper_ms)
        timed_scan(reader, pattern, count)  # warms the scroll path too

        # Reads and backfills in turns: each backfill between two reads of each baseline.
        raw_times = [timed_raw_read(reader, pattern, upper_ms, count)]
        scan_times = [timed_scan(reader, pattern, count)]
        docs_times = []
        for round_ in range(rounds):
            settings = fresh_topics(f"docs{round_}")
            stats, seconds = asyncio.run(
                produce(url, settings, pattern, False, checkpoints / f"docs{round_}.json")
            )
            check_backfill(settings, stats, count)
            docs_times.append(seconds)
            raw_times.append(timed_raw_read(reader, pattern, upper_ms, count))
            scan_times.append(timed_scan(reader, pattern, count))
            delete_topics(settings)

        # The first aggregation over fresh indices is the slowest: run once beforehand, as
        # the raw read is warmed up, so that both modes are measured warm.
        hour_ms = int(WINDOW * 1000)
        n_buckets, t_cold = composite_read(reader, pattern, upper_ms // hour_ms * hour_ms)
        agg_times = []
        for round_ in range(rounds):
            settings = fresh_topics(f"agg{round_}")
            agg_stats, seconds = asyncio.run(
                produce(url, settings, pattern, True, checkpoints / f"agg{round_}.json")
            )
            check_aggregate(settings, agg_stats, count)
            require(
                n_buckets == agg_stats.events,
                f"--aggregate sent {agg_stats.events} events for {n_buckets} buckets",
            )
            agg_times.append(seconds)
            delete_topics(settings)
        load_after = os.getloadavg()[0]
    finally:
        with contextlib.suppress(Exception):
            delete_indices(loader, prefix)
        loader.close()
        reader.close()
        for settings in topics:
            delete_topics(settings)
        shutil.rmtree(checkpoints, ignore_errors=True)

    # Each backfill against the mean rate of each baseline's reads just before and after it.
    def against(times: list[float]) -> list[float]:
        return [
            (count / docs_times[r]) / (2 * count / (times[r] + times[r + 1])) for r in range(rounds)
        ]

    ratios = against(scan_times)
    ratio = statistics.median(ratios)
    pit_ratios = against(raw_times)
    raw = count / statistics.median(raw_times)
    scan = count / statistics.median(scan_times)
    t_docs = statistics.median(docs_times)
    t_agg = statistics.median(agg_times)
    verdict = "meets" if ratio >= 0.5 else "MISSES"
    of = f"median of {rounds}"
    print(
        f"raw scroll (helpers.scan)       : {scan:>9,.0f} documents/s  (median of "
        f"{len(scan_times)}: {rates(count, scan_times)})"
    )
    print(
        f"raw PIT read (search_after)     : {raw:>9,.0f} documents/s  (median of {len(raw_times)}"
        f": {rates(count, raw_times)}; after {warm_passes} warm-up reads)"
    )
    print(
        f"backfill (ElasticProducer docs) : {count / t_docs:>9,.0f} documents/s  ({of}: "
        f"{rates(count, docs_times)}; {count:,} events delivered each)"
    )
    print(
        f"backfill / raw scroll           : {ratio:>9.2f}  ({of}: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; {verdict} the 0.5 target)"
    )
    print(
        f"backfill / raw PIT read         : {statistics.median(pit_ratios):>9.2f}  ({of}: "
        f"{', '.join(f'{r:.2f}' for r in pit_ratios)})"
    )
    print(
        f"--aggregate, 1 h windows        : {t_agg:>9.2f} s  ({of}: "
        f"{', '.join(f'{t:.2f}' for t in agg_times)}) for {count:,} documents as "
        f"{n_buckets:,} events ({count / n_buckets:.1f} documents each), "
        f"{count / t_agg:,.0f} documents/s"
    )
    print(f"  its composite aggregation alone, plain client, first (cold): {t_cold:.2f} s")
    print(
        f"backfill time / --aggregate time: {t_docs / t_agg:>9.1f}x  for the same {days} days "
        f"(raw PIT read time / --aggregate time: {count / raw / t_agg:.1f}x)"
    )
    print(f"load average (1 min) at the first read / after the last: {load:.2f} / {load_after:.2f}")


def timed_scan(client: Any, pattern: str, count: int) -> float:
    n, seconds = scan_read(client, pattern)
    require(n == count, f"helpers.scan read {n} of {count} documents")
    return seconds


def timed_raw_read(client: Any, pattern: str, upper_ms: int, count: int) -> float:
    n, seconds = raw_read(client, pattern, upper_ms)
    require(n == count, f"the raw read saw {n} of {count} documents")
    return seconds


def rates(count: int, times: list[float]) -> str:
    return ", ".join(f"{count / t:,.0f}" for t in times)


def check_backfill(settings: Settings, stats: ElasticStats, count: int) -> None:
    """Every document sent once, nothing dead-lettered, and the topic holds exactly that."""
    require(
        stats.events == stats.documents == count and stats.deadletters == 0,
        f"backfill sent {stats.events} events for {stats.documents} documents "
        f"({stats.deadletters} dead-lettered) of {count}",
    )
    in_topic = end_offsets(settings, "events")
    require(
        in_topic == count + stats.heartbeats,
        f"the events topic holds {in_topic} messages, not {count} events + "
        f"{stats.heartbeats} heartbeats",
    )
    dead = end_offsets(settings, "deadletter")
    require(dead == 0, f"the dead-letter topic holds {dead} messages")


def check_aggregate(settings: Settings, stats: ElasticStats, count: int) -> None:
    """The ``n`` read back from the topic add up to the documents; each window once."""
    events, distinct, n_sum = read_counts(settings)
    require(
        n_sum == stats.documents == count and stats.unaggregated == 0,
        f"--aggregate: the n of {events} events add up to {n_sum} "
        f"({stats.unaggregated} not counted) of {count} documents",
    )
    require(
        events == distinct == stats.events,
        f"--aggregate: {events} events in the topic ({distinct} distinct) for {stats.events} sent",
    )


if __name__ == "__main__":
    main()
