"""The Elasticsearch producer's pure parts: field mapping, documents to events, positions,
retries (over plain functions, no cluster) and the checkpoint file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gridalarm.producers.elastic import (
    AggScan,
    Connection,
    ElasticCheckpoint,
    ElasticError,
    FieldMap,
    Position,
    Retrying,
    RetryPolicy,
    convert,
    default_checkpoint_path,
    event_time,
    load_checkpoint,
    load_mapping,
    save_checkpoint,
    window_floor,
)


def hit(source: dict[str, Any], sort_ms: int = 1_700_000_000_000, _id: str = "a") -> dict:
    return {
        "_index": "fifebatch-logs-2023.11.14",
        "_id": _id,
        "_source": source,
        "sort": [sort_ms, 7],
    }


FERMILAB = {
    "@timestamp": "2023-11-14T22:13:20.000Z",
    "EventTime": "2023-11-14T22:13:19",
    "MyType": "JobHeldEvent",
    "Cluster": 123,
    "Proc": "4",
    "Owner": "alice",
    "Jobsub_Group": "nova",
    "MachineAttrGLIDEIN_Site0": "FNAL",
    "pool": "fifebatch",
    "host": "fifebatch1.fnal.gov",
}


def test_a_fermilab_document_becomes_an_event() -> None:
    item = convert(hit(FERMILAB), FieldMap(), "es:test")
    assert item.message == {
        "v": 1,
        "ts": "2023-11-14T22:13:19Z",
        "stream": "schedd:fifebatch1.fnal.gov",
        "type": "JobHeldEvent",
        "source": "es:test",
        "attrs": {
            "eid": "es:fifebatch-logs-2023.11.14/a",
            "job": "123.4",
            "owner": "alice",
            "group": "nova",
            "site": "FNAL",
            "pool": "fifebatch",
        },
    }
    assert item.key == "fifebatch-logs-2023.11.14/a" and item.sort_ms == 1_700_000_000_000


def test_fallback_fields_type_and_timestamp() -> None:
    doc = {"@timestamp": "2023-11-14T22:13:20Z", "TriggerEventTypeName": "ExecuteEvent"}
    doc["host"] = "s1"
    item = convert(hit(doc), FieldMap(), "")
    assert item.message is not None
    assert (item.message["type"], item.message["ts"]) == ("ExecuteEvent", "2023-11-14T22:13:20Z")


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"MyType": None}, "schema", "no event type"),
        ({"MyType": 12}, "schema", "is not a string"),
        ({"host": None, "pool": None}, "schema", "stream field"),
        ({"EventTime": "yesterday"}, "bad_time", "EventTime"),
        ({"EventTime": 5}, "bad_time", "before 1990"),
        ({"Cluster": "abc"}, "schema", "Cluster 'abc'"),
        ({"Proc": 1.5}, "schema", "Proc 1.5"),
        ({"Owner": {"x": 1}}, "schema", "Owner"),
    ],
)
def test_missing_or_ill_typed_fields_say_why(change: dict, reason: str, detail: str) -> None:
    doc = {k: v for k, v in {**FERMILAB, **change}.items() if v is not None}
    item = convert(hit(doc), FieldMap(), "")
    assert item.message is None
    assert item.reason == reason and detail in item.detail
    assert b'"_id":"a"' in item.raw  # the whole document goes to the dead letter


def test_event_time_reads_seconds_milliseconds_and_strings() -> None:
    assert event_time(1_700_000_000) == event_time(1_700_000_000_000) == 1_700_000_000.0
    assert event_time("2023-11-14T22:13:20Z") == 1_700_000_000.0
    with pytest.raises(ValueError):
        event_time(True)


def test_cms_mapping_file() -> None:
    cms = load_mapping("cms")
    doc = {"Status": "Completed", "RecordTime": 1_700_000_000, "ScheddName": "crab3@vocms0199"}
    doc["Site"] = "T2_US_MIT"
    item = convert(hit(doc), cms, "")
    assert item.message is not None
    assert item.message["stream"] == "schedd:crab3@vocms0199"
    assert item.message["type"] == "Completed" and item.message["attrs"]["site"] == "T2_US_MIT"
    assert cms.sort_field == "RecordTime" and cms.agg_types == ("Status",)


def test_shipped_fermilab_file_is_the_default() -> None:
    assert load_mapping("fermilab") == FieldMap()
    path = Path(__file__).resolve().parents[3] / "producers" / "mappings" / "fermilab.json"
    assert load_mapping(path) == FieldMap()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"type": "A"}', "'time'"),
        ('{"type": [], "time": "T"}', "'type' must be"),
        ('{"type": "A", "time": "T", "colour": 1}', "unknown key(s) colour"),
        ("{", "not JSON"),
    ],
)
def test_bad_mapping_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ElasticError, match="mapping") as err:
        load_mapping(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ElasticError, match="cannot read"):
        load_mapping(tmp_path / "missing.json")


def test_position_skips_what_was_delivered_at_its_time() -> None:
    fm = FieldMap()
    first, tie, later = (
        convert(hit(FERMILAB, 1000, "a"), fm, ""),
        convert(hit(FERMILAB, 1000, "b"), fm, ""),
        convert(hit(FERMILAB, 1001, "c"), fm, ""),
    )
    position = Position()
    assert not position.passed(first)
    position.advance(first)
    assert position.passed(first) and not position.passed(tie)
    position.advance(tie)
    assert position.seen == {first.key, tie.key}
    position.advance(later)
    assert position.ts_ms == 1001 and position.seen == {later.key}
    assert position.passed(first) and position.passed(tie)


def test_aggregate_buckets_take_the_first_type_field_present() -> None:
    scan = AggScan(None, "x", FieldMap(), 3600, None)  # type: ignore[arg-type]
    bucket = {"key": {"w": 3_600_000, "s": "s1", "t0": None, "t1": "JobHeldEvent"}, "doc_count": 9}
    message = scan.message(bucket, "es:x")
    assert message is not None
    assert (message["type"], message["n"], message["ts"]) == (
        "JobHeldEvent",
        9,
        "1970-01-01T01:00:00Z",
    )
    assert message["attrs"]["eid"] == "agg:3600000:schedd:s1:None:JobHeldEvent"
    assert scan.message({"key": {**bucket["key"], "t1": None}, "doc_count": 1}, "") is None
    assert scan.message({"key": {**bucket["key"], "s": None}, "doc_count": 1}, "") is None
    assert window_floor(3_600_000 * 5 + 17, 3600) == 3_600_000 * 5


class Flaky:
    """Fails with ``error`` ``times`` times, then answers ``body``."""

    def __init__(self, error: BaseException, times: int, body: dict | None = None) -> None:
        self.error, self.times, self.calls = error, times, 0
        self.body = body or {"ok": True}

    def __call__(self, **kwargs: Any) -> dict:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return self.body


def connection_error() -> BaseException:
    from elastic_transport import ConnectionError as TransportConnectionError

    return TransportConnectionError("Connection refused")


def api_error(status: int, text: str = "boom") -> BaseException:
    from elastic_transport import ApiResponseMeta, HttpHeaders
    from elasticsearch import ApiError

    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, None)  # type: ignore[arg-type]
    return ApiError(text, meta, {"error": {"type": text}})


def retrying(give_up: float | None = 5.0) -> tuple[Retrying, list[str]]:
    warnings: list[str] = []
    call = Retrying(
        None,
        "http://es:9200",
        RetryPolicy(first=0.001, most=0.002, give_up=give_up),
        warnings.append,
    )
    return call, warnings


def test_retries_until_the_cluster_answers_and_says_so_once() -> None:
    call, warnings = retrying()
    fn = Flaky(connection_error(), 3)
    assert call("search", fn) == {"ok": True}
    assert fn.calls == 4 and call.retries == 3
    assert len(warnings) == 2 and "retrying" in warnings[0] and "answers again" in warnings[1]


def test_an_outage_is_kept_from_the_first_failure_to_the_answer() -> None:
    call, _ = retrying()
    before = time.time()
    call("search", Flaky(connection_error(), 3))
    assert len(call.outages) == 1
    outage = call.outages[0]
    assert before <= outage.began <= outage.answered <= time.time()
    call("search", Flaky(connection_error(), 0))  # answered at once: no outage
    assert len(call.outages) == 1


def test_a_follower_reads_no_further_than_before_an_outage_until_a_lag_after_it() -> None:
    import doctest

    from gridalarm.producers import elastic_producer
    from gridalarm.producers.elastic import Outage
    from gridalarm.producers.elastic_producer import follow_upper

    lag, outage = 60.0, Outage(began=1000.0, answered=1090.0)
    assert follow_upper(990.0, lag, [outage]) == 930.0  # before: the plain rule
    # From the answer until a lag after it: held at the last end that was safe before it.
    assert follow_upper(1091.0, lag, [outage]) == 940.0
    assert follow_upper(1149.9, lag, [outage]) == 940.0
    assert follow_upper(1150.0, lag, [outage]) == 1090.0  # documents of the outage had a lag
    # Two outages: the earliest beginning still held wins.
    later = Outage(began=1100.0, answered=1120.0)
    assert follow_upper(1130.0, lag, [outage, later]) == 940.0
    assert follow_upper(1160.0, lag, [outage, later]) == 1040.0
    assert doctest.testmod(elastic_producer)[:2] == (0, 3)


def test_partial_results_and_503_are_retried() -> None:
    call, _ = retrying()
    partial = Flaky(connection_error(), 0, {"_shards": {"failed": 1}})
    with pytest.raises(ElasticError, match="1 shard"):
        Retrying(None, "u", RetryPolicy(first=0.001, give_up=0.01), lambda m: None)("s", partial)
    fn = Flaky(api_error(503), 2)
    assert call("search", fn) == {"ok": True}


def test_gives_up_with_one_line_and_client_errors_are_not_retried() -> None:
    call, _ = retrying(give_up=0.01)
    with pytest.raises(ElasticError, match=r"^cannot reach Elasticsearch at http://es:9200"):
        call("connect", Flaky(connection_error(), 10**6))
    fn = Flaky(api_error(400, "parsing_exception"), 10)
    with pytest.raises(ElasticError, match="400"):
        call("search", fn)
    assert fn.calls == 1


def test_a_lost_point_in_time_is_its_own_error() -> None:
    from gridalarm.producers.elastic import PitLost

    call, _ = retrying()
    with pytest.raises(PitLost):
        call("search", Flaky(api_error(404, "search_context_missing_exception"), 1))


def test_a_stopped_producer_ends_the_retries() -> None:
    call, _ = retrying(give_up=None)
    call.stopping.set()
    with pytest.raises(ElasticError, match="stopped"):
        call("search", Flaky(connection_error(), 10**6))


def test_connection_options() -> None:
    with pytest.raises(ElasticError, match="not both"):
        Connection(("http://x",), api_key="k", username="u", password="p")
    with pytest.raises(ElasticError, match="needs a password"):
        Connection(("http://x",), username="u")
    with pytest.raises(ElasticError, match="--url"):
        Connection(())
    client = Connection(
        ("https://x:9200",), username="u", password="p", verify_certs=False
    ).client()
    client.close()


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    path = default_checkpoint_path(tmp_path, "t.events", ("http://x",), "idx-*", FieldMap(), "docs")
    assert path.parent == tmp_path / "elastic"
    assert load_checkpoint(path, "t.events", "docs") is None
    saved = ElasticCheckpoint(
        topic="t.events",
        mode="docs",
        ts_ms=5,
        seen=("i/a", "i/b"),
        kafka_ends={0: 3, 1: 9},
        saved_at=1.0,
    )
    save_checkpoint(path, saved)
    assert load_checkpoint(path, "t.events", "docs") == saved
    with pytest.raises(ElasticError, match="use another --checkpoint"):
        load_checkpoint(path, "t.events", "aggregate")
    path.write_text("{")
    with pytest.raises(ElasticError, match="damaged"):
        load_checkpoint(path, "t.events", "docs")
    other = default_checkpoint_path(
        tmp_path, "t.events", ("http://x",), "idx-*", FieldMap(), "aggregate"
    )
    assert other != path


def test_pages_default_by_mode_and_are_bounded() -> None:
    from gridalarm.config import Settings
    from gridalarm.producers.elastic_producer import AGG_PAGE, DOC_PAGE, ElasticConfig

    base = {"settings": Settings(), "index": "x-*", "fields": FieldMap(), "source": "es:x"}
    assert ElasticConfig(**base).page == DOC_PAGE == 1000
    assert ElasticConfig(**base, aggregate=True).page == AGG_PAGE == 10_000
    assert ElasticConfig(**base, page_size=7).page == 7
    assert ElasticConfig(**base, aggregate=True, page_size=50_000).page == 50_000
    with pytest.raises(ElasticError, match="--page-size"):
        ElasticConfig(**base, page_size=20_000)  # documents: Elasticsearch's max is 10,000


def test_utc_stamps_pass_through_and_others_are_normalised() -> None:
    hit = {
        "_index": "fifebatch-logs-2017.03.01",
        "_id": "1",
        "sort": [1488326405000],
        "_source": {"MyType": "ExecuteEvent", "host": "fifebatch1", "EventTime": ""},
    }
    for stamp, sent in (
        ("2017-03-01T00:00:05.250Z", "2017-03-01T00:00:05.250Z"),
        ("2017-03-01T01:00:05+01:00", "2017-03-01T00:00:05Z"),
        (1488326405000, "2017-03-01T00:00:05Z"),
    ):
        hit["_source"]["@timestamp"] = stamp
        converted = convert(hit, FieldMap(), "es:x")
        assert converted.message is not None and converted.message["ts"] == sent
        assert converted.ts == pytest.approx(1488326405.25 if ".250" in sent else 1488326405.0)
