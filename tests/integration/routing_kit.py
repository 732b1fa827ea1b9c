"""Helpers for the routing tests: a real Alertmanager, a real HTTP receiver, `gridalarm notify`.

Alertmanager is Debian's ``prometheus-alertmanager`` (``make system-packages`` installs it);
without it these tests fail, saying how to install it, rather than skip.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pipeline_kit import REPO_ROOT, settings_env, stop

from gridalarm.config import Settings

ALERTMANAGER = "prometheus-alertmanager"
# Alertmanager needs a route and a receiver; this one notifies nobody (the test reads its API).
ALERTMANAGER_CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def alertmanager(workdir: Path) -> Iterator[str]:
    """A real Alertmanager on a free loopback port; yields its base URL."""
    binary = shutil.which(ALERTMANAGER) or (
        f"/usr/bin/{ALERTMANAGER}" if Path(f"/usr/bin/{ALERTMANAGER}").exists() else None
    )
    if binary is None:
        pytest.fail(
            f"{ALERTMANAGER} is not installed; run 'make system-packages' (as root) or "
            f"'sudo apt-get install -y {ALERTMANAGER}'",
            pytrace=False,
        )
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "alertmanager.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: a single, private instance
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"alertmanager exited: {(workdir / 'alertmanager.log')}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "alertmanager not ready within 30s"
            time.sleep(0.2)
        yield url
    finally:
        stop(proc, timeout=10)


def alertmanager_alerts(url: str) -> list[dict[str, Any]]:
    """Alertmanager's current alerts (GET /api/v2/alerts lists firing ones, not resolved)."""
    response = httpx.get(f"{url}/api/v2/alerts", timeout=5)
    response.raise_for_status()
    return response.json()


@dataclass
class Received:
    """One request the receiver saw and what it answered."""

    body: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """A JSON webhook receiver on loopback that fails its first ``fail_first`` requests (503),
    calling ``on_failure`` inside each failing request, before it answers."""

    fail_first: int = 0
    on_failure: Callable[[], None] | None = None
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.requests if r.status == 200]

    def seen(self) -> int:
        with self.lock:
            return len(self.requests)


@contextmanager
def receiver(
    fail_first: int = 0, on_failure: Callable[[], None] | None = None
) -> Iterator[Receiver]:
    """Run a :class:`Receiver` in a thread for the ``with`` block."""
    state = Receiver(fail_first=fail_first, on_failure=on_failure)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            with state.lock:
                failing = len(state.requests) < state.fail_first
            if failing and state.on_failure is not None:
                state.on_failure()
            status = 503 if failing else 200
            with state.lock:
                state.requests.append(Received(body, dict(self.headers), status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest's output clean

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def notify_process(settings: Settings, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A `gridalarm notify` child process; stopped with SIGTERM (then SIGKILL) on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "notify", *args],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        yield proc
    finally:
        stop(proc)


def send_alerts(settings: Settings, alerts: list[dict[str, Any]], partition: int = 0) -> int:
    """Write alert messages to one partition of the alerts topic; the offset of the last."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
    try:
        last = -1
        for alert in alerts:
            meta = producer.send(
                settings.topic("alerts"),
                key=alert["stream"].encode(),
                value=orjson.dumps(alert),
                partition=partition,
            ).get(timeout=30)
            last = meta.offset
        return last
    finally:
        producer.close()


def committed_offsets(settings: Settings, group: str) -> dict[int, int | None]:
    """The group's committed offset per partition of the alerts topic (None: nothing yet)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=group, enable_auto_commit=False
    )
    try:
        topic = settings.topic("alerts")
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(settings.partitions)}
    finally:
        consumer.close()
