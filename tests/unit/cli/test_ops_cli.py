"""`gridalarm notify`, `silence` and `label`: bad input is one line on stderr, exit 2.

Every case here is refused before any broker is contacted (GRIDALARM_KAFKA points nowhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "GRIDALARM_KAFKA": "127.0.0.1:9"},
    )  # fmt: skip


SILENCE = ["silence", "add", "--stream", "schedd:*", "--reason", "upgrade"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["notify"], "Missing option '--to'"),
        (["notify", "--to", "pagerduty=https://x"], "unknown kind 'pagerduty'"),
        (["notify", "--to", "webhook=localhost:80"], "http:// or https:// URL with a host"),
        (["notify", "--to", "alertmanager=http://am:93x"], "not a URL"),
        (["notify", "--to", "webhook=http://h", "--expire-after", "soon"], "--expire-after"),
        (["notify", "--to", "webhook=http://h", "--timeout", "0s"], "--timeout '0s'"),
        ([*SILENCE, "--until", "tomorrow"], "--until 'tomorrow'"),
        ([*SILENCE, "--until", "2h", "--from", "noon"], "--from 'noon'"),
        ([*SILENCE, "--until", "2h", "--id", "a b"], "id must match pattern"),
        ([*SILENCE, "--from", "2026-01-02T00:00:00Z", "--until", "2026-01-01"], "not after from"),
        (["silence", "add", "--until", "2h", "--reason", "r"], "Missing option '--stream'"),
        (["silence", "remove"], "Missing argument 'ID'"),
        (["label", "abc123def4567890", "maybe"], "verdict 'maybe'"),
        (["label", "INCIDENT-7", "confirmed"], "alert id 'INCIDENT-7'"),
        (
            ["evaluate", "--detector", "baseline", "--nab", ".", "--labels-topic", "x.labels"],
            "--labels-topic labels the pool's streams",
        ),
        (
            ["train", "--out", "/tmp/never", "--detector", "lstm-classifier", "--data", "x"],
            "give --labels FILE or --labels-topic TOPIC",
        ),
        (["evaluate", "--detector", "baseline", "--topic", "x"], "or --labels-topic TOPIC"),
    ],
)
def test_bad_arguments_get_one_line(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
