"""`gridalarm produce eventlog` (gridalarm.cli.eventlog): wiring and one-line errors before Kafka.

The broker address points nowhere: every error here must come before Kafka is touched.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gridalarm.cli import CliError
from gridalarm.cli.eventlog import COMMAND, eventlog_command, register
from gridalarm.cli.produce import produce_app
from gridalarm.producers.eventlog import ReadConfig


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv("GRIDALARM_KAFKA", "127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GRIDALARM_STATE_DIR", str(tmp_path / "state"))
    root = typer.Typer()
    produce = typer.Typer()
    root.add_typer(produce, name="produce")
    register(produce)
    return root


def error_of(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, ["produce", COMMAND, *args])
    assert isinstance(result.exception, CliError), result.output
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_register_adds_the_command_once() -> None:
    register(produce_app)
    register(produce_app)
    assert [c.name for c in produce_app.registered_commands].count(COMMAND) == 1


def test_ad_info_defaults_to_counting_each_job_event_once() -> None:
    # The command spells its default out (it imports the reader only when run): keep the two
    # the same.
    default = inspect.signature(eventlog_command).parameters["ad_info"].default
    assert default == ReadConfig().ad_info == "skip"


def test_unreadable_paths_and_non_logs_fail_before_kafka(app: typer.Typer, tmp_path: Path) -> None:
    assert error_of(app, str(tmp_path / "nope")).endswith("nope: no such file")
    assert "is a directory" in error_of(app, str(tmp_path))
    daemon_log = tmp_path / "SchedLog"
    daemon_log.write_text("11/29/26 07:00:01 (pid:123) ******************************\n")
    assert "not an HTCondor event log" in error_of(app, str(daemon_log))


def test_bad_options_are_one_line(app: typer.Typer, tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    log.write_text("000 (1.000.000) 2025-01-01 00:00:00 Job submitted from host: <1.2.3.4:5>\n")
    assert "--stream-by" in error_of(app, str(log), "--stream-by", "user")
    assert "--ad-info" in error_of(app, str(log), "--ad-info", "twice")
    assert "--timezone" in error_of(app, str(log), "--timezone", "Atlantis/Capital")
    assert "--poll" in error_of(app, str(log), "--poll", "often")


def test_a_damaged_checkpoint_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    log = tmp_path / "EventLog"
    log.write_text("000 (1.000.000) 2025-01-01 00:00:00 Job submitted from host: <1.2.3.4:5>\n")
    checkpoint = tmp_path / "ck.json"
    checkpoint.write_text("{half a checkp")
    assert "damaged" in error_of(app, str(log), "--checkpoint", str(checkpoint))
