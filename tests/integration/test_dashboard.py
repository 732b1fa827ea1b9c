"""The dashboard in a real browser against a real pipeline: simulate → replay → worker →
dashboard → headless Chromium (Debian's package, driven by Playwright).

The simulated pool's history is replayed in two parts: the first (with an outage) before the
browser opens, the second (the start of a hold storm) while the alerts page is open, so the
hold storm's alert must arrive live. The replay stops while the storm still rages, so that the
screenshots (in reports/screenshots/, or docs/screenshots/ with GRIDALARM_SCREENSHOTS) catch an
open incident.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from pipeline_kit import (
    REPO_ROOT,
    delete_prefixed_topics,
    gridalarm,
    settings_env,
    stop,
    wait_for_worker,
    worker_process,
)

from gridalarm.config import Settings
from gridalarm.timeutil import parse_time

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox, with no network beyond loopback: no sandbox, no GPU, and none of the
# background connections Chromium would otherwise try (and fail) at every start.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Screenshots land in reports/ (ignored by git) so a test run leaves the tree clean;
# GRIDALARM_SCREENSHOTS=docs/screenshots refreshes the ones README shows.
SCREENSHOTS = Path(os.environ.get("GRIDALARM_SCREENSHOTS", REPO_ROOT / "reports" / "screenshots"))
WINDOW = 60.0
LIVE_WITHIN_MS = 5000

# Notes when each alert row first enters the page (whatever inserted it), and a marker that
# a reload would wipe.
WATCH_ALERTS = """() => {
  window.__marker = "no reload";
  window.__seen = {};
  const note = (node) => {
    if (!(node instanceof Element)) return;
    const rows = node.matches("tr[data-alert-id]")
      ? [node] : node.querySelectorAll("tr[data-alert-id]");
    for (const row of rows) {
      if (!(row.dataset.alertId in window.__seen)) window.__seen[row.dataset.alertId] = Date.now();
    }
  };
  note(document.body);
  new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(note)))
    .observe(document.body, { childList: true, subtree: true });
}"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    gridalarm(
        Settings(),
        "simulate", "--streams", "10", "--days", "0.25", "--window", "1m",
        "--incidents", "outage,hold_storm", "--seed", "5", "--out", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def chromium() -> str:
    # A missing browser fails the test: a skipped browser test would pass CI untested.
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(`make system-packages`, which runs tools/system_packages.sh)",
            pytrace=False,
        )
    return CHROMIUM


@contextlib.contextmanager
def dashboard_process(settings: Settings, log: Path) -> Iterator[str]:
    """A `gridalarm dashboard` on a free loopback port; yields its URL."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "dashboard", "--bind", "127.0.0.1:0",
             "--backfill", "1h"],
            env=settings_env(settings), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        line = proc.stdout.readline().decode() if proc.stdout else ""
        assert line.startswith("dashboard on "), (
            f"dashboard did not start: {line!r}\n" + (log.read_text()[-3000:])
        )
        yield line.split()[2].rstrip("/")
    finally:
        stop(proc)


def split_events(
    simulated: Path, at: float, until: float, tmp_path: Path
) -> tuple[Path, Path, set[str]]:
    """The simulated events before ``at``, those from ``at`` to ``until``, and every stream."""
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    streams: set[str] = set()
    with (
        (simulated / "events.jsonl").open("rb") as source,
        before.open("wb") as first,
        after.open("wb") as second,
    ):
        for line in source:
            event = orjson.loads(line)
            streams.add(event["stream"])
            ts = parse_time(event["ts"])
            if ts < at:
                first.write(line)
            elif ts < until:
                second.write(line)
    return before, after, streams


def first_record(settings: Settings, kind: str, match, timeout: float):  # -> ConsumerRecord
    """The first record of a topic whose decoded value satisfies ``match``."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False)
    try:
        tps = [TopicPartition(settings.topic(kind), p) for p in range(settings.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.value is not None and match(orjson.loads(record.value)):
                        return record
        raise AssertionError(f"no matching record on {settings.topic(kind)} in {timeout:.0f}s")
    finally:
        consumer.close()


def test_dashboard_lists_streams_shows_a_live_alert_and_sends_a_label(
    simulated: Path, kafka_settings: Settings, chromium: str, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"window": WINDOW})
    with (simulated / "labels.csv").open() as handle:
        incidents = sorted(csv.DictReader(handle), key=lambda row: parse_time(row["start"]))
    assert [row["kind"] for row in incidents] == ["outage", "hold_storm"]
    storm = incidents[1]
    storm_start, storm_end = parse_time(storm["start"]), parse_time(storm["end"])
    before, after, streams = split_events(
        simulated, storm_start - 20 * WINDOW, storm_end - 5 * WINDOW, tmp_path
    )
    gridalarm(settings, "produce", "replay", str(before), "--quiet")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        browse(settings, storm, streams, after, chromium, tmp_path)
    finally:  # the worker's changelog topics too, not only the fixture's
        delete_prefixed_topics(settings)


def browse(
    settings: Settings, storm: dict[str, str], streams: set[str], after: Path, chromium: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    from playwright.sync_api import sync_playwright

    storm_start = parse_time(storm["start"])

    with (
        worker_process(settings, tmp_path / "worker.log") as worker,
        dashboard_process(settings, tmp_path / "dashboard.log") as url,
        sync_playwright() as playwright,
    ):
        wait_for_worker(settings, worker, timeout=300)
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        errors: list[str] = []

        def new_page(height: int = 720):  # -> playwright Page
            opened = browser.new_page(viewport={"width": 1280, "height": height})
            opened.on("pageerror", lambda err: errors.append(str(err)))
            return opened

        page = new_page()

        # -- the overview lists every stream ----------------------------------------------
        page.goto(f"{url}/")
        page.wait_for_function("(n) => document.body.dataset.rendered === n", arg=str(len(streams)))
        shown = page.eval_on_selector_all(
            "#overview tbody tr[data-stream]", "rows => rows.map(r => r.dataset.stream)"
        )
        assert sorted(shown) == sorted(streams)

        # -- the hold storm's alert appears on the open alerts page, without a reload -----
        stream_page = new_page()
        stream_page.goto(f"{url}/stream?name={quote(storm['stream'], safe='')}")
        stream_page.evaluate("() => { window.__marker = 'no reload'; }")
        assert stream_page.locator("svg.chart rect.span").count() == 0  # no alert yet
        page.goto(f"{url}/alerts")
        page.wait_for_selector("#status[data-phase='live']")
        page.evaluate(WATCH_ALERTS)
        gridalarm(settings, "produce", "replay", str(after), "--quiet")

        def storm_opened(alert: dict) -> bool:
            return (
                alert["state"] == "open"
                and alert["stream"] == storm["stream"]
                and parse_time(alert["since"]) >= storm_start
            )

        record = first_record(settings, "alerts", storm_opened, timeout=300)
        alert_id = orjson.loads(record.value)["alert_id"]
        page.wait_for_function("(id) => id in window.__seen", arg=alert_id, timeout=60_000)
        shown_after_ms = page.evaluate("(id) => window.__seen[id]", alert_id) - record.timestamp
        print(f"alert {alert_id} on the page {shown_after_ms} ms after it reached the topic")
        assert shown_after_ms <= LIVE_WITHIN_MS, f"alert appeared after {shown_after_ms} ms"
        assert page.evaluate("() => window.__marker") == "no reload"
        row = page.locator(f"tr[data-alert-id='{alert_id}']")
        assert storm["stream"] in row.inner_text()
        wait_for_worker(settings, worker, timeout=300)
        page.screenshot(path=str(SCREENSHOTS / "alerts.png"))
        # The stream page, open since before the storm, now shows its alert span.
        stream_page.wait_for_selector("svg.chart rect.span", timeout=10_000)
        assert stream_page.evaluate("() => window.__marker") == "no reload"
        overview = new_page(480)
        overview.goto(f"{url}/")
        overview.wait_for_selector(
            f"tr[data-stream='{storm['stream']}'] .badge:is(.critical, .warning)"
        )
        overview.screenshot(path=str(SCREENSHOTS / "overview.png"))
        overview.close()

        # -- "false positive" lands a label on the labels topic ---------------------------
        row.locator("button[data-label='false-positive']").click()
        label = first_record(
            settings, "labels", lambda message: message["alert_id"] == alert_id, timeout=30
        )
        message = orjson.loads(label.value)
        assert label.key == alert_id.encode()
        assert message["label"] == "false-positive" and message["by"] == "dashboard"
        assert message["stream"] == storm["stream"]
        # ... and the page shows it once it is read back from the topic.
        page.wait_for_selector(f"tr[data-alert-id='{alert_id}'] .verdict.false-positive")

        # -- the stream page: series, threshold, alert span, explanation -------------------
        stream_page.wait_for_selector(f"tr[data-alert-id='{alert_id}'] .verdict.false-positive")
        assert stream_page.locator("figure.feature").count() >= 13
        assert "JobHeldEvent" in stream_page.locator("table.explain").inner_text()
        stream_page.screenshot(path=str(SCREENSHOTS / "stream.png"), full_page=True)
        assert not errors, errors
        browser.close()
