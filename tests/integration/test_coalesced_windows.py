"""Coalescing at the source changes the number of messages, not the windows: one file replayed
with ``--coalesce off`` and with the default, each through a real worker on its own topics,
gives the same windows topic and dead-letters the same events."""

from __future__ import annotations

import base64
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pipeline_kit import (
    by_key,
    differences,
    end_offsets,
    gridalarm,
    read_topic,
    second_prefix,
    wait_for_worker,
    worker_process,
)

from gridalarm.config import Settings

pytestmark = pytest.mark.integration

# The windowing is the subject here, not the model: the baseline starts in a second.
WORKER_ENV = {"GRIDALARM_DETECTOR": "baseline"}


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(update={"window": 60.0, "lateness": 30.0})


@pytest.fixture
def single_settings(settings: Settings) -> Iterator[Settings]:
    with second_prefix(settings, "single") as other:
        yield other


def pool_file(settings: Settings, tmp_path: Path) -> Path:
    """A simulated pool, with what coalescing must leave alone mixed in: late events (lines of
    the first hour again after the watermark passed them, some with n > 1), gauge samples,
    heartbeats from the file, and lines the worker dead-letters."""
    sim = tmp_path / "sim"
    gridalarm(
        settings, "simulate", "--streams", "12", "--days", "0.25", "--window", "1m",
        "--incidents", "hold_storm", "--seed", "5", "--out", str(sim),
    )  # fmt: skip
    lines = (sim / "events.jsonl").read_bytes().splitlines()
    rng = random.Random(5)
    mixed: list[bytes] = []
    for i, line in enumerate(lines):
        mixed.append(line)
        event = orjson.loads(line)
        if i % 97 == 0:
            gauge = {"v": 1, "ts": event["ts"], "stream": event["stream"], "metrics": {"x": i}}
            mixed.append(orjson.dumps(gauge))
        if i % 1001 == 0:
            mixed.append(orjson.dumps({**event, "n": rng.randint(2, 9)}))
        if i % 2003 == 0:
            mixed.append(
                orjson.dumps({"v": 1, "ts": event["ts"], "heartbeat": True, "source": "f"})
            )
        if i % 1499 == 0:
            mixed += [b"{not json", orjson.dumps({**event, "ts": "3000-01-01T00:00:00Z"})]
        if i > len(lines) // 2 and i % 211 == 0:  # late: a line of the first hour again
            early = orjson.loads(lines[rng.randrange(len(lines) // 10)])
            mixed.append(orjson.dumps({**early, "n": rng.choice((1, 1, 3))}))
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    return path


def dead_events(settings: Settings) -> Counter[str]:
    """Dead-lettered events by reason, each dead letter counting the n of its message."""
    counts: Counter[str] = Counter()
    for letter in read_topic(settings, "deadletter"):
        try:
            n = orjson.loads(base64.b64decode(letter["raw"])).get("n", 1)
        except (orjson.JSONDecodeError, AttributeError):
            n = 1
        counts[letter["reason"]] += n if isinstance(n, int) else 1
    return counts


def test_coalesced_replay_gives_the_windows_of_one_message_per_event(
    settings: Settings, single_settings: Settings, tmp_path: Path
) -> None:
    path = pool_file(settings, tmp_path)
    coalesced = gridalarm(settings, "produce", "replay", str(path), "--quiet")
    single = gridalarm(
        single_settings, "produce", "replay", str(path), "--quiet", "--coalesce", "off"
    )
    assert " as " in coalesced and " as " not in single, (coalesced, single)
    merged, one_each = end_offsets(settings, "events"), end_offsets(single_settings, "events")
    # 1-minute windows hold few events of a type: far less to merge than in hourly ones.
    assert merged < one_each * 0.75, f"{merged} coalesced messages for {one_each} single ones"

    for run, name in ((settings, "coalesced"), (single_settings, "single")):
        with worker_process(run, tmp_path / f"worker-{name}.log", **WORKER_ENV) as worker:
            wait_for_worker(run, worker, timeout=300)

    windows = by_key(read_topic(settings, "windows"), "stream", "start")
    reference = by_key(read_topic(single_settings, "windows"), "stream", "start")
    assert len(reference) == 12 * 6 * 60  # 12 streams, 6 hours of 1-minute windows
    assert sum(orjson.loads(next(iter(v)))["late"] for v in reference.values()) > 10
    assert windows.keys() == reference.keys()
    assert not differences(windows, reference), differences(windows, reference)
    dead = dead_events(single_settings)
    assert dead["late"] > 10 and dead["bad_json"] > 0 and dead["future"] > 0
    assert dead_events(settings) == dead
