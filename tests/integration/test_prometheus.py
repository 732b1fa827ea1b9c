"""Metrics scraped during a real run agree with the run: worker and dashboard endpoints."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from pipeline_kit import (
    REPO_ROOT,
    gridalarm,
    read_topic,
    settings_env,
    stop,
    wait_for_worker,
    wait_until,
    worker_process,
)

from gridalarm.config import Settings
from gridalarm.timeutil import format_time

pytestmark = pytest.mark.integration

START = 1_767_600_000.0  # 2026-01-05T08:00:00Z
STREAMS = ("schedd:a", "schedd:b", "schedd:c")
MALFORMED = [b"{not json", b'{"v":1,"ts":"2026-01-05T08:00:00Z","stream":"schedd:a"}', b"[]"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int, starting: bool = False) -> str:
    """The endpoint's metrics; "" while a ``starting`` process does not listen yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        if starting:
            return ""
        raise


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    found = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            found += float(match.group(2))
    return found


def write_events(path: Path) -> int:
    """40 minutes of events on three streams, with the malformed lines among them."""
    lines, sent = [], 0
    for minute in range(40):
        for i, stream in enumerate(STREAMS):
            for j in range(1 + (minute + i) % 3):
                ts = format_time(START + minute * 60 + j)
                kind = "JobHeldEvent" if j == 2 else "ExecuteEvent"
                event = {"v": 1, "ts": ts, "stream": stream, "type": kind, "source": "metrics-test"}
                lines.append(orjson.dumps(event))
                sent += 1
        if minute in (5, 15, 25):
            lines.append(MALFORMED[minute // 10])
    path.write_bytes(b"\n".join(lines) + b"\n")
    return sent


def test_scraped_counters_agree_with_the_run(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"window": 60.0})
    events = tmp_path / "events.jsonl"
    sent = write_events(events)
    gridalarm(settings, "produce", "replay", str(events), "--quiet")
    port = free_port()
    with worker_process(
        settings, tmp_path / "worker.log", "--metrics", f"127.0.0.1:{port}"
    ) as proc:
        wait_for_worker(settings, proc, timeout=300)
        wait_until(
            lambda: total(scrape(port), "gridalarm_worker_events_total") >= sent, 60, "metrics"
        )
        worker = scrape(port)
    windows = read_topic(settings, "windows")
    dead = read_topic(settings, "deadletter")
    assert total(worker, "gridalarm_worker_events_total") == sent
    assert total(
        worker, "gridalarm_worker_events_total", source="metrics-test", type="JobHeldEvent"
    ) == sum(1 for line in events.read_bytes().splitlines() if b"JobHeldEvent" in line)
    assert total(worker, "gridalarm_worker_deadletters_total") == len(MALFORMED) == len(dead)
    assert total(worker, "gridalarm_worker_deadletters_total", reason="bad_json") == 1
    assert total(worker, "gridalarm_worker_deadletters_total", reason="schema") == 2
    assert total(worker, "gridalarm_worker_windows_closed_total") == len(windows)
    assert total(worker, "gridalarm_worker_scores_total") == len(read_topic(settings, "scores"))
    assert total(worker, "gridalarm_worker_consumer_lag") == 0
    assert "gridalarm_worker_model_info{model=" in worker
    assert total(worker, "gridalarm_worker_step_seconds_count") > 0

    dash_port = free_port()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", "dashboard", "--bind", f"127.0.0.1:{dash_port}"],
        env=settings_env(settings),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def windows_read() -> bool:
        assert dashboard.poll() is None, dashboard.communicate()[1].decode()[-2000:]
        text = scrape(dash_port, starting=True)
        return total(text, "gridalarm_dashboard_messages_total", topic="windows") >= len(windows)

    try:
        wait_until(windows_read, 60, "the dashboard to read the windows", every=0.5)
        text = scrape(dash_port)
    finally:
        stop(dashboard)
    assert total(text, "gridalarm_dashboard_messages_total", topic="windows") == len(windows)
    assert total(text, "gridalarm_dashboard_streams") == len(STREAMS)
