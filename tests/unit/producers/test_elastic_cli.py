"""`gridalarm produce es`: option errors are one line and come before any connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "gridalarm", "produce", "es"]  # `gridalarm produce es`


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mapping", "/nonexistent/m.json"], "mapping /nonexistent/m.json: cannot read"),
        (["--since", "2017-03-02", "--until", "2017-03-01"], "--until must be after --since"),
        (["--follow", "--until", "2017-03-01"], "--follow reads without an end"),
        (["--since", "soon"], "--since 'soon'"),
        (["--lag", "later"], "--lag:"),
        (["--user", "u"], "--user needs a password"),
    ],
)
def test_option_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    # The URL answers nothing: every error here must come before a connection is tried.
    proc = subprocess.run(
        [*CLI, "--url", "http://127.0.0.1:1", "--index", "x-*", "--retry-for", "0.1s", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "GRIDALARM_STATE_DIR": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_register_adds_es_once() -> None:
    import typer

    from gridalarm.cli import elastic

    app = typer.Typer()
    elastic.register(app)
    elastic.register(app)
    assert [c.name for c in app.registered_commands] == ["es"]
