"""The plug-in API without a broker: discovery, options, the built-in command probe, the kit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gridalarm.config import Settings
from gridalarm.producers import plugins
from gridalarm.producers.probe import (
    Probe,
    ProbeContext,
    ProbeError,
    ProbeOptions,
    ProbeRun,
    default_checkpoint_path,
    load_checkpoint,
)
from gridalarm.producers.probes.command import Command
from gridalarm.producers.testkit import build_probe, check_snapshot, poll_once

FAKE_CONDOR_Q = Path(__file__).parents[2] / "plugins" / "fake_condor_q.py"
NOW = 1_700_000_000.0


class Counter(Probe):
    """Emits `batch` events per poll, numbered on from its state."""

    class Options(ProbeOptions):
        batch: int = 3

    def __init__(self, options: Any, context: ProbeContext) -> None:
        super().__init__(options, context)
        self.next = 0

    def poll(self, now: float) -> list[dict[str, Any]]:
        first, self.next = self.next, self.next + self.options.batch
        return [
            self.event(now, "test:a", "ExecuteEvent", eid=f"c{i}") for i in range(first, self.next)
        ]

    def snapshot(self) -> Any:
        return {"next": self.next}

    def restore(self, state: Any) -> None:
        self.next = int(state["next"])


def test_installed_probes_are_discovered_through_entry_points() -> None:
    infos = {info.name: info for info in plugins.describe()}
    assert infos["command"].target == "gridalarm.producers.probes.command:Command"
    assert infos["command"].error is None
    assert ("run", "str", "required") in infos["command"].options
    # The example plug-in of tests/plugins/condorq, installed by `make install`.
    assert infos["condor-q"].package.startswith("gridalarm-probe-condorq ")
    assert plugins.load("command") is Command


def test_unknown_probe_is_one_line_naming_the_installed_ones() -> None:
    with pytest.raises(ProbeError) as err:
        plugins.load("no-such-probe")
    message = str(err.value)
    assert "\n" not in message
    assert "'no-such-probe'" in message and "command" in message


def test_options_are_typed_and_unknown_names_refused() -> None:
    probe = build_probe(Command, {"run": "true", "timeout": "2m"})
    assert probe.options.timeout == 120.0
    with pytest.raises(ValueError, match="extra"):
        build_probe(Command, {"run": "true", "colour": "red"})
    with pytest.raises(ValueError, match="run"):
        build_probe(Command, {})


def test_probe_run_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ProbeError, match="interval"):
        ProbeRun(name="x", interval=0.0)


def script(tmp_path: Path, *lines: str) -> str:
    """A command line running a Python script that prints ``lines`` as they are."""
    path = tmp_path / "probe_script.py"
    path.write_text("".join(f"print({line!r})\n" for line in lines))
    return f"{sys.executable} {path}"


def test_command_probe_turns_json_lines_into_messages(tmp_path: Path) -> None:
    run = script(
        tmp_path,
        '{"stream": "site:FNAL", "metrics": {"idle": 5}}',
        '{"ts": 1700000000, "stream": "site:FNAL", "type": "JobHeldEvent", "n": 2}',
    )
    messages = poll_once(Command, {"run": run}, now=NOW)
    assert messages[0]["metrics"] == {"idle": 5}
    assert messages[0]["ts"] == "2023-11-14T22:13:20Z"  # the poll time, filled in
    assert messages[0]["source"] == "probe:Command"
    assert messages[1]["n"] == 2 and messages[1]["v"] == 1


def test_kit_reports_what_the_runner_would_dead_letter(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as err:
        poll_once(Command, {"run": script(tmp_path, "not json", '{"stream": "s"}')}, now=NOW)
    text = str(err.value)
    assert "message 0: bad_json" in text
    assert "message 1: schema" in text


def test_command_probe_failures_are_probe_errors() -> None:
    with pytest.raises(ProbeError, match="no such program"):
        poll_once(Command, {"run": "/nonexistent/condor_q"}, now=NOW)
    with pytest.raises(ProbeError, match="exited 3: boom"):
        script = 'import sys; sys.stderr.write("boom\\n"); sys.exit(3)'
        poll_once(Command, {"run": f"{sys.executable} -c '{script}'"}, now=NOW)
    with pytest.raises(ProbeError, match="ran past"):
        poll_once(Command, {"run": "sleep 5", "timeout": "0.2s"}, now=NOW)


def test_example_condor_q_plugin_reads_each_schedds_totals() -> None:
    cls = plugins.load("condor-q")
    messages = poll_once(cls, {"command": f"{sys.executable} {FAKE_CONDOR_Q}"}, now=NOW)
    by_stream = {m["stream"]: m["metrics"] for m in messages}
    assert by_stream["schedd:fifebatch1.fnal.gov"]["held_jobs"] == 3
    assert by_stream["schedd:fifebatch1.fnal.gov"]["running_jobs"] == 798
    assert by_stream["schedd:fifebatch2.fnal.gov"]["idle_jobs"] == 9


def test_snapshot_survives_json_and_restore() -> None:
    probe = build_probe(Counter, {"batch": 2})
    poll_once(probe, now=NOW)
    assert check_snapshot(probe) == {"next": 2}


def test_checkpoint_for_another_probe_or_damaged_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    options = Command.Options(run="true")
    path = default_checkpoint_path(settings.state_dir, "gridalarm.events", "command", options)
    assert path.parent == tmp_path / "probes"
    assert load_checkpoint(path, "gridalarm.events", "command") is None
    path.parent.mkdir(parents=True)
    path.write_text('{"v": 1, "topic": "gridalarm.events", "probe": "other", "state": null}')
    with pytest.raises(ProbeError, match="for probe 'other'"):
        load_checkpoint(path, "gridalarm.events", "command")
    path.write_text("{")
    with pytest.raises(ProbeError, match="damaged"):
        load_checkpoint(path, "gridalarm.events", "command")


def test_the_walkthrough_in_docs_is_the_installed_example_plugin() -> None:
    root = Path(__file__).parents[3]
    doc = (root / "docs" / "producers.md").read_text()
    shown = doc.split("```python\n", 1)[1].split("```", 1)[0]
    source = (root / "tests" / "plugins" / "condorq" / "condorq_probe.py").read_text()
    assert source.endswith(shown), (
        "docs/producers.md shows another condor-q probe than the tested one"
    )
