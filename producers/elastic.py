"""Elasticsearch producer, reading side: field mapping, query pages, retries, checkpoint state.

Pure of Kafka. :class:`FieldMap` says where a document keeps its event type, time, stream and
job attributes (the Fermilab ``fifebatch-logs-*`` layout by default, a JSON mapping file for any
other schema); :func:`convert` turns one hit into an event message or a dead-letter reason.
:class:`DocScan` pages through a time range with a point-in-time and ``search_after`` sorted
by time then ``_shard_doc``; :class:`AggScan` pages a composite aggregation (date histogram,
then terms on stream and type) for pre-counted events.

Why the position is not the sort values alone: ``_shard_doc`` belongs to one point-in-time,
and a restarted producer (or one whose PIT died with the node) has a new one. So the position
that survives is the time of the last delivered document plus the ids of every delivered
document *at that time*: the next query starts at that time (inclusive) and skips those ids,
whatever PIT it runs in. Ties in one millisecond are few, so the set stays small.

The sync client runs in a worker thread (``asyncio.to_thread`` in the producer): the sink's
linger and heartbeat tasks must keep running while a page is fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gridalarm.messages import MIN_EVENT_TIME, VERSION, event_message
from gridalarm.producers.checkpoint import write_atomically
from gridalarm.timeutil import parse_time

CHECKPOINT_VERSION = 1
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
PAGE_SIZE = 1000
PIT_KEEP_ALIVE = "5m"
# Statuses worth a retry: throttled, or the node/shards not (yet) there.
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

Warn = Callable[[str], None]


class ElasticError(RuntimeError):
    """Elasticsearch cannot be read, or a mapping/checkpoint is wrong; the message is one line."""


class PitLost(ElasticError):
    """The point-in-time expired or died with its node; open a new one and go on."""


# -- where the fields are ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which document fields make an event. The first field present of each list wins."""

    name: str = "fermilab"
    type_fields: tuple[str, ...] = ("MyType", "TriggerEventTypeName")
    time_fields: tuple[str, ...] = ("EventTime", "@timestamp")
    sort_field: str = "@timestamp"  # a date field every document has: the paging order
    stream_prefix: str = "schedd"
    stream_fields: tuple[str, ...] = ("host", "pool")
    # attrs name -> document field, copied into the message's attrs when present.
    attrs: Mapping[str, str] = field(
        default_factory=lambda: {
            "owner": "Owner",
            "group": "Jobsub_Group",
            "site": "MachineAttrGLIDEIN_Site0",
            "pool": "pool",
        }
    )
    cluster_field: str | None = "Cluster"
    proc_field: str | None = "Proc"
    type_values: Mapping[str, str] = field(default_factory=dict)  # e.g. a status code -> name
    # Keyword fields for --aggregate's terms (default: the first stream and type field).
    agg_stream_field: str | None = None
    agg_type_field: str | None = None

    @property
    def agg_stream(self) -> str:
        return self.agg_stream_field or self.stream_fields[0]

    @property
    def agg_types(self) -> tuple[str, ...]:
        """Keyword fields for the type, first present wins (as for documents)."""
        return (self.agg_type_field,) if self.agg_type_field else self.type_fields

    def digest(self) -> str:
        """Identifies the mapping in checkpoint names: another mapping, another checkpoint."""
        text = orjson.dumps(_mapping_json(self), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(text).hexdigest()[:12]


def _mapping_json(fm: FieldMap) -> dict[str, Any]:
    return {
        "name": fm.name,
        "type": list(fm.type_fields),
        "time": list(fm.time_fields),
        "sort": fm.sort_field,
        "stream": {"prefix": fm.stream_prefix, "fields": list(fm.stream_fields)},
        "attrs": dict(fm.attrs),
        "cluster": fm.cluster_field,
        "proc": fm.proc_field,
        "type_values": dict(fm.type_values),
        "aggregate": {"stream": fm.agg_stream_field, "type": fm.agg_type_field},
    }


def load_mapping(name_or_path: str | Path | None) -> FieldMap:
    """The default map (None or ``fermilab``), a shipped one by name (``cms``), or a file."""
    if name_or_path is None or str(name_or_path) == "fermilab":
        return FieldMap()
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = MAPPINGS_DIR / f"{name_or_path}.json"
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as err:
        raise ElasticError(f"mapping {path}: cannot read ({err.strerror or err})") from None
    except orjson.JSONDecodeError as err:
        raise ElasticError(f"mapping {path}: not JSON ({err})") from None
    try:
        return _mapping_from(data, path.stem)
    except (KeyError, TypeError, ValueError) as err:
        raise ElasticError(f"mapping {path}: {err}") from None


def _names(value: Any, what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what!r} must be a field name or a non-empty list of them")
    return names


def _mapping_from(data: Any, default_name: str) -> FieldMap:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    known = {"name", "type", "time", "sort", "stream", "attrs", "cluster", "proc"}
    known |= {"type_values", "aggregate", "description"}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    times = _names(data["time"], "time")
    stream = data.get("stream") or {}
    aggregate = data.get("aggregate") or {}
    attrs = data.get("attrs") or {}
    if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
        raise ValueError("'attrs' must map attribute names to field names")
    return FieldMap(
        name=str(data.get("name") or default_name),
        type_fields=_names(data["type"], "type"),
        time_fields=times,
        sort_field=str(data.get("sort") or times[0]),
        stream_prefix=str(stream.get("prefix", "schedd")),
        stream_fields=_names(stream.get("fields", ["host"]), "stream.fields"),
        attrs={str(k): v for k, v in attrs.items()},
        cluster_field=data.get("cluster"),
        proc_field=data.get("proc"),
        type_values={str(k): str(v) for k, v in (data.get("type_values") or {}).items()},
        agg_stream_field=aggregate.get("stream"),
        agg_type_field=aggregate.get("type"),
    )


# -- one document -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Converted:
    """A hit made into an event message, or (``message`` None) the reason it cannot be one."""

    key: str  # index/_id: identifies the document for good
    sort_ms: int  # its time in the paging order (epoch ms)
    message: dict[str, Any] | None = None
    ts: float | None = None
    reason: str = ""
    detail: str = ""
    stream: str | None = None
    raw: bytes = b""


def _first(source: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    for name in names:
        value = _get(source, name)
        if value is not None and value != "":
            return name, value
    return None


def _get(source: Mapping[str, Any], name: str) -> Any:
    """A field by name, also a dotted one in nested objects (``host.name``)."""
    if name in source:
        return source[name]
    value: Any = source
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def event_time(value: Any) -> float:
    """Epoch seconds from an RFC 3339 string or epoch s/ms number; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    ts = parse_time(value)
    if ts > 1e11:  # epoch milliseconds (a seconds value that large is year 5138)
        ts /= 1000.0
    if not math.isfinite(ts) or ts < MIN_EVENT_TIME:
        raise ValueError(f"{value!r} is before 1990-01-01 or not a number")
    return ts


def _job_number(value: Any, name: str) -> int:
    if type(value) is int:  # the usual case, first: this runs twice per document
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a job number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{name} {value!r} is not a job number")
    return value


# An RFC 3339 UTC stamp as Logstash writes it: sent on as it is (formatting the parsed time
# again costs as much as parsing it).
_ATTR_TYPES = (str, int, float)  # exact types, checked first (bool is a subclass of int)
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


def convert(hit: Mapping[str, Any], fm: FieldMap, source: str) -> Converted:
    """One search hit as an event message (or why not: ``schema`` / ``bad_time``).

    The producer's per-document hot path: keep it free of closures and exceptions.
    """
    doc = hit.get("_source") or {}
    key = f"{hit['_index']}/{hit['_id']}"
    sort_ms = int(hit["sort"][0])
    found_stream = _first(doc, fm.stream_fields)
    stream = None
    if found_stream is not None and isinstance(found_stream[1], str | int):
        stream = (
            f"{fm.stream_prefix}:{found_stream[1]}" if fm.stream_prefix else str(found_stream[1])
        )
    kind = _first(doc, fm.type_fields)
    if kind is None:
        return _bad(hit, doc, key, sort_ms, stream, "schema",
                    f"no event type ({' or '.join(fm.type_fields)})")  # fmt: skip
    type_name = fm.type_values.get(str(kind[1]), kind[1])
    if not isinstance(type_name, str):
        return _bad(hit, doc, key, sort_ms, stream, "schema",
                    f"{kind[0]} {kind[1]!r} is not a string")  # fmt: skip
    if stream is None:
        what = "is not a string" if found_stream else "missing"
        return _bad(hit, doc, key, sort_ms, stream, "schema",
                    f"stream field ({' or '.join(fm.stream_fields)}) {what}")  # fmt: skip
    stamp = _first(doc, fm.time_fields)
    if stamp is None:
        return _bad(hit, doc, key, sort_ms, stream, "bad_time",
                    f"no time ({' or '.join(fm.time_fields)})")  # fmt: skip
    try:
        ts = event_time(stamp[1])
    except (ValueError, TypeError, OverflowError) as err:
        return _bad(hit, doc, key, sort_ms, stream, "bad_time", f"{stamp[0]}: {err}")
    attrs: dict[str, Any] = {"eid": f"es:{key}"}
    try:
        if fm.cluster_field and (cluster := _get(doc, fm.cluster_field)) is not None:
            job = str(_job_number(cluster, fm.cluster_field))
            if fm.proc_field and (proc := _get(doc, fm.proc_field)) is not None:
                job += f".{_job_number(proc, fm.proc_field)}"
            attrs["job"] = job
    except ValueError as err:
        return _bad(hit, doc, key, sort_ms, stream, "schema", str(err))
    for name, doc_field in fm.attrs.items():
        value = _get(doc, doc_field)
        if type(value) in _ATTR_TYPES or (
            isinstance(value, str | int | float) and not isinstance(value, bool)
        ):
            attrs[name] = value
        elif value is not None:
            return _bad(hit, doc, key, sort_ms, stream, "schema",
                        f"{doc_field} {value!r} is not a string or number")  # fmt: skip
    text = stamp[1]
    if isinstance(text, str) and _UTC_STAMP.fullmatch(text):
        message = {"v": VERSION, "ts": text, "stream": stream, "type": type_name}
        if source:
            message["source"] = source
        message["attrs"] = attrs
    else:
        message = event_message(ts, stream, type_name, source=source, **attrs)
    return Converted(key, sort_ms, message=message, ts=ts)


def _bad(
    hit: Mapping[str, Any],
    doc: Mapping[str, Any],
    key: str,
    sort_ms: int,
    stream: str | None,
    reason: str,
    detail: str,
) -> Converted:
    """A hit that makes no event: the whole document goes to the dead letter."""
    raw = orjson.dumps({"_index": hit["_index"], "_id": hit["_id"], "_source": doc})
    return Converted(key, sort_ms, reason=reason, detail=detail, stream=stream, raw=raw)


# -- the client, with retries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the cluster: URL(s), and API key or basic auth, and TLS."""

    urls: tuple[str, ...]
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    client_cert: Path | None = None
    client_key: Path | None = None
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ElasticError("--url: give the Elasticsearch URL, e.g. http://localhost:9200")
        if self.api_key and self.username:
            raise ElasticError("use --api-key or --user, not both")
        if self.username and self.password is None:
            raise ElasticError("--user needs a password (--password or GRIDALARM_ES_PASSWORD)")

    def client(self) -> Any:
        """An official client with no retries of its own: :class:`Retrying` does them."""
        from elasticsearch import Elasticsearch
        from elasticsearch.serializer import OrjsonSerializer

        options: dict[str, Any] = {
            # orjson decodes a page of hits about twice as fast as the standard library.
            "serializer": OrjsonSerializer(),
            "request_timeout": self.request_timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        if self.username:
            options["basic_auth"] = (self.username, self.password or "")
        if self.ca_certs is not None:
            options["ca_certs"] = str(self.ca_certs)
        if not self.verify_certs:
            options["verify_certs"] = False
            options["ssl_show_warn"] = False
        if self.client_cert is not None:
            options["client_cert"] = str(self.client_cert)
        if self.client_key is not None:
            options["client_key"] = str(self.client_key)
        try:
            return Elasticsearch(list(self.urls), **options)
        except (ValueError, TypeError) as err:
            raise ElasticError(f"--url {','.join(self.urls)}: {err}") from None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Back off from ``first`` to ``most`` seconds; give up after ``give_up`` (None: never)."""

    first: float = 0.5
    most: float = 15.0
    give_up: float | None = 300.0


@dataclass(frozen=True, slots=True)
class Outage:
    """A time the cluster did not answer: wall-clock seconds of the first failed call and of
    the answer that ended it."""

    began: float
    answered: float


class Retrying:
    """Calls the client, waiting out an unreachable or recovering cluster with backoff.

    Retried: no connection, timeouts, 429 and 5xx, and responses where a shard failed (a
    node that just came back serves partial results, which would skip documents). A dead
    point-in-time raises :class:`PitLost` at once; other errors are one-line
    :class:`ElasticError` s. Each wait that ended in an answer is kept in :attr:`outages`.
    """

    def __init__(self, client: Any, where: str, policy: RetryPolicy, warn: Warn) -> None:
        self.client = client
        self.where = where
        self.policy = policy
        self.warn = warn
        self.retries = 0
        # The follower holds its pass ends after each (see elastic_producer.follow_upper); it
        # drops those it no longer needs.
        self.outages: list[Outage] = []
        # Set by the producer when it is stopped: a retry loop in its worker thread cannot be
        # cancelled, so it waits on this instead of sleeping, and gives up when it is set.
        self.stopping = threading.Event()

    def __call__(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout
        from elasticsearch import ApiError

        started = time.monotonic()
        delay = self.policy.first
        warned = False
        began = 0.0
        while True:
            try:
                response = fn(**kwargs)
                body = response.body if hasattr(response, "body") else response
                failed = (
                    (body.get("_shards") or {}).get("failed", 0) if isinstance(body, dict) else 0
                )
                if failed:
                    raise _Retry(f"{failed} shard(s) failed")
                if warned:
                    self.outages.append(Outage(began, time.time()))
                    self.warn(f"Elasticsearch at {self.where} answers again")
                return body
            except (TransportConnectionError, ConnectionTimeout, _Retry) as err:
                why = _short(err)
            except ApiError as err:
                if _pit_missing(err):
                    raise PitLost(f"{what}: point-in-time gone ({_short(err)})") from None
                if err.meta.status not in _RETRY_STATUS:
                    raise ElasticError(
                        f"{what} at {self.where}: {err.meta.status} {_short(err)}"
                    ) from None
                why = f"{err.meta.status} {_short(err)}"
            waited = time.monotonic() - started
            if self.policy.give_up is not None and waited + delay > self.policy.give_up:
                raise ElasticError(
                    f"cannot reach Elasticsearch at {self.where} ({what}): {why}"
                ) from None
            if not warned:
                self.warn(f"Elasticsearch at {self.where}: {what}: {why}; retrying")
                warned, began = True, time.time()
            self.retries += 1
            if self.stopping.wait(delay):
                raise ElasticError(f"stopped while waiting for Elasticsearch at {self.where}")
            delay = min(delay * 2, self.policy.most)


class _Retry(Exception):
    """A response that is an answer, but not a whole one."""


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _pit_missing(err: Any) -> bool:
    text = str(err)
    return err.meta.status == 404 and (
        "search_context_missing" in text or "No search context" in text or "point in time" in text
    )


def quiet_transport_log() -> None:
    """The transport logs a warning per failed request; :class:`Retrying` says it once."""
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    logging.getLogger("elasticsearch").setLevel(logging.ERROR)


# -- positions --------------------------------------------------------------------------------


@dataclass(slots=True)
class Position:
    """How far documents are delivered: a time (epoch ms) and the keys delivered at it."""

    ts_ms: int | None = None
    seen: set[str] = field(default_factory=set)

    def passed(self, item: Converted) -> bool:
        """Whether ``item`` is at or behind the position (delivered already)."""
        if self.ts_ms is None:
            return False
        return item.sort_ms < self.ts_ms or (item.sort_ms == self.ts_ms and item.key in self.seen)

    def advance(self, item: Converted) -> None:
        if item.sort_ms == self.ts_ms:
            self.seen.add(item.key)
        else:
            self.ts_ms = item.sort_ms
            self.seen = {item.key}


@dataclass(slots=True)
class AggPosition:
    """How far pre-counted windows are delivered: windows before ``from_ms`` all, and in the
    current round the composite buckets up to ``after`` (None: none yet)."""

    from_ms: int | None = None
    after: dict[str, Any] | None = None


# -- the scans ----------------------------------------------------------------------------------


def sort_clause(fm: FieldMap) -> list[dict[str, Any]]:
    """Time order, then the PIT's own tiebreaker; an index without the field sorts as empty."""
    return [
        {fm.sort_field: {"order": "asc", "unmapped_type": "date", "numeric_type": "date"}},
        {"_shard_doc": "asc"},
    ]


def range_query(fm: FieldMap, lower_ms: int | None, upper_ms: int | None) -> dict[str, Any]:
    bounds: dict[str, Any] = {"format": "epoch_millis"}
    if lower_ms is not None:
        bounds["gte"] = lower_ms
    if upper_ms is not None:
        bounds["lt"] = upper_ms
    return {"range": {fm.sort_field: bounds}}


class DocScan:
    """One pass over ``[position, upper)`` of the index pattern in time order.

    A point-in-time keeps the pages consistent while documents are indexed; when it is lost
    (expired, or its node restarted), a new one starts from the delivered position.
    """

    def __init__(
        self,
        call: Retrying,
        index: str,
        fm: FieldMap,
        upper_ms: int | None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.call = call
        self.index = index
        self.fm = fm
        self.upper_ms = upper_ms
        self.page_size = page_size
        self.pit: str | None = None
        self.after: list[Any] | None = None
        self.lower_ms: int | None = None
        self.pits = 0

    def next_page(self, position: Position, since_ms: int | None) -> list[dict[str, Any]]:
        """The next hits (empty at the end of the pass). ``position`` is what was delivered."""
        client = self.call.client
        while True:
            if self.pit is None:
                body = self.call(
                    "open point-in-time",
                    client.open_point_in_time,
                    index=self.index,
                    keep_alive=PIT_KEEP_ALIVE,
                    ignore_unavailable=True,
                )
                self.pit, self.after, self.pits = body["id"], None, self.pits + 1
                lower = position.ts_ms if position.ts_ms is not None else since_ms
                if since_ms is not None and lower is not None:
                    lower = max(lower, since_ms)
                self.lower_ms = lower
            try:
                body = self.call(
                    "search",
                    client.search,
                    pit={"id": self.pit, "keep_alive": PIT_KEEP_ALIVE},
                    size=self.page_size,
                    sort=sort_clause(self.fm),
                    query=range_query(self.fm, self.lower_ms, self.upper_ms),
                    search_after=self.after,
                    track_total_hits=False,
                    allow_partial_search_results=False,
                )
            except PitLost:
                self.pit = None
                continue
            self.pit = body.get("pit_id", self.pit)
            hits = body["hits"]["hits"]
            if hits:
                self.after = hits[-1]["sort"]
            return hits

    def close(self) -> None:
        if self.pit is None:
            return
        pit, self.pit = self.pit, None
        with contextlib.suppress(Exception):
            self.call.client.close_point_in_time(id=pit)


class AggScan:
    """Counts per window, stream and type over ``[from, upper)``: a composite aggregation
    (date histogram, then terms) paged by its ``after_key``, in window order."""

    def __init__(
        self,
        call: Retrying,
        index: str,
        fm: FieldMap,
        window: float,
        upper_ms: int | None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.call = call
        self.index = index
        self.fm = fm
        self.window_ms = int(window * 1000)
        self.upper_ms = upper_ms
        self.page_size = page_size

    def next_page(
        self, position: AggPosition
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The next buckets and the after key that follows them (empty list at the end)."""
        fm = self.fm
        composite: dict[str, Any] = {
            "size": self.page_size,
            "sources": [
                {
                    "w": {
                        "date_histogram": {
                            "field": fm.sort_field,
                            "fixed_interval": f"{self.window_ms}ms",
                        }
                    }
                },
                {"s": {"terms": {"field": fm.agg_stream, "missing_bucket": True}}},
                # One source per type field: a document's type is the first one it has.
                *(
                    {f"t{i}": {"terms": {"field": name, "missing_bucket": True}}}
                    for i, name in enumerate(fm.agg_types)
                ),
            ],
        }
        if position.after is not None:
            composite["after"] = position.after
        body = self.call(
            "aggregate",
            self.call.client.search,
            index=self.index,
            size=0,
            query=range_query(fm, position.from_ms, self.upper_ms),
            aggs={"counts": {"composite": composite}},
            track_total_hits=False,
            allow_partial_search_results=False,
            ignore_unavailable=True,
        )
        result = (body.get("aggregations") or {}).get("counts") or {}
        buckets = result.get("buckets") or []
        return buckets, result.get("after_key") if buckets else None

    def message(self, bucket: Mapping[str, Any], source: str) -> dict[str, Any] | None:
        """A pre-counted event: ``n`` documents of one type, stream and window; None for
        documents without a stream or type (they are counted, not sent)."""
        key = bucket["key"]
        types = [key.get(f"t{i}") for i in range(len(self.fm.agg_types))]
        found = next((t for t in types if t is not None and t != ""), None)
        if found is None or key.get("s") in (None, ""):
            return None
        kind = self.fm.type_values.get(str(found), str(found))
        prefix = self.fm.stream_prefix
        stream = f"{prefix}:{key['s']}" if prefix else str(key["s"])
        start = int(key["w"])
        # Every source value is in the id: two buckets that make the same type stay apart.
        eid = "agg:" + ":".join(str(v) for v in (start, stream, *types))
        return event_message(
            start / 1000.0, stream, kind, n=int(bucket["doc_count"]), source=source, eid=eid
        )


def window_floor(ms: int, window: float) -> int:
    """The start (epoch ms) of the window holding ``ms``."""
    size = int(window * 1000)
    return ms // size * size


# -- checkpoint ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElasticCheckpoint:
    """What a restarted producer needs: the delivered position and the topic's end offsets
    right after the flush that made it (events past them were sent after it)."""

    topic: str
    mode: str  # "docs" or "aggregate"
    ts_ms: int | None = None
    seen: tuple[str, ...] = ()
    agg_from: int | None = None
    agg_after: dict[str, Any] | None = None
    kafka_ends: dict[int, int] | None = None
    saved_at: float = 0.0


def default_checkpoint_path(
    state_dir: Path, topic: str, urls: tuple[str, ...], index: str, fm: FieldMap, mode: str
) -> Path:
    """``<state_dir>/elastic/<topic>-<digest>.json``: one per topic, cluster, pattern, mode."""
    text = "\n".join([topic, ",".join(urls), index, fm.digest(), mode])
    return state_dir / "elastic" / f"{topic}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"


def load_checkpoint(path: Path, topic: str, mode: str) -> ElasticCheckpoint | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ElasticError(f"checkpoint {path}: cannot read ({err.strerror or err})") from None
    try:
        data = orjson.loads(raw)
        if data.get("v") != CHECKPOINT_VERSION:
            raise ValueError("not a version 1 checkpoint")
        ends = data.get("kafka_ends")
        checkpoint = ElasticCheckpoint(
            topic=str(data["topic"]),
            mode=str(data["mode"]),
            ts_ms=None if data.get("ts_ms") is None else int(data["ts_ms"]),
            seen=tuple(str(k) for k in data.get("seen", [])),
            agg_from=None if data.get("agg_from") is None else int(data["agg_from"]),
            agg_after=data.get("agg_after"),
            kafka_ends=None if ends is None else {int(p): int(o) for p, o in ends.items()},
            saved_at=float(data.get("saved_at", 0.0)),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ElasticError(
            f"checkpoint {path} is damaged ({err}); move it away to start afresh"
        ) from None
    if (checkpoint.topic, checkpoint.mode) != (topic, mode):
        raise ElasticError(
            f"checkpoint {path} is for {checkpoint.topic!r} ({checkpoint.mode}), not {topic!r} "
            f"({mode}); use another --checkpoint"
        )
    return checkpoint


def save_checkpoint(path: Path, checkpoint: ElasticCheckpoint) -> None:
    """Replace the checkpoint atomically (see :func:`checkpoint.write_atomically`)."""
    data = orjson.dumps(
        {
            "v": CHECKPOINT_VERSION,
            "topic": checkpoint.topic,
            "mode": checkpoint.mode,
            "ts_ms": checkpoint.ts_ms,
            "seen": sorted(checkpoint.seen),
            "agg_from": checkpoint.agg_from,
            "agg_after": checkpoint.agg_after,
            "kafka_ends": None
            if checkpoint.kafka_ends is None
            else {str(p): o for p, o in sorted(checkpoint.kafka_ends.items())},
            "saved_at": checkpoint.saved_at or time.time(),
        },
        option=orjson.OPT_INDENT_2,
    )
    try:
        write_atomically(path, data)
    except OSError as err:
        raise ElasticError(f"checkpoint {path}: cannot write ({err.strerror or err})") from None


__all__ = [
    "AggPosition",
    "AggScan",
    "Connection",
    "Converted",
    "DocScan",
    "ElasticCheckpoint",
    "ElasticError",
    "FieldMap",
    "PitLost",
    "Position",
    "RetryPolicy",
    "Retrying",
    "convert",
    "default_checkpoint_path",
    "event_time",
    "load_checkpoint",
    "load_mapping",
    "quiet_transport_log",
    "save_checkpoint",
    "window_floor",
]
