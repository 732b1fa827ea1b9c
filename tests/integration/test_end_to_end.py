"""End to end on a real broker: simulate → replay → worker → windows and alerts topics.

20 schedds × 2 days at 1-minute windows with one outage, one hold storm and one disconnect
storm on three different streams (the issue's acceptance run).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from pipeline_kit import gridalarm, read_topic, wait_for_worker, worker_process

from gridalarm.config import Settings
from gridalarm.timeutil import parse_time

pytestmark = pytest.mark.integration

WINDOW = 60.0
KINDS = ("outage", "hold_storm", "disconnect_storm")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    settings = Settings()  # the simulator needs no broker
    gridalarm(
        settings,
        "simulate", "--streams", "20", "--days", "2", "--window", "1m",
        "--incidents", ",".join(KINDS), "--seed", "2017", "--out", str(out),
    )  # fmt: skip
    return out


def _labels(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_replay_through_the_worker_alerts_on_each_incident_and_windows_every_stream(
    simulated: Path, kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"window": WINDOW})
    labels = _labels(simulated / "labels.csv")
    assert sorted(row["kind"] for row in labels) == sorted(KINDS)
    assert len({row["stream"] for row in labels}) == 3

    gridalarm(settings, "produce", "replay", str(simulated / "events.jsonl"), "--quiet")
    with worker_process(settings, tmp_path / "worker.log") as proc:
        wait_for_worker(settings, proc, timeout=900)
    windows = read_topic(settings, "windows")
    alerts = read_topic(settings, "alerts")

    # -- alerts: each incident opened on the right stream within 2 windows of its start ------
    opens = {a["alert_id"]: a for a in alerts if a["state"] == "open"}
    matched: set[str] = set()
    for row in labels:
        start, end = parse_time(row["start"]), parse_time(row["end"])
        hits = [
            a
            for a in opens.values()
            if a["stream"] == row["stream"] and start <= parse_time(a["since"]) < end
        ]
        assert hits, f"no alert opened for {row['kind']} on {row['stream']} at {row['start']}"
        first = min(hits, key=lambda a: parse_time(a["start"]))
        delay = (parse_time(first["start"]) - start) / WINDOW
        assert delay <= 2, f"{row['kind']} opened {delay:.0f} windows after it began"
        matched.update(a["alert_id"] for a in hits)
    others = [a for a in opens.values() if a["alert_id"] not in matched]
    assert len(others) <= 2, (
        f"{len(others)} other alerts: {[(a['stream'], a['since']) for a in others]}"
    )

    # -- windows: every window of every stream exactly once, silent ones included ------------
    first_seen: dict[str, float] = {}
    events_of: Counter[str] = Counter()
    last = 0.0
    with (simulated / "events.jsonl").open("rb") as handle:
        for line in handle:
            event = orjson.loads(line)
            ts = parse_time(event["ts"])
            first_seen.setdefault(event["stream"], ts)
            events_of[event["stream"]] += event.get("n", 1)
            last = max(last, ts)
    last_window = last - last % WINDOW
    keys = Counter((w["stream"], parse_time(w["start"])) for w in windows)
    assert max(keys.values()) == 1, "a window was emitted twice"
    by_stream: dict[str, set[float]] = defaultdict(set)
    for stream, start in keys:
        by_stream[stream].add(start)
    assert set(by_stream) == set(first_seen)
    for stream, seen in by_stream.items():
        begin = first_seen[stream] - first_seen[stream] % WINDOW
        expected = {begin + i * WINDOW for i in range(int((last_window - begin) / WINDOW) + 1)}
        assert seen == expected, (
            f"{stream}: {len(expected - seen)} missing, {len(seen - expected)} extra"
        )
    assert {s: sum(w["events"] for w in windows if w["stream"] == s) for s in events_of} == dict(
        events_of
    )
    outage = next(row for row in labels if row["kind"] == "outage")
    o_start, o_end = parse_time(outage["start"]), parse_time(outage["end"])
    silent = [
        w
        for w in windows
        if w["stream"] == outage["stream"] and o_start <= parse_time(w["start"]) < o_end
    ]
    assert silent and all(w["events"] == 0 for w in silent)
    assert len(silent) == int((o_end - o_start) / WINDOW)
