"""What the fault loops share: the reference run, and one run's outputs compared with it.

Every loop replays the same simulated file to a fresh prefix, puts its workers (or its broker)
through a fault, checks that the events topic holds every event of the file once
(:func:`events_lost`) and compares every window, score and alert message with one worker's
undisturbed run of the file (:class:`Reference`, computed once per session), filling its row
of the table. :func:`compare_outputs` and :func:`before` serve faults whose reference is made
otherwise (the Elasticsearch outage).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pipeline_kit import (
    REPO_ROOT,
    Published,
    assert_same_outputs,
    committed,
    end_offsets,
    gridalarm,
    published,
    read_topic,
    second_prefix,
    settings_env,
    stop,
    wait_for_worker,
    worker_group,
    worker_process,
)

from gridalarm.config import Settings
from gridalarm.messages import Event, TimeBounds, event_of
from gridalarm.timeutil import parse_time

WINDOW = 60.0
SESSION = {"BROKER_SESSION_TIMEOUT": "10"}  # a SIGKILLed member leaves the group after 10 s
SORTED = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class Reference:
    events: Path
    outputs: Published  # one worker's run of ``events``


def make_reference(kafka_bootstrap: str, root: Path) -> Reference:
    """Simulate the file and run one worker over it, undisturbed."""
    from gridalarm.topics import ensure_topics

    base = Settings(
        kafka=kafka_bootstrap, topic_prefix=f"stress-{os.getpid()}", partitions=8,
        state_dir=root / "state", window=WINDOW,
    )  # fmt: skip
    ensure_topics(base, kafka_bootstrap)
    sim = root / "sim"
    gridalarm(
        base,
        "simulate", "--streams", "16", "--days", "0.3", "--window", "1m",
        "--incidents", "outage,hold_storm,disconnect_storm", "--seed", "41", "--out", str(sim),
    )  # fmt: skip
    events = sim / "events.jsonl"
    with second_prefix(base, "ref") as ref:
        gridalarm(ref, "produce", "replay", str(events), "--speed", "max", "--quiet")
        with worker_process(ref, root / "worker-ref.log") as worker:
            wait_for_worker(ref, worker, timeout=300)
        return Reference(events, published(ref))


@dataclass(frozen=True)
class Replay:
    """One run's copy of the reference file, replayed whole to the run's own prefix."""

    settings: Settings  # the run's prefix, at the reference's window size
    group: str  # its workers' consumer group
    total: int  # messages on its events topic

    def committed(self) -> int:
        return committed(self.settings, self.group)

    def committed_at_least(self, offsets: float, *workers: Any) -> Callable[[], bool]:
        """A check for ``wait_until``: every worker of ``workers`` still runs, and the group
        has committed ``offsets`` messages or more."""

        def check() -> bool:
            for proc in workers:
                assert proc.poll() is None, f"a worker exited with {proc.returncode}"
            return self.committed() >= offsets

        return check


def replay(kafka_settings: Settings, reference: Reference, row: dict[str, Any]) -> Replay:
    """Replay the reference file to this run's prefix; its size goes into ``row``."""
    settings = kafka_settings.model_copy(update={"window": WINDOW})
    gridalarm(settings, "produce", "replay", str(reference.events), "--speed", "max", "--quiet")
    row["events"] = total = end_offsets(settings, "events")
    return Replay(settings, worker_group(settings), total)


@contextmanager
def producing(
    settings: Settings, events: Path, speed: float, log: Path
) -> Iterator[subprocess.Popen]:
    """``gridalarm produce replay`` of ``events`` in the background at ``speed`` times real
    time (its output in ``log``), for faults that must strike while a producer runs; stopped
    on exit if it still runs."""
    args = [
        sys.executable, "-m", "gridalarm", "produce", "replay", str(events),
        "--speed", f"{speed:.3f}", "--quiet",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    try:
        yield proc
    finally:
        stop(proc)


def replay_failure(log: Path) -> str:
    """What a failed :func:`producing` replay said, for an assertion message."""
    return "the replay failed:\n" + log.read_text(errors="replace")[-3000:]


def before(outputs: Published, horizon: float) -> Published:
    """The windows, scores and alert messages of ``outputs`` for windows starting before
    ``horizon`` (epoch seconds): what two runs that stopped at different times share."""

    def early(keyed: dict[tuple, set[bytes]], start: int) -> dict[tuple, set[bytes]]:
        return {k: v for k, v in keyed.items() if parse_time(k[start]) < horizon}

    kept_alerts = early(outputs.alerts, 2)
    ids = {k[0] for k in kept_alerts}
    return Published(
        windows=early(outputs.windows, 1),
        scores=early(outputs.scores, 1),
        opened={k: v for k, v in outputs.opened.items() if k[0] in ids},
        alerts=kept_alerts,
    )


def differing(ours: dict[tuple, set[bytes]], reference: dict[tuple, set[bytes]]) -> int:
    """Keys on one side only, plus keys whose contents differ."""
    both = set(ours) & set(reference)
    return len(set(ours) ^ set(reference)) + sum(1 for k in both if ours[k] != reference[k])


def compare_run(
    settings: Settings, reference: Reference, logs: Path, row: dict[str, Any], context: str
) -> None:
    """Fill ``row`` with how this run's events and outputs differ from the reference's, then
    assert that they do not. ``logs``: the folder of the run's ``worker-*.log`` files."""
    tally = events_lost(settings, reference)
    row["events lost"], row["events twice"] = tally.lost, tally.twice
    compare_outputs(published(settings), reference.outputs, logs, row, context)


def compare_outputs(
    ours: Published, ref: Published, logs: Path, row: dict[str, Any], context: str
) -> None:
    """Fill ``row`` with how the windows, scores and alert messages ``ours`` differ from
    ``ref``'s and what the worker logs say it mended, then assert that nothing differs (the
    events columns too, when the caller filled them)."""
    row["windows lost"] = len(set(ref.windows) - set(ours.windows))
    row["windows extra"] = len(set(ours.windows) - set(ref.windows))
    row["windows changed"] = differing(ours.windows, ref.windows) - (
        row["windows lost"] + row["windows extra"]
    )
    row["scores differing"] = differing(ours.scores, ref.scores)
    row["alert messages differing"] = differing(ours.alerts, ref.alerts)
    row["duplicate opens"] = sum(1 for v in ours.opened.values() if len(v) > 1)
    text = "".join(log.read_text(errors="replace") for log in sorted(logs.glob("worker-*.log")))
    skipped = re.findall(r"partition \d+: (\d+) offsets before offset \d+ are not in the log", text)
    row["offsets passed over"] = sum(map(int, skipped))
    row["refetches"] = len(re.findall(r"seeking back to", text))
    notes = "\n".join(re.findall(r".*(?:are not in the log|seeking back to).*", text))
    lost, twice = row.get("events lost", 0), row.get("events twice", 0)
    assert (lost, twice) == (0, 0), f"events lost {lost}, twice {twice}\n{context}"
    assert_same_outputs(ours, ref, context=f"{context}\n{notes}")


@dataclass(frozen=True)
class EventTally:
    """The events of a file against those on an events topic (see :func:`events_lost`)."""

    events: int  # in the file
    lost: int  # in the file, not on the topic
    twice: int  # on the topic more often than in the file


def events_lost(settings: Settings, reference: Reference) -> EventTally:
    """Whether the events topic of ``settings`` holds every event of the reference file
    exactly once, whatever the producer coalesced.

    An event with an id (``attrs.eid``, a merged message's ``attrs.eids``) counts under it; a
    counter event without one counts ``n`` times under (stream, type, window slot), since the
    producer merges only events of one slot; a gauge sample once under its stream, time and
    values. Heartbeats carry no events. Reusable by any fault test that replays the file."""
    lines = reference.events.read_bytes().splitlines()
    ours = _event_keys(read_topic(settings, "events"))
    theirs = _event_keys(orjson.loads(line) for line in lines if line.strip())
    return EventTally(
        events=sum(theirs.values()),
        lost=sum((theirs - ours).values()),
        twice=sum((ours - theirs).values()),
    )


def _event_keys(messages: Iterable[dict[str, Any]]) -> Counter[tuple]:
    bounds = TimeBounds(max_future=math.inf)
    keys: Counter[tuple] = Counter()
    for data in messages:
        event = event_of(data, bounds)
        if not isinstance(event, Event):
            continue  # a heartbeat
        attrs = data.get("attrs") or {}
        eids = [attrs["eid"]] if "eid" in attrs else attrs.get("eids", [])
        if eids:
            keys.update(("eid", eid) for eid in eids)
        elif event.metrics is not None:
            keys[("gauge", event.stream, event.ts, orjson.dumps(event.metrics, option=SORTED))] += 1
        else:
            keys[("count", event.stream, event.kind, math.floor(event.ts / WINDOW))] += event.n
    return keys
