"""deploy/: the Grafana board charts only exported metrics; the Alertmanager config is valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from gridalarm.metrics import ProducerMetrics
from gridalarm.stream.dashboard.server import DashboardCollector
from gridalarm.stream.processor import BatchResult
from gridalarm.stream.scoring import Outputs
from gridalarm.stream.telemetry import WorkerCollector, WorkerStats

DEPLOY = Path(__file__).parents[2] / "deploy"
BOARD = DEPLOY / "grafana" / "dashboards" / "gridalarm.json"


def exported() -> set[str]:
    stats = WorkerStats()
    stats.record(
        0,
        BatchResult(
            outputs=Outputs(scores=[{"model": "m@1"}], alerts=[{"state": "open"}]),
            kinds=Counter({("s", "t"): 1}),
            deadletters=[{"reason": "late"}],
            score_seconds=0.01,
        ),
        offset=0,
        max_time=1.0,
    )
    producer = ProducerMetrics("p")
    producer.sink = SimpleNamespace(
        stats=SimpleNamespace(by_type=Counter(t=1), heartbeats=1, bytes=1, max_ts=1.0)
    )
    producer.producer = SimpleNamespace(
        stats=SimpleNamespace(deadletters=0, duplicates=0, checkpoints=1, checkpointed_at=1.0)
    )
    dashboard = DashboardCollector(
        SimpleNamespace(consumed=Counter(scores=1), streams={}, skipped=0),
        SimpleNamespace(subscribers=set()),
    )
    registry = CollectorRegistry()
    for collector in (WorkerCollector(stats, lambda p: 1), producer, dashboard):
        registry.register(collector)
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_every_metric_on_the_board_is_exported() -> None:
    board = json.loads(BOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"gridalarm_[a-z_]+", expr)}
    assert used, "the board charts nothing"
    missing = sorted(used - exported())
    assert not missing, f"the board uses metrics nobody exports: {missing}"
    datasources = {panel["datasource"]["uid"] for panel in board["panels"]}
    assert datasources == {"gridalarm-prometheus"}  # the provisioned data source


def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool missing: run `make system-packages` (Debian prometheus-alertmanager)"
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    done = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
