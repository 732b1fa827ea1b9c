"""Plug-in probes against the real broker: discovered, run through the CLI, once each."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import REPO_ROOT, gridalarm, read_topic, settings_env, wait_until
from topic_collector import event_ids

from gridalarm.config import Settings
from gridalarm.producers.probe import Probe, ProbeContext, ProbeOptions
from gridalarm.producers.testkit import build_probe, run_probe

pytestmark = pytest.mark.integration

FAKE_CONDOR_Q = Path(__file__).parents[1] / "plugins" / "fake_condor_q.py"
CONDOR_Q = f"command={sys.executable} {FAKE_CONDOR_Q}"


def data(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if not m.get("heartbeat")]


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_cli_lists_and_runs_the_installed_plugin_once(kafka_settings: Settings) -> None:
    listing = gridalarm(kafka_settings, "produce", "plugins")
    assert "condor-q  (gridalarm-probe-condorq 0.1.0; condorq_probe:CondorQTotals)" in listing
    out = gridalarm(kafka_settings, "produce", "run", "condor-q", "--once", "--set", CONDOR_Q)
    assert "condor-q: sent 2 events from 1 polls" in out
    messages = read_topic(kafka_settings, "events")
    samples = {m["stream"]: m for m in data(messages)}
    assert set(samples) == {"schedd:fifebatch1.fnal.gov", "schedd:fifebatch2.fnal.gov"}
    assert samples["schedd:fifebatch1.fnal.gov"]["metrics"]["held_jobs"] == 3
    assert samples["schedd:fifebatch1.fnal.gov"]["source"] == "probe:condor-q"
    # One final heartbeat per partition closes the window the poll fell in.
    assert sum(1 for m in messages if m.get("heartbeat")) == kafka_settings.partitions


def test_polling_run_stops_cleanly_on_sigterm(kafka_settings: Settings) -> None:
    args = ["produce", "run", "condor-q", "--interval", "0.3s", "--set", CONDOR_Q]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", *args],
        env=settings_env(kafka_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        wait_until(lambda: len(data(read_topic(kafka_settings, "events"))) >= 6, 60, "three polls")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "; stopped" in out
    polls = int(out.split(" from ")[1].split()[0])
    sent = data(read_topic(kafka_settings, "events"))
    assert len(sent) == 2 * polls  # every poll's samples delivered before the exit
    checkpoints = list((kafka_settings.state_dir / "probes").glob("*condor-q*.json"))
    assert len(checkpoints) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_metrics_endpoint_counts_what_the_probe_sent(kafka_settings: Settings) -> None:
    port = free_port()
    args = ["produce", "run", "condor-q", "--interval", "1h", "--set", CONDOR_Q]
    args += ["--metrics", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridalarm", *args],
        env=settings_env(kafka_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        wait_until(lambda: len(data(read_topic(kafka_settings, "events"))) >= 2, 60, "a poll")
        wait_until(lambda: "checkpoint_age" in scrape(port), 30, "a checkpoint after the poll")
        text = scrape(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    sent = len(data(read_topic(kafka_settings, "events")))
    assert (
        f'gridalarm_producer_events_total{{source="probe:condor-q",type="gauge"}} {sent}.0' in text
    )
    assert 'gridalarm_producer_deadletters_total{source="probe:condor-q"} 0.0' in text


def test_bad_plugin_arguments_are_one_line(kafka_settings: Settings) -> None:
    cases = {
        ("produce", "run", "no-such"): "no probe named 'no-such'",
        ("produce", "run", "condor-q", "--set", "colour=red"): "--set colour: Extra inputs",
        ("produce", "run", "condor-q", "--set", "timeout=soon"): "--set timeout:",
        ("produce", "run", "condor-q", "--set", "novalue"): "write NAME=VALUE",
        ("produce", "run", "condor-q", "--interval", "0"): "--interval must be > 0",
        ("produce", "run", "condor-q", "--metrics", "9464"): "--metrics '9464': write HOST:PORT",
    }
    for args, expected in cases.items():
        done = run_cli(kafka_settings, *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, done.stderr)


def test_command_probe_dead_letters_bad_lines_and_sends_the_rest(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        'print(\'{"stream": "site:FNAL", "metrics": {"idle_jobs": 7}}\')\n'
        "print('condor_q: not json')\n"
        'print(\'{"stream": "site:FNAL", "type": "JobHeldEvent", "n": -1}\')\n'
    )
    out = gridalarm(
        kafka_settings,
        "produce",
        "run",
        "command",
        "--once",
        "--set",
        f"run={sys.executable} {script}",
    )
    assert "sent 1 events from 1 polls (2 dead-lettered)" in out
    sent = data(read_topic(kafka_settings, "events"))
    assert [m["metrics"] for m in sent] == [{"idle_jobs": 7}]
    dead = read_topic(kafka_settings, "deadletter")
    assert sorted(d["reason"] for d in dead) == ["bad_json", "schema"]
    assert {d["topic"] for d in dead} == {"probe:command"}


class Numbered(Probe):
    """Ten events per poll with ids numbered on from its checkpointed state."""

    class Options(ProbeOptions):
        batch: int = 10

    def __init__(self, options: Any, context: ProbeContext) -> None:
        super().__init__(options, context)
        self.next = 0

    def poll(self, now: float) -> list[dict[str, Any]]:
        first, self.next = self.next, self.next + self.options.batch
        return [
            self.event(now, f"test:{i % 3}", "ExecuteEvent", eid=f"n{i}")
            for i in range(first, self.next)
        ]

    def snapshot(self) -> Any:
        return {"next": self.next}

    def restore(self, state: Any) -> None:
        self.next = int(state["next"])


def test_restart_after_a_crash_sends_every_event_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "numbered.json"
    bootstrap = str(kafka_settings.kafka)
    first = run_probe(
        build_probe(Numbered, settings=kafka_settings),
        kafka_settings,
        bootstrap,
        1,
        checkpoint_path=checkpoint,
    )
    assert first.events == 10
    saved = tmp_path / "after-first.json"
    shutil.copy(checkpoint, saved)
    second = run_probe(
        build_probe(Numbered, settings=kafka_settings),
        kafka_settings,
        bootstrap,
        2,
        checkpoint_path=checkpoint,
    )
    assert (second.events, second.resumed) == (20, True)
    # A crash right after those 20 were delivered, before their checkpoint: the restarted
    # probe polls them again from the older state; the producer finds them on the topic.
    shutil.copy(saved, checkpoint)
    third = run_probe(
        build_probe(Numbered, settings=kafka_settings),
        kafka_settings,
        bootstrap,
        3,
        checkpoint_path=checkpoint,
    )
    assert (third.duplicates, third.events) == (20, 10)
    ids = Tally(eid for m in data(read_topic(kafka_settings, "events")) for eid in event_ids(m))
    assert set(ids) == {f"n{i}" for i in range(40)}
    assert max(ids.values()) == 1
