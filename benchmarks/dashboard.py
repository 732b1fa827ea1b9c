"""Dashboard with 5,000 streams at 1-minute windows: overview render time, score-to-page
latency, and the dashboard process's CPU share, each as a ratio of its target.

The scores, windows and alerts topics of a fresh prefix are fed what a worker would publish
for 5,000 streams: 24 windows of history first, then live, every stream's window closing at
once each minute (a worker closes a window for all streams of a partition when the watermark
passes, so live traffic comes in bursts of 5,000 scores and 5,000 windows). A real
``gridalarm dashboard`` process back-fills the history and follows the topics.

- Overview render: headless Chromium (Debian's, through Playwright) from navigation start to
  the 5,000th stream in the table model with the visible rows drawn (``performance.now()``),
  median of 5 page loads; the HTTP fetch of the snapshot alone is timed too. Baseline: the same
  page of a second dashboard over 20 streams, in the same run.
- Latency: the scores topic of the run uses LogAppendTime, so a record's timestamp is the
  moment it reached the topic; an open overview page, filtered to a probe stream, records
  (MutationObserver, ``Date.now()``) when the probe's new score shows. Baseline: a bare Kafka
  consumer reading the same records, in the same run.
- CPU share: psutil's user+system time of the dashboard process over 60 s of live traffic with
  one page open, beside a bare aiokafka consumer process that reads and decodes the same topics.

Run: ``python -m benchmarks.dashboard`` (part of ``make bench``); ``--streams`` to change 5,000.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from benchmarks.broker import broker
from gridalarm.config import DEFAULT_FEATURES, Settings
from gridalarm.timeutil import format_time
from gridalarm.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
WINDOW = 60.0
HISTORY = 24  # windows of history per stream (what a sparkline shows)
PROBE = "schedd:probe"
TARGET_RENDER_S = 2.0
TARGET_LATENCY_S = 1.0
TARGET_CPU = 0.20
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
MODEL = "lstm-forecast@bench"


# -- what a worker would publish -------------------------------------------------------------


def score_message(stream: str, start: float, score: float) -> dict[str, Any]:
    anomalous = score >= 50.0
    explain = (
        [{"feature": "JobHeldEvent", "observed": 120, "expected": 4.5, "share": 0.8}]
        if anomalous
        else []
    )
    return {
        "v": 1, "stream": stream, "start": format_time(start), "end": format_time(start + WINDOW),
        "score": score, "anomalous": anomalous, "model": MODEL, "explain": explain,
    }  # fmt: skip


def window_message(stream: str, start: float, rng: random.Random) -> dict[str, Any]:
    features = {name: rng.randint(0, 30) for name in DEFAULT_FEATURES}
    return {
        "v": 1, "stream": stream, "start": format_time(start), "end": format_time(start + WINDOW),
        "features": features, "events": sum(features.values()), "late": 0,
    }  # fmt: skip


def alert_message(stream: str, start: float, state: str) -> dict[str, Any]:
    return {
        "v": 1, "alert_id": uuid.uuid5(uuid.NAMESPACE_URL, stream).hex[:24], "state": state,
        "stream": stream, "since": format_time(start), "start": format_time(start),
        "end": format_time(start + WINDOW), "score": 91.0, "severity": "critical",
        "explain": [{"feature": "JobHeldEvent", "observed": 120, "expected": 4.5, "share": 0.8}],
        "model": MODEL,
    }  # fmt: skip


def publish_minute(
    producer: KafkaProducer, settings: Settings, streams: list[str], start: float,
    rng: random.Random,
) -> int:  # fmt: skip
    """Every stream's window at ``start`` (score and window), and an alert now and then."""
    sent = 0
    for stream in streams:
        key = stream.encode()
        score = round(min(100.0, rng.expovariate(1 / 8.0)), 2)
        producer.send(settings.topic("scores"), orjson.dumps(score_message(stream, start, score)),
                      key=key)  # fmt: skip
        producer.send(settings.topic("windows"), orjson.dumps(window_message(stream, start, rng)),
                      key=key)  # fmt: skip
        sent += 2
    for stream in rng.sample(streams, min(3, len(streams))):
        producer.send(settings.topic("alerts"), orjson.dumps(alert_message(stream, start, "open")),
                      key=stream.encode())  # fmt: skip
        sent += 1
    producer.flush()
    return sent


def prepare(settings: Settings, streams: list[str], start: float) -> tuple[int, float]:
    """Topics (scores with LogAppendTime) and ``HISTORY`` windows of every stream."""
    ensure_topics(settings, settings.kafka)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
    try:  # a record's timestamp is then the moment it reached the topic
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic("scores"),
                            configs={"message.timestamp.type": "LogAppendTime"})]
        )  # fmt: skip
    finally:
        admin.close()
    producer = _producer(settings)
    rng = random.Random(2017)
    began = time.perf_counter()
    sent = sum(
        publish_minute(producer, settings, streams, start + i * WINDOW, rng) for i in range(HISTORY)
    )
    producer.close()
    return sent, time.perf_counter() - began


def _producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.kafka, linger_ms=5, batch_size=512 * 1024, acks=1
    )


# -- the dashboard process ---------------------------------------------------------------------


@contextlib.contextmanager
def dashboard(settings: Settings, backfill: str = "2h") -> Iterator[tuple[str, subprocess.Popen]]:
    """A `gridalarm dashboard` on a free loopback port; yields its URL and process."""
    env = {
        **os.environ,
        "GRIDALARM_KAFKA": str(settings.kafka),
        "GRIDALARM_TOPIC_PREFIX": settings.topic_prefix,
        "GRIDALARM_PARTITIONS": str(settings.partitions),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", "dashboard", "--bind", "127.0.0.1:0",
         "--backfill", backfill],
        env=env, cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("dashboard on "):
            raise RuntimeError(f"the dashboard did not start: {line!r}")
        yield line.split()[2].rstrip("/"), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch(url: str) -> tuple[bytes, float]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return body, time.perf_counter() - began


def wait_live(url: str, streams: int, timeout: float = 300.0) -> float:
    """Seconds until the dashboard has back-filled and knows every stream."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        data = orjson.loads(fetch(f"{url}/api/overview")[0])
        if data["phase"] == "live" and len(data["rows"]) >= streams:
            return time.perf_counter() - began
        time.sleep(0.5)
    raise RuntimeError(f"the dashboard at {url} did not go live within {timeout:.0f}s")


# -- measurements ------------------------------------------------------------------------------


def render_ms(browser: Any, url: str, streams: int, repeats: int = 5) -> list[float]:
    """Navigation start → every stream in the overview's model and its visible rows drawn."""
    times = []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/")
        page.wait_for_function(
            "(n) => document.body.dataset.rendered === n", arg=str(streams), timeout=60_000
        )
        times.append(page.evaluate("() => performance.now()"))
        page.close()
    return times


OBSERVER = """(probe) => {
  window.__seen = {};
  const body = document.querySelector("#overview tbody");
  const look = () => {
    const rows = [...body.querySelectorAll("tr[data-stream]")];
    const row = rows.find((r) => r.dataset.stream === probe);
    const cell = row && row.querySelector("td.score");
    if (cell && !(cell.textContent in window.__seen)) window.__seen[cell.textContent] = Date.now();
  };
  new MutationObserver(look).observe(body, { childList: true, subtree: true, characterData: true });
}"""


class BareConsumer(threading.Thread):
    """Baseline for latency: a plain consumer that notes when each probe record arrives."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.arrived: dict[str, float] = {}  # score text -> latency in ms
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka, enable_auto_commit=False,
                                 fetch_max_wait_ms=100)  # fmt: skip
        tps = [TopicPartition(self.settings.topic("scores"), p)
               for p in range(self.settings.partitions)]  # fmt: skip
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)
        self.ready.set()
        while not self.stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                now = time.time() * 1000
                for record in records:
                    if record.key == PROBE.encode():
                        score = orjson.loads(record.value)["score"]
                        self.arrived[f"{score:.1f}"] = now - record.timestamp
        consumer.close()


def bare_cpu_consumer(bootstrap: str, topics: list[str]) -> None:
    """Baseline for CPU (run as a child process): read and decode the topics, nothing else."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def main() -> None:
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="latest")  # fmt: skip
        await consumer.start()
        print("ready", flush=True)
        decoded = 0
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    orjson.loads(record.value)
                    decoded += 1

    asyncio.run(main())


class Traffic(threading.Thread):
    """Live traffic: every ``WINDOW`` seconds, every stream's next window at once."""

    def __init__(self, settings: Settings, streams: list[str], start: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.streams, self.start_at = settings, streams, start
        self.stop = threading.Event()
        self.bursts: list[float] = []  # seconds each burst took to send

    def run(self) -> None:
        producer = _producer(self.settings)
        rng = random.Random(7)
        window = self.start_at
        while not self.stop.is_set():
            began = time.perf_counter()
            publish_minute(producer, self.settings, self.streams, window, rng)
            self.bursts.append(time.perf_counter() - began)
            window += WINDOW
            self.stop.wait(max(0.0, WINDOW - (time.perf_counter() - began)))
        producer.close()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--minute", type=float, default=60.0, help="seconds of live traffic")
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run `make system-packages` (Debian chromium)")
    streams = [f"schedd:bench{i:05d}" for i in range(args.streams - 1)] + [PROBE]
    now = time.time()
    history_start = (now // WINDOW - HISTORY) * WINDOW
    with broker() as bootstrap:
        tag = uuid.uuid4().hex[:6]
        big = Settings(kafka=bootstrap, topic_prefix=f"bench-dash-{tag}", partitions=8)
        small = Settings(kafka=bootstrap, topic_prefix=f"bench-dash-{tag}-20", partitions=8)
        sent, took = prepare(big, streams, history_start)
        prepare(small, streams[:20], history_start)
        print(f"history: {sent:,} messages ({HISTORY} windows of {len(streams):,} streams) "
              f"published in {took:.1f}s")  # fmt: skip
        try:
            with (
                dashboard(big) as (url, proc),
                dashboard(small) as (small_url, _),
                sync_playwright() as playwright,
            ):
                run(args, big, streams, url, proc, small_url, playwright, history_start)
        finally:
            _delete(big)
            _delete(small)


def run(
    args: argparse.Namespace, settings: Settings, streams: list[str], url: str,
    proc: subprocess.Popen, small_url: str, playwright: Any, history_start: float,
) -> None:  # fmt: skip
    backfilled = wait_live(url, len(streams))
    wait_live(small_url, 20)
    print(f"back-fill: {len(streams):,} streams live after {backfilled:.1f}s")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        body, http_s = fetch(f"{url}/api/overview")
        http_s = statistics.median([fetch(f"{url}/api/overview")[1] for _ in range(5)])
        render = statistics.median(render_ms(browser, url, len(streams))) / 1000
        small_render = statistics.median(render_ms(browser, small_url, 20)) / 1000
        print(f"overview render, {len(streams):,} streams (median of 5 loads, navigation to "
              f"table): {render * 1000:.0f} ms = {render / TARGET_RENDER_S:.2f} of the "
              f"{TARGET_RENDER_S:g} s target; 20 streams: {small_render * 1000:.0f} ms "
              f"({render / small_render:.1f}x)")  # fmt: skip
        print(f"  snapshot over HTTP alone: {len(body) / 1e6:.2f} MB in {http_s * 1000:.0f} ms")
        live(args, settings, streams, proc, browser, url, history_start)
    finally:
        browser.close()


def live(
    args: argparse.Namespace, settings: Settings, streams: list[str], proc: subprocess.Popen,
    browser: Any, url: str, history_start: float,
) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/")
    page.wait_for_function("(n) => document.body.dataset.rendered === n", arg=str(len(streams)))
    page.fill("#filter", PROBE)
    page.wait_for_function("() => document.body.dataset.rendered === '1'")
    page.evaluate(OBSERVER, PROBE)
    bare = BareConsumer(settings)
    bare.start()
    bare.ready.wait(30)
    cpu_baseline = subprocess.Popen(
        [sys.executable, "-c", "import sys; from benchmarks.dashboard import bare_cpu_consumer; "
         "bare_cpu_consumer(sys.argv[1], sys.argv[2:])", str(settings.kafka),
         *(settings.topic(k) for k in ("scores", "windows", "alerts"))],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    probe_producer = _producer(settings)
    traffic = Traffic(settings, streams, history_start + HISTORY * WINDOW)
    try:
        if cpu_baseline.stdout is not None:
            cpu_baseline.stdout.readline()
        dash, base = psutil.Process(proc.pid), psutil.Process(cpu_baseline.pid)
        cpu0, base0, began = cpu_seconds(dash), cpu_seconds(base), time.perf_counter()
        rss_peak = dash.memory_info().rss
        traffic.start()
        latencies: list[float] = []
        # The first probe goes out 0.5 s into the minute, amid the burst of every stream's
        # window (the worst moment); the rest spread over the minute.
        every = (args.minute - 1.0) / args.probes
        for i in range(args.probes):
            time.sleep(max(0.0, began + 0.5 + i * every - time.perf_counter()))
            text = f"{1.3 + i:.1f}"
            start = history_start + (HISTORY + 1000 + i) * WINDOW
            meta = probe_producer.send(
                settings.topic("scores"), orjson.dumps(score_message(PROBE, start, float(text))),
                key=PROBE.encode(),
            ).get(timeout=10)  # fmt: skip
            page.wait_for_function("(t) => t in window.__seen", arg=text, timeout=15_000)
            seen_ms = page.evaluate("(t) => window.__seen[t]", text)
            latencies.append((seen_ms - meta.timestamp) / 1000)
            rss_peak = max(rss_peak, dash.memory_info().rss)
        time.sleep(max(0.0, began + args.minute - time.perf_counter()))
        wall = time.perf_counter() - began
        share = (cpu_seconds(dash) - cpu0) / wall
        base_share = (cpu_seconds(base) - base0) / wall
    finally:
        traffic.stop.set()
        bare.stop.set()
        cpu_baseline.terminate()
        cpu_baseline.wait()
        probe_producer.close()
        page.close()
    traffic.join(timeout=30)
    median, worst = statistics.median(latencies), max(latencies)
    bare_ms = sorted(bare.arrived.values())
    bare_median = statistics.median(bare_ms) / 1000 if bare_ms else float("nan")
    print(f"score -> open page, {len(latencies)} probes over {wall:.0f}s of live traffic: median "
          f"{median * 1000:.0f} ms, max {worst * 1000:.0f} ms = {worst / TARGET_LATENCY_S:.2f} of "
          f"the {TARGET_LATENCY_S:g} s target (median {median / TARGET_LATENCY_S:.2f}); "
          f"bare Kafka consumer: median {bare_median * 1000:.0f} ms")  # fmt: skip
    print(f"dashboard CPU over {wall:.0f}s of live traffic ({len(streams):,} scores + "
          f"{len(streams):,} windows per minute, bursts sent in "
          f"{statistics.median(traffic.bursts or [0]):.1f}s, one page open): {share:.1%} of a "
          f"core = {share / TARGET_CPU:.2f} of the {TARGET_CPU:.0%} target; bare aiokafka "
          f"consumer of the same topics: {base_share:.1%}")  # fmt: skip
    print(f"dashboard peak RSS: {rss_peak / 2**20:.0f} MiB")


def _delete(settings: Settings) -> None:
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka)
        try:
            names = [t for t in admin.list_topics() if t.startswith(f"{settings.topic_prefix}.")]
            admin.delete_topics(names)
        finally:
            admin.close()


if __name__ == "__main__":
    main()
