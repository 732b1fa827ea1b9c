"""Helpers for the pipeline tests: run real worker processes and read whole topics back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from gridalarm.config import Settings
from gridalarm.topics import ensure_topics

REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_group(settings: Settings) -> str:
    """The consumer group (and worker id) of the workers these helpers start for ``settings``."""
    return f"{settings.topic_prefix}-worker"


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {
        **os.environ,
        "GRIDALARM_KAFKA": str(settings.kafka),
        "GRIDALARM_TOPIC_PREFIX": settings.topic_prefix,
        "GRIDALARM_PARTITIONS": str(settings.partitions),
        # The worker's changelog topics get it (a cluster's tests ask for 3).
        "GRIDALARM_REPLICATION": str(settings.replication),
        "GRIDALARM_WINDOW": str(settings.window),
        "GRIDALARM_LATENESS": str(settings.lateness),
        "GRIDALARM_STATE_DIR": str(settings.state_dir),
        "GRIDALARM_WORKER_ID": worker_group(settings),
    }
    env.update(extra)
    return env


def gridalarm(settings: Settings, *args: str, timeout: float = 600, **env: str) -> str:
    """Run a gridalarm command to completion; return its stdout, fail loudly on error."""
    done = subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        env=settings_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, f"gridalarm {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@contextmanager
def worker_process(
    settings: Settings, log: Path, *args: str, **env: str
) -> Iterator[subprocess.Popen]:
    """A `gridalarm worker` child process (``args`` added to its command line); stopped with
    SIGTERM (then SIGKILL) on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "worker", "--loglevel", "info", *args],
            env=settings_env(settings, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    proc.gridalarm_log = log  # type: ignore[attr-defined]  # for wait_for_worker's failure text
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """TERM, wait, KILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def end_offsets(settings: Settings, kind: str) -> int:
    """Total messages in a topic (sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka)
    try:
        tps = [TopicPartition(settings.topic(kind), p) for p in range(settings.partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group: str) -> list[tuple[int | None, int]]:
    """Per events partition: the group's committed offset (None before its first commit) and
    the end offset."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(settings.topic("events"), p) for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
        return [(consumer.committed(tp), ends[tp]) for tp in tps]
    finally:
        consumer.close()


def commit_offsets(settings: Settings, group: str, offsets: dict[int, int]) -> None:
    """Set ``group``'s committed offsets of the events partitions, as an outside client; the
    broker takes that only from a group with no live member, so this retries for a minute."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False
    )
    topic = settings.topic("events")
    commits = {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
    try:
        consumer.assign(list(commits))
        deadline = time.monotonic() + 60
        while True:
            try:
                consumer.commit(commits)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        consumer.close()


def committed(settings: Settings, group: str) -> int:
    """Events the worker group has committed, summed over partitions."""
    return sum(offset or 0 for offset, _ in committed_offsets(settings, group))


def wait_until(predicate: Any, timeout: float, what: str, every: float = 1.0) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_worker(settings: Settings, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until the worker has committed every message of the events topic."""
    total = end_offsets(settings, "events")

    def caught_up() -> bool:
        assert proc.poll() is None, f"worker exited with {proc.returncode}"
        return committed(settings, worker_group(settings)) >= total

    try:
        wait_until(caught_up, timeout, f"the worker to consume {total} events")
    except AssertionError as err:
        # A stalled worker is diagnosed from its own log and the group's offsets: CI keeps
        # only what pytest prints.
        raise AssertionError(f"{err}\n{partition_progress(settings)}\n{log_tail(proc)}") from None


def partition_progress(settings: Settings) -> str:
    """Per events partition: the worker group's committed offset and the end offset."""
    offsets = committed_offsets(settings, worker_group(settings))
    rows = [f"  {p}: committed {offset} of {end}" for p, (offset, end) in enumerate(offsets)]
    return "events partitions:\n" + "\n".join(rows)


def log_tail(proc: subprocess.Popen, lines: int = 60) -> str:
    """The last ``lines`` of the log of a :func:`worker_process` child, for failure messages."""
    log = getattr(proc, "gridalarm_log", None)
    if log is None or not Path(log).is_file():
        return "(no worker log)"
    text = Path(log).read_text(errors="replace").splitlines()[-lines:]
    return f"last {len(text)} lines of {log}:\n" + "\n".join(text)


def read_topic(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """Every message of a topic, decoded, in partition then offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka,
        enable_auto_commit=False,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        tps = [TopicPartition(settings.topic(kind), p) for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                out.extend(orjson.loads(r.value) for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, f"could not read all of {settings.topic(kind)}"
        return out
    finally:
        consumer.close()


@contextmanager
def second_prefix(settings: Settings, suffix: str) -> Iterator[Settings]:
    """The same settings on another topic prefix (its own topics and worker group); on exit
    both prefixes' topics go, the workers' changelog topics included."""
    other = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-{suffix}"})
    ensure_topics(other, other.kafka)
    try:
        yield other
    finally:
        delete_prefixed_topics(other)
        delete_prefixed_topics(settings)


def delete_prefixed_topics(settings: Settings) -> None:
    """Best effort: the prefix's topics and its worker's changelog and assignor topics."""
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka, bootstrap_timeout_ms=5000)
        try:
            mine = (f"{settings.topic_prefix}.", worker_group(settings))
            names = [t for t in admin.list_topics() if t.startswith(mine)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()


def by_key(messages: Iterable[dict[str, Any]], *fields: str) -> dict[tuple, set[bytes]]:
    """Key (the given fields) → the distinct contents published under it."""
    out: dict[tuple, set[bytes]] = defaultdict(set)
    for message in messages:
        out[tuple(message[f] for f in fields)].add(
            orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
        )
    return dict(out)


def differences(ours: dict[tuple, set[bytes]], reference: dict[tuple, set[bytes]]) -> str:
    """The keys whose contents differ from the reference, the first one shown in full."""
    keys = sorted(k for k in ours if ours[k] != reference.get(k))
    if not keys:
        return ""
    first = keys[0]
    shown = "\n".join(f"  published: {c.decode()}" for c in sorted(ours[first]))
    expected = "\n".join(f"  reference: {c.decode()}" for c in sorted(reference.get(first, ())))
    return f"{len(keys)} differ, e.g. {keys[:5]}; {first}:\n{shown}\n{expected}"


@dataclass(frozen=True)
class Published:
    """What a run published, keyed as a consumer dedupes it: distinct contents per key."""

    windows: dict[tuple, set[bytes]]  # (stream, start)
    scores: dict[tuple, set[bytes]]  # (stream, start)
    opened: dict[tuple, set[bytes]]  # alert_id -> its open messages
    alerts: dict[tuple, set[bytes]]  # (alert_id, state, start) -> every alert message


def published(settings: Settings) -> Published:
    """Everything on the windows, scores and alerts topics of ``settings``."""
    alerts = read_topic(settings, "alerts")
    return Published(
        windows=by_key(read_topic(settings, "windows"), "stream", "start"),
        scores=by_key(read_topic(settings, "scores"), "stream", "start"),
        opened=opened(alerts),
        alerts=alert_messages(alerts),
    )


def assert_same_outputs(ours: Published, reference: Published, context: str = "") -> None:
    """``ours`` holds every window, score and alert message of ``reference`` and nothing else;
    a key published twice carries identical contents, the reference's (at-least-once).
    ``context`` is added to the failure messages."""
    more = f"\n{context}" if context else ""
    missing = sorted(set(reference.windows) - set(ours.windows))
    extra = sorted(set(ours.windows) - set(reference.windows))
    assert not missing, f"{len(missing)} windows missing, e.g. {missing[:5]}{more}"
    assert not extra, f"{len(extra)} windows the reference does not have, e.g. {extra[:5]}{more}"
    repeated = {k: v for k, v in ours.windows.items() if len(v) > 1}
    changed = differences(repeated, reference.windows)
    assert not changed, f"windows published with different values: {changed}{more}"
    assert not (differ := differences(ours.windows, reference.windows)), f"windows: {differ}{more}"
    # Every window scored, a repeated score identical, as in the reference.
    assert set(ours.scores) == set(reference.scores), f"scored windows differ{more}"
    repeated = {k: v for k, v in ours.scores.items() if len(v) > 1}
    changed = differences(repeated, reference.scores)
    assert not changed, f"scores published with different values: {changed}{more}"
    assert not (differ := differences(ours.scores, reference.scores)), f"scores: {differ}{more}"
    # No alert_id opened twice with different content; the same alerts as the reference.
    twice = {k: v for k, v in ours.opened.items() if len(v) > 1}
    assert not twice, f"{len(twice)} alert_ids have two different open messages: {twice}{more}"
    assert set(ours.opened) == set(reference.opened), f"opened alerts differ{more}"
    # Every alert message (open, update, resolved), each published once or repeated
    # identically, as in the reference.
    ours_keys, ref_keys = set(ours.alerts), set(reference.alerts)
    assert ours_keys == ref_keys, (
        f"alert messages missing: {sorted(ref_keys - ours_keys)[:5]}, "
        f"extra: {sorted(ours_keys - ref_keys)[:5]}{more}"
    )
    assert not (differ := differences(ours.alerts, reference.alerts)), (
        f"alert messages: {differ}{more}"
    )


def alert_messages(alerts: Iterable[dict[str, Any]]) -> dict[tuple, set[bytes]]:
    """(alert_id, state, window start) → the distinct messages published for it: every
    ``open``, ``update``, ``resolved`` and ``suppressed`` message has its own key."""
    return by_key(alerts, "alert_id", "state", "start")


def opened(alerts: Iterable[dict[str, Any]]) -> dict[tuple, set[bytes]]:
    """alert_id → the distinct ``open`` messages published for it."""
    return by_key((a for a in alerts if a["state"] == "open"), "alert_id")
